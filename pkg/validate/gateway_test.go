package validate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// validGateway returns an enabled inbound-and-outbound gateway that passes
// validation.
func validGateway() *ospreyv1.SmtpIntegration {
	s := validSMTP()
	s.Listen = ""
	s.Mode = ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND
	s.Gateway = &ospreyv1.SmtpGateway{
		Inbound:  &ospreyv1.GatewayListener{Listen: "0.0.0.0:25", ListenV6: "[::]:25"},
		Outbound: &ospreyv1.GatewayListener{Listen: "10.0.0.2:25"},
		LocalDomains: []*ospreyv1.LocalDomain{
			{Domain: "example.com", Hosts: []*ospreyv1.NextHop{{Host: "10.0.0.10", Port: 25}, {Host: "mail2.example.com", Preference: 20}}},
			{Domain: "example.org"},
		},
		RelayHosts: []*ospreyv1.NextHop{{Host: "smarthost.example.net", MxLookup: true}},
		HeloName:   "gw.example.com",
	}
	return s
}

// integrationCase edits a valid integration and names the fields of the
// errors it must then have (none: valid), the first one's message holding
// wantText.
type integrationCase struct {
	name       string
	edit       func(s *ospreyv1.SmtpIntegration)
	wantFields []string
	wantText   string
}

// checkCases validates base() edited by each case.
func checkCases(t *testing.T, base func() *ospreyv1.SmtpIntegration, tests []integrationCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base()
			tt.edit(s)
			err := SMTPIntegration(s)
			if diff := cmp.Diff(tt.wantFields, fields(t, err)); diff != "" {
				t.Fatalf("SMTPIntegration() = %v, fields mismatch (-want +got):\n%s", err, diff)
			}
			if tt.wantText != "" {
				if es, _ := AsErrors(err); !strings.Contains(es[0].Message, tt.wantText) {
					t.Errorf("message %q, want it to contain %q", es[0].Message, tt.wantText)
				}
			}
		})
	}
}

func TestSMTPGateway(t *testing.T) {
	tests := []integrationCase{
		{name: "valid", edit: func(s *ospreyv1.SmtpIntegration) {}},
		{name: "monitor keeps an unused gateway", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Mode, s.Listen, s.Gateway.Inbound = ospreyv1.SmtpMode_SMTP_MODE_MONITOR, "0.0.0.0:25", nil
		}},
		{name: "monitor needs listen", edit: func(s *ospreyv1.SmtpIntegration) { s.Mode = ospreyv1.SmtpMode_SMTP_MODE_MONITOR },
			wantFields: []string{"listen"}},
		{name: "unknown mode", edit: func(s *ospreyv1.SmtpIntegration) { s.Mode = 9 }, wantFields: []string{"listen", "mode"}},
		{name: "inbound needs its listener and domains", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Mode, s.Gateway.Inbound, s.Gateway.LocalDomains = ospreyv1.SmtpMode_SMTP_MODE_INBOUND, nil, nil
		}, wantFields: []string{"gateway.inbound.listen", "gateway.local_domains"}, wantText: "required"},
		{name: "inbound alone", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Mode, s.Gateway.Outbound = ospreyv1.SmtpMode_SMTP_MODE_INBOUND, nil
		}},
		{name: "outbound alone: its clients are the outbound acceptance list", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Mode, s.Gateway.Inbound, s.Gateway.LocalDomains = ospreyv1.SmtpMode_SMTP_MODE_OUTBOUND, nil, nil
		}},
		{name: "disabled needs nothing", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Enabled, s.Gateway = false, nil
		}},
		{name: "ipv6 in the ipv4 listener", edit: func(s *ospreyv1.SmtpIntegration) { s.Gateway.Inbound.Listen = "[::1]:25" },
			wantFields: []string{"gateway.inbound.listen"}, wantText: "IPv4"},
		{name: "ipv4 in the ipv6 listener", edit: func(s *ospreyv1.SmtpIntegration) { s.Gateway.Inbound.ListenV6 = "127.0.0.1:25" },
			wantFields: []string{"gateway.inbound.listen_v6"}, wantText: "IPv6"},
		{name: "two listeners on one address", edit: func(s *ospreyv1.SmtpIntegration) { s.Gateway.Outbound.Listen = "0.0.0.0:25" },
			wantFields: []string{"gateway.outbound.listen"}, wantText: "gateway.inbound.listen"},
		{name: "listener tls", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.Outbound.Tls = &ospreyv1.SmtpTls{ClientCert: ospreyv1.ClientCertMode_CLIENT_CERT_MODE_REQUIRE}
		}, wantFields: []string{"gateway.outbound.tls.client_cert"}, wantText: "gateway.outbound.tls.mode"},
		{name: "bad and duplicate local domains", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.LocalDomains = append(s.Gateway.LocalDomains, &ospreyv1.LocalDomain{Domain: "Example.COM"}, &ospreyv1.LocalDomain{Domain: "!x.example.com"})
		}, wantFields: []string{"gateway.local_domains[2].domain", "gateway.local_domains[3].domain"}, wantText: "local_domains[0]"},
		{name: "bad next hops", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.LocalDomains[0].Hosts = []*ospreyv1.NextHop{{}, {Host: "10.0.0.1", MxLookup: true}, {Host: "mx:25"}, {Host: "mx", Port: 70000}}
		}, wantFields: []string{"gateway.local_domains[0].hosts[0].host", "gateway.local_domains[0].hosts[1].mx_lookup",
			"gateway.local_domains[0].hosts[2].host", "gateway.local_domains[0].hosts[3].port"}},
		{name: "trusted networks are refused", edit: func(s *ospreyv1.SmtpIntegration) {
			//lint:ignore SA1019 a write that sets it is refused
			s.Gateway.TrustedNetworks = []string{"10.0.0.0/8"}
		}, wantFields: []string{"gateway.trusted_networks"}, wantText: "outbound acceptance list"},
		{name: "inbound acceptance", edit: func(s *ospreyv1.SmtpIntegration) { s.Gateway.InboundAcceptance = 7 },
			wantFields: []string{"gateway.inbound_acceptance"}},
		{name: "helo name", edit: func(s *ospreyv1.SmtpIntegration) { s.Gateway.HeloName = "10.0.0.1" },
			wantFields: []string{"gateway.helo_name"}},
		{name: "hold timeout and action", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.HoldTimeoutSeconds, s.Gateway.OnTimeout = 5, 7
		}, wantFields: []string{"gateway.hold_timeout_seconds", "gateway.on_timeout"}},
		{name: "queue settings", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.Queue = &ospreyv1.DeliveryQueueSettings{MinBackoffSeconds: 3600, MaxBackoffSeconds: 600, DestinationConcurrency: 200}
		}, wantFields: []string{"gateway.queue.max_backoff_seconds", "gateway.queue.destination_concurrency"}},
		{name: "quarantine bounds", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.Quarantine = &ospreyv1.QuarantineSettings{MaxMessages: 2000000, MaxSize: &ospreyv1.SizeLimit{Value: 5, Unit: 9}}
		}, wantFields: []string{"gateway.quarantine.max_messages", "gateway.quarantine.max_size.unit"}},
		{name: "sender auth", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.SenderAuth = &ospreyv1.SenderAuthSettings{Enabled: true, AuthservId: "gw.example.com",
				DmarcTemperror: ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_FAIL, LookupTimeoutMs: 500, CheckTimeoutMs: 500}
		}},
		{name: "bad sender auth", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.SenderAuth = &ospreyv1.SenderAuthSettings{Enabled: true, AuthservId: "gw example;com",
				DmarcTemperror: 9, DmarcPermerror: 7, LookupTimeoutMs: 50, CheckTimeoutMs: 120000}
		}, wantFields: []string{"gateway.sender_auth.authserv_id", "gateway.sender_auth.dmarc_temperror", "gateway.sender_auth.dmarc_permerror",
			"gateway.sender_auth.lookup_timeout_ms", "gateway.sender_auth.check_timeout_ms"}},
		{name: "sender auth check shorter than a lookup", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.SenderAuth = &ospreyv1.SenderAuthSettings{LookupTimeoutMs: 3000, CheckTimeoutMs: 1000}
		}, wantFields: []string{"gateway.sender_auth.check_timeout_ms"}, wantText: "lookup_timeout_ms (3000)"},
		{name: "sender auth address as id", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.SenderAuth = &ospreyv1.SenderAuthSettings{AuthservId: "192.0.2.1"}
		}, wantFields: []string{"gateway.sender_auth.authserv_id"}},
	}
	checkCases(t, validGateway, tests)
}

func TestSenderAuthDefaults(t *testing.T) {
	got := SenderAuth(&ospreyv1.SenderAuthSettings{Enabled: true, DmarcPermerror: ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_NONE})
	want := &ospreyv1.SenderAuthSettings{Enabled: true, DmarcTemperror: ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_AS_IS,
		DmarcPermerror: ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_NONE, LookupTimeoutMs: 2000, CheckTimeoutMs: 5000}
	if got.String() != want.String() {
		t.Errorf("SenderAuth() = %v, want %v", got, want)
	}
}

func TestQuarantineBounds(t *testing.T) {
	for _, tt := range []struct {
		name     string
		in       *ospreyv1.QuarantineSettings
		messages int
		bytes    int64
	}{
		{"defaults", nil, 10000, 1 << 30},
		{"set", &ospreyv1.QuarantineSettings{MaxMessages: 5, MaxSize: &ospreyv1.SizeLimit{Value: 2, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB}}, 5, 2 << 20},
		{"unlimited size", &ospreyv1.QuarantineSettings{MaxSize: &ospreyv1.SizeLimit{Unlimited: true}}, 10000, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, b := QuarantineBounds(tt.in)
			if m != tt.messages || b != tt.bytes {
				t.Errorf("QuarantineBounds() = %d, %d; want %d, %d", m, b, tt.messages, tt.bytes)
			}
		})
	}
}

func TestDeliveryQueueDefaults(t *testing.T) {
	got := DeliveryQueue(&ospreyv1.DeliveryQueueSettings{Concurrency: 7})
	want := &ospreyv1.DeliveryQueueSettings{MinBackoffSeconds: 900, MaxBackoffSeconds: 3600, MaxLifetimeSeconds: 432000,
		DelayWarningSeconds: 14400, DestinationConcurrency: 20, Concurrency: 7}
	if got.String() != want.String() {
		t.Errorf("DeliveryQueue() = %v, want %v", got, want)
	}
}

func TestReleaseAddresses(t *testing.T) {
	for _, tt := range []struct {
		name   string
		to     []string
		fields []string
	}{
		{"two", []string{"a@example.com", "b@example.org"}, nil},
		{"none", nil, []string{"to"}},
		{"display name, no domain", []string{"A <a@example.com>", "bob"}, []string{"to[0]", "to[1]"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.fields, fields(t, ReleaseAddresses(tt.to))); diff != "" {
				t.Errorf("ReleaseAddresses(%q) fields (-want +got):\n%s", tt.to, diff)
			}
		})
	}
}
