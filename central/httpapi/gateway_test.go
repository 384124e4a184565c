package httpapi_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// certAndKey makes a certificate and its private key, in PEM.
func certAndKey(t *testing.T, name string) (string, string) {
	t.Helper()
	ca, err := pki.NewCA(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := pki.MarshalCA(ca)
	if err != nil {
		t.Fatal(err)
	}
	return string(cert), string(key)
}

// gatewaySMTP is an inbound and outbound gateway on addresses of host, with
// a certificate and key of its own on each listener.
func gatewaySMTP(t *testing.T, host string) *api.SMTPIntegration {
	t.Helper()
	inCert, inKey := certAndKey(t, host+"-in")
	outCert, outKey := certAndKey(t, host+"-out")
	return &api.SMTPIntegration{
		Enabled:        true,
		MaxMessageSize: &api.SizeLimit{Value: 25, Unit: api.MB},
		Mode:           api.SMTPInboundOutbound,
		Gateway: &api.SMTPGateway{
			Inbound: &api.GatewayListener{Listen: host + ":25", ListenV6: "[2001:db8::1]:25",
				TLS: &api.SMTPTLS{Mode: api.TLSAccept, CertPEM: inCert, KeyPEM: inKey}},
			Outbound: &api.GatewayListener{Listen: host + ":587",
				TLS: &api.SMTPTLS{Mode: api.TLSRequire, CertPEM: outCert, KeyPEM: outKey}},
			LocalDomains: []api.LocalDomain{
				{Domain: "example.com", Hosts: []api.NextHop{{Host: "10.0.0.10", Port: 25, Preference: 10}, {Host: "10.0.0.11", Preference: 20}}},
				{Domain: "example.org", Hosts: []api.NextHop{{Host: "example.org", MXLookup: true}}, RequireTLS: true},
			},
			InboundAcceptance:  api.AcceptanceListed,
			RelayHosts:         []api.NextHop{{Host: "smarthost.example.net", Port: 2525}},
			RequireTLSDomains:  []string{"bank.example"},
			HeloName:           "gw.example.com",
			HoldTimeoutSeconds: 300,
			OnTimeout:          api.KeepHolding,
			Queue:              &api.DeliveryQueueSettings{MinBackoffSeconds: 60, MaxBackoffSeconds: 3600},
		},
	}
}

// TestSMTPGatewayAPI: a gateway configuration is stored and read back as
// written, without the listeners' private keys (key_set instead), which a
// write that leaves them empty keeps; an invalid one is refused with every
// field's path and changes nothing.
func TestSMTPGatewayAPI(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "alice")
	ctx := t.Context()
	in := gatewaySMTP(t, "192.0.2.1")
	keys := []string{in.Gateway.Inbound.TLS.KeyPEM, in.Gateway.Outbound.TLS.KeyPEM}
	_, v1, err := c.PutSMTP(ctx, "s1", in, 0)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	got, v, err := c.SMTP(ctx, "s1")
	if err != nil || v != v1 {
		t.Fatalf("get: version %d (want %d), %v", v, v1, err)
	}
	want := gatewaySMTP(t, "192.0.2.1")
	want.DestinationDomains, want.Clients = []string{}, []string{}
	want.Gateway = in.Gateway
	want.Gateway.Quarantine = &api.QuarantineSettings{}
	want.Gateway.SenderAuth = &api.SenderAuthSettings{DMARCTempError: api.AuthErrorAsIs, DMARCPermError: api.AuthErrorAsIs}
	want.Gateway.Submission = &api.SubmissionSettings{Listener: &api.GatewayListener{}, Acceptance: api.AcceptanceAll,
		LDAP: &api.LDAPAuth{}, SMTPForward: &api.SMTPForwardAuth{}}
	want.Gateway.RecipientVerification, want.Gateway.RateLimits = &api.RecipientVerification{}, &api.RateLimits{}
	for _, l := range []*api.GatewayListener{want.Gateway.Inbound, want.Gateway.Outbound} {
		l.TLS.KeyPEM, l.TLS.KeySet = "", true
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
	stored, _, _ := e.store.GetSMTP(ctx, store.AllTenants(), "s1")
	if stored.GetGateway().GetInbound().GetTls().GetKeyPem() != keys[0] || stored.GetGateway().GetOutbound().GetTls().GetKeyPem() != keys[1] {
		t.Fatal("the listeners' keys were not stored")
	}
	for _, path := range []string{"/api/v1/sensors/s1/smtp", "/api/v1/sensors/s1"} {
		body := rawGet(t, e.url+path, "alice")
		if strings.Contains(body, "PRIVATE KEY") || strings.Contains(body, `"key_pem"`) {
			t.Errorf("GET %s returned a private key: %s", path, body)
		}
	}

	// The read, edited and written back: the keys stay.
	got.Gateway.HeloName = "mx1.example.com"
	if _, _, err := c.PutSMTP(ctx, "s1", got, v1); err != nil {
		t.Fatalf("write back: %v", err)
	}
	stored, v2, _ := e.store.GetSMTP(ctx, store.AllTenants(), "s1")
	if stored.GetGateway().GetHeloName() != "mx1.example.com" ||
		stored.GetGateway().GetInbound().GetTls().GetKeyPem() != keys[0] || stored.GetGateway().GetOutbound().GetTls().GetKeyPem() != keys[1] {
		t.Errorf("after a write back without keys: helo %q, keys kept %v, %v", stored.GetGateway().GetHeloName(),
			stored.GetGateway().GetInbound().GetTls().GetKeyPem() == keys[0], stored.GetGateway().GetOutbound().GetTls().GetKeyPem() == keys[1])
	}

	// Every problem at once, each with its path; nothing changes.
	bad := gatewaySMTP(t, "192.0.2.1")
	bad.Gateway.OnTimeout = "bounce"
	bad.Gateway.Inbound.TLS.Mode = "sometimes"
	bad.Gateway.Outbound.Listen = bad.Gateway.Inbound.Listen
	bad.Gateway.LocalDomains[0].Domain = "!example.com"
	bad.Gateway.LocalDomains[1].Hosts[0].Port = 70000
	bad.Gateway.RelayHosts[0].Host = ""
	//lint:ignore SA1019 refused
	bad.Gateway.TrustedNetworks = []string{"10.0.0.0/8"}
	bad.Gateway.InboundAcceptance = "some"
	bad.Gateway.Queue.MaxBackoffSeconds = 5
	_, _, err = c.PutSMTP(ctx, "s1", bad, 0)
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
		t.Fatalf("invalid gateway: got %v, want a 400 api.Error", err)
	}
	var fields []string
	for _, f := range apiErr.Fields {
		fields = append(fields, f.Field)
	}
	for _, want := range []string{"gateway.on_timeout", "gateway.inbound.tls.mode", "gateway.outbound.listen",
		"gateway.local_domains[0].domain", "gateway.local_domains[1].hosts[0].port", "gateway.relay_hosts[0].host",
		"gateway.trusted_networks", "gateway.inbound_acceptance", "gateway.queue.max_backoff_seconds"} {
		if !slices.Contains(fields, want) {
			t.Errorf("field errors %v: missing %q", fields, want)
		}
	}
	if _, v3, _ := e.store.GetSMTP(ctx, store.AllTenants(), "s1"); v3 != v2 {
		t.Errorf("version after a refused write: got %d, want %d", v3, v2)
	}
}

// TestSMTPStoredBeforeGatewayReadsAsMonitor: an integration written without
// mode or gateway reads as monitor mode with an empty gateway, lists as [].
func TestSMTPStoredBeforeGatewayReadsAsMonitor(t *testing.T) {
	e := newEnv(t)
	if _, err := e.store.PutSMTP(t.Context(), store.AllTenants(), "s1", &ospreyv1.SmtpIntegration{
		Enabled: true, Listen: "0.0.0.0:25", MaxMessageSize: &ospreyv1.SizeLimit{Unlimited: true},
	}, store.AnyVersion); err != nil {
		t.Fatal(err)
	}
	body := rawGet(t, e.url+"/api/v1/sensors/s1/smtp", "alice")
	for _, want := range []string{`"mode":"monitor"`, `"gateway":{"inbound":{"listen":"","listen_v6":""},"outbound":{"listen":"","listen_v6":""},` +
		`"local_domains":[],"inbound_acceptance":"all","relay_hosts":[],"require_tls_domains":[],"helo_name":"","hold_timeout_seconds":0,` +
		`"on_timeout":"deliver_unscanned","queue":{`} {
		if !strings.Contains(body, want) {
			t.Errorf("GET: got %s, want %s in it", body, want)
		}
	}
}

// TestApplySensorSMTPToTenant: POST .../smtp/apply-to-tenant copies a
// sensor's integration to the other sensors of its tenant, each keeping its
// own addresses, certificates and keys; one whose result is not valid is
// reported with its errors and left as it was; the other tenant's sensors
// are untouched, and its operator cannot reach the source.
func TestApplySensorSMTPToTenant(t *testing.T) {
	e := newEnv(t)
	ctx, all := t.Context(), store.AllTenants()
	for _, s := range []struct{ id, tenant string }{{"s3", "default"}, {"s4", "default"}, {"s5", "acme"}} {
		if _, err := e.store.CreateSensor(ctx, all, &ospreyv1.Sensor{Id: s.id, Tenant: s.tenant, Name: s.id, State: ospreyv1.SensorState_SENSOR_STATE_APPROVED}); err != nil {
			t.Fatal(err)
		}
	}
	root, alice := e.client(t, "root"), e.client(t, "alice")
	if _, _, err := alice.PutSMTP(ctx, "s1", gatewaySMTP(t, "192.0.2.1"), 0); err != nil {
		t.Fatal(err)
	}
	// s3 has its own gateway addresses and certificates, in monitor mode.
	own := gatewaySMTP(t, "192.0.2.3")
	own.Mode = api.SMTPMonitor
	own.Listen = "0.0.0.0:2525"
	own.Gateway.LocalDomains = nil
	if _, _, err := alice.PutSMTP(ctx, "s3", own, 0); err != nil {
		t.Fatal(err)
	}
	ownStored, _, _ := e.store.GetSMTP(ctx, all, "s3")
	_, s4Version, _ := e.store.GetSMTP(ctx, all, "s4")
	s2Before, s2Version, _ := root.SMTP(ctx, "s2")

	if _, err := e.client(t, "bob").ApplySMTPToTenant(ctx, "s1"); statusOf(err) != http.StatusNotFound {
		t.Errorf("another tenant's operator: got %v, want 404", err)
	}
	if _, err := e.client(t, "audrey").ApplySMTPToTenant(ctx, "s1"); statusOf(err) != http.StatusForbidden {
		t.Errorf("an auditor: got %v, want 403", err)
	}

	res, err := alice.ApplySMTPToTenant(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Source != "s1" || res.Tenant != "default" || len(res.Sensors) != 2 {
		t.Fatalf("result: got %+v, want s1 of default and two sensors", res)
	}
	if r := res.Sensors[0]; r.Sensor != "s3" || r.Result != api.ApplyApplied || r.Version == 0 {
		t.Errorf("s3: got %+v, want applied with a version", r)
	}
	r4 := res.Sensors[1]
	var fields []string
	for _, f := range r4.Fields {
		fields = append(fields, f.Field)
	}
	if r4.Sensor != "s4" || r4.Result != api.ApplyError || r4.Error != "invalid configuration" ||
		!slices.Equal(fields, []string{"gateway.inbound.listen", "gateway.outbound.listen"}) {
		t.Errorf("s4: got %+v, want an error on its gateway listen addresses", r4)
	}

	// s3: the source's settings, its own addresses, certificates and keys.
	s3, _, _ := e.store.GetSMTP(ctx, all, "s3")
	src, _, _ := e.store.GetSMTP(ctx, all, "s1")
	g, og := s3.GetGateway(), ownStored.GetGateway()
	if s3.GetListen() != "0.0.0.0:2525" || g.GetInbound().GetListen() != "192.0.2.3:25" || g.GetOutbound().GetListen() != "192.0.2.3:587" ||
		g.GetInbound().GetListenV6() != og.GetInbound().GetListenV6() ||
		g.GetInbound().GetTls().GetCertPem() != og.GetInbound().GetTls().GetCertPem() || g.GetInbound().GetTls().GetKeyPem() != og.GetInbound().GetTls().GetKeyPem() ||
		g.GetOutbound().GetTls().GetCertPem() != og.GetOutbound().GetTls().GetCertPem() || g.GetOutbound().GetTls().GetKeyPem() != og.GetOutbound().GetTls().GetKeyPem() {
		t.Errorf("s3 lost what belongs to its host: %v", s3)
	}
	if s3.GetMode() != ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND || len(g.GetLocalDomains()) != 2 ||
		g.GetOnTimeout() != src.GetGateway().GetOnTimeout() || g.GetOutbound().GetTls().GetMode() != ospreyv1.TlsMode_TLS_MODE_REQUIRE {
		t.Errorf("s3 did not get the source's settings: %v", s3)
	}
	if _, v, _ := e.store.GetSMTP(ctx, all, "s4"); v != s4Version {
		t.Errorf("s4 was written: version %d, want %d", v, s4Version)
	}
	s2After, v, _ := root.SMTP(ctx, "s2")
	if v != s2Version || !cmp.Equal(s2Before, s2After) {
		t.Errorf("a sensor of another tenant was written")
	}
	if _, v, _ := e.store.GetSMTP(ctx, all, "s5"); v != 0 {
		t.Error("s5, of another tenant, was written")
	}

	// Again: s3 has it already.
	res, err = root.ApplySMTPToTenant(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Sensors[0]; r.Sensor != "s3" || r.Result != api.ApplyUnchanged || r.Version != 0 {
		t.Errorf("s3 the second time: got %+v, want unchanged", r)
	}
	if _, err := root.ApplySMTPToTenant(ctx, "nope"); statusOf(err) != http.StatusNotFound {
		t.Errorf("an unknown source: got %v, want 404", err)
	}
}
