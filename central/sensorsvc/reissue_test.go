package sensorsvc_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/central/clusterca"
	"github.com/ospreysec/osprey/central/sensorsvc"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/clocktest"
	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// newClockCluster is newCluster with the clock of the test: the service
// issues certificates by it and the TLS stack checks client certificates by
// it, so a certificate expires when the test moves the clock past it.
func newClockCluster(t *testing.T, clock *clocktest.Clock, opts sensorsvc.Options) *cluster {
	t.Helper()
	st := store.New(etcdtest.Client(t))
	if _, err := st.CreateTenant(t.Context(), store.AllTenants(), &ospreyv1.Tenant{Id: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := clusterca.NewServerCert(ca, []string{"127.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sw := sensorsvc.NewStatusWriter(st, slog.New(slog.DiscardHandler))
	swDone := make(chan error, 1)
	go func() { swDone <- sw.Run(ctx) }()
	hub := store.NewConfigHub(st, store.CacheOptions{})
	hubDone := make(chan error, 1)
	go func() { hubDone <- hub.Run(ctx) }()
	opts.Store, opts.Configs, opts.CA, opts.NodeName, opts.Status, opts.Now = st, hub, ca, "n1", sw, clock.Now
	svc := sensorsvc.New(opts)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		GetCertificate: cert.GetCertificate, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool, MinVersion: tls.VersionTLS12,
		Time: clock.Now,
	})))
	svc.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		svc.Shutdown()
		srv.Stop()
		cancel()
		<-swDone
		<-hubDone
	})
	return &cluster{store: st, ca: ca, addr: ln.Addr().String()}
}

// held is a certificate a sensor holds, with its key.
type held struct {
	der []byte
	key crypto.Signer
}

func (h held) tls() *tls.Certificate {
	return &tls.Certificate{Certificate: [][]byte{h.der}, PrivateKey: h.key}
}

func (h held) fingerprint() string { return pki.Fingerprint(h.der) }

// approvedSensor enrolls a sensor and approves it.
func (c *cluster) approvedSensor(t *testing.T) (string, held) {
	t.Helper()
	e, err := c.enroll(t, c.joinToken(t, 1, time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	id := e.resp.GetSensorId()
	c.setState(t, id, ospreyv1.SensorState_SENSOR_STATE_APPROVED)
	return id, held{der: e.resp.GetCertificate(), key: e.key}
}

func (c *cluster) setState(t *testing.T, id string, state ospreyv1.SensorState) {
	t.Helper()
	sn, ver, err := c.store.GetSensor(t.Context(), store.AllTenants(), id)
	if err != nil {
		t.Fatal(err)
	}
	sn.State = state
	if _, err := c.store.UpdateSensor(t.Context(), store.AllTenants(), sn, ver); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) record(t *testing.T, id string) *ospreyv1.Sensor {
	t.Helper()
	sn, _, err := c.store.GetSensor(t.Context(), store.AllTenants(), id)
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

// newCSR makes a key and a request for it.
func newCSR(t *testing.T) (crypto.Signer, []byte) {
	t.Helper()
	key, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "reissue")
	if err != nil {
		t.Fatal(err)
	}
	return key, csr
}

// reissueWith runs one Reissue call without a client certificate, sending
// the request that build makes for the central's nonce.
func (c *cluster) reissueWith(t *testing.T, build func(nonce []byte) *ospreyv1.ReissueRequest) (*ospreyv1.ReissuedCertificate, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	stream, err := c.dial(t, nil).Reissue(ctx)
	if err != nil {
		return nil, err
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	nonce := first.GetChallenge().GetNonce()
	if len(nonce) != pki.ReissueNonceSize {
		t.Fatalf("first message %v, want a challenge of %d bytes", first, pki.ReissueNonceSize)
	}
	if err := stream.Send(build(nonce)); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	return resp.GetCertificate(), nil
}

// proof is the honest request of the holder of h for the key of csr.
func proof(t *testing.T, h held, csr []byte) func(nonce []byte) *ospreyv1.ReissueRequest {
	return func(nonce []byte) *ospreyv1.ReissueRequest {
		sig, err := pki.SignReissueProof(h.key, nonce, h.der, csr)
		if err != nil {
			t.Fatal(err)
		}
		return &ospreyv1.ReissueRequest{Certificate: h.der, Csr: csr, Signature: sig, SoftwareVersion: "test"}
	}
}

// reissue gets h's holder a new certificate, as the sensor does.
func (c *cluster) reissue(t *testing.T, h held) (held, error) {
	t.Helper()
	key, csr := newCSR(t)
	out, err := c.reissueWith(t, proof(t, h, csr))
	if err != nil {
		return held{}, err
	}
	return held{der: out.GetCertificate(), key: key}, nil
}

// opens reports how a Connect stream with h ends its first exchange: nil
// when the central holds it (a status report goes through and the stream
// is still up), or the error it ended with.
func (c *cluster) opens(t *testing.T, h held) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s, err := c.dial(t, h.tls()).Connect(ctx)
	if err != nil {
		return err
	}
	hello := &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Hello{Hello: &ospreyv1.Hello{WantsCertificatePolicy: true}}}
	if err := s.Send(hello); err != nil {
		_, err = s.Recv()
		return err
	}
	// The policy is the first message of a stream the central holds.
	_, err = s.Recv()
	return err
}

// waitRecord polls the sensor record until ok accepts it.
func (c *cluster) waitRecord(t *testing.T, id, what string, ok func(*ospreyv1.Sensor) bool) {
	t.Helper()
	testwait.For(t, "the sensor record: "+what, func() bool { return ok(c.record(t, id)) })
}

// TestReissueAfterExpiry: a sensor whose certificate expired while it was
// offline is refused by TLS, gets a new certificate by proving it holds the
// old one's key, and connects with it; the old one is done.
func TestReissueAfterExpiry(t *testing.T) {
	clock := clocktest.New(time.Now())
	logs := &syncBuffer{}
	c := newClockCluster(t, clock, sensorsvc.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Certs: sensorsvc.CertLifetime{Validity: time.Hour}})
	id, old := c.approvedSensor(t)
	if err := c.opens(t, old); err != nil {
		t.Fatalf("stream with the enrolled certificate: %v", err)
	}

	clock.Advance(30 * 24 * time.Hour) // a month offline
	// The handshake fails: Unavailable, with the TLS alert when it arrives
	// before the connection closes.
	if err := c.opens(t, old); code(err) != codes.Unavailable {
		t.Fatalf("stream with the expired certificate: got %v, want Unavailable", err)
	}
	got, err := c.reissue(t, old)
	if err != nil {
		t.Fatalf("reissue: %v", err)
	}
	cert, err := x509.ParseCertificate(got.der)
	if err != nil {
		t.Fatal(err)
	}
	gotID, err := pki.IdentityFromCert(cert)
	if err != nil || gotID != (pki.Identity{Tenant: "acme", SensorID: id}) {
		t.Errorf("new certificate's identity %v (%v), want acme/%s", gotID, err, id)
	}
	if want := clock.Now().Add(time.Hour); !cert.NotAfter.Equal(want.Truncate(time.Second)) {
		t.Errorf("new certificate expires %v, want %v", cert.NotAfter, want)
	}
	if err := cert.CheckSignatureFrom(c.ca.Cert); err != nil {
		t.Errorf("new certificate not signed by the cluster CA: %v", err)
	}
	rec := c.record(t, id)
	if diff := cmp.Diff([]string{got.fingerprint(), old.fingerprint()}, []string{rec.GetCertFingerprint(), rec.GetPreviousCertFingerprint()}); diff != "" {
		t.Errorf("record's latest and previous certificates (-want +got):\n%s", diff)
	}

	if err := c.opens(t, got); err != nil {
		t.Fatalf("stream with the reissued certificate: %v", err)
	}
	c.waitRecord(t, id, "the old certificate forgotten", func(sn *ospreyv1.Sensor) bool { return sn.GetPreviousCertFingerprint() == "" })
	if _, err := c.reissue(t, old); code(err) != codes.PermissionDenied {
		t.Errorf("reissue with the superseded certificate: got %v, want PermissionDenied", err)
	}

	// Both are in the log, with the certificates' fingerprints.
	for _, want := range []string{
		`msg="reissued a sensor certificate" sensor=` + id + ` tenant=acme old_sha256=` + old.fingerprint(),
		`sha256=` + got.fingerprint(),
		`msg="refused to reissue a sensor certificate" sensor=` + id + ` tenant=acme old_sha256=` + old.fingerprint() + ` code=PermissionDenied`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log: want %q in\n%s", want, logs)
		}
	}
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestReissueRefuses: what the central refuses, and that a refusal issues
// nothing.
func TestReissueRefuses(t *testing.T) {
	clock := clocktest.New(time.Now())
	c := newClockCluster(t, clock, sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: time.Hour}})
	other := newClockCluster(t, clock, sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: time.Hour}})
	all := store.AllTenants()

	revokedID, revoked := c.approvedSensor(t)
	c.setState(t, revokedID, ospreyv1.SensorState_SENSOR_STATE_REVOKED)
	pending, err := c.enroll(t, c.joinToken(t, 1, time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	pendingHeld := held{der: pending.resp.GetCertificate(), key: pending.key}
	id, h := c.approvedSensor(t)
	// A certificate of this CA for a sensor the cluster has no record of
	// (deleted), and one of another cluster's CA naming a sensor of ours.
	ghostKey, ghostCSR := newCSR(t)
	ghostDER, err := c.ca.SignClient(ghostCSR, pki.Identity{Tenant: "acme", SensorID: "s-deleted"}, time.Hour, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	foreignKey, foreignCSR := newCSR(t)
	foreignDER, err := other.ca.SignClient(foreignCSR, pki.Identity{Tenant: "acme", SensorID: id}, time.Hour, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(48 * time.Hour) // every certificate has expired

	_, csr := newCSR(t)
	_, otherCSR := newCSR(t)
	thief, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// A proof made for a challenge of an earlier call.
	earlier := make([]byte, pki.ReissueNonceSize)
	replayed, err := pki.SignReissueProof(h.key, earlier, h.der, csr)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		build func(nonce []byte) *ospreyv1.ReissueRequest
		want  codes.Code
	}{
		{"revoked", proof(t, revoked, csr), codes.PermissionDenied},
		{"deleted", proof(t, held{der: ghostDER, key: ghostKey}, csr), codes.PermissionDenied},
		{"pending", proof(t, pendingHeld, csr), codes.FailedPrecondition},
		{"another cluster's certificate", proof(t, held{der: foreignDER, key: foreignKey}, csr), codes.Unauthenticated},
		{"replayed proof", func([]byte) *ospreyv1.ReissueRequest {
			return &ospreyv1.ReissueRequest{Certificate: h.der, Csr: csr, Signature: replayed}
		}, codes.Unauthenticated},
		{"proof by another key", proof(t, held{der: h.der, key: thief}, csr), codes.Unauthenticated},
		{"proof moved to another request", func(nonce []byte) *ospreyv1.ReissueRequest {
			req := proof(t, h, csr)(nonce)
			req.Csr = otherCSR
			return req
		}, codes.Unauthenticated},
		{"no signature", func([]byte) *ospreyv1.ReissueRequest {
			return &ospreyv1.ReissueRequest{Certificate: h.der, Csr: csr}
		}, codes.Unauthenticated},
		{"no certificate", func(nonce []byte) *ospreyv1.ReissueRequest {
			req := proof(t, h, csr)(nonce)
			req.Certificate = nil
			return req
		}, codes.InvalidArgument},
		{"garbage certificate", func([]byte) *ospreyv1.ReissueRequest {
			return &ospreyv1.ReissueRequest{Certificate: []byte("junk"), Csr: csr}
		}, codes.InvalidArgument},
		{"the CA certificate", func([]byte) *ospreyv1.ReissueRequest {
			return &ospreyv1.ReissueRequest{Certificate: c.ca.Cert.Raw, Csr: csr}
		}, codes.Unauthenticated},
		{"the key of the certificate held", func(nonce []byte) *ospreyv1.ReissueRequest {
			own, err := pki.NewCSR(h.key, "reuse")
			if err != nil {
				t.Fatal(err)
			}
			return proof(t, h, own)(nonce)
		}, codes.AlreadyExists},
	}
	before := map[string]*ospreyv1.Sensor{}
	sensors, err := c.store.ListSensors(t.Context(), all)
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range sensors {
		before[sn.GetId()] = sn
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.reissueWith(t, tt.build)
			if code(err) != tt.want {
				t.Errorf("got %v, %v; want %v", out, err, tt.want)
			}
		})
	}
	// Nothing was issued: every record names the certificates it did.
	after, err := c.store.ListSensors(t.Context(), all)
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range after {
		if diff := cmp.Diff(before[sn.GetId()], sn, protocmp.Transform()); diff != "" {
			t.Errorf("sensor %s changed (-before +after):\n%s", sn.GetId(), diff)
		}
	}
	// The honest request still works, once.
	req := proof(t, h, csr)
	if _, err := c.reissueWith(t, req); err != nil {
		t.Fatalf("honest reissue: %v", err)
	}
	if _, err := c.reissueWith(t, req); code(err) != codes.AlreadyExists {
		t.Errorf("the same request again (its key is taken): got %v, want AlreadyExists", err)
	}
}

// TestReissueAfterALostAnswer: when the answer to a reissue is lost, the
// sensor still holds only its old certificate and asks again; the old one
// stays good for that until the sensor shows up with a newer one.
func TestReissueAfterALostAnswer(t *testing.T) {
	clock := clocktest.New(time.Now())
	c := newClockCluster(t, clock, sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: time.Hour}})
	id, old := c.approvedSensor(t)
	clock.Advance(2 * time.Hour)

	lost, err := c.reissue(t, old) // the link drops before this reaches the sensor
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.reissue(t, old)
	if err != nil {
		t.Fatalf("second reissue with the old certificate: %v", err)
	}
	if err := c.opens(t, got); err != nil {
		t.Fatalf("stream with the certificate received: %v", err)
	}
	c.waitRecord(t, id, "the old certificate forgotten", func(sn *ospreyv1.Sensor) bool {
		return sn.GetCertFingerprint() == got.fingerprint() && sn.GetPreviousCertFingerprint() == ""
	})
	for name, h := range map[string]held{"old": old, "never received": lost} {
		if _, err := c.reissue(t, h); code(err) != codes.PermissionDenied {
			t.Errorf("reissue with the %s certificate: got %v, want PermissionDenied", name, err)
		}
	}
	if err := c.opens(t, lost); code(err) != codes.PermissionDenied {
		t.Errorf("stream with the certificate never received (valid, superseded): got %v, want PermissionDenied", err)
	}
}

// TestRenewalSupersedes: renewing over the stream makes the new certificate
// the sensor's; once its status says it holds it, the old key gets nothing
// more, not even while the old certificate is still valid. A stream renews
// as often as it lives long enough to.
func TestRenewalSupersedes(t *testing.T) {
	clock := clocktest.New(time.Now())
	c := newClockCluster(t, clock, sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: time.Hour}})
	id, old := c.approvedSensor(t)
	s := connect(t, c.dial(t, old.tls()), 0)
	s.next(t) // the configuration

	renew := func() held {
		t.Helper()
		key, csr := newCSR(t)
		s.send(t, &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Renew{Renew: &ospreyv1.RenewRequest{Csr: csr}}})
		m := s.next(t)
		if m.GetRenewed() == nil {
			t.Fatalf("got %v, want a renewed certificate", m)
		}
		return held{der: m.GetRenewed().GetCertificate(), key: key}
	}
	first := renew()
	if rec := c.record(t, id); rec.GetPreviousCertFingerprint() != old.fingerprint() {
		t.Fatalf("record's previous certificate %s, want the enrolled %s until the sensor says it has the new one", rec.GetPreviousCertFingerprint(), old.fingerprint())
	}
	s.send(t, &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Status{Status: &ospreyv1.SensorStatus{Healthy: true, CertFingerprint: first.fingerprint()}}})
	c.waitRecord(t, id, "the enrolled certificate forgotten", func(sn *ospreyv1.Sensor) bool { return sn.GetPreviousCertFingerprint() == "" })
	if err := c.opens(t, old); code(err) != codes.PermissionDenied {
		t.Errorf("stream with the enrolled certificate (still valid, superseded): got %v, want PermissionDenied", err)
	}
	if _, err := c.reissue(t, old); code(err) != codes.PermissionDenied {
		t.Errorf("reissue with the enrolled certificate: got %v, want PermissionDenied", err)
	}

	// The same stream, opened with the enrolled certificate, renews again.
	second := renew()
	if rec := c.record(t, id); rec.GetCertFingerprint() != second.fingerprint() || rec.GetPreviousCertFingerprint() != first.fingerprint() {
		t.Errorf("record after a second renewal: latest %s, previous %s; want %s, %s",
			rec.GetCertFingerprint(), rec.GetPreviousCertFingerprint(), second.fingerprint(), first.fingerprint())
	}
	if err := c.opens(t, second); err != nil {
		t.Errorf("stream with the second renewed certificate: %v", err)
	}
}

// TestCertificatePolicy: a sensor that asks is told its renewal window
// first.
func TestCertificatePolicy(t *testing.T) {
	clock := clocktest.New(time.Now())
	c := newClockCluster(t, clock, sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: 2 * time.Hour, RenewFrom: 30, RenewUntil: 40}})
	_, h := c.approvedSensor(t)
	s, err := c.dial(t, h.tls()).Connect(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Hello{Hello: &ospreyv1.Hello{WantsCertificatePolicy: true}}}); err != nil {
		t.Fatal(err)
	}
	first, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	want := &ospreyv1.CertificatePolicy{RenewFromPercent: 30, RenewUntilPercent: 40}
	if diff := cmp.Diff(want, first.GetCertificatePolicy(), protocmp.Transform()); diff != "" {
		t.Errorf("first message's policy (-want +got):\n%s", diff)
	}
	if next, err := s.Recv(); err != nil || next.GetConfig() == nil {
		t.Errorf("second message: %v, %v; want the configuration", next, err)
	}
}

func TestValidateCerts(t *testing.T) {
	tests := []struct {
		name string
		opts sensorsvc.Options
		want []string // substrings of the error, one per problem; none for valid
	}{
		{name: "defaults", opts: sensorsvc.Options{}},
		{name: "an hour, renewed from 10% to 90%", opts: sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: time.Hour, RenewFrom: 10, RenewUntil: 90}}},
		{name: "a year, renewed at 50%", opts: sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: 365 * 24 * time.Hour, RenewFrom: 50, RenewUntil: 50}}},
		{name: "too short", opts: sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: 59 * time.Minute}},
			want: []string{"--sensor-cert-validity: 59m0s is too short: at least 1h0m0s"}},
		{name: "too long", opts: sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: 366 * 24 * time.Hour}},
			want: []string{"--sensor-cert-validity: 8784h0m0s is too long"}},
		{name: "negative", opts: sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: -time.Hour}},
			want: []string{"--sensor-cert-validity: -1h0m0s is too short"}},
		{name: "window outside the lifetime", opts: sensorsvc.Options{Certs: sensorsvc.CertLifetime{RenewFrom: 5, RenewUntil: 100}},
			want: []string{"--sensor-cert-renew-from: 5: want 10 to 90", "--sensor-cert-renew-until: 100: want 10 to 90"}},
		{name: "window closes before it opens", opts: sensorsvc.Options{Certs: sensorsvc.CertLifetime{RenewFrom: 80, RenewUntil: 70}},
			want: []string{"--sensor-cert-renew-from 80 is after --sensor-cert-renew-until 70"}},
		{name: "from past the default until", opts: sensorsvc.Options{Certs: sensorsvc.CertLifetime{RenewFrom: 80}},
			want: []string{"--sensor-cert-renew-from 80 is after --sensor-cert-renew-until 75"}},
		{name: "everything wrong at once", opts: sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: time.Minute, RenewFrom: -1}},
			want: []string{"--sensor-cert-validity: 1m0s is too short", "--sensor-cert-renew-from: -1: want 10 to 90"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Certs.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("ValidateCerts: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateCerts: got nil, want %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("ValidateCerts: got %d problems (%v), want %d", len(lines), err, len(tt.want))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ValidateCerts: got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestRecordRestoredFromABackup: etcd restored from a backup names, for a
// sensor that renewed since, a certificate older than the one it holds. The
// newer one still works and becomes the recorded one; the older does not.
func TestRecordRestoredFromABackup(t *testing.T) {
	clock := clocktest.New(time.Now())
	c := newClockCluster(t, clock, sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: time.Hour}})
	id, old := c.approvedSensor(t)
	backup, _, err := c.store.GetSensor(t.Context(), store.AllTenants(), id)
	if err != nil {
		t.Fatal(err)
	}

	clock.Advance(40 * time.Minute)
	renewed, err := c.reissue(t, old)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.opens(t, renewed); err != nil {
		t.Fatal(err)
	}
	c.waitRecord(t, id, "the renewed certificate confirmed", func(sn *ospreyv1.Sensor) bool { return sn.GetPreviousCertFingerprint() == "" })
	// The restore.
	_, ver, err := c.store.GetSensor(t.Context(), store.AllTenants(), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.store.UpdateSensor(t.Context(), store.AllTenants(), backup, ver); err != nil {
		t.Fatal(err)
	}

	if err := c.opens(t, renewed); err != nil {
		t.Fatalf("stream with the certificate newer than the restored record: %v", err)
	}
	c.waitRecord(t, id, "the newer certificate recorded", func(sn *ospreyv1.Sensor) bool {
		return sn.GetCertFingerprint() == renewed.fingerprint() && sn.GetPreviousCertFingerprint() == ""
	})
	if err := c.opens(t, old); code(err) != codes.PermissionDenied {
		t.Errorf("stream with the certificate the backup named: got %v, want PermissionDenied", err)
	}
	clock.Advance(2 * time.Hour)
	if _, err := c.reissue(t, renewed); err != nil {
		t.Errorf("reissue with the newer certificate once expired: %v", err)
	}
}

// TestRecordsThatNameNoStartOfValidity: a record made outside enrollment
// names no certificate, and one written by an older version names its
// certificate without its start of validity. Both work; the second learns
// the time on the sensor's next stream.
func TestRecordsThatNameNoStartOfValidity(t *testing.T) {
	clock := clocktest.New(time.Now())
	c := newClockCluster(t, clock, sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: time.Hour}})
	all := store.AllTenants()

	// Made outside enrollment, with a certificate signed for it.
	key, csr := newCSR(t)
	der, err := c.ca.SignClient(csr, pki.Identity{Tenant: "acme", SensorID: "s-made"}, time.Hour, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.store.CreateSensor(t.Context(), all, &ospreyv1.Sensor{Id: "s-made", Tenant: "acme", Name: "made", State: ospreyv1.SensorState_SENSOR_STATE_APPROVED}); err != nil {
		t.Fatal(err)
	}
	made := held{der: der, key: key}
	if err := c.opens(t, made); err != nil {
		t.Fatalf("stream of a sensor whose record names no certificate: %v", err)
	}
	if rec := c.record(t, "s-made"); rec.GetCertFingerprint() != "" {
		t.Errorf("record after a stream: certificate %q, want none still (no write)", rec.GetCertFingerprint())
	}
	clock.Advance(2 * time.Hour)
	got, err := c.reissue(t, made)
	if err != nil {
		t.Fatalf("reissue of a sensor whose record names no certificate: %v", err)
	}
	if rec := c.record(t, "s-made"); rec.GetCertFingerprint() != got.fingerprint() {
		t.Errorf("record after a reissue: certificate %s, want the new %s", rec.GetCertFingerprint(), got.fingerprint())
	}

	// Written by an older version.
	id, h := c.approvedSensor(t)
	sn, ver, err := c.store.GetSensor(t.Context(), all, id)
	if err != nil {
		t.Fatal(err)
	}
	sn.CertNotBefore = nil
	if _, err := c.store.UpdateSensor(t.Context(), all, sn, ver); err != nil {
		t.Fatal(err)
	}
	if err := c.opens(t, h); err != nil {
		t.Fatalf("stream of a sensor whose record has no start of validity: %v", err)
	}
	cert, err := x509.ParseCertificate(h.der)
	if err != nil {
		t.Fatal(err)
	}
	c.waitRecord(t, id, "the start of validity learnt", func(sn *ospreyv1.Sensor) bool {
		return sn.GetCertNotBefore() != nil && sn.GetCertNotBefore().AsTime().Equal(cert.NotBefore)
	})
}
