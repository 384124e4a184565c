package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/dkimtest"
	"github.com/ospreysec/osprey/internal/dnstest"
)

// authTarget names the rounds of the gateway with sender authentication
// on (-senderauth).
const authTarget = "osprey+auth"

// authWorld is what the sender of the load publishes in DNS: partner.test
// lets 127.0.0.1 send its mail (SPF), signs it (DKIM) and asks receivers
// to reject what fails (DMARC p=reject). Every record has a TTL of an
// hour, longer than a run: the sensor's cache answers after the first
// message.
type authWorld struct {
	dns *dnstest.Server
	key *dkimtest.Key
}

func startAuthWorld() *authWorld {
	s, err := dnstest.Start()
	if err != nil {
		fatalf("DNS server: %v", err)
	}
	atExit(func() { s.Close() })
	key, err := dkimtest.NewRSA("partner.test", "bench")
	if err != nil {
		fatalf("DKIM key: %v", err)
	}
	if err := s.Add(`partner.test. 3600 IN TXT "v=spf1 ip4:127.0.0.1 -all"`, `_dmarc.partner.test. 3600 IN TXT "v=DMARC1; p=reject"`); err != nil {
		fatalf("DNS records: %v", err)
	}
	s.TXT(key.Name(), 3600, key.Record())
	return &authWorld{dns: s, key: key}
}

// message writes a message from bench@partner.test with a body of about
// size bytes, signed with the domain's key, in the form smtp-source -F
// reads (LF line ends, which it sends as CRLF), and returns its path.
func (w *authWorld) message(work string, size int) string {
	var b bytes.Buffer
	b.WriteString("From: Bench <bench@partner.test>\r\nTo: bench@example.com\r\nSubject: gatewayrelay\r\n" +
		"Date: Mon, 07 Dec 2026 15:00:00 +0000\r\nMessage-ID: <gatewayrelay@partner.test>\r\n\r\n")
	line := strings.Repeat("abcdefghij", 7) + "\r\n" // 72 bytes
	for n := 0; n < size; n += len(line) {
		b.WriteString(line)
	}
	signed, err := w.key.Sign(b.Bytes())
	if err != nil {
		fatalf("%v", err)
	}
	path := filepath.Join(work, fmt.Sprintf("message-%d.eml", size))
	if err := os.WriteFile(path, bytes.ReplaceAll(signed, []byte("\r\n"), []byte("\n")), 0o644); err != nil {
		fatalf("%v", err)
	}
	return path
}

// authRow prints the comparison of one size's rounds without and with
// sender authentication.
func authRow(size string, off, on []result) {
	rate := func(x result) float64 { return x.rate }
	p50 := func(x result) float64 { return x.p50 }
	p99 := func(x result) float64 { return x.p99 }
	cpu := func(x result) float64 { return x.cpuPerMsg }
	fmt.Printf("| %s | %.0f | %.0f | %.2f | %s / %s | %s / %s | %.2f / %.2f |\n",
		size, medianOf(off, rate), medianOf(on, rate), medianOf(on, rate)/medianOf(off, rate),
		ms(medianOf(off, p50)), ms(medianOf(off, p99)), ms(medianOf(on, p50)), ms(medianOf(on, p99)),
		1000*medianOf(off, cpu), 1000*medianOf(on, cpu))
}

// checkAuth fails the run unless messages the gateway accepted since
// passed SPF, DKIM and DMARC: a round that measured checks that did not
// run, or failed, measured nothing.
func (o *osprey) checkAuth(since time.Time) {
	page, err := o.api.Audit(context.Background(), api.AuditQuery{Tenant: "default", Sensor: "dev", Kind: api.AuditAccepted, From: since, Limit: 20})
	if err != nil {
		fatalf("read the audit log: %v", err)
	}
	if len(page.Events) == 0 {
		fatalf("no message in the audit log since %v", since)
	}
	for _, e := range page.Events {
		a := e.Message.Envelope.Auth
		if a == nil || a.SPF != "pass" || len(a.DKIM) != 1 || a.DKIM[0].Result != "pass" || a.DMARC != "pass" {
			fatalf("message %s of a sender authentication round: results %+v, want spf, dkim and dmarc pass", e.Message.MessageID, a)
		}
	}
}
