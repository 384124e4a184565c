package rcptverify

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ospreysec/osprey/internal/clocktest"
	"github.com/ospreysec/osprey/internal/postfix"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/sensor/delivery"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// requirePeer fails the test when a peer is missing and OSPREY_REQUIRE_PEERS
// is 1 (as in CI, where scripts/install-peers.sh installs them), and skips
// it otherwise.
func requirePeer(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("OSPREY_REQUIRE_PEERS") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// testConfig routes example.test (and its subdomains) to the next hop at
// addr, with the defaults of every lifetime.
func testConfig(addr string) Config {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	cfg := ConfigFrom(nil, delivery.Config{HeloName: "gw.osprey.test", Routes: []delivery.Route{
		{Domain: "example.test", Hosts: []delivery.Host{{Host: host, Port: uint16(p)}}},
	}})
	cfg.ProbeTimeout = time.Minute
	return cfg
}

// startVerifier opens a Verifier on dir with cfg and runs it until the
// test ends, or stop is called.
func startVerifier(t *testing.T, dir string, cfg Config, opts Options) (v *Verifier, stop func()) {
	t.Helper()
	opts.Dir = dir
	v, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			if err := v.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return v, stop
}

// startPostfix runs a Postfix that knows the users of example.test among
// known, and returns its address.
func startPostfix(t *testing.T, known ...string) *postfix.Instance {
	t.Helper()
	if _, err := exec.LookPath("postfix"); err != nil {
		requirePeer(t, "postfix is not installed (apt package postfix): %v", err)
	}
	if os.Geteuid() != 0 {
		requirePeer(t, "a private Postfix instance needs root")
	}
	pf, err := postfix.StartRecipients(t.TempDir(), []string{"example.test"}, known)
	if err != nil {
		t.Fatalf("postfix: %v", err)
	}
	t.Cleanup(pf.Stop)
	return pf
}

func check(t *testing.T, v *Verifier, rcpt string, want Status, cached bool) Result {
	t.Helper()
	r := v.Verify(t.Context(), rcpt)
	if r.Status != want || r.Cached != cached {
		t.Errorf("Verify(%s) = %v (cached %v, %q), want %v (cached %v)", rcpt, r.Status, r.Cached, r.Reply, want, cached)
	}
	return r
}

// TestPostfix verifies recipients with a real Postfix that knows its users
// (relay_recipient_maps): a known one exists, an unknown one is refused
// with Postfix's reply, both are cached (whatever the case of the
// address), Postfix stopped makes a new recipient a temporary failure that
// is not cached and, after a few, a problem of the status; and the cache
// survives a restart of the Verifier.
func TestPostfix(t *testing.T) {
	pf := startPostfix(t, "known@example.test")
	dir := t.TempDir()
	v, stop := startVerifier(t, dir, testConfig(pf.Addr), Options{})

	check(t, v, "known@example.test", Exists, false)
	check(t, v, "known@example.test", Exists, true)
	r := check(t, v, "unknown@example.test", Unknown, false)
	if !strings.Contains(r.Reply, "User unknown in relay recipient table") {
		t.Errorf("reply %q, want Postfix's User unknown", r.Reply)
	}
	check(t, v, "Unknown@Example.TEST", Unknown, true)
	check(t, v, "KNOWN@example.test", Exists, true)
	// Postfix saw the null sender and the gateway's name (its log, which
	// postlogd writes, may come after the reply).
	testwait.For(t, "Postfix to log the refused probe from=<> with helo gw.osprey.test", func() bool {
		return strings.Contains(pf.Log(), "from=<> to=<unknown@example.test> proto=ESMTP helo=<gw.osprey.test>")
	})
	if got, want := v.Stats(), (Stats{CacheGood: 2, CacheBad: 1, ProbeGood: 1, ProbeBad: 1, Probes: 2, Entries: 2}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}

	pf.Stop()
	for i := range troubleAfter {
		r := check(t, v, "new"+strconv.Itoa(i)+"@example.test", TempFail, false)
		if !strings.Contains(r.Reply, "4.4.1") {
			t.Errorf("tempfail reply %q, want a connection failure (4.4.1)", r.Reply)
		}
	}
	check(t, v, "new0@example.test", TempFail, false) // not cached: asked again
	check(t, v, "known@example.test", Exists, true)
	check(t, v, "unknown@example.test", Unknown, true)
	ps := v.Problems()
	if len(ps) != 1 || !strings.Contains(ps[0], "next hop route:example.test failed 4 probes in a row") {
		t.Errorf("Problems() = %q, want the next hop route:example.test with 4 failed probes", ps)
	}

	// A restart keeps the cache: Postfix is down, so any probe would fail.
	stop()
	v2, _ := startVerifier(t, dir, testConfig(pf.Addr), Options{})
	check(t, v2, "known@example.test", Exists, true)
	check(t, v2, "unknown@example.test", Unknown, true)
	if got := v2.Stats(); got.Probes != 0 || got.Entries != 2 {
		t.Errorf("after the restart Stats() = %+v, want no probe and 2 entries", got)
	}
}

// startSink runs Postfix's smtp-sink on 127.0.0.1: a next hop that takes
// every recipient, or with args ("-f", "RCPT") refuses them all.
func startSink(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/smtp-sink"); serr != nil {
			requirePeer(t, "smtp-sink is not installed (apt package postfix): %v", err)
		}
		bin = "/usr/sbin/smtp-sink"
	}
	// smtp-sink takes a listening socket only by address: one is picked by
	// the kernel and handed over at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	cmd := exec.Command(bin, append(args, addr, "64")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	testwait.For(t, "smtp-sink to listen on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return addr
}

// TestLifetimes follows results through Postfix's lifetimes on a clock the
// test moves: a recipient found is served from the cache, probed again in
// the background once its result is older than the refresh time, and
// kept as long as it is refreshed; a recipient refused is probed again
// once its result has expired; Run's maintenance deletes expired results.
func TestLifetimes(t *testing.T) {
	good := startSink(t)
	bad := startSink(t, "-f", "RCPT")
	cfg := testConfig(good)
	host, port, _ := net.SplitHostPort(bad)
	p, _ := strconv.Atoi(port)
	cfg.Delivery.Routes = append(cfg.Delivery.Routes, delivery.Route{Domain: "refused.test", Hosts: []delivery.Host{{Host: host, Port: uint16(p)}}})
	clock := clocktest.New(t0)
	v, _ := startVerifier(t, t.TempDir(), cfg, Options{Now: clock.Now})

	check(t, v, "a@example.test", Exists, false)
	check(t, v, "x@refused.test", Unknown, false)
	clock.Advance(cfg.NegativeTTL - time.Second)
	check(t, v, "x@refused.test", Unknown, true)
	clock.Advance(time.Second)
	check(t, v, "x@refused.test", Unknown, false) // expired: probed again

	clock.Advance(cfg.PositiveRefresh - cfg.NegativeTTL - time.Second)
	check(t, v, "a@example.test", Exists, true)
	if got := v.Stats().Probes; got != 3 {
		t.Fatalf("%d probes before the refresh time, want 3", got)
	}
	clock.Advance(time.Second)
	check(t, v, "a@example.test", Exists, true) // served, and refreshed in the background
	testwait.For(t, "the background refresh", func() bool { return v.Stats().Probes == 4 })
	// Refreshed at the refresh time, the result lives on past the
	// lifetime it had from the first probe.
	clock.Advance(cfg.PositiveTTL - time.Second)
	check(t, v, "a@example.test", Exists, true)
	testwait.For(t, "the second refresh", func() bool { return v.Stats().Probes == 5 })

	// Past every lifetime, maintenance deletes both results.
	clock.Advance(cfg.PositiveTTL)
	v.expire(t.Context())
	if got := v.Stats().Entries; got != 0 {
		t.Errorf("%d entries after expiry, want 0", got)
	}
	check(t, v, "a@example.test", Exists, false)
}

// TestBoundedCache fills a cache of 3 results: the oldest probed go first.
func TestBoundedCache(t *testing.T) {
	clock := clocktest.New(t0)
	v, _ := startVerifier(t, t.TempDir(), testConfig(startSink(t)), Options{Now: clock.Now, MaxEntries: 3})
	for i := range 5 {
		check(t, v, "u"+strconv.Itoa(i)+"@example.test", Exists, false)
		clock.Advance(time.Second)
	}
	if got := v.Stats().Entries; got != 3 {
		t.Errorf("%d entries, want 3", got)
	}
	check(t, v, "u4@example.test", Exists, true)
	check(t, v, "u2@example.test", Exists, true)
	check(t, v, "u0@example.test", Exists, false)
}

// hangingHost is a next hop that accepts connections and never greets.
type hangingHost struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	done  chan struct{}
}

func startHangingHost(t *testing.T) *hangingHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangingHost{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(h.close)
	return h
}

func (h *hangingHost) accepted() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

func (h *hangingHost) close() {
	h.ln.Close()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
}

// TestProbesPerHost runs more lookups at once than max_probes_per_host
// allows against a next hop that never answers: only that many connect,
// the rest wait for a slot; lookups of one recipient share one probe.
func TestProbesPerHost(t *testing.T) {
	h := startHangingHost(t)
	cfg := testConfig(h.ln.Addr().String())
	cfg.MaxProbesPerHost = 2
	v, stop := startVerifier(t, t.TempDir(), cfg, Options{})

	var wg sync.WaitGroup
	results := make(chan Result, 10)
	lookup := func(rcpt string) {
		wg.Go(func() { results <- v.Verify(context.Background(), rcpt) })
	}
	for i := range 5 {
		lookup("u" + strconv.Itoa(i) + "@example.test")
	}
	for range 5 {
		lookup("same@example.test")
	}
	testwait.For(t, "10 lookups asking, 2 probes connected and 4 waiting for a slot", func() bool {
		st := v.Stats()
		return st.Asking == 10 && h.accepted() == 2 && st.Waiting == 4
	})
	if got := h.accepted(); got != 2 {
		t.Errorf("%d connections to the next hop, want 2", got)
	}
	// Stopping the Verifier cancels the probes: every lookup fails for
	// now, and none was cached.
	stop()
	wg.Wait()
	close(results)
	for r := range results {
		if r.Status != TempFail {
			t.Errorf("lookup = %+v, want TempFail", r)
		}
	}
	if got := v.Stats(); got.Probes != 6 || got.TempFail != 10 || got.Entries != 0 {
		t.Errorf("Stats() = %+v, want 6 probes (one shared by 5 lookups), 10 tempfails, no entry", got)
	}
}

// TestNotConfigured: before Apply every lookup is a temporary failure.
func TestNotConfigured(t *testing.T) {
	v, err := Open(t.Context(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if r := v.Verify(t.Context(), "a@example.test"); r.Status != TempFail {
		t.Errorf("Verify before Apply = %+v, want TempFail", r)
	}
	if err := v.Apply(Config{}); err == nil {
		t.Error("Apply(Config{}) = nil, want the fields that must be positive")
	}
}

// TestCacheUnavailable: a cache that cannot be opened does not stop
// verification, which probes every time and says why in its problems,
// until the cache can be opened.
func TestCacheUnavailable(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(blocker, "rcptverify") // under a file: cannot be made
	v, _ := startVerifier(t, dir, testConfig(startSink(t)), Options{})
	check(t, v, "a@example.test", Exists, false)
	check(t, v, "a@example.test", Exists, false)
	if ps := v.Problems(); len(ps) != 1 || !strings.Contains(ps[0], "cache in "+dir+" cannot be opened") {
		t.Errorf("Problems() = %q, want the cache that cannot be opened", ps)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if err := v.openCache(t.Context()); err != nil {
		t.Fatalf("openCache: %v", err)
	}
	check(t, v, "a@example.test", Exists, false)
	check(t, v, "a@example.test", Exists, true)
	if ps := v.Problems(); len(ps) != 0 {
		t.Errorf("Problems() = %q once the cache is open, want none", ps)
	}
}
