package sqlstore

import (
	"database/sql"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
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
	return &dialect{name: dialectSQLite, driver: "sqlite", goose: goose.DialectSQLite3}, "file:" + path + "?" + q.Encode(), nil
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

// wrap gives a database error its context.
func (d *dialect) wrap(what string, err error) error {
	return fmt.Errorf("%s %s: %w", d.name, what, err)
}

// redact hides the password of a URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
