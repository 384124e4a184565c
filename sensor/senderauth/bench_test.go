package senderauth

import (
	"net/netip"
	"strings"
	"testing"
)

// BenchmarkCheck is the cost of checking one signed 5 KB message whose
// lookups are cached: what sender authentication adds to a gateway's
// message (bench/gatewayrelay -senderauth measures it in the whole relay).
func BenchmarkCheck(b *testing.B) {
	srv, ks := world(b)
	c := checker(b, srv, Config{})
	msg := ks["org"].MustSign(b, message("alice@example.org", "figures", strings.Repeat("abcdefghij", 7)+"\r\n"+strings.Repeat(strings.Repeat("abcdefghij", 7)+"\r\n", 70)))
	ip := netip.MustParseAddr("192.0.2.10")
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		m := c.Start(b.Context(), ip, "mx.example.org", "alice@example.org")
		for p := msg; len(p) > 0; {
			n := min(4096, len(p))
			m.Write(p[:n])
			p = p[n:]
		}
		if r := m.Results(); r.GetDmarc() != Pass {
			b.Fatalf("results %v, want dmarc pass", r)
		}
		m.Close()
	}
}
