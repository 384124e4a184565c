package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// copySQLite copies the SQLite database at src, which the node may be
// writing, to dst with VACUUM INTO: one read transaction, so the copy is
// the database as of one commit, whole and without a WAL beside it. It
// checks the copy and counts the rows of each of its tables.
func copySQLite(ctx context.Context, src, dst string) (map[string]int64, error) {
	if _, err := os.Stat(src); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no SQL store at %s: a node with --db-url keeps its records in PostgreSQL (give --db-url, and back the database up with pg_dump)", src)
		}
		return nil, fmt.Errorf("SQL store: %w", err)
	}
	// mode=rw opens an existing file and never makes one; busy_timeout
	// waits for the node's writer rather than fail.
	db, err := openSQLite(src, "rw")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	// VACUUM INTO takes a string literal, not a parameter.
	if _, err := db.ExecContext(ctx, "VACUUM INTO '"+strings.ReplaceAll(dst, "'", "''")+"'"); err != nil {
		return nil, fmt.Errorf("copy the SQL store %s: %w", src, err)
	}
	if err := os.Chmod(dst, 0o600); err != nil {
		return nil, err
	}
	if err := syncFile(dst); err != nil {
		return nil, err
	}
	return checkSQLite(ctx, dst)
}

// openSQLite opens the SQLite file at path in mode (ro, rw).
func openSQLite(path, mode string) (*sql.DB, error) {
	q := url.Values{"mode": {mode}, "_pragma": {"busy_timeout(10000)"}}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// checkSQLite runs SQLite's integrity check on the file at path and counts
// the rows of each of its tables.
func checkSQLite(ctx context.Context, path string) (map[string]int64, error) {
	db, err := openSQLite(path, "ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var verdict string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&verdict); err != nil {
		return nil, fmt.Errorf("check %s: %w", path, err)
	}
	if verdict != "ok" {
		return nil, fmt.Errorf("check %s: %s", path, verdict)
	}
	rows, err := db.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list the tables of %s: %w", path, err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, name)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	counts := make(map[string]int64, len(tables))
	for _, t := range tables {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM "`+strings.ReplaceAll(t, `"`, `""`)+`"`).Scan(&n); err != nil {
			return nil, fmt.Errorf("count the rows of %s in %s: %w", t, path, err)
		}
		counts[t] = n
	}
	return counts, nil
}
