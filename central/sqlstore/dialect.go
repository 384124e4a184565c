package sqlstore

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"
)

const (
	dialectSQLite   = "sqlite"
	dialectPostgres = "postgres"
)

// dialect is what differs between the two databases, in one place.
type dialect struct {
	name   string
	driver string
	goose  goose.Dialect
	path   string // of the SQLite file
}

// dialectOf picks the dialect of a database URL and returns the DSN its
// driver takes.
func dialectOf(raw string) (*dialect, string, error) {
	switch {
	case strings.HasPrefix(raw, "postgres://"), strings.HasPrefix(raw, "postgresql://"):
		if _, err := pgconn.ParseConfig(raw); err != nil {
			return nil, "", fmt.Errorf("database URL: %w", err)
		}
		return &dialect{name: dialectPostgres, driver: "pgx", goose: goose.DialectPostgres}, raw, nil
	case strings.Contains(raw, "://"):
		return nil, "", fmt.Errorf("database URL %q: want postgres://… or the path of a SQLite file", redact(raw))
	}
	path := strings.TrimPrefix(raw, "sqlite:")
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, "", fmt.Errorf("database URL %q: want the path of a SQLite file", raw)
	}
	// WAL lets readers run beside the one writer; synchronous=FULL makes a
	// commit durable before RecordScan returns, since the sensor deletes
	// its copy once the upload is acknowledged; busy_timeout makes a
	// writer wait for another rather than fail; BEGIN IMMEDIATE takes the
	// write lock at the start of a transaction, so two writers never
	// deadlock upgrading a read lock.
	q := url.Values{"_pragma": {"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"}, "_txlock": {"immediate"}}
	return &dialect{name: dialectSQLite, driver: "sqlite", goose: goose.DialectSQLite3, path: path}, "file:" + path + "?" + q.Encode(), nil
}

// CheckURL reports whether raw is a database URL Open takes.
func CheckURL(raw string) error {
	_, _, err := dialectOf(raw)
	return err
}

// configure sizes the connection pool.
func (d *dialect) configure(db *sql.DB) {
	if d.name == dialectSQLite {
		// One writer at a time in any case; a few readers beside it.
		db.SetMaxOpenConns(8)
		return
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(8)
}

// q rewrites a query's ? placeholders for the dialect: $1, $2, … for
// PostgreSQL. Queries have no ? in string literals.
func (d *dialect) q(query string) string {
	if d.name != dialectPostgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ErrUnavailable marks a failure of the database itself (unreachable, shut
// down, out of resources, busy) rather than of a request: retry later.
var ErrUnavailable = errors.New("the message store is unavailable")

// wrap gives a database error its context, and marks the database's
// unavailability with ErrUnavailable.
func (d *dialect) wrap(what string, err error) error {
	if unavailable(err) {
		return fmt.Errorf("%s %s: %w: %w", d.name, what, ErrUnavailable, err)
	}
	return fmt.Errorf("%s %s: %w", d.name, what, err)
}

// unavailable reports whether err is the database failing rather than the
// request: a lost or refused connection, PostgreSQL's connection, shutdown
// and resource classes (08, 57P, 53), SQLite busy, locked, full or failing
// to read or write.
func unavailable(err error) bool {
	var (
		netErr  net.Error
		connErr *pgconn.ConnectError
		pgErr   *pgconn.PgError
		liteErr *sqlite.Error
	)
	switch {
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &netErr), errors.As(err, &connErr), pgconn.SafeToRetry(err):
		return true
	case errors.As(err, &pgErr):
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "53")
	case errors.As(err, &liteErr):
		switch liteErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
			return true
		}
	}
	return false
}

// redact hides the password of a URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
