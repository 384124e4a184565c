// Command smtpauth measures SMTP AUTH against a directory: how many
// credentials per second a gateway's submission listener can check with
// package smtpauth against a real OpenLDAP slapd (internal/slapdtest: an
// mdb database on this machine's disk, filled with -users users whose
// passwords are hashed {SSHA}), with its cache of good logins off and on,
// in the same run.
//
// Four ways, each at each concurrency, in -rounds rounds of -checks checks
// (the same users, in turn), with the medians over the rounds of the
// checks per second and of the p50 and p99 latency of a check:
//
//   - reference: what a check costs without the Authenticator's pool: a
//     new connection to slapd, a bind as the user, close (go-ldap
//     directly);
//   - authenticator, bind as the user (bind_dn_template), cache off: one
//     bind on a pooled connection;
//   - authenticator, search then bind (as the search account), cache off:
//     a search and a bind on pooled connections;
//   - authenticator, cache on: each user logs in again after a first
//     check, as a mail client that logs in for every message does, so
//     every check of a round is a hit;
//
// and whole sessions on the submission listener (package smtpd, in this
// process): connect, EHLO, STARTTLS, EHLO, AUTH PLAIN, QUIT, from go-smtp's
// client, cache off and on: what a client waits for, the TLS handshake
// included.
//
// The machine's load average is printed before and after: the figures
// move with what else runs.
//
// Usage (with slapd installed): go run ./bench/smtpauth -rounds 5
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/go-ldap/ldap/v3"

	"github.com/ospreysec/osprey/internal/benchproc"
	"github.com/ospreysec/osprey/internal/slapdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/smtpauth"
	"github.com/ospreysec/osprey/sensor/smtpd"
	"github.com/ospreysec/osprey/sensor/spool"
)

func main() {
	rounds := flag.Int("rounds", 3, "rounds per way and concurrency")
	checks := flag.Int("checks", 2000, "checks per round")
	sessions := flag.Int("sessions", 500, "SMTP sessions per round on the submission listener")
	users := flag.Int("users", 1000, "users in the directory")
	concList := flag.String("concurrency", "1,8", "checks at once, comma-separated")
	flag.Parse()
	ctx := context.Background()
	log.Printf("load average before: %s", benchproc.LoadAvg())

	dir, err := os.MkdirTemp("", "bench-smtpauth")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	pw := map[string]string{}
	for i := range *users {
		pw[user(i)] = password(i)
	}
	start := time.Now()
	slapd, err := slapdtest.Launch(dir, slapdtest.Options{Users: pw})
	if err != nil {
		log.Fatal(err)
	}
	defer slapd.Stop()
	log.Printf("slapd ready with %d users in %v", *users, time.Since(start).Round(time.Millisecond))

	template := &ospreyv1.LdapAuth{Url: slapd.URL, BindDnTemplate: slapdtest.BindTemplate, TimeoutMs: 30000}
	search := &ospreyv1.LdapAuth{Url: slapd.URL, BaseDn: slapdtest.PeopleDN, Filter: slapdtest.Filter,
		SearchBindDn: slapdtest.SearchDN, SearchBindPassword: slapdtest.SearchPassword, TimeoutMs: 30000}
	ways := []struct {
		name  string
		check func() (checker, func())
	}{
		{"reference: new connection, bind, close", func() (checker, func()) { return unpooled(slapd.URL), func() {} }},
		{"authenticator, bind as the user, cache off", func() (checker, func()) { return authenticator(template, false) }},
		{"authenticator, search then bind, cache off", func() (checker, func()) { return authenticator(search, false) }},
		{"authenticator, cache on (every login seen before)", func() (checker, func()) { return authenticator(template, true) }},
	}
	fmt.Printf("| way | checks at once | checks/s | p50 | p99 |\n|---|---:|---:|---:|---:|\n")
	for _, w := range ways {
		for _, conc := range ints(*concList) {
			c, stop := w.check()
			// Warm up: the pools fill, the cache learns every user.
			if _, err := run(ctx, c, *users, *users, conc); err != nil {
				log.Fatal(err)
			}
			var res []result
			for range *rounds {
				r, err := run(ctx, c, *checks, *users, conc)
				if err != nil {
					log.Fatal(err)
				}
				res = append(res, r)
			}
			stop()
			printRow(w.name, conc, res)
		}
	}
	// The sessions with the cache off and on take turns, round by round,
	// so that both meet the same state of the machine (the loopback
	// connections of the rounds before, in TIME_WAIT, slow the next ones).
	for _, conc := range ints(*concList) {
		var checks [2]checker
		var stops [2]func()
		for i, cached := range []bool{false, true} {
			c, stop, err := submission(ctx, template, cached)
			if err != nil {
				log.Fatal(err)
			}
			checks[i], stops[i] = c, stop
			if _, err := run(ctx, c, *users, *users, conc); err != nil {
				log.Fatal(err)
			}
		}
		var res [2][]result
		for range *rounds {
			for i, c := range checks {
				r, err := run(ctx, c, *sessions, *users, conc)
				if err != nil {
					log.Fatal(err)
				}
				res[i] = append(res[i], r)
			}
		}
		for i, name := range []string{"cache off", "cache on"} {
			stops[i]()
			printRow("submission listener session (STARTTLS, AUTH PLAIN), "+name, conc, res[i])
		}
	}
	log.Printf("load average after: %s", benchproc.LoadAvg())
}

func user(i int) string     { return "user" + strconv.Itoa(i) }
func password(i int) string { return "password-" + strconv.Itoa(i) }

// checker checks the credentials of user i.
type checker func(ctx context.Context, i int) error

// unpooled binds on a new connection per check.
func unpooled(url string) checker {
	return func(ctx context.Context, i int) error {
		c, err := ldap.DialURL(url, ldap.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}))
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Bind(strings.Replace(slapdtest.BindTemplate, "%s", user(i), 1), password(i))
	}
}

// authenticator checks with an smtpauth.Authenticator of source a.
func authenticator(a *ospreyv1.LdapAuth, cache bool) (checker, func()) {
	auth := smtpauth.New(smtpauth.Options{})
	if err := auth.Apply(&ospreyv1.SubmissionSettings{Enabled: true, Source: ospreyv1.AuthSource_AUTH_SOURCE_LDAP, Ldap: a,
		DisableCache: !cache, MaxFailuresPerClient: 10000, MaxFailuresPerUser: 10000}); err != nil {
		log.Fatal(err)
	}
	client := netip.MustParseAddr("192.0.2.1")
	return func(ctx context.Context, i int) error {
		return auth.Authenticate(ctx, client, user(i), password(i))
	}, func() { _ = auth.Apply(nil) }
}

// submission runs a submission listener on loopback, checking with an
// Authenticator of source a, and returns a checker that holds a whole
// session per check.
func submission(ctx context.Context, a *ospreyv1.LdapAuth, cache bool) (checker, func(), error) {
	dir, err := os.MkdirTemp("", "bench-smtpauth-spool")
	if err != nil {
		return nil, nil, err
	}
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		return nil, nil, err
	}
	auth := smtpauth.New(smtpauth.Options{})
	sub := &ospreyv1.SubmissionSettings{Enabled: true, Source: ospreyv1.AuthSource_AUTH_SOURCE_LDAP, Ldap: a,
		Listener:     &ospreyv1.GatewayListener{Listen: "127.0.0.1:0", Tls: &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_REQUIRE}},
		DisableCache: !cache, MaxFailuresPerClient: 10000, MaxFailuresPerUser: 10000}
	if err := auth.Apply(sub); err != nil {
		return nil, nil, err
	}
	srv := smtpd.New(smtpd.Options{Spool: sp, Hostname: "gw.bench", Authenticator: auth,
		Role: smtpd.Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND, Submission: true}})
	cfg := &ospreyv1.SmtpIntegration{Enabled: true, Mode: ospreyv1.SmtpMode_SMTP_MODE_OUTBOUND,
		MaxMessageSize: &ospreyv1.SizeLimit{Value: 1, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB},
		Limits:         &ospreyv1.SmtpLimits{MaxConnectionsPerClient: 200},
		Gateway:        &ospreyv1.SmtpGateway{Outbound: &ospreyv1.GatewayListener{Listen: "127.0.0.1:0"}, Submission: sub}}
	if err := srv.Apply(ctx, cfg); err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Run(runCtx)
	}()
	addr := srv.Addr().String()
	tlsCfg := &tls.Config{InsecureSkipVerify: true} // the listener's self-signed certificate
	check := func(ctx context.Context, i int) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		c, err := smtp.NewClientStartTLS(conn, tlsCfg)
		if err != nil {
			conn.Close()
			return err
		}
		defer c.Close()
		if err := c.Auth(sasl.NewPlainClient("", user(i), password(i))); err != nil {
			return err
		}
		return c.Quit()
	}
	stop := func() {
		cancel()
		<-done
		_ = auth.Apply(nil)
		sp.Close()
		os.RemoveAll(dir)
	}
	return check, stop, nil
}

// result is one round's latencies (seconds) and rate.
type result struct{ p50, p99, rate float64 }

// run makes n checks, of users 0 to users-1 in turn, conc at a time.
func run(ctx context.Context, c checker, n, users, conc int) (result, error) {
	lat := make([]float64, n)
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for i := range next {
				t0 := time.Now()
				err := c(ctx, i%users)
				lat[i] = time.Since(t0).Seconds()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("check %d: %w", i, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	slices.Sort(lat)
	return result{p50: lat[n/2], p99: lat[n*99/100], rate: float64(n) / elapsed}, firstErr
}

func printRow(name string, conc int, res []result) {
	var p50s, p99s, rates []float64
	for _, r := range res {
		p50s, p99s, rates = append(p50s, r.p50), append(p99s, r.p99), append(rates, r.rate)
	}
	fmt.Printf("| %s | %d | %.0f | %s | %s |\n", name, conc, benchproc.Median(rates), ms(benchproc.Median(p50s)), ms(benchproc.Median(p99s)))
}

func ms(sec float64) string {
	if sec < 1e-4 {
		return fmt.Sprintf("%.1f µs", sec*1e6)
	}
	return fmt.Sprintf("%.3f ms", sec*1000)
}

func ints(list string) []int {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("bad number %q in %q", f, list)
		}
		out = append(out, n)
	}
	return out
}
