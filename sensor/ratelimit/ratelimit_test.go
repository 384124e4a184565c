package ratelimit

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ospreysec/osprey/internal/clocktest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

func newLimiter(t *testing.T, cfg Config, opts Options) (*Limiter, *clocktest.Clock) {
	t.Helper()
	clock := clocktest.New(t0)
	opts.Now = clock.Now
	l := New(opts)
	l.Apply(cfg)
	return l, clock
}

var (
	client1 = netip.MustParseAddr("192.0.2.1")
	client2 = netip.MustParseAddr("192.0.2.2")
)

// allowed counts n events of f and returns how many it allowed.
func allowed(n int, f func() bool) int {
	ok := 0
	for range n {
		if f() {
			ok++
		}
	}
	return ok
}

func TestPerMinuteLimits(t *testing.T) {
	l, clock := newLimiter(t, Config{ConnectionsPerMinute: 3, MessagesPerMinute: 5, RecipientsPerMinute: 10}, Options{})
	connect := func(ip netip.Addr) func() bool { return func() bool { return l.Connect(ip) == Allowed } }
	if got := allowed(3, connect(client1)); got != 3 {
		t.Errorf("connections allowed %d of 3, want 3", got)
	}
	if got := l.Connect(client1); got != RateLimited {
		t.Errorf("Connect past the limit = %v, want RateLimited", got)
	}
	if got := allowed(3, connect(client2)); got != 3 {
		t.Errorf("another client: %d connections of 3 allowed, want 3", got)
	}
	if got := allowed(6, func() bool { return l.Message(client1) }); got != 5 {
		t.Errorf("messages allowed %d of 6, want 5", got)
	}
	if got := allowed(12, func() bool { return l.Recipient(client1) }); got != 10 {
		t.Errorf("recipients allowed %d of 12, want 10", got)
	}

	// Half a minute into the next window, half of the 4 attempts of the
	// last one (the refused one too) still count: one more connection
	// fits under 3.
	clock.Advance(Window + Window/2)
	if got := allowed(2, connect(client1)); got != 1 {
		t.Errorf("90 s later: %d connections of 2 allowed, want 1", got)
	}
	// Two windows later nothing counts.
	clock.Advance(2 * Window)
	if got := allowed(3, connect(client1)); got != 3 {
		t.Errorf("two minutes later: %d connections of 3 allowed, want 3", got)
	}
}

func TestZeroIsUnlimited(t *testing.T) {
	l, _ := newLimiter(t, Config{}, Options{})
	if got := allowed(10000, func() bool { return l.Connect(client1) == Allowed && l.Message(client1) && l.Recipient(client1) }); got != 10000 {
		t.Errorf("%d of 10000 allowed without limits", got)
	}
	if l.Unknown(client1) {
		t.Error("the harvest guard blocked with harvest_unknown_recipients 0")
	}
}

// TestClientKeys checks whom a count belongs to: an IPv4 address, an
// IPv4-mapped IPv6 address as its IPv4 address, an IPv6 client by its /64.
func TestClientKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b string
		same bool
	}{
		{"two IPv4 addresses", "192.0.2.1", "192.0.2.2", false},
		{"mapped IPv4", "192.0.2.1", "::ffff:192.0.2.1", true},
		{"one IPv6 /64", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"two IPv6 /64s", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, _ := newLimiter(t, Config{MessagesPerMinute: 1}, Options{})
			l.Message(netip.MustParseAddr(tc.a))
			if got := !l.Message(netip.MustParseAddr(tc.b)); got != tc.same {
				t.Errorf("%s then %s: second refused = %v, want %v", tc.a, tc.b, got, tc.same)
			}
		})
	}
}

func TestHarvestGuard(t *testing.T) {
	cfg := Config{HarvestUnknown: 3, HarvestWindow: 5 * time.Minute, HarvestBlock: 15 * time.Minute}
	l, clock := newLimiter(t, cfg, Options{})

	// Two unknown recipients, then the window passes: the count starts
	// again, and two more do not block.
	l.Unknown(client1)
	l.Unknown(client1)
	clock.Advance(2 * cfg.HarvestWindow)
	for range 2 {
		if l.Unknown(client1) {
			t.Fatal("blocked by unknown recipients of a window that had passed")
		}
	}
	if !l.Unknown(client1) {
		t.Fatal("the third unknown recipient within the window did not block")
	}
	until, blocked := l.Blocked(client1)
	if !blocked || !until.Equal(clock.Now().Add(cfg.HarvestBlock)) {
		t.Errorf("Blocked() = %v, %v; want %v, true", until, blocked, clock.Now().Add(cfg.HarvestBlock))
	}
	if got := l.Connect(client1); got != Blocked {
		t.Errorf("Connect while blocked = %v, want Blocked", got)
	}
	if _, b := l.Blocked(client2); b || l.Connect(client2) != Allowed {
		t.Error("another client is blocked too")
	}
	if got, want := l.Stats(), (Stats{Clients: 2, Blocked: 1, Blocks: 1}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}

	clock.Advance(cfg.HarvestBlock - time.Second)
	if _, b := l.Blocked(client1); !b {
		t.Error("unblocked before the block time passed")
	}
	clock.Advance(time.Second)
	if _, b := l.Blocked(client1); b || l.Connect(client1) != Allowed {
		t.Error("still blocked once the block time passed")
	}
	// The count started again at the block.
	if l.Unknown(client1) {
		t.Error("one unknown recipient after a block blocks again")
	}
}

// TestBoundedMemory floods the Limiter from many addresses: it keeps at
// most MaxClients, and never forgets a block to make room.
func TestBoundedMemory(t *testing.T) {
	l, clock := newLimiter(t, Config{MessagesPerMinute: 1, HarvestUnknown: 1, HarvestWindow: time.Minute, HarvestBlock: time.Hour},
		Options{MaxClients: 10})
	l.Unknown(client1)
	for i := range 1000 {
		l.Message(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
	}
	if got := l.Stats().Clients; got > 10 {
		t.Errorf("%d clients kept, want at most 10", got)
	}
	if _, b := l.Blocked(client1); !b {
		t.Error("the blocked client was dropped to make room")
	}
	// Run's sweep drops the clients gone quiet, not the blocked one.
	clock.Advance(2 * Window)
	l.Sweep()
	if got, want := l.Stats(), (Stats{Clients: 1, Blocked: 1, Blocks: 1}); got != want {
		t.Errorf("after the sweep Stats() = %+v, want %+v", got, want)
	}
}

func TestConfigFrom(t *testing.T) {
	got := ConfigFrom(&ospreyv1.RateLimits{ConnectionsPerMinute: 1, MessagesPerMinute: 2, RecipientsPerMinute: 3, HarvestUnknownRecipients: 4})
	want := Config{ConnectionsPerMinute: 1, MessagesPerMinute: 2, RecipientsPerMinute: 3, HarvestUnknown: 4,
		HarvestWindow: 300 * time.Second, HarvestBlock: 900 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ConfigFrom() mismatch (-want +got):\n%s", diff)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, _ := newLimiter(t, Config{HarvestUnknown: 1, HarvestWindow: time.Minute, HarvestBlock: time.Minute}, Options{Registerer: reg})
	l.Unknown(client1)
	l.Connect(client2)
	want := `
# HELP osprey_ratelimit_blocked_clients Clients the harvest guard defers now.
# TYPE osprey_ratelimit_blocked_clients gauge
osprey_ratelimit_blocked_clients 1
# HELP osprey_ratelimit_clients Clients the gateway's rate limits count now (an IPv6 client per /64).
# TYPE osprey_ratelimit_clients gauge
osprey_ratelimit_clients 2
# HELP osprey_ratelimit_harvest_blocks_total Clients the harvest guard blocked for naming too many unknown recipients.
# TYPE osprey_ratelimit_harvest_blocks_total counter
osprey_ratelimit_harvest_blocks_total 1
`
	if err := testutil.GatherAndCompare(reg, stringsReader(want)); err != nil {
		t.Error(err)
	}
}

// BenchmarkRecipient measures the cost one RCPT pays for its count.
func BenchmarkRecipient(b *testing.B) {
	l := New(Options{})
	l.Apply(Config{RecipientsPerMinute: 1000000})
	ips := make([]netip.Addr, 1024)
	for i := range ips {
		ips[i] = netip.MustParseAddr(fmt.Sprintf("10.0.%d.%d", i>>8, i&255))
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		l.Recipient(ips[i%len(ips)])
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
