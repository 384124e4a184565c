package sensor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/internal/dnstest"
	"github.com/ospreysec/osprey/sensor/dnscache"
)

// TestDNSProblem: a DNS server that does not answer is named in the
// sensor's status until it answers again.
func TestDNSProblem(t *testing.T) {
	srv := dnstest.New(t)
	if err := srv.Add("example.com. 60 IN TXT \"v=spf1 -all\""); err != nil {
		t.Fatal(err)
	}
	c, err := dnscache.New(dnscache.Options{Servers: []string{srv.Addr}, Timeout: 300 * time.Millisecond, AttemptTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	r := resolvers{cache: c}
	if p := r.problem(time.Now()); p != "" {
		t.Errorf("before any lookup: %q", p)
	}
	srv.Silent(true)
	if _, err := c.LookupTXT(context.Background(), "silent.example.com"); err == nil {
		t.Fatal("a silent server answered")
	}
	p := r.problem(time.Now())
	if !strings.HasPrefix(p, "WARNING: DNS: "+srv.Addr+" does not answer") {
		t.Errorf("with the server silent: %q", p)
	}
	if p := r.problem(time.Now().Add(time.Hour)); p != "" {
		t.Errorf("an hour later: %q, want nothing", p)
	}
	srv.Silent(false)
	if _, err := c.LookupTXT(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	if p := r.problem(time.Now()); p != "" {
		t.Errorf("once the server answers again: %q", p)
	}
}
