package tests

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/clusterca"
	"github.com/ospreysec/osprey/central/sensorsvc"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/clocktest"
	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/jointoken"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/agent"
	"github.com/ospreysec/osprey/sensor/schedule"
	"github.com/ospreysec/osprey/sensor/spool"
	"github.com/ospreysec/osprey/sensor/upload"
)

// These tests put a branch sensor (the real agent, spool and uploader) in
// front of a Central Node's sensor service (the real service over an
// embedded etcd, with the cluster CA and mutual TLS on loopback), through a
// link the test cuts and restores. Time is a clock the test moves: the
// central issues certificates by it, its TLS stack checks the sensors'
// certificates by it, and the sensor's agent reads it; so "offline for a
// weekend" takes no real time.

// branchTenant is the tenant of the branch sensors.
const branchTenant = "acme"

// certCentral is the central side of the branch tests.
type certCentral struct {
	store *store.Store
	db    *sqlstore.Store
	ca    *pki.CA
	clock *clocktest.Clock
	link  *link
}

// startCertCentral serves the sensor service with opts (the certificate
// lifetimes; the rest is filled in), and a link to it.
func startCertCentral(t *testing.T, clock *clocktest.Clock, opts sensorsvc.Options) *certCentral {
	t.Helper()
	st := store.New(etcdtest.Client(t))
	if _, err := st.CreateTenant(t.Context(), store.AllTenants(), &ospreyv1.Tenant{Id: branchTenant, Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewCA("branch test CA", 0)
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
	db, err := sqlstore.Open(t.Context(), sqlstore.Options{URL: filepath.Join(t.TempDir(), "osprey.db"), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opts.Store, opts.Messages, opts.Configs, opts.CA, opts.NodeName, opts.Status, opts.Now = st, db, hub, ca, "n1", sw, clock.Now
	opts.SpillDir, opts.Logger = t.TempDir(), slog.New(slog.DiscardHandler)
	svc := sensorsvc.New(opts)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cert.GetCertificate,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      pool,
		Time:           clock.Now,
	})))
	svc.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		svc.Shutdown()
		srv.Stop()
		<-served
		cancel()
		<-swDone
		<-hubDone
	})
	return &certCentral{store: st, db: db, ca: ca, clock: clock, link: newLink(t, ln.Addr().String())}
}

// joinToken makes a join token of the branch tenant.
func (c *certCentral) joinToken(t *testing.T) jointoken.Token {
	t.Helper()
	jt, err := jointoken.Generate(pki.SPKIHash(c.ca.Cert))
	if err != nil {
		t.Fatal(err)
	}
	tok := &ospreyv1.Token{Id: jt.ID, Kind: ospreyv1.TokenKind_TOKEN_KIND_JOIN, Tenant: branchTenant,
		SecretHash: jointoken.SecretHash(jt.Secret), MaxUses: 1, UsesLeft: 1, CreatedAt: timestamppb.Now()}
	if _, err := c.store.CreateToken(t.Context(), store.AllTenants(), tok); err != nil {
		t.Fatal(err)
	}
	return jt
}

// setState sets a sensor's administrative state, as an administrator does.
func (c *certCentral) setState(t *testing.T, id string, state ospreyv1.SensorState) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		sn, version, err := c.store.GetSensor(t.Context(), store.AllTenants(), id)
		if err != nil {
			t.Fatal(err)
		}
		sn.State = state
		_, err = c.store.UpdateSensor(t.Context(), store.AllTenants(), sn, version)
		if errors.Is(err, store.ErrConflict) && attempt < 5 {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
}

// sensorRecord returns the central's record of a sensor.
func (c *certCentral) sensorRecord(t *testing.T, id string) *ospreyv1.Sensor {
	t.Helper()
	sn, _, err := c.store.GetSensor(t.Context(), store.AllTenants(), id)
	if err != nil {
		t.Fatal(err)
	}
	return sn
}

// branchSensor is a sensor in a branch office: its agent, spool and
// uploader, running until the test ends.
type branchSensor struct {
	id    *agent.Identity
	dir   string
	agent *agent.Agent
	spool *spool.Spool
	logs  *syncBuffer
}

// startBranchSensor enrolls a sensor through the link, has it approved, and
// runs it with the agent reading clock (agentClock, when not nil, instead of
// the central's).
func (c *certCentral) startBranchSensor(t *testing.T, agentClock func() time.Time) *branchSensor {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sensor")
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	id, err := agent.Enroll(t.Context(), agent.EnrollOptions{
		Target: c.link.Addr(), Token: c.joinToken(t), Name: "branch-1", DataDir: dir, Logger: log,
	})
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	c.setState(t, id.SensorID, ospreyv1.SensorState_SENSOR_STATE_APPROVED)
	if agentClock == nil {
		agentClock = c.clock.Now
	}
	sp, err := spool.Open(spool.Options{Dir: filepath.Join(dir, "spool"), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	retry := func(int, error) time.Duration { return 20 * time.Millisecond }
	a, err := agent.New(agent.Options{
		DataDir: dir, Applier: agent.ApplierFunc(func(context.Context, *ospreyv1.SensorConfig) error { return nil }),
		Logger: log, Now: agentClock, Retry: retry,
	})
	if err != nil {
		t.Fatal(err)
	}
	up := upload.New(upload.Options{Spool: sp, Client: a.Client, Logger: log, Unreachable: schedule.Backoff{Min: 20 * time.Millisecond, Max: 20 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.Run(ctx); err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	wg.Go(func() {
		if err := up.Run(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("uploader: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		sp.Close()
		if t.Failed() {
			t.Logf("sensor: state %+v; log:\n%s", a.State(), logs)
		}
	})
	return &branchSensor{id: id, dir: dir, agent: a, spool: sp, logs: logs}
}

// waitAgent waits until cond holds for the agent's state, waking at every
// change of it, for at most testwait.Timeout.
func (s *branchSensor) waitAgent(t *testing.T, what string, cond func(agent.State) bool) agent.State {
	t.Helper()
	timeout := time.After(testwait.Timeout)
	for {
		changed := s.agent.Changed()
		if st := s.agent.State(); cond(st) {
			return st
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("sensor: %s not within %v", what, testwait.Timeout)
		}
	}
}

// spoolMail puts n messages into the sensor's spool, as its SMTP server does
// with mail it takes.
func (s *branchSensor) spoolMail(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		msg := fmt.Sprintf("From: a@example.org\r\nTo: b@example.com\r\nSubject: while away %d\r\n\r\nhello\r\n", i)
		_, err := s.spool.Put(t.Context(), spool.Meta{
			Source:   ospreyv1.MailSource_MAIL_SOURCE_SMTP,
			Envelope: &ospreyv1.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.com"}},
		}, strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
	}
}

// waitUploaded waits until the central recorded n messages of the sensor and
// the sensor's spool is empty.
func (c *certCentral) waitUploaded(t *testing.T, s *branchSensor, n int) {
	t.Helper()
	testwait.For(t, fmt.Sprintf("%d messages recorded and none left in the spool", n), func() bool {
		got, err := c.db.CountMessages(t.Context(), store.AllTenants(), branchTenant, s.id.SensorID)
		if err != nil {
			t.Fatal(err)
		}
		return got == int64(n) && len(s.spool.List()) == 0
	})
}

// TestSensorOfflinePastCertificateExpiryComesBack: a branch sensor whose
// link is down for longer than its certificate lives takes mail meanwhile;
// when the link is back it gets a fresh certificate by itself, uploads that
// mail, and holds its stream again. Nobody re-enrolls it.
func TestSensorOfflinePastCertificateExpiryComesBack(t *testing.T) {
	clock := clocktest.New(time.Now())
	c := startCertCentral(t, clock, sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: time.Hour}})
	s := c.startBranchSensor(t, nil)
	s.waitAgent(t, "connected", func(st agent.State) bool { return st.Connected })
	enrolled := s.id.Fingerprint

	// The link goes down for a long weekend; mail keeps coming in.
	c.link.Cut()
	s.waitAgent(t, "disconnected", func(st agent.State) bool { return !st.Connected })
	s.spoolMail(t, 5)
	clock.Advance(72 * time.Hour)
	c.link.Restore()

	c.waitUploaded(t, s, 5)
	st := s.waitAgent(t, "connected with a new certificate", func(st agent.State) bool {
		return st.Connected && st.Fingerprint != enrolled
	})
	if want := clock.Now().Add(time.Hour); st.NotAfter.Before(want.Add(-time.Minute)) || st.NotAfter.After(want) {
		t.Errorf("new certificate expires %v, want %v (an hour from the central's now)", st.NotAfter, want)
	}
	if got := c.sensorRecord(t, s.id.SensorID).GetCertFingerprint(); got != st.Fingerprint {
		t.Errorf("central's record: certificate %s, want the sensor's new %s", got, st.Fingerprint)
	}
	stored, err := agent.LoadIdentity(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Fingerprint != st.Fingerprint {
		t.Errorf("stored identity: certificate %s, want the one in use %s", stored.Fingerprint, st.Fingerprint)
	}
	if logs := s.logs.String(); strings.Contains(logs, "remove the identity dir") {
		t.Errorf("the sensor told its operator to enroll again, though it came back by itself:\n%s", logs)
	}
}

// TestRevokedSensorStaysOutAfterExpiry: a sensor revoked while it was
// offline past its certificate's expiry asks for a new certificate and is
// refused: it keeps its identity, gets nothing, and tells its operator what
// is left to do. Approved again, it comes back by itself.
func TestRevokedSensorStaysOutAfterExpiry(t *testing.T) {
	clock := clocktest.New(time.Now())
	c := startCertCentral(t, clock, sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: time.Hour}})
	s := c.startBranchSensor(t, nil)
	s.waitAgent(t, "connected", func(st agent.State) bool { return st.Connected })
	enrolled := s.id.Fingerprint

	c.link.Cut()
	s.waitAgent(t, "disconnected", func(st agent.State) bool { return !st.Connected })
	c.setState(t, s.id.SensorID, ospreyv1.SensorState_SENSOR_STATE_REVOKED)
	s.spoolMail(t, 2)
	clock.Advance(72 * time.Hour)
	c.link.Restore()

	st := s.waitAgent(t, "refused a new certificate", func(st agent.State) bool {
		return status.Code(st.LastError) == codes.PermissionDenied && strings.Contains(st.LastError.Error(), "reissue certificate")
	})
	if st.Connected || st.Fingerprint != enrolled {
		t.Errorf("revoked sensor: connected %v with certificate %s; want refused, with the enrolled %s", st.Connected, st.Fingerprint, enrolled)
	}
	if got := c.sensorRecord(t, s.id.SensorID).GetCertFingerprint(); got != enrolled {
		t.Errorf("central's record: certificate %s, want the enrolled %s (nothing issued)", got, enrolled)
	}
	if stored, err := agent.LoadIdentity(s.dir); err != nil || stored.Fingerprint != enrolled {
		t.Errorf("stored identity: %v, %v; want the enrolled certificate kept", stored, err)
	}
	if logs := s.logs.String(); !strings.Contains(logs, "remove the identity dir") {
		t.Errorf("the sensor did not tell its operator what is left to do:\n%s", logs)
	}
	if n, err := c.db.CountMessages(t.Context(), store.AllTenants(), branchTenant, s.id.SensorID); err != nil || n != 0 {
		t.Errorf("uploads of a revoked sensor: %d recorded (%v), want none", n, err)
	}

	c.setState(t, s.id.SensorID, ospreyv1.SensorState_SENSOR_STATE_APPROVED)
	c.waitUploaded(t, s, 2)
	s.waitAgent(t, "connected with a new certificate", func(st agent.State) bool { return st.Connected && st.Fingerprint != enrolled })
}

// TestSensorReissuesWhenTheCentralSaysItsCertificateExpired: the central's
// clock is ahead of the sensor's, so the central refuses a certificate the
// sensor still takes for valid; the sensor gets a new one all the same.
func TestSensorReissuesWhenTheCentralSaysItsCertificateExpired(t *testing.T) {
	now := time.Now()
	clock := clocktest.New(now)
	sensorClock := clocktest.New(now.Add(-2 * time.Minute))
	c := startCertCentral(t, clock, sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: time.Hour}})
	s := c.startBranchSensor(t, sensorClock.Now)
	s.waitAgent(t, "connected", func(st agent.State) bool { return st.Connected })
	enrolled := s.agent.State()

	c.link.Cut()
	s.waitAgent(t, "disconnected", func(st agent.State) bool { return !st.Connected })
	// Past the certificate's expiry by the central's clock, not by the
	// sensor's.
	advance := enrolled.NotAfter.Sub(clock.Now()) + time.Minute
	clock.Advance(advance)
	sensorClock.Advance(advance)
	if !sensorClock.Now().Before(enrolled.NotAfter) {
		t.Fatalf("the sensor's clock %v is past the certificate's expiry %v", sensorClock.Now(), enrolled.NotAfter)
	}
	s.spoolMail(t, 1)
	c.link.Restore()

	c.waitUploaded(t, s, 1)
	s.waitAgent(t, "connected with a new certificate", func(st agent.State) bool {
		return st.Connected && st.Fingerprint != enrolled.Fingerprint
	})
	if logs := s.logs.String(); !strings.Contains(logs, "refuses the client certificate as expired") {
		t.Errorf("the sensor did not say why it asked for a new certificate:\n%s", logs)
	}
}

// TestSensorRenewsWhenTheCentralSays: the renewal window is the central's
// setting; the sensor follows it.
func TestSensorRenewsWhenTheCentralSays(t *testing.T) {
	clock := clocktest.New(time.Now())
	c := startCertCentral(t, clock, sensorsvc.Options{Certs: sensorsvc.CertLifetime{Validity: time.Hour, RenewFrom: 10, RenewUntil: 10}})
	s := c.startBranchSensor(t, nil)
	s.waitAgent(t, "connected", func(st agent.State) bool { return st.Connected })
	enrolled := s.agent.State()

	// A tenth of the certificate's life (it is valid from five minutes
	// back) is behind it; the default window (60%) is far ahead.
	c.link.Cut()
	s.waitAgent(t, "disconnected", func(st agent.State) bool { return !st.Connected })
	clock.Advance(10 * time.Minute)
	c.link.Restore()

	st := s.waitAgent(t, "renewed on the stream", func(st agent.State) bool {
		return st.Connected && st.Fingerprint != enrolled.Fingerprint
	})
	if !st.NotAfter.After(enrolled.NotAfter) {
		t.Errorf("renewed certificate expires %v, want later than the enrolled one's %v", st.NotAfter, enrolled.NotAfter)
	}
	// The sensor's status told the central it has the new certificate, so
	// the enrolled one is superseded for good.
	testwait.For(t, "the central's record to hold the renewed certificate and no previous one", func() bool {
		rec := c.sensorRecord(t, s.id.SensorID)
		return rec.GetCertFingerprint() == st.Fingerprint && rec.GetPreviousCertFingerprint() == ""
	})
}

// link is a branch office's link to the central: a TCP forwarder on
// loopback that the test cuts and restores.
type link struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func newLink(t *testing.T, target string) *link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &link{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	l.wg.Go(l.accept)
	t.Cleanup(func() {
		ln.Close()
		l.Cut()
		l.wg.Wait()
	})
	return l
}

// Addr is where the sensor reaches the central.
func (l *link) Addr() string { return l.ln.Addr().String() }

// Cut closes every connection through the link, and every new one at once
// until Restore.
func (l *link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = true
	for c := range l.conns {
		c.Close()
	}
}

// Restore lets connections through again.
func (l *link) Restore() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = false
}

func (l *link) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Go(func() { l.forward(c) })
	}
}

// track adds conns to those Cut closes, unless the link is down.
func (l *link) track(conns ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return false
	}
	for _, c := range conns {
		l.conns[c] = struct{}{}
	}
	return true
}

func (l *link) forward(c net.Conn) {
	defer c.Close()
	if !l.track(c) {
		return
	}
	defer l.untrack(c)
	up, err := net.Dial("tcp", l.target)
	if err != nil {
		return
	}
	defer up.Close()
	if !l.track(up) {
		return
	}
	defer l.untrack(up)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); up.Close(); done <- struct{}{} }()
	go func() { io.Copy(c, up); c.Close(); done <- struct{}{} }()
	<-done
	<-done
}

func (l *link) untrack(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
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
