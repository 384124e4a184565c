package smtpd

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/internal/clocktest"
	"github.com/ospreysec/osprey/internal/postfix"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/delivery"
	"github.com/ospreysec/osprey/sensor/ratelimit"
	"github.com/ospreysec/osprey/sensor/rcptverify"
)

func withLimiter(l *ratelimit.Limiter) serverOption { return func(s *Server) { s.opts.Limiter = l } }

func withVerifier(v RecipientVerifier) serverOption { return func(s *Server) { s.opts.Verifier = v } }

// newLimiter returns a Limiter with the rate limits of cfg, on a clock the
// test moves.
func newLimiter(cfg *ospreyv1.SmtpIntegration) (*ratelimit.Limiter, *clocktest.Clock) {
	clock := clocktest.New(testNow)
	l := ratelimit.New(ratelimit.Options{Now: clock.Now})
	l.Apply(ratelimit.ConfigFrom(cfg.GetGateway().GetRateLimits()))
	return l, clock
}

// reasons counts the refusals of log by reason.
func reasons(log *refusalLog) map[string]int {
	out := map[string]int{}
	for _, r := range log.all() {
		out[r.Reason]++
	}
	return out
}

// TestRateLimits checks connections, messages and recipients per minute on
// a gateway's inbound listener, over real sockets: Postfix's replies past
// each limit, a trusted client not limited, and every refusal reported
// with its reason.
func TestRateLimits(t *testing.T) {
	cfg := gatewayConfig()
	cfg.Gateway.RateLimits = &ospreyv1.RateLimits{ConnectionsPerMinute: 2, MessagesPerMinute: 2, RecipientsPerMinute: 3}
	l, clock := newLimiter(cfg)
	log := &refusalLog{}
	s := startGateway(t, cfg, inboundRole, withLimiter(l), withRefusals(log))

	t.Run("connections", func(t *testing.T) {
		for range 2 {
			c := dialFrom(t, "127.0.0.2", s.Addr())
			c.expect("220 ")
			c.quit()
		}
		c := dialFrom(t, "127.0.0.2", s.Addr())
		c.expect("421 4.7.0 sensor.test Error: too many connections from 127.0.0.2")
		c.expectClosed()
		// Another client is not counted with it.
		c = dialFrom(t, "127.0.0.3", s.Addr())
		c.expect("220 ")
		c.quit()
	})
	clock.Advance(2 * ratelimit.Window)
	t.Run("messages and recipients", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", s.Addr())
		c.expect("220 ")
		c.cmd("EHLO stranger.test", "250")
		c.cmd("MAIL FROM:<a@stranger.test>", "250 ")
		c.cmd("RCPT TO:<bob@example.com>", "250 ")
		c.cmd("RCPT TO:<carol@example.com>", "250 ")
		c.cmd("RSET", "250 ")
		c.cmd("MAIL FROM:<a@stranger.test>", "250 ")
		c.cmd("RCPT TO:<dave@example.com>", "250 ")
		c.cmd("RCPT TO:<erin@example.com>", "450 4.7.1 Error: too many recipients from 127.0.0.2")
		c.cmd("RSET", "250 ")
		c.cmd("MAIL FROM:<a@stranger.test>", "450 4.7.1 Error: too much mail from 127.0.0.2")
		c.quit()
	})
	t.Run("trusted client", func(t *testing.T) {
		for range 5 {
			c := dialFrom(t, "127.0.0.1", s.Addr())
			c.expect("220 ")
			c.cmd("EHLO inside.test", "250")
			for range 3 {
				c.cmd("MAIL FROM:<alice@example.com>", "250 ")
				for _, r := range []string{"x@elsewhere.test", "y@elsewhere.test", "z@elsewhere.test", "w@elsewhere.test"} {
					c.cmd("RCPT TO:<"+r+">", "250 ")
				}
				c.cmd("RSET", "250 ")
			}
			c.quit()
		}
	})

	want := map[string]int{"rate_limit_connections": 1, "rate_limit_messages": 1, "rate_limit_recipients": 1}
	got := reasons(log)
	for r, n := range want {
		if got[r] != n || int(s.Stats().Rejected[r]) != n {
			t.Errorf("%s: %d reported, %d counted; want %d", r, got[r], s.Stats().Rejected[r], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("refusals %v, want %v", got, want)
	}
}

// startPostfix runs a Postfix that is the mail server of example.com with
// the users known, and returns it with a route there.
func startPostfix(t *testing.T, known ...string) (*postfix.Instance, delivery.Config) {
	t.Helper()
	if _, err := exec.LookPath("postfix"); err != nil {
		requirePeer(t, "postfix is not installed (apt package postfix): %v", err)
	}
	if os.Geteuid() != 0 {
		requirePeer(t, "a private Postfix instance needs root")
	}
	pf, err := postfix.StartRecipients(t.TempDir(), []string{"example.com"}, known)
	if err != nil {
		t.Fatalf("postfix: %v", err)
	}
	t.Cleanup(pf.Stop)
	_, p, _ := net.SplitHostPort(pf.Addr)
	port, _ := strconv.Atoi(p)
	return pf, delivery.Config{HeloName: "gw.osprey.test", Routes: []delivery.Route{
		{Domain: "example.com", Hosts: []delivery.Host{{Host: "127.0.0.1", Port: uint16(port)}}},
	}}
}

// openVerifier opens a Verifier on dir for route and runs it until stop,
// or the end of the test.
func openVerifier(t *testing.T, dir string, route delivery.Config, opts rcptverify.Options) (v *rcptverify.Verifier, stop func()) {
	t.Helper()
	opts.Dir = dir
	v, err := rcptverify.Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Apply(rcptverify.ConfigFrom(nil, route)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		v.Run(ctx)
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
			v.Close()
		}
	}
	t.Cleanup(stop)
	return v, stop
}

// TestRecipientVerificationSwaks sends with swaks to a gateway's inbound
// listener that verifies recipients with a real Postfix knowing its users:
// a known recipient is taken, an unknown one refused with 550 5.1.1, a
// trusted client is not verified; with Postfix stopped a new recipient is
// deferred (450 4.1.1) while the cached ones are answered as before, also
// by a gateway restarted on the same cache.
func TestRecipientVerificationSwaks(t *testing.T) {
	pf, route := startPostfix(t, "known@example.com")
	cfg := gatewayConfig()
	cfg.Gateway.RecipientVerification = &ospreyv1.RecipientVerification{Enabled: true}
	dir := t.TempDir()
	v, stopVerifier := openVerifier(t, dir, route, rcptverify.Options{})
	log := &refusalLog{}
	s := startGateway(t, cfg, inboundRole, withVerifier(v), withRefusals(log))

	send := func(t *testing.T, s *testServer, from, to string) string {
		t.Helper()
		out, _ := swaks(t, s.Addr(), "--local-interface", from, "--from", "sender@elsewhere.test", "--to", to, "--body", "hello")
		return out
	}
	expect := func(t *testing.T, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("no %q in:\n%s", w, out)
			}
		}
	}

	expect(t, send(t, s, "127.0.0.2", "known@example.com"), "<-  250 2.1.5 Recipient OK", "<-  250 2.0.0 OK: queued as ")
	expect(t, send(t, s, "127.0.0.2", "unknown@example.com"),
		"<** 550 5.1.1 Recipient address rejected: undeliverable address: <unknown@example.com>: Recipient address rejected: User unknown in relay recipient table")
	expect(t, send(t, s, "127.0.0.1", "unknown2@example.com"), "<-  250 2.1.5 Recipient OK", "<-  250 2.0.0 OK: queued as ")
	if got := v.Stats().Probes; got != 2 {
		t.Errorf("%d probes, want 2 (the trusted client's recipient is not verified)", got)
	}

	pf.Stop()
	expect(t, send(t, s, "127.0.0.2", "new@example.com"), "<** 450 4.1.1 Recipient address rejected: unverified address")
	expect(t, send(t, s, "127.0.0.2", "known@example.com"), "<-  250 2.1.5 Recipient OK")

	want := []Refusal{
		{Reason: "recipient_unknown", Rcpt: "unknown@example.com"},
		{Reason: "recipient_verify_tempfail", Rcpt: "new@example.com"},
	}
	got := log.all()
	if len(got) != len(want) {
		t.Fatalf("refusals %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Reason != want[i].Reason || got[i].Rcpt != want[i].Rcpt || got[i].ClientIP != netip.MustParseAddr("127.0.0.2") {
			t.Errorf("refusal %+v, want %+v from 127.0.0.2", got[i], want[i])
		}
	}
	if !strings.Contains(got[0].Detail, "User unknown in relay recipient table") {
		t.Errorf("detail %q, want the next hop's reply", got[0].Detail)
	}

	// A restarted gateway answers from the cache on disk: Postfix is
	// still down.
	stopVerifier()
	v2, _ := openVerifier(t, dir, route, rcptverify.Options{})
	s2 := startGateway(t, cfg, inboundRole, withVerifier(v2))
	expect(t, send(t, s2, "127.0.0.2", "known@example.com"), "<-  250 2.1.5 Recipient OK", "<-  250 2.0.0 OK: queued as ")
	expect(t, send(t, s2, "127.0.0.2", "unknown@example.com"), "<** 550 5.1.1 ")
	if st := v2.Stats(); st.Probes != 0 || st.CacheGood != 1 || st.CacheBad != 1 {
		t.Errorf("restarted: %+v, want 1 good and 1 bad from the cache, no probe", st)
	}
}

// TestHarvestGuard names unknown recipients to a gateway that verifies
// them with a real Postfix: the one that makes harvest_unknown_recipients
// is answered 421 and the connection closed, new connections are refused
// for harvest_block_seconds, and every refusal is reported.
func TestHarvestGuard(t *testing.T) {
	_, route := startPostfix(t, "known@example.com")
	cfg := gatewayConfig()
	cfg.Gateway.RecipientVerification = &ospreyv1.RecipientVerification{Enabled: true}
	cfg.Gateway.RateLimits = &ospreyv1.RateLimits{HarvestUnknownRecipients: 3, HarvestWindowSeconds: 300, HarvestBlockSeconds: 900}
	l, clock := newLimiter(cfg)
	v, _ := openVerifier(t, t.TempDir(), route, rcptverify.Options{})
	log := &refusalLog{}
	s := startGateway(t, cfg, inboundRole, withVerifier(v), withLimiter(l), withRefusals(log))

	c := dialFrom(t, "127.0.0.2", s.Addr())
	c.expect("220 ")
	c.cmd("EHLO harvester.test", "250")
	c.cmd("MAIL FROM:<h@harvester.test>", "250 ")
	c.cmd("RCPT TO:<a@example.com>", "550 5.1.1 ")
	c.cmd("RCPT TO:<known@example.com>", "250 ")
	c.cmd("RCPT TO:<b@example.com>", "550 5.1.1 ")
	c.cmd("RCPT TO:<c@example.com>", "421 4.7.0 Error: too many unknown recipients from your address")
	c.expectClosed()

	c = dialFrom(t, "127.0.0.2", s.Addr())
	c.expect("421 4.7.0 sensor.test Error: too many unknown recipients from 127.0.0.2, try again later")
	c.expectClosed()
	// A trusted client is not deferred with it.
	hello(t, s.Addr()).quit()

	clock.Advance(900 * time.Second)
	c = dialFrom(t, "127.0.0.2", s.Addr())
	c.expect("220 ")
	c.quit()

	got := reasons(log)
	want := map[string]int{"recipient_unknown": 3, "harvest_guard": 2}
	for r, n := range want {
		if got[r] != n {
			t.Errorf("%s: %d reported, want %d (all: %v)", r, got[r], n, got)
		}
	}
	if st := l.Stats(); st.Blocks != 1 || st.Blocked != 0 {
		t.Errorf("limiter %+v, want one block, over", st)
	}
}

// TestAccessNeedsItsParts: a configuration that enables verification or
// rate limits is refused by a server without a verifier or a limiter.
func TestAccessNeedsItsParts(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		edit       func(g *ospreyv1.SmtpGateway)
	}{
		{"verification", "gateway.recipient_verification", func(g *ospreyv1.SmtpGateway) {
			g.RecipientVerification = &ospreyv1.RecipientVerification{Enabled: true}
		}},
		{"rate limits", "gateway.rate_limits", func(g *ospreyv1.SmtpGateway) {
			g.RateLimits = &ospreyv1.RateLimits{MessagesPerMinute: 10}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := gatewayConfig()
			tc.edit(cfg.Gateway)
			s := New(Options{Spool: &fakeSpool{}, Role: Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND}})
			err := s.Apply(t.Context(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Apply = %v, want an error naming %s", err, tc.want)
			}
			// The outbound listener has nothing to do with them.
			o := New(Options{Spool: &fakeSpool{}, Role: Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND}})
			runServer(t, o)
			if err := o.Apply(t.Context(), cfg); err != nil {
				t.Errorf("outbound Apply = %v, want nil", err)
			}
		})
	}
}
