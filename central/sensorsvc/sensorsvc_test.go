package sensorsvc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/clusterca"
	"github.com/ospreysec/osprey/central/sensorsvc"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/jointoken"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// cluster is a sensor service on loopback over a real embedded etcd, with a
// real CA and mutual TLS, as a Central Node serves it.
type cluster struct {
	store *store.Store
	db    *sqlstore.Store
	ca    *pki.CA
	addr  string
}

func newCluster(t *testing.T, validity time.Duration) *cluster {
	t.Helper()
	st := store.New(etcdtest.Client(t))
	if _, err := st.CreateTenant(t.Context(), store.AllTenants(), &ospreyv1.Tenant{Id: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("test CA", time.Hour)
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
	db, err := sqlstore.Open(t.Context(), sqlstore.Options{URL: filepath.Join(t.TempDir(), "osprey.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc := sensorsvc.New(sensorsvc.Options{Store: st, Messages: db, Configs: hub, CA: ca, NodeName: "n1", Status: sw, Certs: sensorsvc.CertLifetime{Validity: validity}})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		GetCertificate: cert.GetCertificate, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool, MinVersion: tls.VersionTLS12,
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
	return &cluster{store: st, db: db, ca: ca, addr: ln.Addr().String()}
}

// joinToken makes a join token for tenant acme with maxUses.
func (c *cluster) joinToken(t *testing.T, maxUses uint32, expires time.Time) jointoken.Token {
	t.Helper()
	jt, err := jointoken.Generate(pki.SPKIHash(c.ca.Cert))
	if err != nil {
		t.Fatal(err)
	}
	tok := &ospreyv1.Token{Id: jt.ID, Kind: ospreyv1.TokenKind_TOKEN_KIND_JOIN, Tenant: "acme",
		SecretHash: jointoken.SecretHash(jt.Secret), MaxUses: maxUses, UsesLeft: maxUses, CreatedAt: timestamppb.Now()}
	if !expires.IsZero() {
		tok.ExpiresAt = timestamppb.New(expires)
		tok.CreatedAt = timestamppb.New(expires.Add(-time.Hour))
	}
	if _, err := c.store.CreateToken(t.Context(), store.AllTenants(), tok); err != nil {
		t.Fatal(err)
	}
	return jt
}

// dial connects with the cluster CA pinned and, when cert is set, a client certificate.
func (c *cluster) dial(t *testing.T, cert *tls.Certificate, opts ...grpc.DialOption) ospreyv1.SensorServiceClient {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(c.ca.Cert)
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(c.addr, append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ospreyv1.NewSensorServiceClient(conn)
}

// enrolled is a sensor that enrolled: its key, certificate and identity.
type enrolled struct {
	key  *ecdsa.PrivateKey
	resp *ospreyv1.EnrollResponse
	cert tls.Certificate
}

func (c *cluster) enroll(t *testing.T, jt jointoken.Token) (*enrolled, error) {
	t.Helper()
	key, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, "i-claim-to-be-another-sensor")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.dial(t, nil).Enroll(t.Context(), &ospreyv1.EnrollRequest{
		TokenId: jt.ID, TokenSecret: jt.Secret, Name: "branch-1", Csr: csr, SoftwareVersion: "test",
	})
	if err != nil {
		return nil, err
	}
	return &enrolled{key: key, resp: resp, cert: tls.Certificate{Certificate: [][]byte{resp.Certificate}, PrivateKey: key}}, nil
}

func code(err error) codes.Code { return status.Code(err) }

func TestEnrollAssignsIdentityAndRefusesBadTokens(t *testing.T) {
	c := newCluster(t, 0)
	jt := c.joinToken(t, 1, time.Now().Add(time.Hour))

	wrong := jt
	flip := map[bool]string{true: "y", false: "x"}[jt.Secret[0] == 'x']
	wrong.Secret = flip + jt.Secret[1:]
	if _, err := c.enroll(t, wrong); code(err) != codes.Unauthenticated {
		t.Errorf("wrong secret: got %v, want Unauthenticated", err)
	}
	unknown := jt
	unknown.ID = "0000000000000000"
	if _, err := c.enroll(t, unknown); code(err) != codes.Unauthenticated {
		t.Errorf("unknown token: got %v, want Unauthenticated", err)
	}

	e, err := c.enroll(t, jt)
	if err != nil {
		t.Fatal(err)
	}
	if e.resp.GetTenant() != "acme" || e.resp.GetState() != ospreyv1.SensorState_SENSOR_STATE_PENDING {
		t.Errorf("enrolled as %v in %q, want pending in acme", e.resp.GetState(), e.resp.GetTenant())
	}
	leaf, err := x509.ParseCertificate(e.resp.GetCertificate())
	if err != nil {
		t.Fatal(err)
	}
	id, err := pki.IdentityFromCert(leaf)
	if err != nil || id.SensorID != e.resp.GetSensorId() || id.Tenant != "acme" {
		t.Errorf("certificate identity %v (%v), want the assigned %s in acme, not the CSR's claim", id, err, e.resp.GetSensorId())
	}
	sn, _, err := c.store.GetSensor(t.Context(), store.AllTenants(), e.resp.GetSensorId())
	if err != nil || sn.GetCertFingerprint() != e.resp.GetFingerprint() || sn.GetName() != "branch-1" {
		t.Errorf("stored sensor %v (%v), want it named branch-1 with fingerprint %s", sn, err, e.resp.GetFingerprint())
	}

	// The one use is spent.
	if _, err := c.enroll(t, jt); code(err) != codes.PermissionDenied {
		t.Errorf("used-up token: got %v, want PermissionDenied", err)
	}
	expired := c.joinToken(t, 0, time.Now().Add(-time.Second))
	if _, err := c.enroll(t, expired); code(err) != codes.PermissionDenied {
		t.Errorf("expired token: got %v, want PermissionDenied", err)
	}
}

func TestEnrollRefusesAReplayedCSR(t *testing.T) {
	c := newCluster(t, 0)
	jt := c.joinToken(t, 0, time.Time{})
	key, _ := pki.GenerateKey()
	csr, _ := pki.NewCSR(key, "s")
	req := &ospreyv1.EnrollRequest{TokenId: jt.ID, TokenSecret: jt.Secret, Name: "n", Csr: csr}
	client := c.dial(t, nil)
	if _, err := client.Enroll(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enroll(t.Context(), req); code(err) != codes.AlreadyExists {
		t.Errorf("replayed CSR: got %v, want AlreadyExists", err)
	}
}

// stream is an open Connect stream with its messages arriving on a channel.
type stream struct {
	s    ospreyv1.SensorService_ConnectClient
	msgs chan *ospreyv1.ConnectResponse
	errc chan error
}

func connect(t *testing.T, client ospreyv1.SensorServiceClient, applied int64) *stream {
	t.Helper()
	return connectWith(t, client, &ospreyv1.Hello{SoftwareVersion: "test", AppliedRevision: applied})
}

// connectWith opens a stream that says hello.
func connectWith(t *testing.T, client ospreyv1.SensorServiceClient, hello *ospreyv1.Hello) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := client.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := &stream{s: s, msgs: make(chan *ospreyv1.ConnectResponse, 16), errc: make(chan error, 1)}
	// A server that ends the stream at once (a revoked sensor) may do so
	// before this Send: it then returns io.EOF, and the status is what
	// Recv returns, which the goroutine below hands to ended.
	if err := s.Send(&ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Hello{Hello: hello}}); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := s.Recv()
			if err != nil {
				st.errc <- err
				return
			}
			st.msgs <- m
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return st
}

func (s *stream) next(t *testing.T) *ospreyv1.ConnectResponse {
	t.Helper()
	select {
	case m := <-s.msgs:
		return m
	case err := <-s.errc:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(testwait.Timeout):
		// Generous: a 10 MB configuration under -race on a busy machine
		// took over ten seconds.
		t.Fatalf("no message within %v", testwait.Timeout)
	}
	return nil
}

func (s *stream) ended(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.errc:
		return err
	case m := <-s.msgs:
		t.Fatalf("got %v, want the stream to end", m)
	case <-time.After(10 * time.Second):
		t.Fatal("stream still open after 10s")
	}
	return nil
}

// send sends m; when the server ended the stream first, it fails with
// the status the stream ended with (Send only says io.EOF).
func (s *stream) send(t *testing.T, m *ospreyv1.ConnectRequest) {
	t.Helper()
	err := s.s.Send(m)
	if errors.Is(err, io.EOF) {
		t.Fatalf("send %v: the stream ended: %v", m, s.ended(t))
	}
	if err != nil {
		t.Fatal(err)
	}
}

func smtpConfig(listen string) *ospreyv1.SmtpIntegration {
	return &ospreyv1.SmtpIntegration{Enabled: true, Listen: listen, DestinationDomains: []string{"example.com"},
		MaxMessageSize: &ospreyv1.SizeLimit{Value: 10, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB}}
}

// waitStatus polls the stored status until ok accepts it, and returns it.
func waitStatus(t *testing.T, st *store.Store, id string, ok func(*ospreyv1.SensorRuntime) bool) *ospreyv1.SensorRuntime {
	t.Helper()
	var rt *ospreyv1.SensorRuntime
	testwait.For(t, "the stored status of "+id, func() bool {
		var err error
		if rt, err = st.Status(t.Context(), store.AllTenants(), id); err != nil {
			t.Fatal(err)
		}
		return rt != nil && ok(rt)
	})
	return rt
}

func TestPendingApprovedPushAckNackRevoke(t *testing.T) {
	c := newCluster(t, 0)
	ctx := t.Context()
	e, err := c.enroll(t, c.joinToken(t, 1, time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	id := e.resp.GetSensorId()
	all := store.AllTenants()
	v1, err := c.store.PutSMTP(ctx, all, id, smtpConfig("127.0.0.1:2525"), store.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	client := c.dial(t, &e.cert)
	s := connect(t, client, 0)
	waitStatus(t, c.store, id, func(rt *ospreyv1.SensorRuntime) bool { return rt.GetOnline() && rt.GetNode() == "n1" })

	// Pending: the stream is held, nothing is pushed until approval.
	sn, ver, err := c.store.GetSensor(ctx, all, id)
	if err != nil {
		t.Fatal(err)
	}
	sn.State = ospreyv1.SensorState_SENSOR_STATE_APPROVED
	if _, err := c.store.UpdateSensor(ctx, all, sn, ver); err != nil {
		t.Fatal(err)
	}
	first := s.next(t).GetConfig()
	if first.GetRevision() != v1 || first.GetSmtp().GetListen() != "127.0.0.1:2525" {
		t.Fatalf("first push after approval: got %v, want version %d", first, v1)
	}
	s.send(t, &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Ack{Ack: &ospreyv1.Ack{Revision: v1}}})
	waitStatus(t, c.store, id, func(rt *ospreyv1.SensorRuntime) bool { return rt.GetAppliedVersion() == v1 })

	// Writing the same value again wakes nobody: the next push is the real change.
	if _, err := c.store.PutSMTP(ctx, all, id, smtpConfig("127.0.0.1:2525"), store.AnyVersion); err != nil {
		t.Fatal(err)
	}
	v2, err := c.store.PutSMTP(ctx, all, id, smtpConfig("127.0.0.1:2526"), store.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.next(t).GetConfig(); got.GetRevision() != v2 {
		t.Fatalf("after an unchanged write and a change: got version %d, want %d", got.GetRevision(), v2)
	}
	s.send(t, &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Nack{Nack: &ospreyv1.Nack{Revision: v2, Error: "listen tcp 127.0.0.1:2526: bind: address already in use"}}})
	rt := waitStatus(t, c.store, id, func(rt *ospreyv1.SensorRuntime) bool { return rt.GetLastError() != "" })
	if rt.GetAppliedVersion() != v1 || rt.GetNackVersion() != v2 {
		t.Errorf("after a nack: applied %d, nack %d; want %d still applied and %d refused", rt.GetAppliedVersion(), rt.GetNackVersion(), v1, v2)
	}
	v3, err := c.store.PutSMTP(ctx, all, id, smtpConfig("127.0.0.1:2527"), store.AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	s.next(t)
	s.send(t, &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Ack{Ack: &ospreyv1.Ack{Revision: v3}}})
	waitStatus(t, c.store, id, func(rt *ospreyv1.SensorRuntime) bool { return rt.GetAppliedVersion() == v3 && rt.GetLastError() == "" })

	// Revocation cuts the stream at once, and a new stream is refused.
	sn, ver, _ = c.store.GetSensor(ctx, all, id)
	sn.State = ospreyv1.SensorState_SENSOR_STATE_REVOKED
	if _, err := c.store.UpdateSensor(ctx, all, sn, ver); err != nil {
		t.Fatal(err)
	}
	if err := s.ended(t); code(err) != codes.PermissionDenied {
		t.Errorf("revoked stream ended with %v, want PermissionDenied", err)
	}
	waitStatus(t, c.store, id, func(rt *ospreyv1.SensorRuntime) bool { return !rt.GetOnline() })
	if err := connect(t, client, v3).ended(t); code(err) != codes.PermissionDenied {
		t.Errorf("revoked sensor reconnecting: got %v, want PermissionDenied", err)
	}
}

func TestConnectRefusesCertificatesOfAnotherCluster(t *testing.T) {
	c := newCluster(t, 0)
	other := newCluster(t, 0)
	e, err := other.enroll(t, other.joinToken(t, 1, time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.dial(t, &e.cert).Connect(t.Context())
	if err == nil {
		_, err = s.Recv()
	}
	if err == nil {
		t.Fatal("a certificate of another cluster was accepted")
	}
	if _, err := c.dial(t, nil).Upload(t.Context()); err == nil {
		s, _ := c.dial(t, nil).Upload(t.Context())
		if _, err := s.CloseAndRecv(); code(err) != codes.Unauthenticated {
			t.Errorf("upload without a certificate: got %v, want Unauthenticated", err)
		}
	}
}

func TestRenewalOverTheStream(t *testing.T) {
	c := newCluster(t, time.Hour)
	e, err := c.enroll(t, c.joinToken(t, 1, time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	s := connect(t, c.dial(t, &e.cert), 0)
	key, _ := pki.GenerateKey()
	csr, _ := pki.NewCSR(key, "renew")
	s.send(t, &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Renew{Renew: &ospreyv1.RenewRequest{Csr: csr}}})
	renewed := s.next(t).GetRenewed()
	if renewed == nil {
		t.Fatal("no renewed certificate")
	}
	leaf, err := x509.ParseCertificate(renewed.GetCertificate())
	if err != nil {
		t.Fatal(err)
	}
	id, err := pki.IdentityFromCert(leaf)
	if err != nil || id.SensorID != e.resp.GetSensorId() {
		t.Errorf("renewed identity %v (%v), want %s", id, err, e.resp.GetSensorId())
	}
	// The new certificate opens a stream of its own.
	cert := tls.Certificate{Certificate: [][]byte{renewed.GetCertificate()}, PrivateKey: key}
	connect(t, c.dial(t, &cert), 0)
	waitStatus(t, c.store, id.SensorID, func(rt *ospreyv1.SensorRuntime) bool { return rt.GetOnline() })
	// A replayed renewal key is refused.
	s.send(t, &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Renew{Renew: &ospreyv1.RenewRequest{Csr: csr}}})
	if err := s.ended(t); code(err) != codes.AlreadyExists {
		t.Errorf("renewal with a used key: got %v, want AlreadyExists", err)
	}
}

func TestUploadIsIdempotent(t *testing.T) {
	c := newCluster(t, 0)
	ctx := t.Context()
	e, err := c.enroll(t, c.joinToken(t, 1, time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	id := e.resp.GetSensorId()
	client := c.dial(t, &e.cert)
	upload := func(msgID string, body []byte) (*ospreyv1.UploadResponse, error) {
		return sendUpload(ctx, client, &ospreyv1.UploadHeader{MessageId: msgID}, body)
	}
	if _, err := upload("m1", []byte("Subject: x\r\n\r\nhi\r\n")); code(err) != codes.FailedPrecondition {
		t.Errorf("upload of a pending sensor: got %v, want FailedPrecondition", err)
	}
	sn, ver, _ := c.store.GetSensor(ctx, store.AllTenants(), id)
	sn.State = ospreyv1.SensorState_SENSOR_STATE_APPROVED
	if _, err := c.store.UpdateSensor(ctx, store.AllTenants(), sn, ver); err != nil {
		t.Fatal(err)
	}
	msg := []byte("Subject: x\r\n\r\nhello\r\n")
	r1, err := upload("m1", msg)
	if err != nil || r1.GetDuplicate() {
		t.Fatalf("first upload: %v, %v; want recorded", r1, err)
	}
	r2, err := upload("m1", msg)
	if err != nil || !r2.GetDuplicate() || r2.GetVerdict() != r1.GetVerdict() {
		t.Fatalf("retry: %v, %v; want a duplicate with the same verdict", r2, err)
	}
	if n, err := c.db.CountMessages(ctx, store.AllTenants(), "acme", id); err != nil || n != 1 {
		t.Errorf("records: %d, %v; want exactly 1", n, err)
	}
	if _, err := upload("m2", msg[:5]); err != nil {
		t.Errorf("short message: %v", err)
	}
	// A body that does not match its declared size is refused, and nothing is recorded.
	s, err := client.Upload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Send(&ospreyv1.UploadRequest{Msg: &ospreyv1.UploadRequest_Header{Header: &ospreyv1.UploadHeader{MessageId: "m3", Size: 100}}})
	s.Send(&ospreyv1.UploadRequest{Msg: &ospreyv1.UploadRequest_Chunk{Chunk: []byte("short")}})
	if _, err := s.CloseAndRecv(); code(err) != codes.InvalidArgument {
		t.Errorf("truncated upload: got %v, want InvalidArgument", err)
	}
	if _, err := c.db.GetMessage(ctx, store.AllTenants(), "acme", id, "m3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("truncated upload recorded: %v", err)
	}
}
