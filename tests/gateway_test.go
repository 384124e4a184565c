package tests

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/testwait"
)

// smtpSink runs Postfix's smtp-sink on a loopback port, dumping every
// message it takes to a file of its own in dir, as a gateway's next hop.
type smtpSink struct {
	addr string
	dir  string
}

func startSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	return runSink(t, loopbackPort(t), t.TempDir()).smtpSink
}

// messages returns the messages the sink took, each as dumped (smtp-sink's
// envelope lines, then the message), with LF line ends. smtp-sink creates a
// transaction's file at MAIL and writes it out at the final dot, ending it
// with an empty line: a file without that end is a transaction still in
// progress (or one its client gave up), not a message taken.
func (s *smtpSink) messages(t *testing.T) []string {
	t.Helper()
	files, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(s.dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m := strings.ReplaceAll(string(b), "\r\n", "\n")
		if !strings.HasSuffix(m, "\n\n") {
			continue
		}
		out = append(out, m)
	}
	return out
}

// TestGatewayInbound: the dev node's sensor as an inbound mail gateway in
// front of an internal mail server (smtp-sink): clean mail for the local
// domain is delivered after its scan with the verdict and a Received
// header, the EICAR test file is quarantined (the default for a detection)
// with its alert and never delivered, and an open-relay probe is refused.
func TestGatewayInbound(t *testing.T) {
	sink := startSMTPSink(t)
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	listen := loopbackPort(t)
	sinkHost, sinkPort, _ := net.SplitHostPort(sink.addr)
	port, err := strconv.ParseUint(sinkPort, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	d.enableSMTP(t, &api.SMTPIntegration{
		Enabled:        true,
		Mode:           api.SMTPInbound,
		MaxMessageSize: &api.SizeLimit{Value: 1, Unit: api.MB},
		Gateway: &api.SMTPGateway{
			Inbound:      &api.GatewayListener{Listen: listen},
			LocalDomains: []api.LocalDomain{{Domain: "example.com", Hosts: []api.NextHop{{Host: sinkHost, Port: uint32(port)}}}},
			HeloName:     "gw.example.com",
		},
	})

	const clean = 5
	for i := range clean {
		msg := "From: alice@partner.test\r\nTo: bob@example.com\r\nSubject: clean " + string(rune('a'+i)) +
			"\r\nX-Osprey-Verdict: clean (forged by the sender)\r\n\r\nhello\r\n"
		if err := smtpSend(listen, "partner.test", "alice@partner.test", "bob@example.com", false, msg); err != nil {
			t.Fatalf("send clean message %d: %v", i, err)
		}
	}
	var got []string
	testwait.For(t, "5 clean messages delivered to the internal server", func() bool {
		got = sink.messages(t)
		return len(got) >= clean
	})
	for _, m := range got {
		if strings.Count(m, "X-Osprey-Verdict:") != 1 || !strings.Contains(m, "X-Osprey-Verdict: clean\n") {
			t.Errorf("delivered message without exactly one verdict header of ours:\n%s", m)
		}
		if !strings.Contains(m, "Received: from partner.test") {
			t.Errorf("delivered message without the gateway's Received header:\n%s", m)
		}
	}

	sendEICAR(t, listen, "EICAR through the gateway")
	var alerts *api.AlertList
	testwait.For(t, "the EICAR message quarantined", func() bool {
		s, err := d.api.Sensor(t.Context(), "dev")
		return err == nil && s.Counters["quarantine_messages"] == 1
	})
	alerts, err = d.api.Alerts(t.Context(), api.AlertQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts.Alerts) != 1 {
		t.Errorf("%d alerts, want 1 for the EICAR message", len(alerts.Alerts))
	}
	if n := len(sink.messages(t)); n != clean {
		t.Errorf("the internal server got %d messages, want the %d clean ones only", n, clean)
	}

	// An open-relay probe: a stranger asks the inbound listener for another
	// domain.
	err = smtpSend(listen, "stranger.test", "spam@stranger.test", "victim@elsewhere.test", false, "Subject: relay?\r\n\r\nx\r\n")
	if err == nil || !strings.Contains(err.Error(), "554") {
		t.Errorf("relay probe: %v, want 554 relay access denied", err)
	}
}
