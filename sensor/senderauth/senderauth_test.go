package senderauth

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/internal/dkimtest"
	"github.com/ospreysec/osprey/internal/dnstest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/dnscache"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// keys are made once: RSA key generation is slow under -race.
var keys = sync.OnceValues(func() (map[string]*dkimtest.Key, error) {
	out := map[string]*dkimtest.Key{}
	for _, k := range []struct {
		name, domain, selector string
		rsa                    bool
	}{
		{"org", "example.org", "s1", true},
		{"net", "example.net", "ed", false},
		{"gone", "example.org", "gone", false}, // never published
		{"sub", "mail.example.com", "s2", false},
	} {
		var key *dkimtest.Key
		var err error
		if k.rsa {
			key, err = dkimtest.NewRSA(k.domain, k.selector)
		} else {
			key, err = dkimtest.NewEd25519(k.domain, k.selector)
		}
		if err != nil {
			return nil, err
		}
		out[k.name] = key
	}
	return out, nil
})

// world is a DNS server with the records of the tests' domains:
//
//	example.org       SPF 192.0.2.10 -all; DKIM s1 (RSA); DMARC p=reject sp=quarantine
//	mx.example.org    SPF 192.0.2.10 -all (a HELO name)
//	mail.example.org  SPF 192.0.2.10 -all (a bounce domain)
//	example.net       SPF 192.0.2.66 -all; DKIM ed (Ed25519); no DMARC
//	example.com       SPF include:_spf.example.com ~all; DMARC p=quarantine, strict SPF alignment
//	mail.example.com  SPF 192.0.2.10 -all; DKIM s2
//	broken.example.com DMARC with a bad policy
//	servfail.example.com every answer SERVFAIL
func world(t testing.TB) (*dnstest.Server, map[string]*dkimtest.Key) {
	t.Helper()
	ks, err := keys()
	if err != nil {
		t.Fatal(err)
	}
	s := dnstest.New(t)
	s.MustAdd(t,
		`example.org. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`mx.example.org. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`mail.example.org. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`_dmarc.example.org. 300 IN TXT "v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@example.org"`,
		`example.net. 300 IN TXT "v=spf1 ip4:192.0.2.66 -all"`,
		`example.com. 300 IN TXT "v=spf1 include:_spf.example.com ~all"`,
		`_spf.example.com. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`_dmarc.example.com. 300 IN TXT "v=DMARC1; p=quarantine; aspf=s"`,
		`mail.example.com. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`_dmarc.broken.example.com. 300 IN TXT "v=DMARC1; p=bogus"`,
		`broken.example.com. 300 IN TXT "v=spf1 -all"`,
		`servfail.example.com. 300 IN TXT "v=spf1 -all"`,
	)
	s.ServFail("_dmarc.servfail.example.com", true)
	for _, name := range []string{"org", "net", "sub"} {
		k := ks[name]
		s.TXT(k.Name(), 300, k.Record())
	}
	return s, ks
}

func checker(t testing.TB, srv *dnstest.Server, cfg Config) *Checker {
	t.Helper()
	r, err := dnscache.New(dnscache.Options{Servers: []string{srv.Addr}, Timeout: 2 * time.Second, AttemptTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if cfg.LookupTimeout == 0 {
		cfg.LookupTimeout = 2 * time.Second
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = 5 * time.Second
	}
	return New(r, cfg)
}

func message(from, subject, body string) []byte {
	return []byte("From: " + from + "\r\nTo: bob@example.net\r\nSubject: " + subject +
		"\r\nDate: Mon, 07 Dec 2026 15:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\n" + body)
}

// check runs a message through a Checker, written chunk bytes at a time.
func check(t *testing.T, c *Checker, ip, helo, from string, msg []byte, chunk int) *ospreyv1.AuthResults {
	t.Helper()
	m := c.Start(t.Context(), netip.MustParseAddr(ip), helo, from)
	defer m.Close()
	for len(msg) > 0 {
		n := min(chunk, len(msg))
		if _, err := m.Write(msg[:n]); err != nil {
			t.Fatal(err)
		}
		msg = msg[n:]
	}
	return m.Results()
}

func TestResults(t *testing.T) {
	srv, ks := world(t)
	body := "Hello,\r\n\r\nthe quarterly figures are attached.\r\n"
	signed := func(key, from string) []byte { return ks[key].MustSign(t, message(from, "figures", body)) }
	altered := bytes.Replace(signed("org", "alice@example.org"), []byte("quarterly"), []byte("QUARTERLY"), 1)
	twice := ks["net"].MustSign(t, altered)

	pass := func(d, s string) *ospreyv1.DkimResult {
		return &ospreyv1.DkimResult{Result: Pass, Domain: d, Selector: s}
	}
	tests := []struct {
		name             string
		ip, helo, sender string
		msg              []byte
		chunk            int
		cfg              Config
		want             *ospreyv1.AuthResults
	}{
		{
			name: "all pass", ip: "192.0.2.10", helo: "mx.example.org", sender: "alice@example.org", msg: signed("org", "Alice <alice@example.org>"), chunk: 4096,
			want: &ospreyv1.AuthResults{Spf: Pass, SpfDomain: "example.org", Dkim: []*ospreyv1.DkimResult{pass("example.org", "s1")}, Dmarc: Pass, DmarcPolicy: "reject", FromDomain: "example.org"},
		},
		{
			name: "spf fail, aligned dkim passes dmarc", ip: "192.0.2.99", helo: "mx.example.org", sender: "alice@example.org", msg: signed("org", "alice@example.org"), chunk: 1,
			want: &ospreyv1.AuthResults{Spf: Fail, SpfDomain: "example.org", Dkim: []*ospreyv1.DkimResult{pass("example.org", "s1")}, Dmarc: Pass, DmarcPolicy: "reject", FromDomain: "example.org"},
		},
		{
			name: "body altered: dkim fail, dmarc fail", ip: "192.0.2.99", helo: "mx.example.org", sender: "alice@example.org", msg: altered, chunk: 7,
			want: &ospreyv1.AuthResults{Spf: Fail, SpfDomain: "example.org", Dkim: []*ospreyv1.DkimResult{{Result: Fail, Domain: "example.org", Selector: "s1"}},
				Dmarc: Fail, DmarcPolicy: "reject", FromDomain: "example.org"},
		},
		{
			name: "softfail, no dmarc record", ip: "192.0.2.99", helo: "mx.example.com", sender: "bob@example.com", msg: message("bob@example.net", "hi", body), chunk: 3,
			want: &ospreyv1.AuthResults{Spf: SoftFail, SpfDomain: "example.com", Dmarc: None, FromDomain: "example.net"},
		},
		{
			name: "no spf record", ip: "192.0.2.99", helo: "mx.example.com", sender: "x@norecord.example.net", msg: message("x@norecord.example.net", "hi", body), chunk: 4096,
			want: &ospreyv1.AuthResults{Spf: None, SpfDomain: "norecord.example.net", Dmarc: None, FromDomain: "norecord.example.net"},
		},
		{
			name: "dmarc reject, From not aligned with spf or dkim", ip: "192.0.2.66", helo: "mx.example.net", sender: "attacker@example.net", msg: signed("net", "CEO <ceo@example.org>"), chunk: 4096,
			want: &ospreyv1.AuthResults{Spf: Pass, SpfDomain: "example.net", Dkim: []*ospreyv1.DkimResult{pass("example.net", "ed")}, Dmarc: Fail, DmarcPolicy: "reject", FromDomain: "example.org"},
		},
		{
			name: "relaxed alignment of a subdomain", ip: "192.0.2.10", helo: "mx.example.org", sender: "bounce@mail.example.org", msg: message("alice@example.org", "hi", body), chunk: 64,
			want: &ospreyv1.AuthResults{Spf: Pass, SpfDomain: "mail.example.org", Dmarc: Pass, DmarcPolicy: "reject", FromDomain: "example.org"},
		},
		{
			name: "strict spf alignment, relaxed dkim", ip: "192.0.2.10", helo: "mx.example.com", sender: "bounce@mail.example.com", msg: message("a@example.com", "hi", body), chunk: 64,
			want: &ospreyv1.AuthResults{Spf: Pass, SpfDomain: "mail.example.com", Dmarc: Fail, DmarcPolicy: "quarantine", FromDomain: "example.com"},
		},
		{
			name: "dkim of a subdomain aligns relaxed", ip: "192.0.2.99", helo: "mx.example.com", sender: "bounce@mail.example.com", msg: signed("sub", "a@example.com"), chunk: 64,
			want: &ospreyv1.AuthResults{Spf: Fail, SpfDomain: "mail.example.com", Dkim: []*ospreyv1.DkimResult{pass("mail.example.com", "s2")}, Dmarc: Pass, DmarcPolicy: "quarantine", FromDomain: "example.com"},
		},
		{
			name: "subdomain policy of the organizational domain", ip: "192.0.2.99", helo: "mx.example.org", sender: "a@shop.example.org", msg: message("a@shop.example.org", "hi", body), chunk: 4096,
			want: &ospreyv1.AuthResults{Spf: None, SpfDomain: "shop.example.org", Dmarc: Fail, DmarcPolicy: "quarantine", FromDomain: "shop.example.org"},
		},
		{
			name: "null sender: the HELO name", ip: "192.0.2.10", helo: "mx.example.org", sender: "", msg: message("MAILER-DAEMON@mx.example.org", "bounce", body), chunk: 4096,
			want: &ospreyv1.AuthResults{Spf: Pass, SpfDomain: "mx.example.org", Dmarc: Pass, DmarcPolicy: "quarantine", FromDomain: "mx.example.org"},
		},
		{
			name: "null sender with an address literal", ip: "192.0.2.10", helo: "[192.0.2.10]", sender: "", msg: message("a@example.net", "bounce", body), chunk: 4096,
			want: &ospreyv1.AuthResults{Spf: None, Dmarc: None, FromDomain: "example.net"},
		},
		{
			name: "dkim key not published", ip: "192.0.2.99", helo: "mx.example.org", sender: "alice@example.org", msg: signed("gone", "alice@example.org"), chunk: 4096,
			want: &ospreyv1.AuthResults{Spf: Fail, SpfDomain: "example.org", Dkim: []*ospreyv1.DkimResult{{Result: PermError, Domain: "example.org", Selector: "gone"}},
				Dmarc: Fail, DmarcPolicy: "reject", FromDomain: "example.org"},
		},
		{
			name: "two signatures, each its result", ip: "192.0.2.99", helo: "mx.example.org", sender: "alice@example.org", msg: twice, chunk: 100,
			want: &ospreyv1.AuthResults{Spf: Fail, SpfDomain: "example.org",
				Dkim:  []*ospreyv1.DkimResult{pass("example.net", "ed"), {Result: Fail, Domain: "example.org", Selector: "s1"}},
				Dmarc: Fail, DmarcPolicy: "reject", FromDomain: "example.org"},
		},
		{
			name: "broken dmarc record", ip: "192.0.2.99", helo: "mx.example.com", sender: "a@broken.example.com", msg: message("a@broken.example.com", "hi", body), chunk: 4096,
			want: &ospreyv1.AuthResults{Spf: Fail, SpfDomain: "broken.example.com", Dmarc: PermError, FromDomain: "broken.example.com"},
		},
		{
			name: "broken dmarc record counted as none", ip: "192.0.2.99", helo: "mx.example.com", sender: "a@broken.example.com", msg: message("a@broken.example.com", "hi", body), chunk: 4096,
			cfg:  Config{PermError: ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_NONE},
			want: &ospreyv1.AuthResults{Spf: Fail, SpfDomain: "broken.example.com", Dmarc: None, FromDomain: "broken.example.com"},
		},
		{
			name: "dmarc record lookup fails", ip: "192.0.2.99", helo: "mx.example.com", sender: "a@servfail.example.com", msg: message("a@servfail.example.com", "hi", body), chunk: 4096,
			want: &ospreyv1.AuthResults{Spf: Fail, SpfDomain: "servfail.example.com", Dmarc: TempError, FromDomain: "servfail.example.com"},
		},
		{
			name: "dmarc record lookup fails, counted as fail", ip: "192.0.2.99", helo: "mx.example.com", sender: "a@servfail.example.com", msg: message("a@servfail.example.com", "hi", body), chunk: 4096,
			cfg:  Config{TempError: ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_FAIL},
			want: &ospreyv1.AuthResults{Spf: Fail, SpfDomain: "servfail.example.com", Dmarc: Fail, FromDomain: "servfail.example.com"},
		},
		{
			name: "no From", ip: "192.0.2.10", helo: "mx.example.org", sender: "alice@example.org", msg: []byte("Subject: hi\r\n\r\nbody\r\n"), chunk: 4096,
			want: &ospreyv1.AuthResults{Spf: Pass, SpfDomain: "example.org", Dmarc: PermError},
		},
		{
			name: "From of two domains", ip: "192.0.2.10", helo: "mx.example.org", sender: "alice@example.org", msg: message("alice@example.org, eve@example.net", "hi", body), chunk: 4096,
			want: &ospreyv1.AuthResults{Spf: Pass, SpfDomain: "example.org", Dmarc: PermError},
		},
		{
			name: "header only, no empty line", ip: "192.0.2.10", helo: "mx.example.org", sender: "alice@example.org", msg: []byte("From: alice@example.org\r\nSubject: hi\r\n"), chunk: 5,
			want: &ospreyv1.AuthResults{Spf: Pass, SpfDomain: "example.org", Dmarc: Pass, DmarcPolicy: "reject", FromDomain: "example.org"},
		},
		{
			name: "From net/mail cannot parse", ip: "192.0.2.10", helo: "mx.example.org", sender: "alice@example.org", msg: message("Alice [Finance] <alice@example.org>", "hi", body), chunk: 4096,
			want: &ospreyv1.AuthResults{Spf: Pass, SpfDomain: "example.org", Dmarc: Pass, DmarcPolicy: "reject", FromDomain: "example.org"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := check(t, checker(t, srv, tc.cfg), tc.ip, tc.helo, tc.sender, tc.msg, tc.chunk)
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServerNotAnswering: with a DNS server that never answers, every
// check is "temperror", within the check's time bound.
func TestServerNotAnswering(t *testing.T) {
	srv, ks := world(t)
	msg := ks["org"].MustSign(t, message("alice@example.org", "hi", "body\r\n"))
	srv.Silent(true)
	for _, tc := range []struct {
		name      string
		treatment ospreyv1.AuthErrorTreatment
		dmarc     string
	}{
		{"as is", ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_UNSPECIFIED, TempError},
		{"counted as fail", ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_FAIL, Fail},
		{"counted as none", ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_NONE, None},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := checker(t, srv, Config{LookupTimeout: 200 * time.Millisecond, CheckTimeout: 500 * time.Millisecond, TempError: tc.treatment})
			start := time.Now()
			got := check(t, c, "192.0.2.10", "mx.example.org", "alice@example.org", msg, 4096)
			took := time.Since(start)
			want := &ospreyv1.AuthResults{Spf: TempError, SpfDomain: "example.org",
				Dkim:  []*ospreyv1.DkimResult{{Result: TempError, Domain: "example.org", Selector: "s1"}},
				Dmarc: tc.dmarc, FromDomain: "example.org"}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			// The checks run side by side, each bounded by 500 ms; a busy
			// machine gets a generous margin.
			if took > 3*time.Second {
				t.Errorf("the checks took %v, want about the check timeout of 500ms", took)
			}
		})
	}
}

// TestAbandoned: a message closed before its end (the client went away)
// ends its checks at once, goroutines included (goleak checks).
func TestAbandoned(t *testing.T) {
	srv, ks := world(t)
	srv.Silent(true)
	c := checker(t, srv, Config{LookupTimeout: time.Minute, CheckTimeout: time.Minute})
	msg := ks["org"].MustSign(t, message("alice@example.org", "hi", "body\r\n"))
	m := c.Start(t.Context(), netip.MustParseAddr("192.0.2.10"), "mx.example.org", "alice@example.org")
	half := bytes.Index(msg, []byte("\r\n\r\n")) + 4
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Write(msg[:half]) // the header: the checks start, and wait for DNS
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("writing the header waited for DNS")
	}
	m.Close()
	if r := m.Results(); r != nil {
		t.Errorf("Results after Close: got %v, want nil", r)
	}
}

func TestLargeHeaderNotChecked(t *testing.T) {
	srv, _ := world(t)
	c := checker(t, srv, Config{})
	msg := []byte("From: alice@example.org\r\nX-Big: " + strings.Repeat("x", MaxHeader) + "\r\n\r\nbody\r\n")
	got := check(t, c, "192.0.2.10", "mx.example.org", "alice@example.org", msg, 64<<10)
	want := &ospreyv1.AuthResults{Spf: Pass, SpfDomain: "example.org", Dmarc: PermError}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
}

// TestLookupsCached: a second message from the same sender asks DNS
// nothing.
func TestLookupsCached(t *testing.T) {
	srv, ks := world(t)
	c := checker(t, srv, Config{})
	msg := ks["org"].MustSign(t, message("alice@example.org", "hi", "body\r\n"))
	check(t, c, "192.0.2.10", "mx.example.org", "alice@example.org", msg, 4096)
	names := []struct{ qtype, name string }{{"TXT", "example.org"}, {"TXT", "s1._domainkey.example.org"}, {"TXT", "_dmarc.example.org"}}
	var before []int
	for _, n := range names {
		before = append(before, srv.Queries(n.qtype, n.name))
	}
	got := check(t, c, "192.0.2.10", "mx.example.org", "alice@example.org", msg, 4096)
	if got.GetDmarc() != Pass {
		t.Errorf("second message: dmarc %q, want pass", got.GetDmarc())
	}
	for i, n := range names {
		if q := srv.Queries(n.qtype, n.name); q != before[i] || q != 1 {
			t.Errorf("%s %s: %d queries after two messages, want 1", n.qtype, n.name, q)
		}
	}
}
