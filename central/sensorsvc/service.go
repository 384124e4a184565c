// Package sensorsvc is the Central Node's side of the SensorService gRPC
// contract: enrollment, the configuration stream, and (with the SMTP work)
// uploads.
//
// Design note. A Connect stream has one goroutine besides the handler's, as
// etcd's watch server does: a receive loop (acks, nacks, status reports,
// renewals); the handler runs the send loop, which owns stream.Send and follows the
// sensor's configuration through the node's store.ConfigHub (a snapshot,
// then the changes from the node's one shared watch). The send loop pushes
// full configurations tagged with their version only when the integrations
// actually changed. A pending sensor may hold its stream but gets nothing until an
// administrator approves it, so approval reaches it within a second; a revoked
// sensor's stream is ended with PermissionDenied the moment the revocation is
// written. An upload checks its sensor against the record the hub keeps of an
// approved sensor, current by the same watch, rather than reading etcd: a
// revocation refuses uploads within the watch's latency, as it ends the
// stream. Status goes to etcd through StatusWriter, batched, under the node's
// lease. A Balancer ends a few streams of a node that holds more than its
// share of the cluster's (see balance.go), and meanwhile Connect turns away
// new streams past that share, before any read of etcd.
//
// # Certificates
//
// A sensor's client certificate lives Options.Certs.Validity (a day by
// default). A sensor that asks for it (Hello.wants_certificate_policy) is
// told first on its stream when to renew: at a point between
// Options.Certs.RenewFrom and RenewUntil percent of the lifetime, fixed by
// the certificate itself so that a fleet does not renew at once. It renews
// over the stream with a CSR for a new key; every key is claimed once for
// good (ClaimPublicKey), so a replayed CSR is refused.
//
// The sensor record names the certificate the cluster last issued the
// sensor (cert_fingerprint, and its cert_not_before) and, until the sensor
// is seen with that one, the one it replaced (previous_cert_fingerprint).
// Only these two are current: a stream opened with any other is refused
// with PermissionDenied, and only a current certificate gets a new one. The
// older one stays current because an answer can be lost: the link may drop
// between the central recording a new certificate and the sensor receiving
// it, and the sensor must then be able to come back with the one it has. It
// stops being current as soon as the sensor shows it holds the newer one: a
// stream opened with it, or, on the stream that renewed, a status that names
// it (SensorStatus.cert_fingerprint). A stolen key of an older certificate
// is then useless. One exception: a certificate of the sensor's issued
// after the latest the record names (or when it names none) is current
// too, and becomes the latest when it opens a stream, because only a
// record restored from an older backup of etcd (or made outside
// enrollment) can be behind the certificates the cluster issued.
//
// A sensor that was offline past its certificate's expiry cannot open a
// stream: TLS refuses the certificate. Reissue is its way back, with no
// person involved. It runs over server-authenticated TLS, like Enroll, as a
// stream of three messages on one connection (so one node, with no state
// shared between nodes): the central sends 32 random bytes; the sensor
// answers with its certificate, a CSR for a new key, and a signature by the
// certificate's key over the nonce, the certificate and the CSR
// (pki.SignReissueProof); the central answers with the new certificate. The
// central checks first, without reading the store, that the CA signed the
// certificate and that it is a sensor's (pki.CA.VerifyIssuedClient, which
// ignores only the validity period), and that the signature verifies over
// this stream's nonce (so a proof cannot be replayed on another stream) and
// this CSR (so it cannot be moved to another key): Unauthenticated
// otherwise. Then it checks that the sensor still exists and is not revoked
// (PermissionDenied otherwise), is approved (FailedPrecondition while
// pending), and that the certificate is current (PermissionDenied). It
// claims the new key and records the new certificate in a write conditional
// on the record it checked, so a revocation or another renewal that comes
// in between wins. However long the sensor was away, it comes back;
// revocation is the way to cut it off. Every reissue, and every refusal of
// a certificate, is logged with the certificates' fingerprints.
package sensorsvc

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/sensorrpc"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// helloTimeout bounds the wait for a stream's first message.
const helloTimeout = 10 * time.Second

// Options configures the service.
type Options struct {
	Store *store.Store
	// Messages records the uploaded messages and their alerts.
	Messages *sqlstore.Store
	// Configs follows the sensors' configuration for the streams; the
	// node runs it.
	Configs  *store.ConfigHub
	CA       *pki.CA
	NodeName string
	Status   *StatusWriter
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Certs are the lifetimes of the client certificates the service
	// issues; zero fields take the defaults. See CertLifetime.Validate; New
	// takes them as they are, so that tests may issue certificates shorter
	// than a node would.
	Certs CertLifetime
	// Scanner gives uploaded messages their verdict; nil means Received.
	Scanner Scanner
	// SpillDir holds uploads too large to keep in memory; empty means os.TempDir.
	SpillDir string
	// Registerer receives the service's metrics.
	Registerer prometheus.Registerer
	// Requests hands the operators' requests to the sensors whose streams
	// this node holds, and their replies back; nil hands none.
	Requests *sensorrpc.Router
}

// Service implements ospreyv1.SensorServiceServer.
type Service struct {
	ospreyv1.UnimplementedSensorServiceServer

	store    *store.Store
	messages *sqlstore.Store
	configs  *store.ConfigHub
	ca       *pki.CA
	node     string
	status   *StatusWriter
	log      *slog.Logger
	now      func() time.Time
	validity time.Duration
	// renewFrom and renewUntil are the renewal window, in percent.
	renewFrom, renewUntil int

	shutdownOnce sync.Once
	shutdown     chan struct{}
	streams      streams

	scanner    Scanner
	spillDir   string
	requests   *sensorrpc.Router
	uploaded   prometheus.Counter
	duplicates prometheus.Counter
}

// New builds the service.
func New(opts Options) *Service {
	s := &Service{
		store: opts.Store, messages: opts.Messages, configs: opts.Configs, ca: opts.CA, node: opts.NodeName, status: opts.Status,
		log: opts.Logger, now: opts.Now, validity: opts.Certs.Validity,
		shutdown: make(chan struct{}),
		scanner:  opts.Scanner, spillDir: opts.SpillDir, requests: opts.Requests,
		uploaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "osprey_central_uploads_total", Help: "Messages uploaded by sensors and recorded (first time).",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "osprey_central_upload_duplicates_total", Help: "Uploads of a message already recorded (a retry after a lost acknowledgement).",
		}),
	}
	if s.scanner == nil {
		s.scanner = Received
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.uploaded, s.duplicates)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.validity == 0 {
		s.validity = DefaultCertValidity
	}
	s.renewFrom, s.renewUntil = opts.Certs.renewWindow()
	return s
}

// Shutdown ends every open configuration stream (with Unavailable, so sensors
// reconnect to another node), letting a graceful stop of the gRPC server finish.
func (s *Service) Shutdown() {
	s.shutdownOnce.Do(func() { close(s.shutdown) })
}

// Register adds the service to a gRPC server.
func (s *Service) Register(g *grpc.Server) { ospreyv1.RegisterSensorServiceServer(g, s) }

// identity is the authenticated sensor of a call: the identity of its
// verified client certificate.
func identity(ctx context.Context) (pki.Identity, *x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return pki.Identity{}, nil, status.Error(codes.Unauthenticated, "no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return pki.Identity{}, nil, status.Error(codes.Unauthenticated, "a client certificate of this cluster is required")
	}
	leaf := info.State.VerifiedChains[0][0]
	id, err := pki.IdentityFromCert(leaf)
	if err != nil {
		return pki.Identity{}, nil, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
	}
	return id, leaf, nil
}

// sensor loads the sensor of id from etcd and checks that it may connect:
// it exists and is not revoked.
func (s *Service) sensor(ctx context.Context, id pki.Identity) (*ospreyv1.Sensor, error) {
	sn, _, err := s.store.GetSensor(ctx, store.TenantScope(id.Tenant), id.SensorID)
	return admit(id, sn, err)
}

// admit checks that the sensor of id, as loaded (sn, err), may connect.
func admit(id pki.Identity, sn *ospreyv1.Sensor, err error) (*ospreyv1.Sensor, error) {
	if errors.Is(err, store.ErrNotFound) {
		return nil, unknownSensor(id)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	if sn.GetState() == ospreyv1.SensorState_SENSOR_STATE_REVOKED {
		return nil, status.Errorf(codes.PermissionDenied, "sensor %s is revoked", id.SensorID)
	}
	return sn, nil
}

// Connect serves a sensor's configuration stream.
func (s *Service) Connect(stream ospreyv1.SensorService_ConnectServer) error {
	ctx := stream.Context()
	id, leaf, err := identity(ctx)
	if err != nil {
		return err
	}
	if !s.streams.admit() {
		return errRebalance
	}
	sn, err := s.sensor(ctx, id)
	if err != nil {
		return err
	}
	if !current(sn, leaf) {
		return superseded(id)
	}
	if !settled(sn, leaf) {
		if err := s.confirmCert(ctx, id, leaf); err != nil {
			s.log.Warn("cannot record that a sensor holds its newest certificate; the one before stays usable until its next stream",
				"sensor", id.SensorID, "err", err)
		}
	}
	hello, err := recvHello(ctx, stream)
	if err != nil {
		return err
	}
	now := s.now()
	sess := s.status.open(&ospreyv1.SensorRuntime{
		SensorId:        id.SensorID,
		Tenant:          id.Tenant,
		Online:          true,
		Node:            s.node,
		ConnectedAt:     timestamppb.New(now),
		LastSeen:        timestamppb.New(now),
		AppliedVersion:  hello.GetAppliedRevision(),
		SoftwareVersion: hello.GetSoftwareVersion(),
		CertNotAfter:    timestamppb.New(leaf.NotAfter),
		Healthy:         true,
	})
	defer func() { sess.close(s.now()) }()
	log := s.log.With("sensor", id.SensorID, "tenant", id.Tenant)
	log.Info("sensor connected", "software", hello.GetSoftwareVersion(), "applied", hello.GetAppliedRevision())

	// The receive loop ends when the stream does, which is when this handler
	// returns (or when pctx ends); the push loop owns stream.Send and ends
	// before that.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	replies := make(chan *ospreyv1.ConnectResponse, 1)
	var requests <-chan *ospreyv1.SensorRequest // nil: none
	if s.requests != nil {
		var detach func()
		requests, detach = s.requests.Attach(pctx, id.SensorID)
		defer detach()
	}
	held, release := s.streams.hold()
	defer release()
	// The push loop runs on the handler's goroutine (one goroutine less
	// per stream) and ends the stream when the receive loop ends, the node
	// shuts down, or the Balancer moves the stream.
	recvErr := make(chan error, 1)
	go func() { recvErr <- s.receive(pctx, stream, id, leaf, sess, replies) }()
	err = s.push(pctx, stream, id, hello, replies, requests, streamEnds{recv: recvErr, moved: held.moved})
	cancel()
	if errors.Is(err, errStreamClosed) {
		err = nil
	}
	log.Info("sensor disconnected", "err", err)
	return err
}

var errStreamClosed = errors.New("the sensor closed its stream")

// streamEnds are what ends a stream's push loop besides its context: the
// receive loop's end (with why), and the Balancer's move.
type streamEnds struct {
	recv  <-chan error
	moved <-chan struct{}
}

func recvHello(ctx context.Context, stream ospreyv1.SensorService_ConnectServer) (*ospreyv1.Hello, error) {
	type result struct {
		msg *ospreyv1.ConnectRequest
		err error
	}
	ch := make(chan result, 1)
	go func() {
		msg, err := stream.Recv()
		ch <- result{msg, err}
	}()
	timer := time.NewTimer(helloTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		if r.msg.GetHello() == nil {
			return nil, status.Error(codes.InvalidArgument, "the first message of a stream must be hello")
		}
		return r.msg.GetHello(), nil
	case <-timer.C:
		// Returning ends the stream, which ends the Recv above.
		return nil, status.Errorf(codes.DeadlineExceeded, "no hello within %s", helloTimeout)
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// receive handles what the sensor sends until it closes the stream. held is
// the certificate the sensor holds: the stream's, then each one renewed on
// the stream; unconfirmed is the last renewed until the sensor's status says
// it has it.
func (s *Service) receive(ctx context.Context, stream ospreyv1.SensorService_ConnectServer, id pki.Identity, held *x509.Certificate, sess *session, replies chan<- *ospreyv1.ConnectResponse) error {
	var unconfirmed *x509.Certificate
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return errStreamClosed
		}
		if err != nil {
			return err
		}
		seen := timestamppb.New(s.now())
		switch m := msg.GetMsg().(type) {
		case *ospreyv1.ConnectRequest_Ack:
			sess.update(true, func(rt *ospreyv1.SensorRuntime) {
				rt.LastSeen = seen
				if v := m.Ack.GetRevision(); v >= rt.GetNackVersion() {
					rt.LastError, rt.NackVersion = "", 0
				}
				rt.AppliedVersion = m.Ack.GetRevision()
			})
		case *ospreyv1.ConnectRequest_Nack:
			s.log.Warn("sensor refused a configuration", "sensor", id.SensorID, "version", m.Nack.GetRevision(), "err", m.Nack.GetError())
			sess.update(true, func(rt *ospreyv1.SensorRuntime) {
				rt.LastSeen = seen
				rt.LastError = truncate(m.Nack.GetError(), 1024)
				rt.NackVersion = m.Nack.GetRevision()
			})
		case *ospreyv1.ConnectRequest_Status:
			st := boundStatus(m.Status)
			sess.update(false, func(rt *ospreyv1.SensorRuntime) {
				rt.LastSeen = seen
				rt.StatusAt = seen
				rt.Counters = st.GetCounters()
				rt.Healthy = st.GetHealthy()
				rt.Problems = st.GetProblems()
				rt.Smtp = st.GetSmtp()
				rt.Pop3 = st.GetPop3()
				rt.Spool = st.GetSpool()
				rt.Gateway = st.GetGateway()
			})
			if cert := unconfirmed; cert != nil && m.Status.GetCertFingerprint() == pki.Fingerprint(cert.Raw) {
				unconfirmed = nil
				if err := s.confirmCert(ctx, id, cert); err != nil {
					s.log.Warn("cannot record that a sensor holds its newest certificate; the one before stays usable until its next stream",
						"sensor", id.SensorID, "err", err)
				}
			}
		case *ospreyv1.ConnectRequest_Refusals:
			err := s.recordRefusals(ctx, id, m.Refusals.GetRefusals())
			if err := ackReport(ctx, replies, m.Refusals.GetSeq(), err); err != nil {
				return err
			}
		case *ospreyv1.ConnectRequest_Deliveries:
			err := s.recordDeliveries(ctx, id, m.Deliveries.GetAttempts())
			if err := ackReport(ctx, replies, m.Deliveries.GetSeq(), err); err != nil {
				return err
			}
		case *ospreyv1.ConnectRequest_Quarantine:
			err := s.recordQuarantineEvents(ctx, id, m.Quarantine.GetEvents())
			if err := ackReport(ctx, replies, m.Quarantine.GetSeq(), err); err != nil {
				return err
			}
		case *ospreyv1.ConnectRequest_Reply:
			if s.requests != nil {
				s.requests.Reply(ctx, m.Reply)
			}
		case *ospreyv1.ConnectRequest_Renew:
			cert, err := s.renew(ctx, id, held, m.Renew.GetCsr())
			if err != nil {
				return err
			}
			held, unconfirmed = cert, cert
			sess.update(true, func(rt *ospreyv1.SensorRuntime) {
				rt.LastSeen = seen
				rt.CertNotAfter = timestamppb.New(cert.NotAfter)
			})
			select {
			case replies <- &ospreyv1.ConnectResponse{Msg: &ospreyv1.ConnectResponse_Renewed{Renewed: &ospreyv1.RenewResponse{Certificate: cert.Raw}}}:
			case <-ctx.Done():
				return ctx.Err()
			}
		case *ospreyv1.ConnectRequest_Hello:
			return status.Error(codes.InvalidArgument, "hello sent twice")
		default:
			return status.Error(codes.InvalidArgument, "empty message")
		}
	}
}

// push sends the sensor the certificate policy when it asked for it, then
// its configuration, then every change, the replies the receive loop
// hands over, and the operators' requests; it is the only caller of
// stream.Send.
func (s *Service) push(ctx context.Context, stream ospreyv1.SensorService_ConnectServer, id pki.Identity, hello *ospreyv1.Hello, replies <-chan *ospreyv1.ConnectResponse, requests <-chan *ospreyv1.SensorRequest, end streamEnds) error {
	if hello.GetWantsReportAcks() {
		if err := stream.Send(&ospreyv1.ConnectResponse{Msg: &ospreyv1.ConnectResponse_Features{Features: &ospreyv1.StreamFeatures{ReportAcks: true}}}); err != nil {
			return err
		}
	}
	if hello.GetWantsCertificatePolicy() {
		if err := stream.Send(s.certificatePolicy()); err != nil {
			return err
		}
	}
	f, err := s.configs.Follow(ctx, store.TenantScope(id.Tenant), id.SensorID)
	if err != nil {
		return toStatus(err)
	}
	defer f.Close()
	var sent int64 = -1
	for {
		select {
		case <-f.Changed():
			cfg, err := f.Next(ctx)
			if err != nil {
				return toStatus(err)
			}
			if cfg == nil {
				continue
			}
			if err := s.pushConfig(stream, id, cfg, &sent); err != nil {
				return err
			}
		case r := <-replies:
			if err := stream.Send(r); err != nil {
				return err
			}
		case req := <-requests:
			if err := stream.Send(&ospreyv1.ConnectResponse{Msg: &ospreyv1.ConnectResponse_Request{Request: req}}); err != nil {
				return err
			}
		case err := <-end.recv:
			return err
		case <-s.shutdown:
			return status.Error(codes.Unavailable, "central node shutting down")
		case <-end.moved:
			return errRebalance
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// pushConfig sends cfg unless the sensor has it already; it ends the stream
// of a revoked sensor and holds back configuration from a pending one.
func (s *Service) pushConfig(stream ospreyv1.SensorService_ConnectServer, id pki.Identity, cfg *store.SensorConfig, sent *int64) error {
	switch cfg.Sensor.GetState() {
	case ospreyv1.SensorState_SENSOR_STATE_REVOKED:
		return status.Errorf(codes.PermissionDenied, "sensor %s is revoked", id.SensorID)
	case ospreyv1.SensorState_SENSOR_STATE_APPROVED:
	default:
		return nil // Pending: wait for approval on the open stream.
	}
	version := cfg.Version()
	if version == *sent {
		return nil
	}
	lists, err := cfg.Acceptance()
	if err != nil {
		return toStatus(err)
	}
	err = stream.Send(&ospreyv1.ConnectResponse{Msg: &ospreyv1.ConnectResponse_Config{Config: &ospreyv1.SensorConfig{
		Revision:   version,
		Sensor:     cfg.Sensor,
		Smtp:       cfg.SMTP,
		Pop3:       cfg.POP3,
		Acceptance: lists,
	}}})
	if err != nil {
		return err
	}
	*sent = version
	return nil
}

func parseCSR(der []byte) (*x509.CertificateRequest, error) {
	if len(der) == 0 || len(der) > 16<<10 {
		return nil, status.Error(codes.InvalidArgument, "csr: want a DER PKCS#10 request of at most 16 KiB")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	return csr, nil
}

// claimKey refuses a public key that was enrolled before (a replayed CSR).
func (s *Service) claimKey(ctx context.Context, csr *x509.CertificateRequest, sensorID string) error {
	fp, err := pki.PublicKeyFingerprint(csr.PublicKey)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	if err := s.store.ClaimPublicKey(ctx, fp, sensorID); err != nil {
		if errors.Is(err, store.ErrExists) {
			return status.Error(codes.AlreadyExists, "this public key was enrolled before: a replayed request, or a sensor that reused its key; make a new key")
		}
		return toStatus(err)
	}
	return nil
}

// toStatus turns store and context errors into gRPC status errors: the one
// place where that translation happens.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrForbidden):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, store.ErrTokenExpired), errors.Is(err, store.ErrTokenUsedUp):
		return status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, store.ErrInvalidID):
		return status.Error(codes.InvalidArgument, err.Error())
	default:
		return status.Error(codes.Unavailable, fmt.Sprintf("store: %v", err))
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ackReport answers the report numbered seq (none for 0: a sensor that
// does not wait for answers) with whether recording it failed for a while
// (the store unavailable or too slow): the sensor sends such a report
// again later, and one whose answer it never got on its next stream. A
// report the store refused for what it holds would be refused again, so it
// is answered as done (and was logged). A report can be recorded twice
// when a stream ends between the write and its answer: delivery attempts
// and quarantine events are recorded idempotently, a refusal's count is
// added again.
func ackReport(ctx context.Context, replies chan<- *ospreyv1.ConnectResponse, seq uint64, recordErr error) error {
	if seq == 0 {
		return nil
	}
	ack := &ospreyv1.ReportAck{Seq: seq}
	if errors.Is(recordErr, sqlstore.ErrUnavailable) || errors.Is(recordErr, context.DeadlineExceeded) {
		ack.Error = truncate(recordErr.Error(), 1024)
	}
	select {
	case replies <- &ospreyv1.ConnectResponse{Msg: &ospreyv1.ConnectResponse_ReportAck{ReportAck: ack}}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refusalTimeout bounds the write of one refusal report: the receive loop
// waits for it.
const refusalTimeout = 10 * time.Second

// recordRefusals adds a sensor's refusal report to the message audit log.
// A report that cannot be written is logged, and its error returned for
// the sensor to send it again; the stream goes on.
func (s *Service) recordRefusals(ctx context.Context, id pki.Identity, rs []*ospreyv1.Refusal) error {
	if s.messages == nil || len(rs) == 0 {
		return nil
	}
	if len(rs) > sqlstore.MaxRefusalsPerReport {
		rs = rs[:sqlstore.MaxRefusalsPerReport]
	}
	out := make([]sqlstore.Refusal, 0, len(rs))
	for _, r := range rs {
		out = append(out, sqlstore.Refusal{
			Minute: r.GetMinute().AsTime(), ClientIP: r.GetClientIp(), Reason: r.GetReason(), Count: int64(min(r.GetCount(), 1<<62)),
			FirstAt: r.GetFirstAt().AsTime(), LastAt: r.GetLastAt().AsTime(),
			MailFrom: r.GetMailFrom(), Rcpt: r.GetRcpt(), Detail: r.GetDetail(),
		})
	}
	wctx, cancel := context.WithTimeout(ctx, refusalTimeout)
	defer cancel()
	if err := s.messages.RecordRefusals(wctx, store.TenantScope(id.Tenant), id.Tenant, id.SensorID, out); err != nil {
		s.log.Warn("refusal report not recorded", "sensor", id.SensorID, "refusals", len(out), "err", err)
		return err
	}
	return nil
}
