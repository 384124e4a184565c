package validate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func validPOP3() *ospreyv1.Pop3Integration {
	return &ospreyv1.Pop3Integration{
		Enabled:         true,
		Server:          "mail.example.com",
		Port:            995,
		IntervalSeconds: 60,
		Tls:             true,
		TlsMode:         ospreyv1.Pop3TlsMode_POP3_TLS_MODE_IMPLICIT,
		Username:        "journal@example.com",
		Password:        "s3cret",
		TlsCertificate:  ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY,
	}
}

func TestPOP3Integration(t *testing.T) {
	certPEM, keyPEM := keyPairPEM(t)
	tests := []struct {
		name       string
		edit       func(p *ospreyv1.Pop3Integration)
		wantFields []string
		wantText   string
	}{
		{name: "valid", edit: func(p *ospreyv1.Pop3Integration) {}},
		{name: "nil", edit: nil},
		{name: "disabled and empty", edit: func(p *ospreyv1.Pop3Integration) { *p = ospreyv1.Pop3Integration{} }},
		{name: "enabled and empty", edit: func(p *ospreyv1.Pop3Integration) { *p = ospreyv1.Pop3Integration{Enabled: true} },
			wantFields: []string{"server", "port", "interval_seconds", "username"}},
		{name: "plaintext needs no policy", edit: func(p *ospreyv1.Pop3Integration) { p.Tls, p.TlsMode, p.TlsCertificate, p.Port = false, 0, 0, 110 }},
		{name: "tls settings kept when tls is off", edit: func(p *ospreyv1.Pop3Integration) { p.Tls = false }},

		// server
		{name: "server ipv4", edit: func(p *ospreyv1.Pop3Integration) { p.Server = "192.0.2.10" }},
		{name: "server ipv6", edit: func(p *ospreyv1.Pop3Integration) { p.Server = "2001:db8::10" }},
		{name: "server single label", edit: func(p *ospreyv1.Pop3Integration) { p.Server = "mail" }},
		{name: "server idna", edit: func(p *ospreyv1.Pop3Integration) { p.Server = "mail.bücher.de." }},
		{name: "server with port", edit: func(p *ospreyv1.Pop3Integration) { p.Server = "mail.example.com:995" }, wantFields: []string{"server"}, wantText: "port"},
		{name: "server brackets", edit: func(p *ospreyv1.Pop3Integration) { p.Server = "[2001:db8::10]" }, wantFields: []string{"server"}},
		{name: "server zone", edit: func(p *ospreyv1.Pop3Integration) { p.Server = "fe80::1%eth0" }, wantFields: []string{"server"}},
		{name: "server space", edit: func(p *ospreyv1.Pop3Integration) { p.Server = "mail example.com" }, wantFields: []string{"server"}},
		{name: "server underscore", edit: func(p *ospreyv1.Pop3Integration) { p.Server = "mail_1.example.com" }, wantFields: []string{"server"}},
		{name: "server empty label", edit: func(p *ospreyv1.Pop3Integration) { p.Server = "mail..example.com" }, wantFields: []string{"server"}},
		{name: "server long label", edit: func(p *ospreyv1.Pop3Integration) { p.Server = strings.Repeat("a", 64) + ".com" }, wantFields: []string{"server"}},
		{name: "server bad ip", edit: func(p *ospreyv1.Pop3Integration) { p.Server = "192.0.2.300" }, wantFields: []string{"server"}},
		{name: "server checked when disabled", edit: func(p *ospreyv1.Pop3Integration) { p.Enabled, p.Server = false, "a b" }, wantFields: []string{"server"}},

		// port and interval
		{name: "port too big", edit: func(p *ospreyv1.Pop3Integration) { p.Port = 70000 }, wantFields: []string{"port"}},
		{name: "port too big when disabled", edit: func(p *ospreyv1.Pop3Integration) { p.Enabled, p.Port = false, 70000 }, wantFields: []string{"port"}},
		{name: "interval minimum", edit: func(p *ospreyv1.Pop3Integration) { p.IntervalSeconds = MinPOP3IntervalSeconds }},
		{name: "interval maximum", edit: func(p *ospreyv1.Pop3Integration) { p.IntervalSeconds = MaxPOP3IntervalSeconds }},
		{name: "interval too short", edit: func(p *ospreyv1.Pop3Integration) { p.IntervalSeconds = 9 }, wantFields: []string{"interval_seconds"}, wantText: "10 to 86400"},
		{name: "interval too long", edit: func(p *ospreyv1.Pop3Integration) { p.IntervalSeconds = 86401 }, wantFields: []string{"interval_seconds"}},
		{name: "interval zero when disabled", edit: func(p *ospreyv1.Pop3Integration) { p.Enabled, p.IntervalSeconds = false, 0 }},

		// tls
		{name: "starttls", edit: func(p *ospreyv1.Pop3Integration) {
			p.TlsMode, p.Port = ospreyv1.Pop3TlsMode_POP3_TLS_MODE_STARTTLS, 110
		}},
		{name: "tls mode unspecified", edit: func(p *ospreyv1.Pop3Integration) { p.TlsMode = 0 }},
		{name: "tls mode bad", edit: func(p *ospreyv1.Pop3Integration) { p.TlsMode = 4 }, wantFields: []string{"tls_mode"}},
		{name: "tls certificate required", edit: func(p *ospreyv1.Pop3Integration) { p.TlsCertificate = 0 }, wantFields: []string{"tls_certificate"}},
		{name: "tls certificate not required when disabled", edit: func(p *ospreyv1.Pop3Integration) { p.Enabled, p.TlsCertificate = false, 0 }},
		{name: "tls certificate bad", edit: func(p *ospreyv1.Pop3Integration) { p.TlsCertificate = 12 }, wantFields: []string{"tls_certificate"}},
		{name: "ca", edit: func(p *ospreyv1.Pop3Integration) { p.CaPem = certPEM }},
		{name: "ca bad", edit: func(p *ospreyv1.Pop3Integration) { p.CaPem = keyPEM }, wantFields: []string{"ca_pem"}},

		// cipher suite
		{name: "cipher suite", edit: func(p *ospreyv1.Pop3Integration) { p.CipherSuite = "HIGH:!aNULL" }},
		{name: "cipher suite insecure but explicit", edit: func(p *ospreyv1.Pop3Integration) { p.CipherSuite = "HIGH:RC4-SHA" }},
		{name: "cipher suite errors", edit: func(p *ospreyv1.Pop3Integration) { p.CipherSuite = "HIGH:CAMELLIA:HIHG" },
			wantFields: []string{"cipher_suite", "cipher_suite"}, wantText: `"CAMELLIA": not supported by this implementation`},
		{name: "cipher suite selects nothing", edit: func(p *ospreyv1.Pop3Integration) { p.CipherSuite = "LOW" }, wantFields: []string{"cipher_suite"}},
		{name: "cipher suite too long", edit: func(p *ospreyv1.Pop3Integration) { p.CipherSuite = strings.Repeat("HIGH:", 1000) }, wantFields: []string{"cipher_suite"}},

		// credentials
		{name: "username required", edit: func(p *ospreyv1.Pop3Integration) { p.Username = "" }, wantFields: []string{"username"}},
		{name: "username crlf", edit: func(p *ospreyv1.Pop3Integration) { p.Username = "a\r\nDELE 1" }, wantFields: []string{"username"}},
		{name: "username too long", edit: func(p *ospreyv1.Pop3Integration) { p.Username = strings.Repeat("u", 257) }, wantFields: []string{"username"}},
		{name: "password not required", edit: func(p *ospreyv1.Pop3Integration) { p.Password = "" }},
		{name: "password crlf", edit: func(p *ospreyv1.Pop3Integration) { p.Password = "pw\r\nQUIT" }, wantFields: []string{"password"}},
		{name: "password too long", edit: func(p *ospreyv1.Pop3Integration) { p.Password = strings.Repeat("p", 1025) }, wantFields: []string{"password"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p *ospreyv1.Pop3Integration
			if tt.edit != nil {
				p = validPOP3()
				tt.edit(p)
			}
			before := proto.Clone(p)
			err := POP3Integration(p)
			if diff := cmp.Diff(tt.wantFields, fields(t, err)); diff != "" {
				t.Fatalf("POP3Integration() = %v, fields mismatch (-want +got):\n%s", err, diff)
			}
			if tt.wantText != "" {
				if es, _ := AsErrors(err); !strings.Contains(es[0].Message, tt.wantText) {
					t.Errorf("message %q, want it to contain %q", es[0].Message, tt.wantText)
				}
			}
			if !proto.Equal(before, p) {
				t.Errorf("POP3Integration modified its argument")
			}
			if p.GetPassword() != "" && err != nil && strings.Contains(err.Error(), p.GetPassword()) {
				t.Errorf("error quotes the password: %v", err)
			}
		})
	}
}

func TestPOP3IntegrationAllErrorsAtOnce(t *testing.T) {
	p := &ospreyv1.Pop3Integration{
		Enabled:         true,
		Server:          "mail.example.com:110",
		Port:            0,
		IntervalSeconds: 1,
		Tls:             true,
		TlsMode:         9,
		CipherSuite:     "FOO",
		Password:        "x\n",
		CaPem:           "junk",
	}
	want := []string{"server", "port", "interval_seconds", "tls_mode", "tls_certificate", "cipher_suite", "username", "password", "ca_pem"}
	if diff := cmp.Diff(want, fields(t, POP3Integration(p))); diff != "" {
		t.Errorf("fields mismatch (-want +got):\n%s", diff)
	}
}
