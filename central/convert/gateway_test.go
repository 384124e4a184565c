package convert

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/api"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// emptyGateway is how a gateway never written reads.
func emptyGateway() *api.SMTPGateway {
	return &api.SMTPGateway{
		Inbound: &api.GatewayListener{}, Outbound: &api.GatewayListener{},
		LocalDomains: []api.LocalDomain{}, RelayHosts: []api.NextHop{}, RequireTLSDomains: []string{},
		InboundAcceptance: api.AcceptanceAll, OnTimeout: api.DeliverUnscanned, Queue: &api.DeliveryQueueSettings{},
		Quarantine: &api.QuarantineSettings{},
		SenderAuth: &api.SenderAuthSettings{DMARCTempError: api.AuthErrorAsIs, DMARCPermError: api.AuthErrorAsIs},
		Submission: &api.SubmissionSettings{Listener: &api.GatewayListener{}, Acceptance: api.AcceptanceAll,
			LDAP: &api.LDAPAuth{}, SMTPForward: &api.SMTPForwardAuth{}},

		RecipientVerification: &api.RecipientVerification{}, RateLimits: &api.RateLimits{},
	}
}

func TestSMTPModeNames(t *testing.T) {
	modes := map[ospreyv1.SmtpMode]api.SMTPMode{
		ospreyv1.SmtpMode_SMTP_MODE_UNSPECIFIED:      api.SMTPMonitor,
		ospreyv1.SmtpMode_SMTP_MODE_MONITOR:          api.SMTPMonitor,
		ospreyv1.SmtpMode_SMTP_MODE_INBOUND:          api.SMTPInbound,
		ospreyv1.SmtpMode_SMTP_MODE_OUTBOUND:         api.SMTPOutbound,
		ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND: api.SMTPInboundOutbound,
	}
	if len(modes) != len(ospreyv1.SmtpMode_value) {
		t.Fatalf("the test knows %d modes, the model has %d", len(modes), len(ospreyv1.SmtpMode_value))
	}
	for p, a := range modes {
		if got := SMTPModeFromProto(p); got != a {
			t.Errorf("SMTPModeFromProto(%v): got %q, want %q", p, got, a)
		}
		want := p
		if p == ospreyv1.SmtpMode_SMTP_MODE_MONITOR {
			want = ospreyv1.SmtpMode_SMTP_MODE_UNSPECIFIED // the default is stored as 0
		}
		if got, err := SMTPModeToProto(a); err != nil || got != want {
			t.Errorf("SMTPModeToProto(%q): got %v, %v, want %v", a, got, err, want)
		}
	}
	if got, err := SMTPModeToProto(""); err != nil || got != ospreyv1.SmtpMode_SMTP_MODE_UNSPECIFIED {
		t.Errorf(`SMTPModeToProto(""): got %v, %v, want UNSPECIFIED`, got, err)
	}

	actions := map[ospreyv1.HoldTimeoutAction]api.HoldTimeoutAction{
		ospreyv1.HoldTimeoutAction_HOLD_TIMEOUT_ACTION_UNSPECIFIED:       api.DeliverUnscanned,
		ospreyv1.HoldTimeoutAction_HOLD_TIMEOUT_ACTION_DELIVER_UNSCANNED: api.DeliverUnscanned,
		ospreyv1.HoldTimeoutAction_HOLD_TIMEOUT_ACTION_KEEP_HOLDING:      api.KeepHolding,
	}
	if len(actions) != len(ospreyv1.HoldTimeoutAction_value) {
		t.Fatalf("the test knows %d actions, the model has %d", len(actions), len(ospreyv1.HoldTimeoutAction_value))
	}
	for p, a := range actions {
		if got := HoldTimeoutActionFromProto(p); got != a {
			t.Errorf("HoldTimeoutActionFromProto(%v): got %q, want %q", p, got, a)
		}
		want := p
		if p == ospreyv1.HoldTimeoutAction_HOLD_TIMEOUT_ACTION_DELIVER_UNSCANNED {
			want = ospreyv1.HoldTimeoutAction_HOLD_TIMEOUT_ACTION_UNSPECIFIED
		}
		if got, err := HoldTimeoutActionToProto(a); err != nil || got != want {
			t.Errorf("HoldTimeoutActionToProto(%q): got %v, %v, want %v", a, got, err, want)
		}
	}
}

func TestAuthErrorTreatmentNames(t *testing.T) {
	names := map[ospreyv1.AuthErrorTreatment]api.AuthErrorTreatment{
		ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_UNSPECIFIED: api.AuthErrorAsIs,
		ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_AS_IS:       api.AuthErrorAsIs,
		ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_FAIL:        api.AuthErrorFail,
		ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_NONE:        api.AuthErrorNone,
	}
	if len(names) != len(ospreyv1.AuthErrorTreatment_value) {
		t.Fatalf("the test knows %d treatments, the model has %d", len(names), len(ospreyv1.AuthErrorTreatment_value))
	}
	for p, a := range names {
		if got := AuthErrorTreatmentFromProto(p); got != a {
			t.Errorf("AuthErrorTreatmentFromProto(%v): got %q, want %q", p, got, a)
		}
		want := p
		if p == ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_AS_IS {
			want = ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_UNSPECIFIED // the default is stored as 0
		}
		if got, err := AuthErrorTreatmentToProto(a); err != nil || got != want {
			t.Errorf("AuthErrorTreatmentToProto(%q): got %v, %v, want %v", a, got, err, want)
		}
	}
	if _, err := AuthErrorTreatmentToProto("reject"); err == nil {
		t.Error(`AuthErrorTreatmentToProto("reject"): got no error`)
	}
}

// A full gateway converts field by field, both ways; a read never carries a
// listener's private key.
func TestSMTPGateway(t *testing.T) {
	in := &api.SMTPIntegration{
		Enabled: true,
		Mode:    api.SMTPInboundOutbound,
		Gateway: &api.SMTPGateway{
			Inbound: &api.GatewayListener{Listen: "0.0.0.0:25", ListenV6: "[::]:25",
				TLS: &api.SMTPTLS{Mode: api.TLSAccept, CertPEM: "IN-CERT", KeyPEM: "IN-KEY", ClientCert: api.ClientCertRequest, ClientCAPEM: "IN-CA"}},
			Outbound: &api.GatewayListener{Listen: "10.0.0.2:587",
				TLS: &api.SMTPTLS{Mode: api.TLSRequire, CertPEM: "OUT-CERT", KeyPEM: "OUT-KEY"}},
			LocalDomains: []api.LocalDomain{
				{Domain: "example.com", Hosts: []api.NextHop{{Host: "10.0.0.10", Port: 25, Preference: 10}, {Host: "mx.example.com", MXLookup: true, Preference: 20}}, RequireTLS: true},
				{Domain: "example.org", Hosts: []api.NextHop{}},
			},
			InboundAcceptance:  api.AcceptanceListed,
			RelayHosts:         []api.NextHop{{Host: "smarthost.example.net", Port: 2525}},
			RequireTLSDomains:  []string{"bank.example"},
			HeloName:           "gw.example.com",
			HoldTimeoutSeconds: 300,
			OnTimeout:          api.KeepHolding,
			Quarantine:         &api.QuarantineSettings{},
			Queue:              &api.DeliveryQueueSettings{MinBackoffSeconds: 60, MaxBackoffSeconds: 3600, MaxLifetimeSeconds: 86400, DelayWarningSeconds: 7200, DestinationConcurrency: 5, Concurrency: 50},
			SenderAuth: &api.SenderAuthSettings{Enabled: true, AuthservID: "gw.example.com", DMARCTempError: api.AuthErrorFail,
				DMARCPermError: api.AuthErrorNone, LookupTimeoutMs: 1000, CheckTimeoutMs: 3000},
			Submission: &api.SubmissionSettings{Listener: &api.GatewayListener{}, Acceptance: api.AcceptanceAll,
				LDAP: &api.LDAPAuth{}, SMTPForward: &api.SMTPForwardAuth{}},
			RecipientVerification: &api.RecipientVerification{Enabled: true, PositiveTTLSeconds: 86400, PositiveRefreshSeconds: 3600,
				NegativeTTLSeconds: 600, ProbeTimeoutSeconds: 10, MaxProbesPerHost: 2},
			RateLimits: &api.RateLimits{ConnectionsPerMinute: 60, MessagesPerMinute: 30, RecipientsPerMinute: 300,
				HarvestUnknownRecipients: 20, HarvestWindowSeconds: 120, HarvestBlockSeconds: 3600},
		},
	}
	got, err := SMTPToProto(in)
	if err != nil {
		t.Fatalf("SMTPToProto: %v", err)
	}
	want := &ospreyv1.SmtpIntegration{
		Enabled: true,
		Mode:    ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND,
		Gateway: &ospreyv1.SmtpGateway{
			Inbound: &ospreyv1.GatewayListener{Listen: "0.0.0.0:25", ListenV6: "[::]:25", Tls: &ospreyv1.SmtpTls{
				Mode: ospreyv1.TlsMode_TLS_MODE_ACCEPT, CertPem: "IN-CERT", KeyPem: "IN-KEY",
				ClientCert: ospreyv1.ClientCertMode_CLIENT_CERT_MODE_REQUEST, ClientCaPem: "IN-CA"}},
			Outbound: &ospreyv1.GatewayListener{Listen: "10.0.0.2:587", Tls: &ospreyv1.SmtpTls{
				Mode: ospreyv1.TlsMode_TLS_MODE_REQUIRE, CertPem: "OUT-CERT", KeyPem: "OUT-KEY"}},
			LocalDomains: []*ospreyv1.LocalDomain{
				{Domain: "example.com", Hosts: []*ospreyv1.NextHop{{Host: "10.0.0.10", Port: 25, Preference: 10}, {Host: "mx.example.com", MxLookup: true, Preference: 20}}, RequireTls: true},
				{Domain: "example.org"},
			},
			InboundAcceptance:  ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED,
			RelayHosts:         []*ospreyv1.NextHop{{Host: "smarthost.example.net", Port: 2525}},
			RequireTlsDomains:  []string{"bank.example"},
			HeloName:           "gw.example.com",
			HoldTimeoutSeconds: 300,
			OnTimeout:          ospreyv1.HoldTimeoutAction_HOLD_TIMEOUT_ACTION_KEEP_HOLDING,
			Queue:              &ospreyv1.DeliveryQueueSettings{MinBackoffSeconds: 60, MaxBackoffSeconds: 3600, MaxLifetimeSeconds: 86400, DelayWarningSeconds: 7200, DestinationConcurrency: 5, Concurrency: 50},
			SenderAuth: &ospreyv1.SenderAuthSettings{Enabled: true, AuthservId: "gw.example.com", DmarcTemperror: ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_FAIL,
				DmarcPermerror: ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_NONE, LookupTimeoutMs: 1000, CheckTimeoutMs: 3000},
			RecipientVerification: &ospreyv1.RecipientVerification{Enabled: true, PositiveTtlSeconds: 86400, PositiveRefreshSeconds: 3600,
				NegativeTtlSeconds: 600, ProbeTimeoutSeconds: 10, MaxProbesPerHost: 2},
			RateLimits: &ospreyv1.RateLimits{ConnectionsPerMinute: 60, MessagesPerMinute: 30, RecipientsPerMinute: 300,
				HarvestUnknownRecipients: 20, HarvestWindowSeconds: 120, HarvestBlockSeconds: 3600},
		},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("SMTPToProto (-want +got):\n%s", diff)
	}

	read := SMTPFromProto(got)
	wantRead := *in.Gateway
	wantRead.Inbound = &api.GatewayListener{Listen: "0.0.0.0:25", ListenV6: "[::]:25",
		TLS: &api.SMTPTLS{Mode: api.TLSAccept, CertPEM: "IN-CERT", KeySet: true, ClientCert: api.ClientCertRequest, ClientCAPEM: "IN-CA"}}
	wantRead.Outbound = &api.GatewayListener{Listen: "10.0.0.2:587", TLS: &api.SMTPTLS{Mode: api.TLSRequire, CertPEM: "OUT-CERT", KeySet: true}}
	if diff := cmp.Diff(&wantRead, read.Gateway); diff != "" {
		t.Errorf("SMTPFromProto (-want +got):\n%s", diff)
	}
	if read.Mode != api.SMTPInboundOutbound {
		t.Errorf("mode: got %q, want inbound_outbound", read.Mode)
	}
	b, err := json.Marshal(read)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "KEY") || strings.Contains(string(b), "key_pem") {
		t.Errorf("JSON of a read: got %s, want no key", b)
	}
}

// An integration stored before the gateway existed reads as monitor mode
// with an empty gateway, lists as [] (never null), and written back as read it
// is the same configuration, byte for byte: no new version.
func TestSMTPStoredBeforeGatewayModes(t *testing.T) {
	old := &ospreyv1.SmtpIntegration{Enabled: true, Listen: "0.0.0.0:25", DestinationDomains: []string{"example.com"},
		MaxMessageSize: &ospreyv1.SizeLimit{Value: 25, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB}}
	read := SMTPFromProto(old)
	if read.Mode != api.SMTPMonitor {
		t.Errorf("mode: got %q, want monitor", read.Mode)
	}
	if diff := cmp.Diff(emptyGateway(), read.Gateway); diff != "" {
		t.Errorf("gateway (-want +got):\n%s", diff)
	}
	b, err := json.Marshal(read)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "trusted_networks") {
		t.Errorf("JSON of a read: got %s, want no trusted_networks", b)
	}
	for _, want := range []string{`"mode":"monitor"`, `"local_domains":[]`, `"inbound_acceptance":"all"`, `"relay_hosts":[]`,
		`"require_tls_domains":[]`, `"inbound":{"listen":"","listen_v6":""}`, `"on_timeout":"deliver_unscanned"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON of a read: got %s, want %s in it", b, want)
		}
	}
	if strings.Contains(string(b), "null") {
		t.Errorf("JSON of a read: got %s, want no null", b)
	}
	// Through JSON, as a client sends it back.
	var back api.SMTPIntegration
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	written, err := SMTPToProto(&back)
	if err != nil {
		t.Fatalf("SMTPToProto: %v", err)
	}
	wantBytes, _ := proto.MarshalOptions{Deterministic: true}.Marshal(old)
	gotBytes, _ := proto.MarshalOptions{Deterministic: true}.Marshal(written)
	if string(wantBytes) != string(gotBytes) {
		t.Errorf("written back: got %v, want %v", written, old)
	}
}

// Trusted networks in a write reach the model, where validation refuses
// them saying where the list lives now; a stored value not moved yet reads.
func TestSMTPTrustedNetworks(t *testing.T) {
	//lint:ignore SA1019 what is refused
	in := &api.SMTPIntegration{Gateway: &api.SMTPGateway{TrustedNetworks: []string{"10.0.0.0/8"}}}
	got, err := SMTPToProto(in)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 what is refused
	if diff := cmp.Diff([]string{"10.0.0.0/8"}, got.GetGateway().GetTrustedNetworks()); diff != "" {
		t.Errorf("trusted networks written (-want +got):\n%s", diff)
	}
	//lint:ignore SA1019 what is read
	if diff := cmp.Diff([]string{"10.0.0.0/8"}, SMTPFromProto(got).Gateway.TrustedNetworks); diff != "" {
		t.Errorf("trusted networks read (-want +got):\n%s", diff)
	}
}

func TestAcceptanceNames(t *testing.T) {
	for p, a := range map[ospreyv1.AcceptanceMode]api.AcceptanceMode{
		ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_UNSPECIFIED: api.AcceptanceAll,
		ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_ALL:         api.AcceptanceAll,
		ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED:      api.AcceptanceListed,
	} {
		if got := AcceptanceModeFromProto(p); got != a {
			t.Errorf("AcceptanceModeFromProto(%v) = %q, want %q", p, got, a)
		}
	}
	if m, err := AcceptanceModeToProto("all"); err != nil || m != 0 {
		t.Errorf("AcceptanceModeToProto(all) = %v, %v; want UNSPECIFIED, as before the field existed", m, err)
	}
	if _, err := AcceptanceModeToProto("some"); err == nil {
		t.Error("AcceptanceModeToProto(some): no error")
	}
	for name, want := range map[string]ospreyv1.AcceptanceListKind{
		"inbound":  ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND,
		"outbound": ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND,
		"auth":     ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_AUTH,
	} {
		if got, err := ParseAcceptanceListKind(name); err != nil || got != want {
			t.Errorf("ParseAcceptanceListKind(%q) = %v, %v", name, got, err)
		}
		if got := AcceptanceListKindFromProto(want); string(got) != name {
			t.Errorf("AcceptanceListKindFromProto(%v) = %q", want, got)
		}
	}
	for _, name := range []string{"", "Inbound", "trusted"} {
		if _, err := ParseAcceptanceListKind(name); err == nil {
			t.Errorf("ParseAcceptanceListKind(%q): no error", name)
		}
	}
}
