package dnscache

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/ospreysec/osprey/internal/clocktest"
	"github.com/ospreysec/osprey/internal/dnstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newResolver(t *testing.T, srv *dnstest.Server, clock *clocktest.Clock, mod func(*Options)) *Resolver {
	t.Helper()
	opts := Options{Servers: []string{srv.Addr}, Now: clock.Now, Timeout: 2 * time.Second, AttemptTimeout: 500 * time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func dnsErr(t *testing.T, err error) *net.DNSError {
	t.Helper()
	de, ok := err.(*net.DNSError) // not wrapped: the SPF and DKIM libraries assert the type
	if !ok {
		t.Fatalf("got error %T %v, want a *net.DNSError", err, err)
	}
	return de
}

func TestLookups(t *testing.T) {
	srv := dnstest.New(t)
	srv.MustAdd(t,
		`example.com. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
		`example.com. 300 IN TXT "hello" " world"`,
		`example.com. 300 IN MX 20 mx2.example.com.`,
		`example.com. 300 IN MX 10 mx1.example.com.`,
		`mx1.example.com. 300 IN A 192.0.2.25`,
		`mx1.example.com. 300 IN AAAA 2001:db8::25`,
		`v4only.example.com. 300 IN A 192.0.2.26`,
		`1.2.0.192.in-addr.arpa. 300 IN PTR mail.example.com.`,
	)
	r := newResolver(t, srv, clocktest.New(time.Now()), nil)
	ctx := t.Context()

	txt, err := r.LookupTXT(ctx, "Example.COM")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(txt)
	if diff := cmp.Diff([]string{"hello world", "v=spf1 ip4:192.0.2.1 -all"}, txt); diff != "" {
		t.Errorf("TXT (-want +got):\n%s", diff)
	}

	mx, err := r.LookupMX(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, m := range mx {
		hosts = append(hosts, m.Host)
	}
	slices.Sort(hosts)
	if diff := cmp.Diff([]string{"mx1.example.com.", "mx2.example.com."}, hosts); diff != "" {
		t.Errorf("MX (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		host string
		want []string
	}{
		{"mx1.example.com", []string{"192.0.2.25", "2001:db8::25"}},
		{"v4only.example.com.", []string{"192.0.2.26"}},
		{"198.51.100.7", []string{"198.51.100.7"}},
	} {
		t.Run("ip "+tc.host, func(t *testing.T) {
			addrs, err := r.LookupIPAddr(ctx, tc.host)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range addrs {
				got = append(got, a.IP.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
		})
	}

	names, err := r.LookupAddr(ctx, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"mail.example.com."}, names); diff != "" {
		t.Errorf("PTR (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name   string
		lookup func() error
	}{
		{"nxdomain", func() error { _, err := r.LookupTXT(ctx, "nowhere.example.com"); return err }},
		{"nodata", func() error { _, err := r.LookupMX(ctx, "mx1.example.com"); return err }},
		{"no address", func() error { _, err := r.LookupIPAddr(ctx, "nowhere.example.com"); return err }},
		{"bad name", func() error { _, err := r.LookupTXT(ctx, strings.Repeat("a", 64)+".example.com"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if de := dnsErr(t, tc.lookup()); !de.IsNotFound || de.Temporary() {
				t.Errorf("got %+v, want a not-found error that is not temporary", de)
			}
		})
	}
}

// TestCacheHonoursTTL: an answer is served from the cache until its TTL
// passes, a negative answer for the SOA's negative TTL, and one without an
// SOA not at all.
func TestCacheHonoursTTL(t *testing.T) {
	srv := dnstest.New(t)
	srv.MustAdd(t, `short.example.com. 30 IN TXT "a"`, `long.example.com. 86400 IN TXT "b"`)
	clock := clocktest.New(time.Now())
	r := newResolver(t, srv, clock, func(o *Options) { o.MaxTTL = time.Hour })
	ctx := t.Context()
	lookup := func(name string) {
		t.Helper()
		if _, err := r.LookupTXT(ctx, name); err != nil && !dnsErr(t, err).IsNotFound {
			t.Fatal(err)
		}
	}
	steps := []struct {
		advance time.Duration
		name    string
		want    int // queries the server has seen for name after the lookup
	}{
		{0, "short.example.com", 1},
		{29 * time.Second, "short.example.com", 1},
		{time.Second, "short.example.com", 2}, // 30 s: expired
		{0, "long.example.com", 1},
		{59 * time.Minute, "long.example.com", 1},
		{time.Minute, "long.example.com", 2}, // capped at MaxTTL
		{0, "missing.example.com", 1},
		{dnstest.NegativeTTL*time.Second - time.Second, "missing.example.com", 1},
		{time.Second, "missing.example.com", 2},
	}
	for i, st := range steps {
		clock.Advance(st.advance)
		lookup(st.name)
		if got := srv.Queries("TXT", st.name); got != st.want {
			t.Fatalf("step %d (%s after %v): the server saw %d queries, want %d", i, st.name, st.advance, got, st.want)
		}
	}

	srv.SetNegativeTTL(0)
	lookup("nosoa.example.com")
	lookup("nosoa.example.com")
	if got := srv.Queries("TXT", "nosoa.example.com"); got != 2 {
		t.Errorf("a negative answer without an SOA: %d queries for two lookups, want 2 (not cached)", got)
	}
	if st := r.Stats(); st.Hits == 0 || st.Misses == 0 {
		t.Errorf("stats %+v: want hits and misses", st)
	}
}

func TestCacheBounded(t *testing.T) {
	srv := dnstest.New(t)
	names := []string{"a.example.com", "b.example.com", "c.example.com"}
	for _, n := range names {
		srv.TXT(n, 3600, n)
	}
	r := newResolver(t, srv, clocktest.New(time.Now()), func(o *Options) { o.MaxEntries = 2 })
	ctx := t.Context()
	for _, n := range []string{"a.example.com", "b.example.com", "a.example.com", "c.example.com", "a.example.com", "b.example.com"} {
		if _, err := r.LookupTXT(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	// a stays (used last before c came), b was evicted by c and asked again.
	got := []int{srv.Queries("TXT", "a.example.com"), srv.Queries("TXT", "b.example.com"), srv.Queries("TXT", "c.example.com")}
	if diff := cmp.Diff([]int{1, 2, 1}, got); diff != "" {
		t.Errorf("queries per name (-want +got):\n%s", diff)
	}
	if n := r.Stats().Entries; n != 2 {
		t.Errorf("got %d entries, want 2", n)
	}
}

func TestFailures(t *testing.T) {
	srv := dnstest.New(t)
	srv.MustAdd(t, `broken.example.com. 300 IN TXT "x"`)
	srv.ServFail("broken.example.com", true)
	clock := clocktest.New(time.Now())
	r := newResolver(t, srv, clock, nil)

	_, err := r.LookupTXT(t.Context(), "broken.example.com")
	if de := dnsErr(t, err); !de.Temporary() || de.IsNotFound {
		t.Errorf("SERVFAIL: got %+v, want a temporary error", de)
	}
	n := srv.Queries("TXT", "broken.example.com")
	if _, err := r.LookupTXT(t.Context(), "broken.example.com"); err == nil {
		t.Error("the failure within FailureTTL: got an answer, want the cached failure")
	}
	if got := srv.Queries("TXT", "broken.example.com"); got != n {
		t.Errorf("the failure was asked again within FailureTTL: %d queries, want %d", got, n)
	}
	srv.ServFail("broken.example.com", false)
	clock.Advance(DefaultFailureTTL)
	if _, err := r.LookupTXT(t.Context(), "broken.example.com"); err != nil {
		t.Errorf("after FailureTTL, the server answering again: %v", err)
	}
}

// TestSilentServer: a server that never answers costs a lookup no more
// than the caller's context allows, and the query itself ends within
// Timeout.
func TestSilentServer(t *testing.T) {
	srv := dnstest.New(t)
	srv.Silent(true)
	r := newResolver(t, srv, clocktest.New(time.Now()), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.LookupTXT(ctx, "example.com")
	if de := dnsErr(t, err); !de.IsTimeout {
		t.Errorf("got %+v, want a timeout", de)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the lookup took %v past its caller's deadline of 300ms", took)
	}
	// Without a deadline of its own, the caller waits for the query's
	// Timeout (2 s here), with its attempts.
	start = time.Now()
	_, err = r.LookupTXT(t.Context(), "other.example.com")
	if de := dnsErr(t, err); !de.IsTimeout {
		t.Errorf("got %+v, want a timeout", de)
	}
	if took := time.Since(start); took < time.Second || took > 10*time.Second {
		t.Errorf("the query took %v, want about its Timeout of 2s", took)
	}
	if n := srv.Queries("TXT", "other.example.com"); n < 2 {
		t.Errorf("the silent server was asked %d times, want a retry", n)
	}
	if st := r.Stats(); st.Failures < 1 || st.LastError == "" || st.LastFailure.IsZero() || !st.LastAnswer.IsZero() {
		t.Errorf("stats %+v, want the failures counted and no answer", st)
	}
}

// TestTruncatedOverTCP: an answer too large for UDP comes over TCP.
func TestTruncatedOverTCP(t *testing.T) {
	srv := dnstest.New(t)
	for i := range 6 {
		srv.TXT("big.example.com", 300, strings.Repeat(string(rune('a'+i)), 400))
	}
	r := newResolver(t, srv, clocktest.New(time.Now()), nil)
	txt, err := r.LookupTXT(t.Context(), "big.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(txt) != 6 || len(txt[0]) != 400 {
		t.Errorf("got %d records, want 6 of 400 bytes", len(txt))
	}
}

// TestConcurrentLookupsShareOneQuery: lookups of one name at once ask the
// server once.
func TestConcurrentLookupsShareOneQuery(t *testing.T) {
	srv := dnstest.New(t)
	srv.TXT("example.com", 300, "v=spf1 -all")
	r := newResolver(t, srv, clocktest.New(time.Now()), nil)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			if _, err := r.LookupTXT(t.Context(), "example.com"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.Queries("TXT", "example.com"); n != 1 {
		t.Errorf("the server saw %d queries, want 1", n)
	}
}

func TestServerAddr(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"127.0.0.1:5353", "127.0.0.1:5353", true},
		{"192.0.2.53", "192.0.2.53:53", true},
		{"::1", "[::1]:53", true},
		{"[2001:db8::53]:5353", "[2001:db8::53]:5353", true},
		{"dns.example.com:53", "dns.example.com:53", true},
		{"dns.example.com", "", false},
		{":53", "", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ServerAddr(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("got %q, %v; want %q, ok %v", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestNewNeedsServers(t *testing.T) {
	_, err := New(Options{Servers: []string{"nohost"}})
	if err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want an error naming the bad server", err)
	}
}
