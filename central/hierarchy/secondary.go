package hierarchy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/election"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// linkKeyLabel is the label the SCN's link key is sealed under.
const linkKeyLabel = "osprey hierarchy link key v1"

// Counts is what an SCN tells its PCN about itself at each heartbeat.
type Counts struct {
	Sensors, Alerts int64
	// LastData is when the SCN last stored an alert; zero if never.
	LastData time.Time
}

// SecondaryOptions configures an SCN's side.
type SecondaryOptions struct {
	Store *store.Store
	// Client is the etcd client the link's election runs on.
	Client *clientv3.Client
	// KEK is the cluster key, which seals the link key in etcd so that
	// whichever node of the SCN holds the link can use it.
	KEK      []byte
	NodeName string
	Version  string
	// OwnFingerprint is the fingerprint of this node's cluster CA, shown
	// for an SCN's administrator to compare when this node is a PCN.
	OwnFingerprint string
	// IsPrimary refuses to join a PCN: the hierarchy has two levels.
	IsPrimary bool
	// Counts reads the SCN's state for its heartbeats; nil sends zeros.
	Counts func(context.Context) (Counts, error)
	// Channels serve the traffic of the link besides heartbeats.
	Channels []SecondaryChannel
	// Disconnected, when set, runs on the node holding the election once
	// the PCN disconnected this SCN (and again at each term until it
	// succeeds): what the SCN got from the PCN becomes its own (MakeLocal).
	Disconnected func(context.Context) error
	Now          func() time.Time
	Logger       *slog.Logger
}

// Secondary is an SCN's side: the join its administrator starts, and the
// link that one node of the SCN (an election) keeps up.
type Secondary struct {
	opts SecondaryOptions
	log  *slog.Logger
}

// NewSecondary builds an SCN's side; Run keeps its link up.
func NewSecondary(opts SecondaryOptions) *Secondary {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Secondary{opts: opts, log: log}
}

// dialTimeout bounds the connection FetchFingerprint makes; callTimeout a
// call to the PCN (which may check a password with bcrypt on a busy node).
const (
	dialTimeout = 10 * time.Second
	callTimeout = 30 * time.Second
)

// FetchFingerprint connects to the PCN's gRPC address and returns the
// fingerprint (SHA-256 of the public key, hex) of the CA its certificate
// chain ends in, for the administrator to compare with the PCN's own.
// Nothing is trusted yet: Join pins every later connection to what the
// administrator confirmed.
func FetchFingerprint(ctx context.Context, address string) (string, error) {
	if _, _, err := net.SplitHostPort(address); err != nil {
		return "", fmt.Errorf("PCN address %q: want host:port: %w", address, err)
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: dialTimeout}, Config: &tls.Config{
		InsecureSkipVerify: true, // the chain is read, not trusted: see Join
		NextProtos:         []string{"h2"},
		MinVersion:         tls.VersionTLS12,
	}}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", address)
	if err != nil {
		return "", fmt.Errorf("connect to the PCN at %s: %w", address, err)
	}
	defer conn.Close()
	var raw [][]byte
	for _, c := range conn.(*tls.Conn).ConnectionState().PeerCertificates {
		raw = append(raw, c.Raw)
	}
	for _, c := range conn.(*tls.Conn).ConnectionState().PeerCertificates[1:] {
		if !c.IsCA || c.CheckSignatureFrom(c) != nil {
			continue
		}
		fp := pki.SPKIHash(c)
		if _, err := pki.VerifyPinnedChain(raw, fp); err != nil {
			return "", fmt.Errorf("the PCN's certificate chain: %w", err)
		}
		return fp, nil
	}
	return "", fmt.Errorf("%s sent no CA certificate: is it an Osprey central node's gRPC address?", address)
}

// JoinInput is what the SCN's administrator gives to join a PCN.
type JoinInput struct {
	// Address is the PCN's gRPC address, host:port.
	Address string
	// Fingerprint is the PCN CA's fingerprint, as FetchFingerprint showed
	// it and the administrator confirmed it.
	Fingerprint string
	// Name is this SCN's name on the PCN.
	Name string
	// Username and Password are those of the account made on the PCN for
	// this SCN.
	Username, Password string
	// Address of this SCN's API, shown on the PCN.
	OwnAddress string
}

// ErrIsPrimary is returned by Join on a PCN: the hierarchy has two levels.
var ErrIsPrimary = errors.New("this node is a PCN: a PCN cannot join another")

// ErrLinked is returned by Join on an SCN already accepted by a PCN.
var ErrLinked = errors.New("this node already joined a PCN")

// Join sends the request to the PCN, over TLS pinned to in.Fingerprint (a
// PCN whose CA has another key is refused before anything is sent), and
// records the pending request; Run then waits for the PCN's decision.
func (s *Secondary) Join(ctx context.Context, in JoinInput) (*ospreyv1.Primary, error) {
	if s.opts.IsPrimary {
		return nil, ErrIsPrimary
	}
	cur, version, err := s.opts.Store.Primary(ctx)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	switch cur.GetState() {
	case ospreyv1.PrimaryState_PRIMARY_STATE_LINKED, ospreyv1.PrimaryState_PRIMARY_STATE_TOKEN_EXPIRED:
		return nil, ErrLinked
	}
	csr, sealed, err := s.newLinkKey(in.Name)
	if err != nil {
		return nil, err
	}
	resp, err := call(ctx, in.Address, in.Fingerprint, nil, func(ctx context.Context, c ospreyv1.HierarchyServiceClient) (*ospreyv1.JoinResponse, error) {
		return c.Join(ctx, &ospreyv1.JoinRequest{
			Name: in.Name, SoftwareVersion: s.opts.Version, Csr: csr, Username: in.Username, Password: in.Password, Address: in.OwnAddress,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("join the PCN at %s: %w", in.Address, err)
	}
	now := timestamppb.New(s.opts.Now())
	p := &ospreyv1.Primary{
		Address: in.Address, CaFingerprint: in.Fingerprint, State: ospreyv1.PrimaryState_PRIMARY_STATE_PENDING,
		Name: in.Name, Username: in.Username, RequestId: resp.GetRequestId(), RequestSecret: resp.GetRequestSecret(),
		SealedKey: sealed, RequestedAt: now, ChangedAt: now,
	}
	if _, err := s.opts.Store.PutPrimary(ctx, p, version); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "asked to join a PCN", "pcn", in.Address, "ca_sha256", in.Fingerprint, "request", resp.GetRequestId())
	return p, nil
}

// ErrNotJoined is returned by Login on a node that was not accepted by a PCN.
var ErrNotJoined = errors.New("this node is not an accepted SCN of a PCN")

// Login renews the link's token with the PCN account's credentials, after
// the SCN stayed offline longer than the token's lifetime.
func (s *Secondary) Login(ctx context.Context, username, password string) (*ospreyv1.Primary, error) {
	p, version, err := s.opts.Store.Primary(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotJoined
	}
	if err != nil {
		return nil, err
	}
	if p.GetState() != ospreyv1.PrimaryState_PRIMARY_STATE_LINKED && p.GetState() != ospreyv1.PrimaryState_PRIMARY_STATE_TOKEN_EXPIRED {
		return nil, ErrNotJoined
	}
	cert, err := s.linkCert(p)
	if err != nil {
		return nil, err
	}
	resp, err := call(ctx, p.GetAddress(), p.GetCaFingerprint(), &cert, func(ctx context.Context, c ospreyv1.HierarchyServiceClient) (*ospreyv1.LoginResponse, error) {
		return c.Login(ctx, &ospreyv1.LoginRequest{Username: username, Password: password})
	})
	if err != nil {
		return nil, fmt.Errorf("log in to the PCN at %s: %w", p.GetAddress(), err)
	}
	p = proto.Clone(p).(*ospreyv1.Primary)
	p.Token, p.TokenExpiresAt = resp.GetToken(), resp.GetTokenExpiresAt()
	p.State, p.Error, p.ChangedAt = ospreyv1.PrimaryState_PRIMARY_STATE_LINKED, "", timestamppb.New(s.opts.Now())
	if _, err := s.opts.Store.PutPrimary(ctx, p, version); err != nil {
		return nil, err
	}
	return p, nil
}

// State returns the record of the PCN (nil on a standalone node that never
// asked to join one) and its link (nil when no node holds it).
func (s *Secondary) State(ctx context.Context) (*ospreyv1.Primary, *ospreyv1.PrimaryLink, error) {
	p, _, err := s.opts.Store.Primary(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	l, err := s.opts.Store.PrimaryLink(ctx)
	if err != nil {
		return nil, nil, err
	}
	return p, l, nil
}

// newLinkKey makes a link key and returns a CSR for it and the key sealed
// with the cluster key, as the record of the PCN keeps it.
func (s *Secondary) newLinkKey(name string) (csr, sealed []byte, err error) {
	key, err := pki.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	if csr, err = pki.NewCSR(key, name); err != nil {
		return nil, nil, err
	}
	keyPEM, err := pki.MarshalKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	if sealed, err = pki.Seal(keyPEM, s.opts.KEK, linkKeyLabel); err != nil {
		return nil, nil, err
	}
	return csr, sealed, nil
}

// Explain says, for a person, why a call to the PCN (Join, Login) failed:
// in the PCN's own words when it answered, and plainly when its
// certificate did not have the confirmed fingerprint (which gRPC carries as
// a message only).
func Explain(err error) string {
	st, ok := status.FromError(errors.Unwrap(err))
	if !ok || st.Message() == "" {
		return err.Error()
	}
	if strings.Contains(st.Message(), pki.ErrPinMismatch.Error()) {
		return "the PCN's certificate does not have the confirmed fingerprint: nothing was sent"
	}
	return "the PCN: " + st.Message()
}

// linkCert is the SCN's link certificate with its key.
func (s *Secondary) linkCert(p *ospreyv1.Primary) (tls.Certificate, error) {
	keyPEM, err := pki.Open(p.GetSealedKey(), s.opts.KEK, linkKeyLabel)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("open the link key (every node of the SCN needs the same cluster key): %w", err)
	}
	key, err := pki.ParseKeyPEM(keyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(p.GetCertificate())
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse the link certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{p.GetCertificate()}, PrivateKey: key, Leaf: leaf}, nil
}

// call makes one unary call to the PCN at address (see dial), within
// callTimeout.
func call[R any](ctx context.Context, address, fingerprint string, cert *tls.Certificate, do func(context.Context, ospreyv1.HierarchyServiceClient) (R, error)) (R, error) {
	conn, err := dial(address, fingerprint, cert)
	if err != nil {
		var zero R
		return zero, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return do(ctx, ospreyv1.NewHierarchyServiceClient(conn))
}

// dial makes a client of the PCN at address whose TLS accepts only a chain
// that ends in the CA with the pinned fingerprint, presenting cert when
// given.
func dial(address, fingerprint string, cert *tls.Certificate) (*grpc.ClientConn, error) {
	if _, _, err := net.SplitHostPort(address); err != nil {
		return nil, fmt.Errorf("PCN address %q: want host:port: %w", address, err)
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below, which is stronger than a name
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := pki.VerifyPinnedChain(raw, fingerprint)
			return err
		},
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(address,
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		return nil, fmt.Errorf("PCN client %s: %w", address, err)
	}
	return conn, nil
}

// Run keeps the link up from whichever node of the SCN wins the election,
// until ctx ends.
func (s *Secondary) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := s.term(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "link election", "err", err)
			sleep(ctx, time.Second)
		}
	}
	return nil
}

// term wins the election and keeps the link until the session ends.
func (s *Secondary) term(ctx context.Context) error {
	return election.Term(ctx, s.opts.Client, store.PrimaryLeaderPrefix(), s.opts.NodeName, 10,
		func(ctx context.Context, _ *concurrency.Election, lease clientv3.LeaseID) { s.lead(ctx, lease) })
}

// Backoff of the link's reconnections.
const (
	backoffMin = time.Second
	backoffMax = 30 * time.Second
	// pollEvery is how often a pending request is polled.
	pollEvery = 2 * time.Second
	// idleEvery is how often a node with nothing to do reads the record.
	idleEvery = time.Second
)

// jitter spreads d over ±20 %, so that SCNs cut off together do not
// reconnect together.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}

// lead does what the record of the PCN asks, until ctx ends.
func (s *Secondary) lead(ctx context.Context, lease clientv3.LeaseID) {
	backoff := backoffMin
	madeLocal := false
	for ctx.Err() == nil {
		p, version, err := s.opts.Store.Primary(ctx)
		if err != nil {
			sleep(ctx, idleEvery) // none yet, or etcd unavailable
			continue
		}
		switch p.GetState() {
		case ospreyv1.PrimaryState_PRIMARY_STATE_PENDING:
			s.poll(ctx, p, version)
			sleep(ctx, jitter(pollEvery))
		case ospreyv1.PrimaryState_PRIMARY_STATE_LINKED:
			start := s.opts.Now()
			err := s.link(ctx, p, lease)
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, errRenewDue) {
				sleep(ctx, jitter(backoffMin)) // at worst, one renewal a second
				continue
			}
			if s.refused(ctx, err) {
				backoff = backoffMin
				continue
			}
			if s.opts.Now().Sub(start) > backoffMax {
				backoff = backoffMin // it was up a while: this is a new outage
			}
			s.log.WarnContext(ctx, "link to the PCN failed; retrying", "pcn", p.GetAddress(), "err", err, "retry_in", backoff)
			s.setError(ctx, err)
			sleep(ctx, jitter(backoff))
			backoff = min(2*backoff, backoffMax)
		case ospreyv1.PrimaryState_PRIMARY_STATE_DISCONNECTED:
			if !madeLocal && s.opts.Disconnected != nil {
				if err := s.opts.Disconnected(ctx); err != nil {
					s.log.WarnContext(ctx, "make what the PCN sent local; retrying", "err", err)
				} else {
					madeLocal = true
				}
			}
			sleep(ctx, idleEvery)
		default:
			sleep(ctx, idleEvery)
		}
	}
}

// refused records a refusal the SCN cannot fix by retrying (the token
// expired, the PCN disconnected it) and reports whether err was one.
func (s *Secondary) refused(ctx context.Context, err error) bool {
	st, _ := status.FromError(err)
	var state ospreyv1.PrimaryState
	switch {
	case st.Code() == codes.Unauthenticated && errors.Is(statusErr(st), ErrTokenExpired):
		state = ospreyv1.PrimaryState_PRIMARY_STATE_TOKEN_EXPIRED
	case st.Code() == codes.PermissionDenied:
		state = ospreyv1.PrimaryState_PRIMARY_STATE_DISCONNECTED
	default:
		return false
	}
	s.log.WarnContext(ctx, "the PCN refused the link", "err", st.Message(), "state", state)
	s.update(ctx, func(p *ospreyv1.Primary) {
		p.State, p.Error = state, st.Message()
	})
	return true
}

// statusErr maps a refusal's message back to the error the PCN meant.
func statusErr(st *status.Status) error {
	for _, e := range []error{ErrTokenExpired, ErrDisconnected} {
		if len(st.Message()) >= len(e.Error()) && st.Message()[:len(e.Error())] == e.Error() {
			return e
		}
	}
	return errors.New(st.Message())
}

func (s *Secondary) setError(ctx context.Context, err error) {
	msg := err.Error()
	if st, ok := status.FromError(err); ok {
		msg = st.Message()
	}
	s.update(ctx, func(p *ospreyv1.Primary) { p.Error = msg })
}

// update changes the record of the PCN with f, reading it again on a
// conflict.
func (s *Secondary) update(ctx context.Context, f func(*ospreyv1.Primary)) {
	for range 5 {
		p, version, err := s.opts.Store.Primary(ctx)
		if err != nil {
			return
		}
		p = proto.Clone(p).(*ospreyv1.Primary)
		before := proto.Clone(p)
		f(p)
		if proto.Equal(before, p) {
			return
		}
		if !proto.Equal(before.(*ospreyv1.Primary).GetTokenExpiresAt(), p.GetTokenExpiresAt()) || before.(*ospreyv1.Primary).GetState() != p.GetState() {
			p.ChangedAt = timestamppb.New(s.opts.Now())
		}
		if _, err := s.opts.Store.PutPrimary(ctx, p, version); !errors.Is(err, store.ErrConflict) {
			return
		}
	}
}

// poll asks the PCN about the pending request and records the answer.
func (s *Secondary) poll(ctx context.Context, p *ospreyv1.Primary, version int64) {
	conn, err := dial(p.GetAddress(), p.GetCaFingerprint(), nil)
	if err != nil {
		s.setError(ctx, err)
		return
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := ospreyv1.NewHierarchyServiceClient(conn).Poll(cctx, &ospreyv1.PollRequest{RequestId: p.GetRequestId(), RequestSecret: p.GetRequestSecret()})
	p = proto.Clone(p).(*ospreyv1.Primary)
	switch {
	case status.Code(err) == codes.NotFound:
		p.State, p.Error = ospreyv1.PrimaryState_PRIMARY_STATE_REJECTED, status.Convert(err).Message()
	case err != nil:
		s.setError(ctx, err)
		return
	case resp.GetState() == ospreyv1.PollResponse_STATE_ACCEPTED:
		p.State, p.Error = ospreyv1.PrimaryState_PRIMARY_STATE_LINKED, ""
		p.ServerId, p.Tenant = resp.GetServerId(), resp.GetTenant()
		p.Certificate, p.CaCertificate = resp.GetCertificate(), resp.GetCaCertificate()
		p.Token, p.TokenExpiresAt = resp.GetToken(), resp.GetTokenExpiresAt()
		s.log.InfoContext(ctx, "the PCN accepted this server", "pcn", p.GetAddress(), "server", p.GetServerId(), "tenant", p.GetTenant())
	default:
		if p.GetError() == "" {
			return
		}
		p.Error = ""
	}
	p.ChangedAt = timestamppb.New(s.opts.Now())
	if _, err := s.opts.Store.PutPrimary(ctx, p, version); err != nil && !errors.Is(err, store.ErrConflict) {
		s.log.WarnContext(ctx, "record the PCN's answer", "err", err)
	}
}
