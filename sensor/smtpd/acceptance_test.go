package smtpd

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/internal/dnstest"
	"github.com/ospreysec/osprey/pkg/acceptlist"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/dnscache"
)

var (
	inboundRole  = withRole(Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND})
	outboundRole = withRole(Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND})
)

func acceptance(kind ospreyv1.AcceptanceListKind, entries ...string) *ospreyv1.AcceptanceList {
	return &ospreyv1.AcceptanceList{Kind: kind, Entries: entries}
}

// TestInboundAcceptance checks the inbound listeners' acceptance modes:
// ALL takes every client, LISTED only those of the inbound acceptance list,
// refusing the others at connect with their reason in the audit log.
func TestInboundAcceptance(t *testing.T) {
	lists := []*ospreyv1.AcceptanceList{
		acceptance(ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND, "127.0.0.0/8", "!127.0.0.3"),
		acceptance(ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND, "127.0.0.1"),
	}
	all := startServerLists(t, gatewayConfig(), lists, inboundRole)
	for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
		c := dialFrom(t, ip, all.Addr())
		c.expect("220 ")
		c.cmd("QUIT", "221 ")
	}

	cfg := gatewayConfig()
	cfg.Gateway.InboundAcceptance = ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED
	log := &refusalLog{}
	listed := startServerLists(t, cfg, lists, inboundRole, withRefusals(log))
	c := dialFrom(t, "127.0.0.2", listed.Addr())
	c.expect("220 ")
	c.cmd("EHLO listed.test", "250")
	c.cmd("MAIL FROM:<a@listed.test>", "250 ")
	c.cmd("RCPT TO:<b@elsewhere.test>", "554 5.7.1 Relay access denied") // listed, but not in the outbound list
	c.cmd("QUIT", "221 ")

	refused := dialFrom(t, "127.0.0.3", listed.Addr())
	refused.expect("554 5.7.1 ")
	refused.expectClosed()
	if got := log.all(); len(got) != 2 || got[1].Reason != "not_in_acceptance_list" || got[1].ClientIP != netip.MustParseAddr("127.0.0.3") {
		t.Errorf("refusals: %+v, want 127.0.0.2's relay_denied and 127.0.0.3's not_in_acceptance_list", got)
	}
	if got := listed.Stats().Rejected["not_in_acceptance_list"]; got != 1 {
		t.Errorf("not_in_acceptance_list = %d, want 1", got)
	}

	// LISTED with no inbound list: nobody.
	empty := startServerLists(t, cfg, nil, inboundRole)
	c = dialFrom(t, "127.0.0.1", empty.Addr())
	c.expect("554 5.7.1 ")
}

// nameResolver is a caching resolver of a DNS server that gives
// 127.0.0.2 the confirmed name mx.partner.test, 127.0.0.3 the name
// liar.partner.test (which does not point back to it), and fails for
// 127.0.0.4.
func nameResolver(t *testing.T) (*dnscache.Resolver, *dnstest.Server) {
	t.Helper()
	dns := dnstest.New(t)
	dns.MustAdd(t,
		"2.0.0.127.in-addr.arpa. 300 IN PTR mx.partner.test.",
		"mx.partner.test. 300 IN A 127.0.0.2",
		"3.0.0.127.in-addr.arpa. 300 IN PTR liar.partner.test.",
		"liar.partner.test. 300 IN A 192.0.2.99",
	)
	dns.ServFail("4.0.0.127.in-addr.arpa", true)
	res, err := dnscache.New(dnscache.Options{Servers: []string{dns.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	return res, dns
}

// TestAcceptanceByName checks domain entries: a client matches by its
// forward-confirmed reverse DNS name, looked up at connect; a name that
// does not resolve back, or a failed lookup, is no match, and a failure
// is counted for the sensor's status.
func TestAcceptanceByName(t *testing.T) {
	res, dns := nameResolver(t)
	withResolver := func(s *Server) { s.opts.Resolver = res }
	cfg := gatewayConfig()
	cfg.Gateway.InboundAcceptance = ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED
	lists := []*ospreyv1.AcceptanceList{
		acceptance(ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND, "127.0.0.1", "partner.test"),
		acceptance(ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND, "mx.partner.test"),
	}
	log := &refusalLog{}
	inbound := startServerLists(t, cfg, lists, inboundRole, withResolver, withRefusals(log))
	outbound := startServerLists(t, cfg, lists, outboundRole, withResolver)

	t.Run("confirmed name", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", inbound.Addr())
		c.expect("220 ")
		c.cmd("EHLO mx.partner.test", "250")
		c.cmd("MAIL FROM:<a@partner.test>", "250 ")
		c.cmd("RCPT TO:<b@elsewhere.test>", "250 ") // relays: its name is in the outbound list
		c.cmd("QUIT", "221 ")
		o := dialFrom(t, "127.0.0.2", outbound.Addr())
		o.expect("220 ")
		o.cmd("QUIT", "221 ")
	})
	t.Run("by address, no lookup", func(t *testing.T) {
		before := dns.Queries("PTR", "1.0.0.127.in-addr.arpa")
		c := dialFrom(t, "127.0.0.1", inbound.Addr())
		c.expect("220 ")
		c.cmd("EHLO inside.test", "250")
		c.cmd("MAIL FROM:<a@example.com>", "250 ")
		c.cmd("RCPT TO:<b@elsewhere.test>", "554 5.7.1 ") // but not a relay
		c.cmd("QUIT", "221 ")
		// The outbound list holds a domain: its name is looked up for the
		// relay check, once.
		if n := dns.Queries("PTR", "1.0.0.127.in-addr.arpa") - before; n != 1 {
			t.Errorf("%d PTR queries for 127.0.0.1, want 1", n)
		}
	})
	t.Run("unconfirmed name", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.3", inbound.Addr())
		c.expect("554 5.7.1 ")
		c.expectClosed()
	})
	t.Run("failed lookup", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.4", inbound.Addr())
		c.expect("554 5.7.1 ")
		c.expectClosed()
		st := inbound.Stats()
		if st.LookupFailures != 1 || st.LastLookupFailure.IsZero() || !strings.Contains(st.LastLookupError, "127.0.0.4") {
			t.Errorf("lookup failures %d, last at %v: %q; want one, naming 127.0.0.4", st.LookupFailures, st.LastLookupFailure, st.LastLookupError)
		}
		var detail string
		for _, r := range log.all() {
			if r.ClientIP == netip.MustParseAddr("127.0.0.4") {
				detail = r.Detail
			}
		}
		if !strings.Contains(detail, "name lookup failed") {
			t.Errorf("refusal of 127.0.0.4: detail %q, want the lookup's failure", detail)
		}
	})
}

// TestAcceptanceNeedsResolver: lists with domains are refused by a server
// without a DNS resolver, and those without are not.
func TestAcceptanceNeedsResolver(t *testing.T) {
	s := New(Options{Spool: &fakeSpool{}, Role: Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND}, StopGrace: time.Second})
	runServer(t, s)
	cfg := gatewayConfig()
	named, err := CompileLists(cfg, []*ospreyv1.AcceptanceList{acceptance(ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND, "partner.test")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyLists(t.Context(), cfg, named); err == nil || !strings.Contains(err.Error(), "DNS resolver") {
		t.Errorf("ApplyLists: got %v, want a refusal for want of a resolver", err)
	}
	plain, err := CompileLists(cfg, gatewayLists())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyLists(t.Context(), cfg, plain); err != nil {
		t.Errorf("ApplyLists without domains: %v", err)
	}
}

func TestCompileLists(t *testing.T) {
	out := ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND
	legacy := gatewayConfig()
	//lint:ignore SA1019 a configuration stored before the move
	legacy.Gateway.TrustedNetworks = []string{"10.0.0.0/8", "!10.0.0.5"}

	l, err := CompileLists(legacy, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Outbound.Contains(netip.MustParseAddr("10.1.2.3")) || l.Outbound.Contains(netip.MustParseAddr("10.0.0.5")) || l.Inbound != nil {
		t.Error("the trusted networks of a stored configuration are not its outbound list")
	}
	l, err = CompileLists(legacy, []*ospreyv1.AcceptanceList{acceptance(out, "192.0.2.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	if l.Outbound.Contains(netip.MustParseAddr("10.1.2.3")) || !l.Outbound.Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Error("a pushed outbound list does not win over the trusted networks")
	}
	for name, lists := range map[string][]*ospreyv1.AcceptanceList{
		"twice":       {acceptance(out, "192.0.2.1"), acceptance(out, "192.0.2.2")},
		"no kind":     {acceptance(0, "192.0.2.1")},
		"bad entries": {acceptance(out, "192.0.2.1/24")},
	} {
		if _, err := CompileLists(gatewayConfig(), lists); err == nil {
			t.Errorf("%s: compiled", name)
		}
	}
	var errs *acceptlist.Errors
	if _, err := CompileLists(gatewayConfig(), []*ospreyv1.AcceptanceList{acceptance(out, "192.0.2.1/24")}); !errors.As(err, &errs) {
		t.Errorf("bad entries: got %v, want the entries' errors", err)
	}
}

// TestLegacyTrustedNetworksStillRelay runs a configuration that still
// holds trusted networks, as a sensor that stored it before its central
// moved them does until the central's next push.
func TestLegacyTrustedNetworksStillRelay(t *testing.T) {
	cfg := gatewayConfig()
	//lint:ignore SA1019 a configuration stored before the move
	cfg.Gateway.TrustedNetworks = []string{"127.0.0.1"}
	outbound := startServer(t, cfg, outboundRole)
	c := dialFrom(t, "127.0.0.1", outbound.Addr())
	c.expect("220 ")
	c.cmd("QUIT", "221 ")
	refused := dialFrom(t, "127.0.0.2", outbound.Addr())
	refused.expect("554 ")
}
