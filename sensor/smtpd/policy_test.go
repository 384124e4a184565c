package smtpd

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestClientPolicy is the clients rule over real connections, IPv4 and
// IPv6: an exclusion wins over an inclusion; a blank list means any client
// when destination domains are given and the sensor's own subnets (here
// injected) otherwise.
func TestClientPolicy(t *testing.T) {
	const v4, v6 = "127.0.0.1:0", "[::1]:0"
	tests := []struct {
		name    string
		listen  string
		clients []string
		domains []string
		local   []string // the sensor's own subnets
		want    string   // the first reply
	}{
		{"v4 listed", v4, []string{"127.0.0.1"}, nil, nil, "220 "},
		{"v4 in a listed prefix", v4, []string{"127.0.0.0/8"}, nil, nil, "220 "},
		{"v4 not listed", v4, []string{"192.0.2.0/24"}, []string{"example.com"}, nil, "554 5.7.1 "},
		{"v4 excluded inside an inclusion", v4, []string{"127.0.0.0/8", "!127.0.0.1"}, nil, nil, "554 5.7.1 "},
		{"v4 exclusion wins over a narrower inclusion", v4, []string{"127.0.0.0/8", "!127.0.0.0/16", "10.0.0.1"}, nil, nil, "554 5.7.1 "},
		{"v6 listed", v6, []string{"::1"}, nil, nil, "220 "},
		{"v6 not listed", v6, []string{"2001:db8::/32"}, nil, nil, "554 5.7.1 "},
		{"v6 excluded", v6, []string{"::/0", "!::1"}, nil, nil, "554 5.7.1 "},
		{"v6 client, v4 list", v6, []string{"127.0.0.0/8"}, nil, nil, "554 5.7.1 "},
		{"blank with domains: any v4", v4, nil, []string{"example.com"}, nil, "220 "},
		{"blank with domains: any v6", v6, nil, []string{"example.com"}, nil, "220 "},
		{"blank with domains, exclusion", v4, []string{"!127.0.0.1"}, []string{"example.com"}, nil, "554 5.7.1 "},
		{"blank with domains, other excluded", v6, []string{"!127.0.0.1"}, []string{"example.com"}, nil, "220 "},
		{"blank, no domains: own v4 subnet", v4, nil, nil, []string{"127.0.0.0/8", "192.0.2.0/24"}, "220 "},
		{"blank, no domains: other v4 subnet", v4, nil, nil, []string{"192.0.2.0/24"}, "554 5.7.1 "},
		{"blank, no domains: own v6 subnet", v6, nil, nil, []string{"::1/128"}, "220 "},
		{"blank, no domains: v4 subnets only", v6, nil, nil, []string{"127.0.0.0/8"}, "554 5.7.1 "},
		{"blank, no domains, exclusion", v4, []string{"!127.0.0.1"}, nil, []string{"127.0.0.0/8"}, "554 5.7.1 "},
		{"blank, exclusion-only domains count as none", v4, nil, []string{"!hr.example.com"}, []string{"192.0.2.0/24"}, "554 5.7.1 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Listen, cfg.Clients, cfg.DestinationDomains = tt.listen, tt.clients, tt.domains
			s := startServer(t, cfg, withLocalSubnets(tt.local...))
			c := dial(t, s.Addr())
			c.expect(tt.want)
			if tt.want == "220 " {
				c.quit()
				return
			}
			// No command is served after the refusal.
			c.expectClosed()
			if got := s.Stats().Rejected["client_refused"]; got != 1 {
				t.Errorf("client_refused counter %d, want 1", got)
			}
		})
	}
}

// TestClientPolicyMappedIPv4 checks that an IPv4 client of a dual-stack
// listener, which the kernel reports as ::ffff:127.0.0.1, is matched as
// IPv4.
func TestClientPolicyMappedIPv4(t *testing.T) {
	ln, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		t.Skipf("no dual-stack listener here: %v", err)
	}
	ln.Close()
	cfg := testConfig()
	cfg.Listen, cfg.Clients = "[::]:0", []string{"127.0.0.1"}
	s := startServer(t, cfg)
	port := s.Addr().(*net.TCPAddr).Port
	c := dial(t, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	c.expect("220 ")
	c.quit()
}

func TestLocalSubnetsError(t *testing.T) {
	cfg := testConfig()
	cfg.DestinationDomains = nil
	s := New(Options{Spool: &fakeSpool{}, LocalSubnets: func() ([]netip.Prefix, error) {
		return nil, errors.New("no interfaces")
	}})
	runServer(t, s)
	if err := s.Apply(t.Context(), cfg); err == nil {
		t.Fatal("Apply with a blank clients list and unknown subnets: got nil error")
	}
	if s.Addr() != nil {
		t.Errorf("listening on %v after a failed Apply", s.Addr())
	}
}

// TestRecipientPolicy is the destination-domains rule at RCPT, with the
// address forms used to get around it (open relay attempts).
func TestRecipientPolicy(t *testing.T) {
	scoped := []string{"example.com", "!hr.example.com"}
	tests := []struct {
		name    string
		domains []string
		rcpt    string // the RCPT TO argument
		want    string
	}{
		{"domain", scoped, "<bob@example.com>", "250 "},
		{"subdomain", scoped, "<bob@mail.example.com>", "250 "},
		{"upper case", scoped, "<bob@MAIL.Example.COM>", "250 "},
		{"trailing dot", scoped, "<bob@example.com.>", "250 "},
		{"IDN subdomain", scoped, "<bob@bücher.example.com>", "250 "},
		{"without brackets", scoped, "bob@example.com", "250 "},
		{"excluded subdomain", scoped, "<bob@hr.example.com>", "550 5.7.1 "},
		{"below an excluded subdomain", scoped, "<bob@x.hr.example.com>", "550 5.7.1 "},
		{"other domain", scoped, "<bob@other.test>", "550 5.7.1 "},
		{"suffix of another name", scoped, "<bob@evilexample.com>", "550 5.7.1 "},
		{"domain as a prefix", scoped, "<bob@example.com.evil.test>", "550 5.7.1 "},
		{"two trailing dots", scoped, "<bob@example.com..>", "550 5.7.1 "},
		{"percent hack", scoped, "<user%evil.test@example.com>", "550 5.7.1 "},
		{"bang path", scoped, "<evil.test!user@example.com>", "550 5.7.1 "},
		{"quoted local part with @", scoped, `<"user@evil.test"@example.com>`, "550 5.7.1 "},
		{"quoted local part with escaped quote", scoped, `<"user\"@evil.test"@example.com>`, "550 5.7.1 "},
		{"two @", scoped, "<user@evil.test@example.com>", "550 5.7.1 "},
		{"source route to another domain", scoped, "<@example.com:user@evil.test>", "550 5.7.1 "},
		{"source route via another domain", scoped, "<@evil.test,@relay.test:user@example.com>", "250 "},
		{"address literal", scoped, "<user@[127.0.0.1]>", "550 5.7.1 "},
		{"IPv6 literal", scoped, "<user@[IPv6:::1]>", "550 5.7.1 "},
		{"no domain", scoped, "<postmaster>", "501 "},
		{"null path", scoped, "<>", "501 "},
		{"blank list: any domain", nil, "<anyone@anything.test>", "250 "},
		{"blank list: percent hack still refused", nil, "<user%evil.test@anything.test>", "550 5.7.1 "},
		{"exclusions only", []string{"!hr.example.com"}, "<bob@other.test>", "250 "},
		{"exclusions only, excluded", []string{"!hr.example.com"}, "<bob@hr.example.com>", "550 5.7.1 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.DestinationDomains = tt.domains
			cfg.Clients = []string{"127.0.0.1"}
			s := startServer(t, cfg)
			c := hello(t, s.Addr())
			c.cmd("MAIL FROM:<alice@sender.test>", "250 ")
			c.cmd("RCPT TO:"+tt.rcpt, tt.want)
		})
	}
}

// TestRecipientRule checks the rule directly, for the forms go-smtp does
// not let through to it.
func TestRecipientRule(t *testing.T) {
	tests := []struct {
		domains []string
		to      string
		ok      bool
	}{
		{[]string{"example.com"}, "postmaster", false},
		{nil, "postmaster", true},
		{[]string{"example.com"}, "user@example.com", true},
		{[]string{"example.com"}, "user@ex ample.com", false},
	}
	for _, tt := range tests {
		cfg := testConfig()
		cfg.DestinationDomains = tt.domains
		cfg.Clients = []string{"127.0.0.1"}
		p, err := compile(cfg, Lists{}, Role{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.recipient(tt.to, false) == nil; got != tt.ok {
			t.Errorf("domains %q, rcpt %q: in scope %v, want %v", tt.domains, tt.to, got, tt.ok)
		}
	}
}

func TestApplyRefusesInvalidConfigurations(t *testing.T) {
	tests := []struct {
		name string
		edit func(*ospreyv1.SmtpIntegration)
	}{
		{"bad client", func(c *ospreyv1.SmtpIntegration) { c.Clients = []string{"10.0.0.1/8"} }},
		{"bad domain", func(c *ospreyv1.SmtpIntegration) { c.DestinationDomains = []string{"*.example.com"} }},
		{"no size", func(c *ospreyv1.SmtpIntegration) { c.MaxMessageSize = nil }},
		{"size over the ceiling", func(c *ospreyv1.SmtpIntegration) {
			c.MaxMessageSize = &ospreyv1.SizeLimit{Value: 2, Unit: ospreyv1.SizeUnit_SIZE_UNIT_GB}
		}},
		{"bad listen", func(c *ospreyv1.SmtpIntegration) { c.Listen = "localhost:25" }},
		{"key without certificate", func(c *ospreyv1.SmtpIntegration) {
			c.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_ACCEPT, KeyPem: "x"}
		}},
		{"short timeout", func(c *ospreyv1.SmtpIntegration) {
			c.Limits = &ospreyv1.SmtpLimits{CommandTimeoutSeconds: 1}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Spool: &fakeSpool{}})
			runServer(t, s)
			cfg := testConfig()
			tt.edit(cfg)
			if err := s.Apply(t.Context(), cfg); err == nil {
				t.Fatal("Apply: got nil error")
			}
			if s.Addr() != nil {
				t.Errorf("listening on %v after a failed Apply", s.Addr())
			}
		})
	}
}
