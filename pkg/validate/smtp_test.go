package validate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// validSMTP returns an enabled integration that passes validation.
func validSMTP() *ospreyv1.SmtpIntegration {
	return &ospreyv1.SmtpIntegration{
		Enabled:            true,
		Listen:             "0.0.0.0:25",
		DestinationDomains: []string{"example.com", "!hr.example.com"},
		Clients:            []string{"10.0.0.0/8", "!10.0.0.5"},
		MaxMessageSize:     &ospreyv1.SizeLimit{Value: 25, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB},
	}
}

func TestSMTPIntegration(t *testing.T) {
	certPEM, keyPEM := keyPairPEM(t)
	_, otherKey := keyPairPEM(t)

	tests := []struct {
		name       string
		edit       func(s *ospreyv1.SmtpIntegration)
		wantFields []string
		wantText   string // a substring of the first message, if not empty
	}{
		{name: "valid", edit: func(s *ospreyv1.SmtpIntegration) {}},
		{name: "nil is disabled and valid", edit: nil},
		{name: "disabled and empty", edit: func(s *ospreyv1.SmtpIntegration) { *s = ospreyv1.SmtpIntegration{} }},
		{name: "blank lists", edit: func(s *ospreyv1.SmtpIntegration) { s.DestinationDomains, s.Clients = nil, nil }},

		// listen
		{name: "listen required", edit: func(s *ospreyv1.SmtpIntegration) { s.Listen = "" }, wantFields: []string{"listen"}, wantText: "required"},
		{name: "listen not required when disabled", edit: func(s *ospreyv1.SmtpIntegration) { s.Enabled, s.Listen = false, "" }},
		{name: "listen ipv6", edit: func(s *ospreyv1.SmtpIntegration) { s.Listen = "[::]:2525" }},
		{name: "listen all addresses", edit: func(s *ospreyv1.SmtpIntegration) { s.Listen = ":25" }},
		{name: "listen without port", edit: func(s *ospreyv1.SmtpIntegration) { s.Listen = "0.0.0.0" }, wantFields: []string{"listen"}, wantText: "host:port"},
		{name: "listen host name", edit: func(s *ospreyv1.SmtpIntegration) { s.Listen = "localhost:25" }, wantFields: []string{"listen"}, wantText: "IP address"},
		{name: "listen zone", edit: func(s *ospreyv1.SmtpIntegration) { s.Listen = "[fe80::1%eth0]:25" }, wantFields: []string{"listen"}, wantText: "zones"},
		{name: "listen port zero", edit: func(s *ospreyv1.SmtpIntegration) { s.Listen = "0.0.0.0:0" }, wantFields: []string{"listen"}, wantText: "1 to 65535"},
		{name: "listen port too big", edit: func(s *ospreyv1.SmtpIntegration) { s.Listen = "0.0.0.0:65536" }, wantFields: []string{"listen"}},
		{name: "listen service name", edit: func(s *ospreyv1.SmtpIntegration) { s.Listen = "0.0.0.0:smtp" }, wantFields: []string{"listen"}},
		{name: "listen checked when disabled", edit: func(s *ospreyv1.SmtpIntegration) { s.Enabled, s.Listen = false, "nonsense" }, wantFields: []string{"listen"}},

		// lists
		{
			name: "bad domains and clients",
			edit: func(s *ospreyv1.SmtpIntegration) {
				s.DestinationDomains = []string{"example.com", "*.example.org", "example.com"}
				s.Clients = []string{"10.0.0.1/8", "10.1.0.0/16"}
			},
			wantFields: []string{"destination_domains[1]", "destination_domains[2]", "clients[0]"},
			wantText:   "wildcards",
		},
		{name: "lists checked when disabled", edit: func(s *ospreyv1.SmtpIntegration) { s.Enabled, s.Clients = false, []string{"fe80::1%eth0"} }, wantFields: []string{"clients[0]"}},

		// max_message_size
		{name: "size required", edit: func(s *ospreyv1.SmtpIntegration) { s.MaxMessageSize = nil }, wantFields: []string{"max_message_size"}},
		{name: "size not required when disabled", edit: func(s *ospreyv1.SmtpIntegration) { s.Enabled, s.MaxMessageSize = false, nil }},
		{name: "unlimited", edit: func(s *ospreyv1.SmtpIntegration) { s.MaxMessageSize = &ospreyv1.SizeLimit{Unlimited: true} }},
		{name: "unlimited keeps a valid value", edit: func(s *ospreyv1.SmtpIntegration) { s.MaxMessageSize.Unlimited = true }},
		{name: "size empty", edit: func(s *ospreyv1.SmtpIntegration) { s.MaxMessageSize = &ospreyv1.SizeLimit{} }, wantFields: []string{"max_message_size.unit", "max_message_size.value"}},
		{name: "size zero", edit: func(s *ospreyv1.SmtpIntegration) { s.MaxMessageSize.Value = 0 }, wantFields: []string{"max_message_size.value"}, wantText: "must be at least 1 unless unlimited"},
		{name: "size without unit", edit: func(s *ospreyv1.SmtpIntegration) { s.MaxMessageSize.Unit = 0 }, wantFields: []string{"max_message_size.unit"}},
		{name: "size value without unit even when unlimited", edit: func(s *ospreyv1.SmtpIntegration) {
			s.MaxMessageSize = &ospreyv1.SizeLimit{Unlimited: true, Value: 3}
		}, wantFields: []string{"max_message_size.unit"}},
		{name: "size bad unit", edit: func(s *ospreyv1.SmtpIntegration) { s.MaxMessageSize.Unit = 9 }, wantFields: []string{"max_message_size.unit"}},
		{name: "size too large", edit: func(s *ospreyv1.SmtpIntegration) { s.MaxMessageSize.Value = 2048 }, wantFields: []string{"max_message_size.value"}, wantText: "maximum of 1 GB"},
		{name: "size at the ceiling", edit: func(s *ospreyv1.SmtpIntegration) { s.MaxMessageSize.Value = 1024 }},
		{name: "size overflow", edit: func(s *ospreyv1.SmtpIntegration) {
			s.MaxMessageSize = &ospreyv1.SizeLimit{Value: 1 << 62, Unit: ospreyv1.SizeUnit_SIZE_UNIT_GB}
		}, wantFields: []string{"max_message_size.value"}},

		// tls
		{name: "tls accept with pair", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_ACCEPT, CertPem: certPEM, KeyPem: keyPEM}
		}},
		{name: "tls require self-signed", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_REQUIRE, ClientCert: ospreyv1.ClientCertMode_CLIENT_CERT_MODE_REQUIRE, ClientCaPem: certPEM}
		}},
		{name: "tls bad mode", edit: func(s *ospreyv1.SmtpIntegration) { s.Tls = &ospreyv1.SmtpTls{Mode: 7} }, wantFields: []string{"tls.mode"}},
		{name: "tls cert without key", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_ACCEPT, CertPem: certPEM}
		}, wantFields: []string{"tls.key_pem"}, wantText: "required with cert_pem"},
		{name: "tls key without cert", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_ACCEPT, KeyPem: keyPEM}
		}, wantFields: []string{"tls.cert_pem"}},
		{name: "tls mismatched pair", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_ACCEPT, CertPem: certPEM, KeyPem: otherKey}
		}, wantFields: []string{"tls.key_pem"}, wantText: "not a private key matching cert_pem"},
		{name: "tls bad cert", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_ACCEPT, CertPem: "junk", KeyPem: keyPEM}
		}, wantFields: []string{"tls.cert_pem"}},
		{name: "tls garbage key", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Tls = &ospreyv1.SmtpTls{CertPem: certPEM, KeyPem: "secret-looking junk"}
		}, wantFields: []string{"tls.key_pem"}},
		{name: "client cert needs tls", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Tls = &ospreyv1.SmtpTls{ClientCert: ospreyv1.ClientCertMode_CLIENT_CERT_MODE_REQUEST}
		}, wantFields: []string{"tls.client_cert"}},
		{name: "client cert needs tls off", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_OFF, ClientCert: ospreyv1.ClientCertMode_CLIENT_CERT_MODE_REQUIRE}
		}, wantFields: []string{"tls.client_cert"}},
		{name: "client cert bad", edit: func(s *ospreyv1.SmtpIntegration) { s.Tls = &ospreyv1.SmtpTls{ClientCert: 9} }, wantFields: []string{"tls.client_cert"}},
		{name: "client ca bad", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_ACCEPT, ClientCaPem: keyPEM}
		}, wantFields: []string{"tls.client_ca_pem"}},

		// limits
		{name: "limits at their maximum", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Limits = &ospreyv1.SmtpLimits{
				MaxRecipients: MaxMaxRecipients, MaxConnections: MaxMaxConnections, MaxConnectionsPerClient: MaxMaxConnections,
				CommandTimeoutSeconds: MaxTimeoutSeconds, DataTimeoutSeconds: MaxTimeoutSeconds,
				SessionTimeoutSeconds: MaxSessionTimeoutSeconds, MaxErrors: MaxMaxErrors,
			}
		}},
		{name: "limits over their maximum", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Limits = &ospreyv1.SmtpLimits{
				MaxRecipients: MaxMaxRecipients + 1, MaxConnections: MaxMaxConnections + 1,
				CommandTimeoutSeconds: MaxTimeoutSeconds + 1, DataTimeoutSeconds: MaxTimeoutSeconds + 1,
				SessionTimeoutSeconds: MaxSessionTimeoutSeconds + 1, MaxErrors: MaxMaxErrors + 1,
			}
		}, wantFields: []string{
			"limits.max_recipients", "limits.max_connections", "limits.max_errors",
			"limits.command_timeout_seconds", "limits.data_timeout_seconds", "limits.session_timeout_seconds",
		}},
		{name: "timeouts too short", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Limits = &ospreyv1.SmtpLimits{CommandTimeoutSeconds: 5, DataTimeoutSeconds: 1, SessionTimeoutSeconds: 9}
		}, wantFields: []string{"limits.command_timeout_seconds", "limits.data_timeout_seconds", "limits.session_timeout_seconds"}},
		{name: "per client over max connections", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Limits = &ospreyv1.SmtpLimits{MaxConnections: 10, MaxConnectionsPerClient: 11}
		}, wantFields: []string{"limits.max_connections_per_client"}},
		{name: "per client default over small max connections", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Limits = &ospreyv1.SmtpLimits{MaxConnections: 5}
		}, wantFields: []string{"limits.max_connections_per_client"}, wantText: "(5)"},
		{name: "session shorter than data timeout", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Limits = &ospreyv1.SmtpLimits{SessionTimeoutSeconds: 120}
		}, wantFields: []string{"limits.session_timeout_seconds"}, wantText: "600 s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s *ospreyv1.SmtpIntegration
			if tt.edit != nil {
				s = validSMTP()
				tt.edit(s)
			}
			before := proto.Clone(s)
			err := SMTPIntegration(s)
			if diff := cmp.Diff(tt.wantFields, fields(t, err)); diff != "" {
				t.Fatalf("SMTPIntegration() = %v, fields mismatch (-want +got):\n%s", err, diff)
			}
			if tt.wantText != "" {
				if es, _ := AsErrors(err); !strings.Contains(es[0].Message, tt.wantText) {
					t.Errorf("message %q, want it to contain %q", es[0].Message, tt.wantText)
				}
			}
			if !proto.Equal(before, s) {
				t.Errorf("SMTPIntegration modified its argument")
			}
		})
	}
}

// TestSMTPIntegrationAllErrorsAtOnce checks that every problem is reported
// in one call, in field order.
func TestSMTPIntegrationAllErrorsAtOnce(t *testing.T) {
	_, keyPEM := keyPairPEM(t)
	s := &ospreyv1.SmtpIntegration{
		Enabled:            true,
		Listen:             "mail.example.com:25",
		DestinationDomains: []string{"ok.example.com", "*.example.com", "bad domain"},
		Clients:            []string{"10.0.0.1/8"},
		MaxMessageSize:     &ospreyv1.SizeLimit{Value: 5, Unit: ospreyv1.SizeUnit_SIZE_UNIT_GB},
		Tls:                &ospreyv1.SmtpTls{Mode: 9, KeyPem: keyPEM, ClientCert: 5},
		Limits:             &ospreyv1.SmtpLimits{MaxRecipients: 1 << 20},
	}
	want := []string{
		"listen", "destination_domains[1]", "destination_domains[2]", "clients[0]",
		"max_message_size.value", "tls.mode", "tls.cert_pem", "tls.client_cert", "limits.max_recipients",
	}
	err := SMTPIntegration(s)
	if diff := cmp.Diff(want, fields(t, err)); diff != "" {
		t.Errorf("SMTPIntegration() = %v, fields mismatch (-want +got):\n%s", err, diff)
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("error quotes the private key: %v", err)
	}
}

func TestSMTPLimits(t *testing.T) {
	got := SMTPLimits(nil)
	want := &ospreyv1.SmtpLimits{
		MaxRecipients: 100, MaxConnections: 200, MaxConnectionsPerClient: 20,
		CommandTimeoutSeconds: 300, DataTimeoutSeconds: 600, SessionTimeoutSeconds: 1800, MaxErrors: 10,
	}
	if !proto.Equal(got, want) {
		t.Errorf("SMTPLimits(nil) = %v, want %v", got, want)
	}
	got = SMTPLimits(&ospreyv1.SmtpLimits{MaxRecipients: 7, MaxErrors: 3})
	if got.GetMaxRecipients() != 7 || got.GetMaxErrors() != 3 || got.GetMaxConnections() != DefaultMaxConnections {
		t.Errorf("SMTPLimits kept %v, want 7 recipients, 3 errors and the default connections", got)
	}
	if err := SMTPIntegration(&ospreyv1.SmtpIntegration{Limits: SMTPLimits(nil)}); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}
