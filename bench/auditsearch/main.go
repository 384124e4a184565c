// Command auditsearch measures searches of the message audit log over a
// large generated log, on SQLite and on PostgreSQL in the same run.
//
// It fills a fresh store of each kind with -events events spread over the
// last 30 days (the default retention) of one tenant: accepted messages
// (records as the central writes them, through the store's own import path,
// so every column and index the searches use is there) and refusals, nine
// to one. Senders come from 20,000 addresses in 2,000 domains, recipients
// from 5,000 mailboxes, clients from 10,000 addresses. Then it runs each
// search -queries times with varied arguments, through Store.ListAudit, the
// path of GET /api/v1/audit, one page of 50, newest first:
//
//   - sender substring, last 24 h (a domain part: matches often or never);
//   - recipient exact, any time;
//   - refusal reason, any time;
//
// and reports the median and p95 of each, and the bytes each store takes
// per event. Between the load and the searches it brings each store to the
// state a running one is in (settle: ANALYZE, VACUUM ANALYZE). PostgreSQL runs from Debian's package in a temporary directory
// (internal/pgtest), fsync on.
//
// Usage: go run ./bench/auditsearch -events 10000000
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/pgtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

const tenant = "bench"

func main() {
	events := flag.Int("events", 1_000_000, "events to generate in each store")
	queries := flag.Int("queries", 50, "runs of each search")
	only := flag.String("stores", "sqlite,postgres", "stores to measure")
	explain := flag.Bool("explain", false, "print PostgreSQL's plan of a sender search for a domain that exists and one that does not")
	flag.Parse()
	ctx := context.Background()
	work, err := os.MkdirTemp("", "auditsearch")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	now := time.Now().Truncate(time.Second)
	fmt.Printf("| store | events | bytes per event | sender substring, 24 h: median / p95 | recipient: median / p95 | reason: median / p95 |\n|---|---:|---:|---:|---:|---:|\n")
	for _, kind := range strings.Split(*only, ",") {
		var (
			url  string
			size func() int64
		)
		switch kind {
		case "sqlite":
			path := filepath.Join(work, "osprey.db")
			url = path
			size = func() int64 {
				var n int64
				for _, f := range []string{path, path + "-wal"} {
					if st, err := os.Stat(f); err == nil {
						n += st.Size()
					}
				}
				return n
			}
		case "postgres":
			srv, err := pgtest.StartDurable(ctx)
			if err != nil {
				log.Fatal(err)
			}
			defer srv.Close()
			var name string
			if name, url, err = srv.CreateDB(ctx); err != nil {
				log.Fatal(err)
			}
			size = func() int64 {
				db, err := sql.Open("pgx", url)
				if err != nil {
					return 0
				}
				defer db.Close()
				var n int64
				db.QueryRowContext(ctx, "SELECT pg_database_size($1)", name).Scan(&n)
				return n
			}
		default:
			log.Fatalf("unknown store %q", kind)
		}
		st, err := sqlstore.Open(ctx, sqlstore.Options{URL: url, Now: func() time.Time { return now }})
		if err != nil {
			log.Fatal(err)
		}
		before := size()
		start := time.Now()
		fill(ctx, st, *events, now)
		log.Printf("%s: %d events in %s", kind, *events, time.Since(start).Round(time.Second))
		settle(ctx, kind, url)
		perEvent := (size() - before) / int64(*events)
		if *explain && kind == "postgres" {
			explainSender(ctx, url, now)
		}
		sender := measure(*queries, func(i int) sqlstore.AuditQuery {
			// Half the domains exist, half do not: a search that finds
			// nothing reads every event of the day.
			return sqlstore.AuditQuery{Tenant: tenant, Sender: fmt.Sprintf("@d%d.", i*37%4000), From: now.Add(-24 * time.Hour)}
		}, st)
		rcpt := measure(*queries, func(i int) sqlstore.AuditQuery {
			return sqlstore.AuditQuery{Tenant: tenant, Recipient: fmt.Sprintf("user%d@example.com", i*97%5000)}
		}, st)
		reason := measure(*queries, func(i int) sqlstore.AuditQuery {
			return sqlstore.AuditQuery{Tenant: tenant, Reason: reasons[i%len(reasons)]}
		}, st)
		fmt.Printf("| %s | %d | %d | %s | %s | %s |\n", kind, *events, perEvent, sender, rcpt, reason)
		st.Close()
	}
}

var reasons = []string{"recipient_refused", "client_refused", "message_too_large", "tls_invalid_client_certificate", "protocol_error", "bare_newline"}

// explainSender logs PostgreSQL's plan of the query Store.ListAudit runs
// for a sender search over the last day, written out here.
func explainSender(ctx context.Context, url string, now time.Time) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	for _, sender := range []string{"%@d123.%", "%@d2345.%"} {
		rows, err := db.QueryContext(ctx, `EXPLAIN (ANALYZE, BUFFERS) SELECT m.received_at, m.record FROM messages m
			WHERE m.tenant = $1 AND m.received_at >= $2 AND (m.mail_from LIKE $3 ESCAPE '\' OR m.header_from LIKE $3 ESCAPE '\')
			ORDER BY m.received_at DESC, m.tenant DESC, m.sensor_id DESC, m.message_id DESC LIMIT 51`,
			tenant, now.Add(-24*time.Hour).UnixMicro(), sender)
		if err != nil {
			log.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				log.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		log.Printf("plan of a sender search for %s:\n%s", sender, strings.Join(plan, "\n"))
	}
}

// measure runs a search q(i) for i in 0..n-1 and returns its median and p95.
func measure(n int, q func(i int) sqlstore.AuditQuery, st *sqlstore.Store) string {
	var ds []time.Duration
	for i := range n {
		start := time.Now()
		if _, err := st.ListAudit(context.Background(), store.AllTenants(), q(i)); err != nil {
			log.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return fmt.Sprintf("%s / %s", ms(ds[len(ds)/2]), ms(ds[len(ds)*95/100]))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// fill writes n events spread over the 30 days before now: nine accepted
// messages to one refusal count, through the store's import path.
func fill(ctx context.Context, st *sqlstore.Store, n int, now time.Time) {
	r := rand.New(rand.NewPCG(1, 2))
	span := 30 * 24 * time.Hour
	var (
		batch []sqlstore.Refusal
		recs  []*ospreyv1.MessageRecord
	)
	flush := func() {
		if len(batch) > 0 {
			if err := st.RecordRefusals(ctx, store.AllTenants(), tenant, "s1", batch); err != nil {
				log.Fatal(err)
			}
			batch = batch[:0]
		}
		if len(recs) > 0 {
			if err := st.ImportMessages(ctx, recs); err != nil {
				log.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	for i := range n {
		at := now.Add(-time.Duration(r.Int64N(int64(span))))
		client := fmt.Sprintf("10.%d.%d.%d", r.IntN(40), r.IntN(250), r.IntN(250))
		from := fmt.Sprintf("sender%d@d%d.example.net", r.IntN(20000), r.IntN(2000))
		if i%10 == 9 {
			batch = append(batch, sqlstore.Refusal{Minute: at, ClientIP: client, Reason: reasons[r.IntN(len(reasons))],
				Count: int64(1 + r.IntN(20)), FirstAt: at, LastAt: at, MailFrom: from,
				Rcpt: fmt.Sprintf("user%d@example.com", r.IntN(5000))})
			if len(batch) == 1000 {
				flush()
			}
			continue
		}
		rcpts := []string{fmt.Sprintf("user%d@example.com", r.IntN(5000))}
		if r.IntN(4) == 0 {
			rcpts = append(rcpts, fmt.Sprintf("user%d@example.com", r.IntN(5000)))
		}
		rec := &ospreyv1.MessageRecord{
			MessageId: fmt.Sprintf("m%09d", i), SensorId: "s1", Tenant: tenant, Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP,
			Size: int64(2000 + r.IntN(50000)), Verdict: "clean", Node: "n1", UploadedAt: timestamppb.New(at),
			Sha256:   fmt.Sprintf("%064x", r.Uint64()),
			Envelope: &ospreyv1.Envelope{MailFrom: from, RcptTo: rcpts, ClientAddr: client + ":25000", Helo: "mx.example.net", ReceivedAt: timestamppb.New(at)},
			Headers: &ospreyv1.HeaderSummary{From: "Sender <" + from + ">", To: rcpts, Subject: fmt.Sprintf("Report %d for week %d", r.IntN(1000), r.IntN(52)),
				MessageId: fmt.Sprintf("<%d.%d@d.example.net>", i, r.Uint32())},
		}
		if recs = append(recs, rec); len(recs) == 5000 {
			flush()
		}
		if i > 0 && i%200000 == 0 {
			log.Printf("%d events", i)
		}
	}
	flush()
}

// settle brings a freshly loaded store to the state a running one is in:
// the planner's statistics and, on PostgreSQL, the visibility map that
// index-only scans need. A node's SQLite store analyses itself (PRAGMA
// optimize at open and after each retention sweep), and PostgreSQL's
// autovacuum does both; right after a bulk load neither has run yet.
func settle(ctx context.Context, kind, url string) {
	driver, stmt := "sqlite", "ANALYZE"
	if kind == "postgres" {
		driver, stmt = "pgx", "VACUUM ANALYZE"
	}
	db, err := sql.Open(driver, url)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		log.Fatalf("%s: %s: %v", kind, stmt, err)
	}
	log.Printf("%s: %s in %s", kind, stmt, time.Since(start).Round(time.Second))
}
