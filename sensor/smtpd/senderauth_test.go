package smtpd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/internal/dkimtest"
	"github.com/ospreysec/osprey/internal/dnstest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/dnscache"
	"github.com/ospreysec/osprey/sensor/spool"
)

// TestSenderAuth: an inbound gateway listener with sender_auth checks SPF
// (the client 127.0.0.2), DKIM and DMARC of each message, by DATA and by
// BDAT, and the results are in the spooled envelope when the 250 comes.
// The outbound listener checks nothing.
func TestSenderAuth(t *testing.T) {
	key, err := dkimtest.NewEd25519("example.org", "s1")
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.New(t)
	dns.MustAdd(t,
		`example.org. 300 IN TXT "v=spf1 ip4:127.0.0.2 -all"`,
		`_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"`,
		`example.net. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
	)
	dns.TXT(key.Name(), 300, key.Record())
	res, err := dnscache.New(dnscache.Options{Servers: []string{dns.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	sp, err := spool.Open(spool.Options{Dir: t.TempDir(), MinFreeBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	cfg := gatewayConfig()
	cfg.Gateway.LocalDomains = append(cfg.Gateway.LocalDomains, &ospreyv1.LocalDomain{Domain: "example.net"})
	cfg.Gateway.SenderAuth = &ospreyv1.SenderAuthSettings{Enabled: true}
	withSpool := func(s *Server) { s.opts.Spool, s.opts.Resolver = sp, res }
	inbound := startGateway(t, cfg, withRole(Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND}), withSpool)
	outbound := startGateway(t, cfg, withRole(Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND}), withSpool)
	// The servers stop (their cleanups) before the spool closes.
	t.Cleanup(func() { sp.Close() })

	msg := func(from string) string {
		return "From: " + from + "\r\nTo: bob@example.net\r\nSubject: figures\r\nDate: Mon, 07 Dec 2026 15:00:00 +0000\r\n\r\nHello.\r\n"
	}
	signed := string(key.MustSign(t, []byte(msg("alice@example.org"))))
	send := func(t *testing.T, srv *testServer, from, ip, body string, bdat bool) *ospreyv1.Envelope {
		t.Helper()
		c := dialFrom(t, ip, srv.Addr())
		c.expect("220 ")
		c.cmd("EHLO mx.example.org", "250")
		c.cmd("MAIL FROM:<"+from+">", "250 ")
		c.cmd("RCPT TO:<bob@example.net>", "250 ")
		var reply string
		if bdat {
			c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body))
			reply = c.expect("250 2.0.0 OK: queued as ")
		} else {
			c.cmd("DATA", "354 ")
			c.send(body + ".\r\n")
			reply = c.expect("250 2.0.0 OK: queued as ")
		}
		c.cmd("QUIT", "221 ")
		m, err := sp.Get(strings.TrimPrefix(reply, "250 2.0.0 OK: queued as "))
		if err != nil {
			t.Fatal(err)
		}
		return m.Meta.Envelope
	}
	pass := &ospreyv1.AuthResults{Spf: "pass", SpfDomain: "example.org", Dkim: []*ospreyv1.DkimResult{{Result: "pass", Domain: "example.org", Selector: "s1"}},
		Dmarc: "pass", DmarcPolicy: "reject", FromDomain: "example.org"}
	for _, tc := range []struct {
		name     string
		srv      *testServer
		ip, from string
		body     string
		bdat     bool
		want     *ospreyv1.AuthResults
	}{
		{name: "signed, by DATA", srv: inbound, ip: "127.0.0.2", from: "alice@example.org", body: signed, want: pass},
		{name: "signed, by BDAT", srv: inbound, ip: "127.0.0.2", from: "alice@example.org", body: signed, bdat: true, want: pass},
		{name: "forged From", srv: inbound, ip: "127.0.0.2", from: "eve@example.net", body: msg("ceo@example.org"),
			want: &ospreyv1.AuthResults{Spf: "fail", SpfDomain: "example.net", Dmarc: "fail", DmarcPolicy: "reject", FromDomain: "example.org"}},
		{name: "outbound: not checked", srv: outbound, ip: "127.0.0.1", from: "alice@example.org", body: signed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := send(t, tc.srv, tc.from, tc.ip, tc.body, tc.bdat)
			if diff := cmp.Diff(tc.want, env.GetAuth(), protocmp.Transform()); diff != "" {
				t.Errorf("spooled results (-want +got):\n%s", diff)
			}
		})
	}
	// The results are counted per check (osprey_smtp_sender_auth_total).
	count := func(check int, result string) uint64 {
		for j, r := range authResults {
			if r == result {
				return inbound.stats.auth[check][j].Load()
			}
		}
		return 0
	}
	for _, c := range []struct {
		check  int
		result string
		want   uint64
	}{{0, "pass", 2}, {0, "fail", 1}, {1, "pass", 2}, {1, "none", 1}, {2, "pass", 2}, {2, "fail", 1}} {
		if got := count(c.check, c.result); got != c.want {
			t.Errorf("%s=%s counted %d times, want %d", authChecks[c.check], c.result, got, c.want)
		}
	}
}

// TestSenderAuthNeedsResolver: a configuration that enables sender
// authentication is refused by a server without a DNS resolver.
func TestSenderAuthNeedsResolver(t *testing.T) {
	s := New(Options{Spool: &fakeSpool{}, Role: Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND}, StopGrace: time.Second})
	runServer(t, s)
	cfg := gatewayConfig()
	cfg.Gateway.SenderAuth = &ospreyv1.SenderAuthSettings{Enabled: true}
	if err := s.Apply(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "gateway.sender_auth") {
		t.Errorf("Apply: got %v, want a refusal naming gateway.sender_auth", err)
	}
	if s.Addr() != nil {
		t.Errorf("the refused configuration listens on %v", s.Addr())
	}
}
