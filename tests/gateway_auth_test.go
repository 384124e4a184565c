package tests

import (
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/dkimtest"
	"github.com/ospreysec/osprey/internal/dnstest"
	"github.com/ospreysec/osprey/internal/testwait"
)

// TestGatewaySenderAuth: the dev node's sensor as an inbound gateway that
// checks senders, asking a DNS server the test runs (--dns-server) that
// serves example.org's SPF, DKIM key and DMARC policy (p=reject). A
// message example.org signed arrives at the next hop with
// "dmarc=pass" in the gateway's Authentication-Results header; one that
// forges example.org in its From arrives with "dmarc=fail (p=reject)" and
// without the Authentication-Results of the gateway's name it was sent
// with. The central's message records hold both results, and a rule of
// the kind auth_result raises an alert for the next forgery.
func TestGatewaySenderAuth(t *testing.T) {
	key, err := dkimtest.NewRSA("example.org", "s1")
	if err != nil {
		t.Fatal(err)
	}
	dns := dnstest.New(t)
	dns.MustAdd(t,
		`example.org. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
		`_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject"`,
		`example.net. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
	)
	dns.TXT(key.Name(), 300, key.Record())

	sink := startSMTPSink(t)
	d := startDev(t, filepath.Join(t.TempDir(), "data"), "OSPREY_DNS_SERVER="+dns.Addr)
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
			HeloName:     "mx.example.com",
			SenderAuth:   &api.SenderAuthSettings{Enabled: true, AuthservID: "gw.example.com"},
		},
	})

	header := "To: bob@example.com\r\nDate: Mon, 07 Dec 2026 15:00:00 +0000\r\n"
	signed := string(key.MustSign(t, []byte("From: Alice <alice@example.org>\r\n"+header+"Subject: signed\r\nMessage-ID: <1@example.org>\r\n\r\nFigures attached.\r\n")))
	forged := "Authentication-Results: gw.example.com; dmarc=pass header.from=example.org\r\nFrom: CEO <ceo@example.org>\r\n" + header +
		"Subject: forged\r\n\r\nPay the invoice today.\r\n"
	if err := smtpSend(listen, "mx.example.org", "alice@example.org", "bob@example.com", false, signed); err != nil {
		t.Fatalf("send the signed message: %v", err)
	}
	if err := smtpSend(listen, "mx.example.net", "eve@example.net", "bob@example.com", false, forged); err != nil {
		t.Fatalf("send the forged message: %v", err)
	}
	var got []string
	testwait.For(t, "both messages delivered to the next hop", func() bool {
		got = sink.messages(t)
		return len(got) >= 2
	})
	want := map[string]string{
		"Subject: signed": "Authentication-Results: gw.example.com;\n\tspf=pass smtp.mailfrom=alice@example.org;\n" +
			"\tdkim=pass header.d=example.org header.s=s1;\n\tdmarc=pass (p=reject) header.from=example.org\n",
		"Subject: forged": "Authentication-Results: gw.example.com;\n\tspf=fail smtp.mailfrom=eve@example.net;\n" +
			"\tdkim=none;\n\tdmarc=fail (p=reject) header.from=example.org\n",
	}
	for _, m := range got {
		for subject, ar := range want {
			if !strings.Contains(m, subject) {
				continue
			}
			if !strings.Contains(m, ar) {
				t.Errorf("%s: delivered without the results\n%s\ngot:\n%s", subject, ar, m)
			}
			if n := strings.Count(m, "Authentication-Results: gw.example.com;"); n != 1 {
				t.Errorf("%s: %d Authentication-Results headers of the gateway, want 1 (the forged one removed):\n%s", subject, n, m)
			}
			delete(want, subject)
		}
	}
	if len(want) > 0 {
		t.Errorf("not delivered: %v", want)
	}

	// The central's records: through the API, as the audit log shows them.
	page, err := d.api.Messages(t.Context(), api.MessageQuery{Tenant: "default", Sensor: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	results := map[string]*api.AuthResults{}
	for _, m := range page.Messages {
		results[m.Headers.Subject] = m.Envelope.Auth
	}
	wantResults := map[string]*api.AuthResults{
		"signed": {SPF: "pass", SPFDomain: "example.org", DKIM: []api.DKIMResult{{Result: "pass", Domain: "example.org", Selector: "s1"}},
			DMARC: "pass", DMARCPolicy: "reject", FromDomain: "example.org"},
		"forged": {SPF: "fail", SPFDomain: "example.net", DMARC: "fail", DMARCPolicy: "reject", FromDomain: "example.org"},
	}
	if diff := cmp.Diff(wantResults, results); diff != "" {
		t.Errorf("sender authentication in the message records (-want +got):\n%s", diff)
	}

	// A rule on the results: the next forgery raises an alert.
	if _, err := d.api.CreateRule(t.Context(), "default", api.Rule{Kind: api.RuleAuthResult, Value: "dmarc=fail", Severity: api.SeverityHigh,
		Description: "From a domain that publishes DMARC, and not authenticated"}); err != nil {
		t.Fatal(err)
	}
	if err := smtpSend(listen, "mx.example.net", "eve@example.net", "bob@example.com", false, strings.Replace(forged, "forged", "forged again", 1)); err != nil {
		t.Fatalf("send the second forgery: %v", err)
	}
	var alerts *api.AlertList
	testwait.For(t, "an alert for the second forgery", func() bool {
		alerts, err = d.api.Alerts(t.Context(), api.AlertQuery{})
		return err == nil && len(alerts.Alerts) > 0
	})
	a := alerts.Alerts[0]
	if !slices.ContainsFunc(a.Matches, func(m api.Match) bool { return m.What == "DMARC fail for example.org, policy reject" }) {
		t.Errorf("alert matches %+v, want the DMARC failure", a.Matches)
	}
}
