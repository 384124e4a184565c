package smtpd

import (
	"strings"
	"testing"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// gatewayConfig is an inbound-and-outbound gateway on loopback: example.com
// is local, 127.0.0.1 is in the outbound acceptance list (gatewayLists),
// and other clients connect from 127.0.0.2.
func gatewayConfig() *ospreyv1.SmtpIntegration {
	return &ospreyv1.SmtpIntegration{
		Enabled:        true,
		Mode:           ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND,
		MaxMessageSize: &ospreyv1.SizeLimit{Value: 1, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB},
		Gateway: &ospreyv1.SmtpGateway{
			Inbound:      &ospreyv1.GatewayListener{Listen: "127.0.0.1:0"},
			Outbound:     &ospreyv1.GatewayListener{Listen: "127.0.0.1:0"},
			LocalDomains: []*ospreyv1.LocalDomain{{Domain: "example.com"}},
		},
	}
}

// gatewayLists are the acceptance lists of gatewayConfig: 127.0.0.1 may
// relay.
func gatewayLists() []*ospreyv1.AcceptanceList {
	return []*ospreyv1.AcceptanceList{{Kind: ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND, Entries: []string{"127.0.0.1"}}}
}

// startGateway starts a listener of gatewayConfig's kind with cfg and
// gatewayLists.
func startGateway(t *testing.T, cfg *ospreyv1.SmtpIntegration, opts ...serverOption) *testServer {
	t.Helper()
	return startServerLists(t, cfg, gatewayLists(), opts...)
}

func withRole(r Role) serverOption { return func(s *Server) { s.opts.Role = r } }

// TestGatewayRelayRules checks both directions against an open-relay
// probe: the inbound listener takes only its local domains from strangers,
// the outbound listener only the clients of the outbound acceptance list,
// and each message is spooled with its direction.
func TestGatewayRelayRules(t *testing.T) {
	cfg := gatewayConfig()
	inbound := startGateway(t, cfg, withRole(Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND}))
	outbound := startGateway(t, cfg, withRole(Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND}))
	monitor := startGateway(t, cfg)
	if monitor.Addr() != nil {
		t.Errorf("the monitor listener listens on %v in a gateway mode", monitor.Addr())
	}
	v6 := startGateway(t, cfg, withRole(Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND, IPv6: true}))
	if v6.Addr() != nil {
		t.Errorf("the inbound IPv6 listener listens on %v without listen_v6", v6.Addr())
	}

	t.Run("inbound from a stranger", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", inbound.Addr())
		c.expect("220 ")
		c.cmd("EHLO stranger.test", "250")
		c.cmd("MAIL FROM:<spammer@stranger.test>", "250 ")
		c.cmd("RCPT TO:<victim@elsewhere.test>", "554 5.7.1 Relay access denied")
		c.cmd("RCPT TO:<victim%elsewhere.test@example.com>", "550 5.7.1 ")
		c.cmd("RCPT TO:<bob@hr.example.com>", "250 ")
		c.cmd("DATA", "354 ")
		c.send("Subject: in\r\n\r\nhello\r\n.\r\n")
		c.expect("250 2.0.0 ")
		c.cmd("QUIT", "221 ")
	})
	t.Run("inbound from the outbound acceptance list relays", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.1", inbound.Addr())
		c.expect("220 ")
		c.cmd("EHLO inside.test", "250")
		c.cmd("MAIL FROM:<alice@example.com>", "250 ")
		c.cmd("RCPT TO:<someone@elsewhere.test>", "250 ")
		c.cmd("QUIT", "221 ")
	})
	t.Run("outbound from a stranger", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.2", outbound.Addr())
		c.expect("554 5.7.1 ")
		c.expectClosed()
	})
	t.Run("outbound from the outbound acceptance list", func(t *testing.T) {
		c := dialFrom(t, "127.0.0.1", outbound.Addr())
		c.expect("220 ")
		c.cmd("EHLO inside.test", "250")
		c.cmd("MAIL FROM:<alice@example.com>", "250 ")
		c.cmd("RCPT TO:<partner@elsewhere.test>", "250 ")
		c.cmd("DATA", "354 ")
		c.send("Subject: out\r\n\r\nhello\r\n.\r\n")
		c.expect("250 2.0.0 ")
		c.cmd("QUIT", "221 ")
	})

	for _, tc := range []struct {
		srv  *testServer
		want ospreyv1.MailDirection
	}{
		{inbound, ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND},
		{outbound, ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND},
	} {
		msgs := tc.srv.spool.messages()
		if len(msgs) != 1 {
			t.Fatalf("%v spooled %d messages, want 1", tc.want, len(msgs))
		}
		if got := msgs[0].meta.Envelope.GetDirection(); got != tc.want {
			t.Errorf("spooled with direction %v, want %v", got, tc.want)
		}
	}
	if got := inbound.Stats().Rejected["relay_denied"]; got != 1 {
		t.Errorf("relay_denied = %d, want 1", got)
	}
	if got := outbound.Stats().Rejected["not_in_acceptance_list"]; got != 1 {
		t.Errorf("outbound not_in_acceptance_list = %d, want 1", got)
	}
}

// TestGatewayModeSwitch checks that a change of mode moves the mail from
// one listener to the other: the monitor listener closes when the sensor
// becomes a gateway and opens again when it goes back.
func TestGatewayModeSwitch(t *testing.T) {
	cfg := testConfig()
	monitor := startServer(t, cfg)
	addr := monitor.Addr()
	gw := gatewayConfig()
	gw.Listen = cfg.Listen
	if err := monitor.Apply(t.Context(), gw); err != nil {
		t.Fatalf("Apply(gateway): %v", err)
	}
	expectNotListening(t, monitor.Server, addr)
	if err := monitor.Apply(t.Context(), cfg); err != nil {
		t.Fatalf("Apply(monitor): %v", err)
	}
	if monitor.Addr() == nil {
		t.Fatal("the monitor listener did not open again")
	}
	c := dial(t, monitor.Addr())
	c.expect("220 ")
}

func TestRoleNames(t *testing.T) {
	var names []string
	for _, r := range Roles {
		names = append(names, r.String())
	}
	if got, want := strings.Join(names, ","), "monitor,inbound,inbound_v6,outbound,outbound_v6,submission,submission_v6"; got != want {
		t.Errorf("roles %s, want %s", got, want)
	}
}
