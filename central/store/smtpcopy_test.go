package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/pkg/pki"
	"github.com/ospreysec/osprey/pkg/validate"
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

// hostSMTP is an integration that holds only what belongs to one host.
func hostSMTP(t *testing.T, name, listen, inbound, inboundV6, outbound string) *ospreyv1.SmtpIntegration {
	t.Helper()
	cert, key := certAndKey(t, name)
	inCert, inKey := certAndKey(t, name+"-in")
	return &ospreyv1.SmtpIntegration{
		Listen: listen,
		Tls:    &ospreyv1.SmtpTls{CertPem: cert, KeyPem: key},
		Gateway: &ospreyv1.SmtpGateway{
			Inbound:  &ospreyv1.GatewayListener{Listen: inbound, ListenV6: inboundV6, Tls: &ospreyv1.SmtpTls{CertPem: inCert, KeyPem: inKey}},
			Outbound: &ospreyv1.GatewayListener{Listen: outbound},
		},
	}
}

// TestCopySMTPToTenant: a sensor's SMTP integration goes to every other
// sensor of its tenant, each keeping its listen addresses and certificates;
// one that has it already is not written, those whose result is not valid
// (no gateway listen address of their own) are reported and left as they were, and the other tenant's sensors are untouched.
func TestCopySMTPToTenant(t *testing.T) {
	st := store.New(etcdtest.Client(t))
	ctx, all := t.Context(), store.AllTenants()
	for _, tn := range []string{"acme", "globex"} {
		if _, err := st.CreateTenant(ctx, all, &ospreyv1.Tenant{Id: tn, Name: tn}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct{ id, tenant string }{
		{"gw-a", "acme"}, {"gw-b", "acme"}, {"gw-c", "acme"}, {"monitor-only", "acme"}, {"fresh", "acme"}, {"other", "globex"},
	} {
		if _, err := st.CreateSensor(ctx, all, &ospreyv1.Sensor{Id: s.id, Tenant: s.tenant, Name: s.id, State: ospreyv1.SensorState_SENSOR_STATE_APPROVED}); err != nil {
			t.Fatal(err)
		}
	}
	put := func(id string, cfg *ospreyv1.SmtpIntegration) int64 {
		t.Helper()
		v, err := st.PutSMTP(ctx, all, id, cfg, store.AnyVersion)
		if err != nil {
			t.Fatalf("put %s: %v", id, err)
		}
		return v
	}

	caPEM, _ := certAndKey(t, "clients")
	src := hostSMTP(t, "a", "0.0.0.0:2525", "192.0.2.1:25", "[2001:db8::1]:25", "192.0.2.1:587")
	src.Enabled = true
	src.Mode = ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND
	src.MaxMessageSize = &ospreyv1.SizeLimit{Value: 30, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB}
	src.Tls.Mode = ospreyv1.TlsMode_TLS_MODE_ACCEPT
	src.Gateway.Inbound.Tls.Mode = ospreyv1.TlsMode_TLS_MODE_REQUIRE
	src.Gateway.Inbound.Tls.ClientCert = ospreyv1.ClientCertMode_CLIENT_CERT_MODE_REQUEST
	src.Gateway.Inbound.Tls.ClientCaPem = caPEM
	src.Gateway.LocalDomains = []*ospreyv1.LocalDomain{{Domain: "example.com", Hosts: []*ospreyv1.NextHop{{Host: "10.0.0.10", Port: 25}}}}
	src.Gateway.InboundAcceptance = ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED
	src.Gateway.HoldTimeoutSeconds = 120
	put("gw-a", src)

	b := hostSMTP(t, "b", "0.0.0.0:25", "192.0.2.2:25", "", "192.0.2.2:587")
	put("gw-b", b)
	c := withHost(src, hostSMTP(t, "c", "0.0.0.0:25", "192.0.2.3:25", "", "192.0.2.3:587"))
	cVersion := put("gw-c", c) // has the settings already
	monitorOnly := &ospreyv1.SmtpIntegration{Enabled: true, Listen: "0.0.0.0:25", MaxMessageSize: &ospreyv1.SizeLimit{Unlimited: true}}
	// No gateway addresses of its own (nor has "fresh", never written): the result is not valid.
	mVersion := put("monitor-only", monitorOnly)
	otherVersion := put("other", monitorOnly)

	// A tenant scope reaches only its own sensors.
	if _, _, err := st.CopySMTPToTenant(ctx, store.TenantScope("globex"), "gw-a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("copy from another tenant's sensor: got %v, want ErrNotFound", err)
	}

	tenant, results, err := st.CopySMTPToTenant(ctx, store.TenantScope("acme"), "gw-a")
	if err != nil {
		t.Fatal(err)
	}
	if tenant != "acme" {
		t.Errorf("tenant: got %q, want acme", tenant)
	}
	type outcome struct {
		Sensor  string
		Outcome store.CopyOutcome
		Fields  []string
	}
	var got []outcome
	for _, r := range results {
		o := outcome{Sensor: r.Sensor, Outcome: r.Outcome}
		if verrs, ok := validate.AsErrors(r.Err); ok {
			for _, fe := range verrs {
				o.Fields = append(o.Fields, fe.Field)
			}
		} else if r.Err != nil {
			t.Errorf("%s: %v, want validation errors", r.Sensor, r.Err)
		}
		if (r.Outcome == store.CopyApplied) != (r.Version > 0) {
			t.Errorf("%s: %v at version %d", r.Sensor, r.Outcome, r.Version)
		}
		got = append(got, o)
	}
	want := []outcome{
		{Sensor: "fresh", Outcome: store.CopyFailed, Fields: []string{"gateway.inbound.listen", "gateway.outbound.listen"}},
		{Sensor: "gw-b", Outcome: store.CopyApplied},
		{Sensor: "gw-c", Outcome: store.CopyUnchanged},
		{Sensor: "monitor-only", Outcome: store.CopyFailed, Fields: []string{"gateway.inbound.listen", "gateway.outbound.listen"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}

	// gw-b has the source's settings with its own addresses, certificates and keys.
	gotB, _, err := st.GetSMTP(ctx, all, "gw-b")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(withHost(src, b), gotB, protocmp.Transform()); diff != "" {
		t.Errorf("gw-b (-want +got):\n%s", diff)
	}
	if gotB.GetGateway().GetInbound().GetTls().GetClientCaPem() != caPEM || gotB.GetMode() != src.GetMode() {
		t.Error("gw-b did not get the source's client CA and mode")
	}
	for _, s := range []struct {
		id      string
		version int64
		cfg     *ospreyv1.SmtpIntegration
	}{{"gw-c", cVersion, c}, {"monitor-only", mVersion, monitorOnly}} {
		cfg, v, err := st.GetSMTP(ctx, all, s.id)
		if err != nil || v != s.version || !proto.Equal(cfg, s.cfg) {
			t.Errorf("%s: version %d (want %d), changed %v, %v", s.id, v, s.version, !proto.Equal(cfg, s.cfg), err)
		}
	}
	if _, v, _ := st.GetSMTP(ctx, all, "other"); v != otherVersion {
		t.Error("a sensor of another tenant was written")
	}
}

// withHost is src with own's host settings, built by hand to check the store's.
func withHost(src, own *ospreyv1.SmtpIntegration) *ospreyv1.SmtpIntegration {
	out := proto.Clone(src).(*ospreyv1.SmtpIntegration)
	out.Listen = own.Listen
	out.Tls.CertPem, out.Tls.KeyPem = own.Tls.CertPem, own.Tls.KeyPem
	for _, l := range []struct{ dst, own *ospreyv1.GatewayListener }{
		{out.Gateway.Inbound, own.Gateway.Inbound}, {out.Gateway.Outbound, own.Gateway.Outbound},
	} {
		l.dst.Listen, l.dst.ListenV6 = l.own.Listen, l.own.ListenV6
		if l.dst.Tls != nil {
			l.dst.Tls.CertPem, l.dst.Tls.KeyPem = l.own.GetTls().GetCertPem(), l.own.GetTls().GetKeyPem()
		}
	}
	return out
}
