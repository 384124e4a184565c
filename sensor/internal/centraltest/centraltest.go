// Package centraltest runs the central side of the sensor protocol for the
// sensor's tests: a real gRPC SensorService on loopback, with a real cluster
// CA, mutual TLS (tls.VerifyClientCertIfGiven, and the identity checked on
// every Connect), enrollment by join token, approval states, certificate
// renewal, and uploads (kept in memory, idempotent by message id). The test
// drives each Connect stream through a [Stream]: it sends configurations
// and reads what the sensor answers.
//
// It is a stand-in for the central node, which the sensor's packages may not
// import, as httptest is for a web server. The server can be stopped and
// started again on the same address ([Server.Stop], [Server.Start]): one
// listener stays bound for the whole test and hands connections to whichever
// gRPC server is up, or closes them while none is.
package centraltest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/ospreysec/osprey/pkg/jointoken"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Wait bounds every wait of this package's helpers.
const Wait = 20 * time.Second

// Tenant is the tenant of every sensor the server enrolls.
const Tenant = "tenant-1"

// Options configure a [Server].
type Options struct {
	// CA is the cluster CA; nil makes one.
	CA *pki.CA
	// ServerCertificate, when set, is presented instead of a serving
	// certificate from CA: a man in the middle.
	ServerCertificate *tls.Certificate
	// ClientValidity is the validity of the certificates issued at
	// enrollment, and RenewValidity of those issued by renewal; zero means
	// a day.
	ClientValidity, RenewValidity time.Duration
	// Approve makes enrolled sensors approved at once rather than pending.
	Approve bool
}

// Server is a running test central. Its methods may be called from any
// goroutine.
type Server struct {
	CA *pki.CA

	t        testing.TB
	opts     Options
	tlsCert  tls.Certificate
	lis      net.Listener
	streams  chan *Stream
	wg       sync.WaitGroup
	acceptWG sync.WaitGroup

	mu      sync.Mutex
	srv     *grpc.Server
	cur     *chanListener
	tokens  map[string][]byte // join token id → hash of its secret
	sensors map[string]ospreyv1.SensorState
	enrolls int
	uploads map[string][]byte // message id → bytes
	// attempts holds the uploads read, by message id: whether each said it
	// may be a retry. refuse is set by RefuseUploads.
	attempts map[string][]bool
	refuse   func(id string) error
	// uploaded is closed, and replaced, when an upload is read and when a
	// message is recorded.
	uploaded chan struct{}
	// paused, while uploads are paused, is closed by ResumeUploads.
	paused chan struct{}
}

// NewServer starts a test central on 127.0.0.1 and stops it when the test
// ends.
func NewServer(t testing.TB, opts Options) *Server {
	t.Helper()
	ca := opts.CA
	if ca == nil {
		var err error
		if ca, err = pki.NewCA("centraltest CA", 0); err != nil {
			t.Fatal(err)
		}
	}
	if opts.ClientValidity == 0 {
		opts.ClientValidity = 24 * time.Hour
	}
	if opts.RenewValidity == 0 {
		opts.RenewValidity = 24 * time.Hour
	}
	var cert tls.Certificate
	if opts.ServerCertificate != nil {
		cert = *opts.ServerCertificate
	} else {
		cert = ServerCertificate(t, ca)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		CA:       ca,
		t:        t,
		opts:     opts,
		tlsCert:  cert,
		lis:      lis,
		streams:  make(chan *Stream, 16),
		tokens:   map[string][]byte{},
		sensors:  map[string]ospreyv1.SensorState{},
		uploads:  map[string][]byte{},
		attempts: map[string][]bool{},
		uploaded: make(chan struct{}),
	}
	s.acceptWG.Go(s.acceptLoop)
	s.Start()
	t.Cleanup(s.close)
	return s
}

// ServerCertificate makes a serving certificate from ca for 127.0.0.1, with
// the chain a central node serves (leaf, CA).
func ServerCertificate(t testing.TB, ca *pki.CA) tls.Certificate {
	t.Helper()
	key, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.SignServer(key.Public(), []string{"127.0.0.1", "localhost"}, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.TLSCertificate(der, key)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// Addr is the server's address, host:port.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Token makes a join token for the server's CA that Enroll accepts.
func (s *Server) Token() jointoken.Token {
	tok, err := jointoken.Generate(pki.SPKIHash(s.CA.Cert))
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tok.ID] = jointoken.SecretHash(tok.Secret)
	return tok
}

// Enrolls is how many enrollments the server granted.
func (s *Server) Enrolls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enrolls
}

// SetState sets a sensor's administrative state; it takes effect on the
// sensor's next stream.
func (s *Server) SetState(sensorID string, state ospreyv1.SensorState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sensors[sensorID] = state
}

// Start starts serving again after [Server.Stop]. NewServer starts it.
func (s *Server) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.CA.Cert)
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{s.tlsCert},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    pool,
		})),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 5 * time.Second, Timeout: 5 * time.Second}),
		grpc.WaitForHandlers(true),
	)
	ospreyv1.RegisterSensorServiceServer(srv, &service{s: s})
	cl := &chanListener{addr: s.lis.Addr(), conns: make(chan net.Conn), done: make(chan struct{})}
	s.srv, s.cur = srv, cl
	s.wg.Go(func() { _ = srv.Serve(cl) })
}

// Stop stops serving: every stream ends (the sensor sees Unavailable) and
// new connections are closed at once, until [Server.Start].
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv, s.cur = nil, nil
	s.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
	s.wg.Wait()
}

func (s *Server) close() {
	s.Stop()
	s.lis.Close()
	s.acceptWG.Wait()
}

func (s *Server) acceptLoop() {
	for {
		c, err := s.lis.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		cl := s.cur
		s.mu.Unlock()
		if cl == nil {
			c.Close()
			continue
		}
		select {
		case cl.conns <- c:
		case <-cl.done:
			c.Close()
		}
	}
}

// NextStream returns the next Connect stream the server accepted (from an
// approved sensor, after its Hello).
func (s *Server) NextStream(t testing.TB) *Stream {
	t.Helper()
	select {
	case st := <-s.streams:
		return st
	case <-time.After(Wait):
		t.Fatalf("no Connect stream within %v", Wait)
		return nil
	}
}

// Streams returns the Connect streams as the server accepts them, for a
// test that waits for one and for something else at once; NextStream takes
// from it too.
func (s *Server) Streams() <-chan *Stream { return s.streams }

// PauseUploads makes the server hold every upload it has read, unanswered
// and not recorded, until ResumeUploads or the upload's end: a central that
// the sensor reaches but that takes nothing, while the test looks at the
// sensor with its backlog.
func (s *Server) PauseUploads() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused == nil {
		s.paused = make(chan struct{})
	}
}

// ResumeUploads answers the uploads held since PauseUploads, and the next
// ones at once.
func (s *Server) ResumeUploads() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused != nil {
		close(s.paused)
		s.paused = nil
	}
}

// RefuseUploads makes the server answer each upload for which refuse
// returns an error with that error (a gRPC status error) instead of
// recording it; nil takes every message again.
func (s *Server) RefuseUploads(refuse func(id string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = refuse
}

// Attempts returns how many uploads of message id the server read, whatever
// their answer.
func (s *Server) Attempts(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.attempts[id])
}

// MayBeRetry returns, for each upload of message id the server read, in
// order, whether its header said that it may be a retry.
func (s *Server) MayBeRetry(id string) []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts[id])
}

// WaitAttempts waits until the server read at least n uploads of message
// id.
func (s *Server) WaitAttempts(t testing.TB, id string, n int) {
	t.Helper()
	timeout := time.After(Wait)
	for {
		s.mu.Lock()
		got, changed := len(s.attempts[id]), s.uploaded
		s.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("WaitAttempts: %d uploads of %s within %v, want %d", got, id, Wait, n)
		}
	}
}

// Client returns a client of the server with a certificate for sensor id
// of Tenant, as an enrolled sensor has, over a connection closed when the
// test ends.
func (s *Server) Client(t testing.TB, sensorID string) ospreyv1.SensorServiceClient {
	t.Helper()
	key, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, sensorID)
	if err != nil {
		t.Fatal(err)
	}
	der, err := s.CA.SignClient(csr, pki.Identity{Tenant: Tenant, SensorID: sensorID}, s.opts.ClientValidity, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := s.CA.TLSCertificate(der, key)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(s.CA.Cert)
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      roots,
		ServerName:   "127.0.0.1",
		MinVersion:   tls.VersionTLS13,
	})
	conn, err := grpc.NewClient(s.Addr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ospreyv1.NewSensorServiceClient(conn)
}

// WaitUploads waits until the server recorded at least n messages, and
// returns them by id.
func (s *Server) WaitUploads(t testing.TB, n int) map[string][]byte {
	t.Helper()
	timeout := time.After(Wait)
	for {
		s.mu.Lock()
		got, changed := len(s.uploads), s.uploaded
		if got >= n {
			out := maps.Clone(s.uploads)
			s.mu.Unlock()
			return out
		}
		s.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("WaitUploads: %d messages uploaded within %v, want %d", got, Wait, n)
			return nil
		}
	}
}

// Stream is one Connect stream, as the test sees it.
type Stream struct {
	// Identity is the sensor's, from its client certificate, and
	// Fingerprint that certificate's.
	Identity    pki.Identity
	Fingerprint string
	// Hello is the sensor's first message.
	Hello *ospreyv1.Hello

	out      chan *ospreyv1.ConnectResponse
	in       chan *ospreyv1.ConnectRequest
	statuses chan *ospreyv1.SensorStatus
	renewed  chan string
	end      chan error
	done     chan struct{}
}

// Done is closed when the stream has ended.
func (st *Stream) Done() <-chan struct{} { return st.done }

// SendConfig sends a configuration snapshot to the sensor.
func (st *Stream) SendConfig(t testing.TB, cfg *ospreyv1.SensorConfig) {
	t.Helper()
	select {
	case st.out <- &ospreyv1.ConnectResponse{Msg: &ospreyv1.ConnectResponse_Config{Config: cfg}}:
	case <-st.done:
		t.Fatal("SendConfig: the stream has ended")
	case <-time.After(Wait):
		t.Fatalf("SendConfig: not sent within %v", Wait)
	}
}

// Send sends m to the sensor, as a central's stream would.
func (st *Stream) Send(t testing.TB, m *ospreyv1.ConnectResponse) {
	t.Helper()
	select {
	case st.out <- m:
	case <-st.done:
		t.Fatal("Send: the stream has ended")
	case <-time.After(Wait):
		t.Fatalf("Send: not sent within %v", Wait)
	}
}

// SendRequest sends an operator's request to the sensor.
func (st *Stream) SendRequest(t testing.TB, req *ospreyv1.SensorRequest) {
	t.Helper()
	select {
	case st.out <- &ospreyv1.ConnectResponse{Msg: &ospreyv1.ConnectResponse_Request{Request: req}}:
	case <-st.done:
		t.Fatal("SendRequest: the stream has ended")
	case <-time.After(Wait):
		t.Fatalf("SendRequest: not sent within %v", Wait)
	}
}

// Next returns the sensor's next message other than a status or a renewal
// (which the server answers itself).
func (st *Stream) Next(t testing.TB) *ospreyv1.ConnectRequest {
	t.Helper()
	select {
	case m := <-st.in:
		return m
	case <-st.done:
		t.Fatal("Next: the stream has ended")
	case <-time.After(Wait):
		t.Fatalf("Next: no message within %v", Wait)
	}
	return nil
}

// NextStatus returns the next status the sensor sent.
func (st *Stream) NextStatus(t testing.TB) *ospreyv1.SensorStatus {
	t.Helper()
	select {
	case m := <-st.statuses:
		return m
	case <-st.done:
		t.Fatal("NextStatus: the stream has ended")
	case <-time.After(Wait):
		t.Fatalf("NextStatus: no status within %v", Wait)
	}
	return nil
}

// Renewed returns the fingerprint of the next certificate the server issued
// on this stream by renewal.
func (st *Stream) Renewed(t testing.TB) string {
	t.Helper()
	select {
	case fp := <-st.renewed:
		return fp
	case <-time.After(Wait):
		t.Fatalf("Renewed: no renewal within %v", Wait)
		return ""
	}
}

// End ends the stream with err (a status error, or nil for OK).
func (st *Stream) End(err error) {
	select {
	case st.end <- err:
	default:
	}
}

type service struct {
	ospreyv1.UnimplementedSensorServiceServer
	s *Server
}

func (v *service) Enroll(_ context.Context, req *ospreyv1.EnrollRequest) (*ospreyv1.EnrollResponse, error) {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	hash, ok := s.tokens[req.GetTokenId()]
	if !ok || !jointoken.Verify(req.GetTokenSecret(), hash) {
		return nil, status.Error(codes.Unauthenticated, "unknown join token")
	}
	id := pki.Identity{Tenant: Tenant, SensorID: fmt.Sprintf("sensor-%d", len(s.sensors)+1)}
	der, err := s.CA.SignClient(req.GetCsr(), id, s.opts.ClientValidity, time.Now())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	state := ospreyv1.SensorState_SENSOR_STATE_PENDING
	if s.opts.Approve {
		state = ospreyv1.SensorState_SENSOR_STATE_APPROVED
	}
	s.sensors[id.SensorID] = state
	s.enrolls++
	return &ospreyv1.EnrollResponse{
		SensorId:      id.SensorID,
		Tenant:        id.Tenant,
		Certificate:   der,
		CaCertificate: s.CA.Cert.Raw,
		Fingerprint:   pki.Fingerprint(der),
		State:         state,
	}, nil
}

func (v *service) Connect(stream ospreyv1.SensorService_ConnectServer) error {
	s := v.s
	ctx := stream.Context()
	id, leaf, err := peerIdentity(ctx)
	if err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	s.mu.Lock()
	state := s.sensors[id.SensorID]
	s.mu.Unlock()
	switch state {
	case ospreyv1.SensorState_SENSOR_STATE_APPROVED:
	case ospreyv1.SensorState_SENSOR_STATE_PENDING:
		return status.Error(codes.FailedPrecondition, "sensor is pending approval")
	case ospreyv1.SensorState_SENSOR_STATE_REVOKED:
		return status.Error(codes.PermissionDenied, "sensor is revoked")
	default:
		return status.Error(codes.PermissionDenied, "unknown sensor")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if first.GetHello() == nil {
		return status.Error(codes.InvalidArgument, "first message is not Hello")
	}
	st := &Stream{
		Identity:    id,
		Fingerprint: pki.Fingerprint(leaf.Raw),
		Hello:       first.GetHello(),
		out:         make(chan *ospreyv1.ConnectResponse),
		in:          make(chan *ospreyv1.ConnectRequest, 64),
		statuses:    make(chan *ospreyv1.SensorStatus, 64),
		renewed:     make(chan string, 8),
		end:         make(chan error, 1),
		done:        make(chan struct{}),
	}
	defer close(st.done)

	// Recv returns once the handler has returned, so the server, not the
	// handler, waits for this goroutine.
	recv := make(chan *ospreyv1.ConnectRequest)
	recvErr := make(chan error, 1)
	s.wg.Go(func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case recv <- m:
			case <-ctx.Done():
				return
			}
		}
	})
	select {
	case s.streams <- st:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		select {
		case m := <-st.out:
			if err := stream.Send(m); err != nil {
				return err
			}
		case err := <-st.end:
			return err
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case m := <-recv:
			switch msg := m.GetMsg().(type) {
			case *ospreyv1.ConnectRequest_Status:
				select {
				case st.statuses <- msg.Status:
				default: // nobody reads them
				}
			case *ospreyv1.ConnectRequest_Renew:
				der, err := s.CA.SignClient(msg.Renew.GetCsr(), id, s.opts.RenewValidity, time.Now())
				if err != nil {
					return status.Error(codes.InvalidArgument, err.Error())
				}
				if err := stream.Send(&ospreyv1.ConnectResponse{Msg: &ospreyv1.ConnectResponse_Renewed{
					Renewed: &ospreyv1.RenewResponse{Certificate: der},
				}}); err != nil {
					return err
				}
				st.renewed <- pki.Fingerprint(der)
			default:
				select {
				case st.in <- m:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}
}

// Upload records a message, once per id (after PauseUploads, only once
// ResumeUploads is called), and answers it.
func (v *service) Upload(stream ospreyv1.SensorService_UploadServer) error {
	s := v.s
	ctx := stream.Context()
	if _, _, err := peerIdentity(ctx); err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	var hdr *ospreyv1.UploadHeader
	var body []byte
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		switch msg := m.GetMsg().(type) {
		case *ospreyv1.UploadRequest_Header:
			if hdr != nil {
				return status.Error(codes.InvalidArgument, "a second header")
			}
			hdr = msg.Header
		case *ospreyv1.UploadRequest_Chunk:
			if hdr == nil {
				return status.Error(codes.InvalidArgument, "a chunk before the header")
			}
			body = append(body, msg.Chunk...)
		}
	}
	if hdr.GetMessageId() == "" {
		return status.Error(codes.InvalidArgument, "no header with a message id")
	}
	if int64(len(body)) != hdr.GetSize() {
		return status.Errorf(codes.InvalidArgument, "%d bytes, the header says %d", len(body), hdr.GetSize())
	}
	s.mu.Lock()
	s.attempts[hdr.GetMessageId()] = append(s.attempts[hdr.GetMessageId()], hdr.GetMayBeRetry())
	close(s.uploaded)
	s.uploaded = make(chan struct{})
	refuse := s.refuse
	paused := s.paused
	s.mu.Unlock()
	if refuse != nil {
		if err := refuse(hdr.GetMessageId()); err != nil {
			return err
		}
	}
	if paused != nil {
		select {
		case <-paused:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	s.mu.Lock()
	_, dup := s.uploads[hdr.GetMessageId()]
	if !dup {
		s.uploads[hdr.GetMessageId()] = body
		close(s.uploaded)
		s.uploaded = make(chan struct{})
	}
	s.mu.Unlock()
	return stream.SendAndClose(&ospreyv1.UploadResponse{MessageId: hdr.GetMessageId(), Duplicate: dup})
}

// peerIdentity is the sensor identity of the client certificate that TLS
// verified against the cluster CA.
func peerIdentity(ctx context.Context) (pki.Identity, *x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return pki.Identity{}, nil, errors.New("no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return pki.Identity{}, nil, errors.New("not TLS")
	}
	if len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return pki.Identity{}, nil, errors.New("a client certificate is required")
	}
	leaf := info.State.VerifiedChains[0][0]
	id, err := pki.IdentityFromCert(leaf)
	if err != nil {
		return pki.Identity{}, nil, err
	}
	return id, leaf, nil
}

// chanListener is the listener of one gRPC server: it accepts what
// acceptLoop hands it.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
