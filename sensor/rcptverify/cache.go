package rcptverify

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

//go:embed migrations
var migrations embed.FS

// cache is the results table: one row a recipient, at most max rows. A
// nil cache (not open) finds nothing and keeps nothing.
type cache struct {
	db  *sql.DB
	max int
	n   atomic.Int64 // rows, as counted at open and kept by put and the deletions

	getStmt, existsStmt, putStmt, evictStmt, expireStmt *sql.Stmt

	wmu sync.Mutex // one writer: the count follows the writes
}

// entry is one cached result.
type entry struct {
	found   bool
	reply   string
	checked time.Time
}

// openCache opens (or creates) the cache's database in dir.
func openCache(ctx context.Context, dir string, max int, log *slog.Logger) (*cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open recipient verification cache %s: %w", dir, err)
	}
	path := filepath.Join(dir, "results.db")
	// SQLite gives its -wal and -shm files the database file's mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open recipient verification cache %s: %w", dir, err)
	}
	f.Close()
	// synchronous(NORMAL): a result lost in a power cut is one probe more.
	q := url.Values{"_pragma": {"journal_mode(WAL)", "synchronous(NORMAL)", "busy_timeout(10000)"}, "_txlock": {"immediate"}}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open recipient verification cache %s: %w", dir, err)
	}
	db.SetMaxOpenConns(4)
	c := &cache{db: db, max: max}
	if err := c.init(ctx, log); err != nil {
		c.close()
		return nil, fmt.Errorf("open recipient verification cache %s: %w", dir, err)
	}
	return c, nil
}

func (c *cache) init(ctx context.Context, log *slog.Logger) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, c.db, fsys, goose.WithDisableGlobalRegistry(true), goose.WithSlog(log))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, s := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&c.getStmt, `SELECT found, reply, checked FROM results WHERE addr = ?`},
		{&c.existsStmt, `SELECT count(*) FROM results WHERE addr = ?`},
		{&c.putStmt, `INSERT INTO results (addr, found, reply, checked) VALUES (?, ?, ?, ?)
			ON CONFLICT (addr) DO UPDATE SET found = excluded.found, reply = excluded.reply, checked = excluded.checked`},
		{&c.evictStmt, `DELETE FROM results WHERE addr IN (SELECT addr FROM results ORDER BY checked, addr LIMIT ?)`},
		{&c.expireStmt, `DELETE FROM results WHERE (found = 1 AND checked <= ?) OR (found = 0 AND checked <= ?)`},
	} {
		if *s.stmt, err = c.db.PrepareContext(ctx, s.sql); err != nil {
			return fmt.Errorf("prepare %q: %w", s.sql, err)
		}
	}
	var n int64
	if err := c.db.QueryRowContext(ctx, `SELECT count(*) FROM results`).Scan(&n); err != nil {
		return fmt.Errorf("count results: %w", err)
	}
	c.n.Store(n)
	return nil
}

func (c *cache) close() error {
	if c == nil {
		return nil
	}
	for _, s := range []*sql.Stmt{c.getStmt, c.existsStmt, c.putStmt, c.evictStmt, c.expireStmt} {
		if s != nil {
			s.Close()
		}
	}
	return c.db.Close()
}

func (c *cache) len() int64 {
	if c == nil {
		return 0
	}
	return c.n.Load()
}

// get returns the result cached for key.
func (c *cache) get(ctx context.Context, key string) (entry, bool, error) {
	if c == nil {
		return entry{}, false, nil
	}
	var e entry
	var at int64
	err := c.getStmt.QueryRowContext(ctx, key).Scan(&e.found, &e.reply, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return entry{}, false, nil
	case err != nil:
		return entry{}, false, fmt.Errorf("read the result of %s: %w", key, err)
	}
	e.checked = time.UnixMicro(at)
	return e, true, nil
}

// put stores the result of a probe, and makes room by deleting the oldest
// results when the cache is over its bound (a hundredth of it at once, so
// that a full cache does not pay a deletion per probe).
func (c *cache) put(ctx context.Context, key string, found bool, reply string, at time.Time) error {
	if c == nil {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store the result of %s: %w", key, err)
	}
	defer tx.Rollback()
	var had int64
	if err := tx.StmtContext(ctx, c.existsStmt).QueryRowContext(ctx, key).Scan(&had); err != nil {
		return fmt.Errorf("store the result of %s: %w", key, err)
	}
	if _, err := tx.StmtContext(ctx, c.putStmt).ExecContext(ctx, key, found, reply, at.UnixMicro()); err != nil {
		return fmt.Errorf("store the result of %s: %w", key, err)
	}
	n := c.n.Load() + 1 - had
	var evicted int64
	if n > int64(c.max) {
		res, err := tx.StmtContext(ctx, c.evictStmt).ExecContext(ctx, n-int64(c.max)+int64(c.max/100))
		if err != nil {
			return fmt.Errorf("make room in the cache: %w", err)
		}
		evicted, _ = res.RowsAffected()
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store the result of %s: %w", key, err)
	}
	c.n.Store(n - evicted)
	return nil
}

// expire deletes the results past their lifetime at now, and returns how
// many.
func (c *cache) expire(ctx context.Context, now time.Time, positive, negative time.Duration) (int64, error) {
	if c == nil {
		return 0, nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	res, err := c.expireStmt.ExecContext(ctx, now.Add(-positive).UnixMicro(), now.Add(-negative).UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("delete expired results: %w", err)
	}
	n, _ := res.RowsAffected()
	c.n.Add(-n)
	return n, nil
}
