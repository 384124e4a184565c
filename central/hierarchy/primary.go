package hierarchy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults of PrimaryOptions.
const (
	DefaultTokenLifetime = 24 * time.Hour
	DefaultHeartbeat     = 10 * time.Second
	DefaultCertValidity  = 30 * 24 * time.Hour
)

// missedHeartbeats is how many heartbeat intervals without a word from an
// SCN end its link on the PCN (the SCN is shown offline).
const missedHeartbeats = 3

// Passwords checks an account's credentials (auth.Authenticator).
type Passwords interface {
	AuthenticatePassword(ctx context.Context, name, password, addr string) (auth.Principal, error)
}

// PrimaryOptions configures the PCN's side.
type PrimaryOptions struct {
	Store *store.Store
	// CA is the cluster CA: it signs the SCNs' link certificates.
	CA        *pki.CA
	Passwords Passwords
	// NodeName is recorded with the links this node holds.
	NodeName string
	// TokenLifetime is how long an SCN may stay offline before it must log
	// in again (DefaultTokenLifetime when zero).
	TokenLifetime time.Duration
	// Heartbeat is the SCNs' heartbeat interval (DefaultHeartbeat when zero).
	Heartbeat time.Duration
	// CertValidity is the lifetime of a link certificate
	// (DefaultCertValidity when zero); SCNs renew at two thirds of it.
	CertValidity time.Duration
	// Channels serve the traffic of the SCNs' links besides heartbeats.
	Channels []PrimaryChannel
	Now      func() time.Time
	Logger   *slog.Logger
}

// Primary is the PCN's side: the HierarchyService it serves and what its
// administrator does with the SCNs (Accept, Reject, Disconnect).
type Primary struct {
	ospreyv1.UnimplementedHierarchyServiceServer
	opts  PrimaryOptions
	log   *slog.Logger
	lease *leaseHolder
}

// NewPrimary builds the PCN's side; Run must run for links to be recorded.
func NewPrimary(opts PrimaryOptions) *Primary {
	if opts.TokenLifetime <= 0 {
		opts.TokenLifetime = DefaultTokenLifetime
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.CertValidity <= 0 {
		opts.CertValidity = DefaultCertValidity
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Primary{opts: opts, log: log, lease: newLeaseHolder(opts.Store, opts.Heartbeat)}
}

// Register adds the HierarchyService to s.
func (p *Primary) Register(s *grpc.Server) { ospreyv1.RegisterHierarchyServiceServer(s, p) }

// Run keeps the lease the node's live link records are written under, until
// ctx ends.
func (p *Primary) Run(ctx context.Context) error { return p.lease.run(ctx) }

// Join records a pending request.
func (p *Primary) Join(ctx context.Context, req *ospreyv1.JoinRequest) (*ospreyv1.JoinResponse, error) {
	id := strings.ToLower(req.GetName())
	if err := store.CheckID("server", id); err != nil {
		return nil, status.Error(codes.InvalidArgument, "name: use lower-case letters, digits, '-', '_' and '.', at most 63, starting with a letter or digit")
	}
	pub, err := csrKey(req.GetCsr())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	fp, err := pki.PublicKeyFingerprint(pub)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	addr := peerAddr(ctx)
	if _, err := p.opts.Passwords.AuthenticatePassword(ctx, req.GetUsername(), req.GetPassword(), addr); err != nil {
		return nil, authStatus(err)
	}
	secret := randomHex(32)
	now := p.opts.Now()
	srv := &ospreyv1.Server{
		Id: id, Name: req.GetName(), State: ospreyv1.ServerState_SERVER_STATE_PENDING,
		Address: req.GetAddress(), Peer: addr, Fingerprint: fp, SoftwareVersion: req.GetSoftwareVersion(),
		Username: req.GetUsername(), RequestSecretHash: hash(secret), Csr: req.GetCsr(), CreatedAt: timestamppb.New(now),
	}
	_, err = p.opts.Store.CreateServer(ctx, srv)
	if errors.Is(err, store.ErrExists) {
		// The same SCN asking again (it lost the answer), or an SCN joining
		// again after it was disconnected, replaces its request; any other
		// is refused.
		old, version, gerr := p.opts.Store.GetServer(ctx, store.AllTenants(), id)
		if gerr != nil {
			return nil, storeStatus(gerr)
		}
		again := old.GetState() == ospreyv1.ServerState_SERVER_STATE_PENDING && old.GetFingerprint() == fp
		if !again && old.GetState() != ospreyv1.ServerState_SERVER_STATE_DISCONNECTED {
			return nil, status.Errorf(codes.AlreadyExists, "a server named %q is already known to this PCN: choose another name", id)
		}
		_, err = p.opts.Store.UpdateServer(ctx, store.AllTenants(), srv, version)
	}
	if err != nil {
		return nil, storeStatus(err)
	}
	p.log.InfoContext(ctx, "server asks to join", "server", id, "peer", addr, "key_sha256", fp)
	return &ospreyv1.JoinResponse{RequestId: id, RequestSecret: secret}, nil
}

// Poll answers what became of a request. Once accepted it issues the link
// certificate and the first token; it does so again at each Poll until the
// SCN first links (then the request secret is forgotten), so an answer lost
// on the way costs nothing.
func (p *Primary) Poll(ctx context.Context, req *ospreyv1.PollRequest) (*ospreyv1.PollResponse, error) {
	unknown := status.Error(codes.NotFound, "no such request: it was rejected, or the PCN forgot it")
	srv, version, err := p.opts.Store.GetServer(ctx, store.AllTenants(), req.GetRequestId())
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalidID) {
		return nil, unknown
	}
	if err != nil {
		return nil, storeStatus(err)
	}
	if len(srv.GetRequestSecretHash()) == 0 || subtle.ConstantTimeCompare(srv.GetRequestSecretHash(), hash(req.GetRequestSecret())) != 1 {
		return nil, unknown
	}
	switch srv.GetState() {
	case ospreyv1.ServerState_SERVER_STATE_PENDING:
		return &ospreyv1.PollResponse{State: ospreyv1.PollResponse_STATE_PENDING}, nil
	case ospreyv1.ServerState_SERVER_STATE_ACCEPTED:
	default:
		return nil, unknown
	}
	pub, err := csrKey(srv.GetCsr())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "stored request: %v", err)
	}
	now := p.opts.Now()
	der, err := p.opts.CA.SignServerLink(srv.GetCsr(), srv.GetId(), p.opts.CertValidity, now)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "sign the link certificate: %v", err)
	}
	token := randomHex(32)
	fp, _ := pki.PublicKeyFingerprint(pub)
	srv = proto.Clone(srv).(*ospreyv1.Server)
	issued(srv, der, fp)
	srv.TokenHash, srv.TokenExpiresAt = hash(token), timestamppb.New(now.Add(p.opts.TokenLifetime))
	if _, err := p.opts.Store.UpdateServer(ctx, store.AllTenants(), srv, version); err != nil {
		return nil, storeStatus(err)
	}
	return &ospreyv1.PollResponse{
		State: ospreyv1.PollResponse_STATE_ACCEPTED, ServerId: srv.GetId(), Tenant: srv.GetTenant(),
		Certificate: der, CaCertificate: p.opts.CA.Cert.Raw, Token: token, TokenExpiresAt: srv.GetTokenExpiresAt(),
	}, nil
}

// issued records a link certificate issued to srv for the key fp.
func issued(srv *ospreyv1.Server, der []byte, fp string) {
	srv.CertFingerprint = pki.Fingerprint(der)
	if c, err := x509.ParseCertificate(der); err == nil {
		srv.CertExpiresAt = timestamppb.New(c.NotAfter)
	}
	keys := slices.DeleteFunc(slices.Clone(srv.GetKeyFingerprints()), func(k string) bool { return k == fp })
	if len(keys) > 1 {
		keys = keys[len(keys)-1:]
	}
	srv.KeyFingerprints = append(keys, fp)
}

// Login gives a linked SCN a new token for its account's credentials.
func (p *Primary) Login(ctx context.Context, req *ospreyv1.LoginRequest) (*ospreyv1.LoginResponse, error) {
	srv, version, err := p.linkedServer(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetUsername() != srv.GetUsername() {
		return nil, status.Errorf(codes.PermissionDenied, "log in with the account this server joined with (%s)", srv.GetUsername())
	}
	if _, err := p.opts.Passwords.AuthenticatePassword(ctx, req.GetUsername(), req.GetPassword(), peerAddr(ctx)); err != nil {
		return nil, authStatus(err)
	}
	token := randomHex(32)
	srv = proto.Clone(srv).(*ospreyv1.Server)
	srv.TokenHash, srv.TokenExpiresAt = hash(token), timestamppb.New(p.opts.Now().Add(p.opts.TokenLifetime))
	if _, err := p.opts.Store.UpdateServer(ctx, store.AllTenants(), srv, version); err != nil {
		return nil, storeStatus(err)
	}
	p.log.InfoContext(ctx, "server logged in again", "server", srv.GetId())
	return &ospreyv1.LoginResponse{Token: token, TokenExpiresAt: srv.GetTokenExpiresAt()}, nil
}

// RenewLink issues a link certificate for a new key.
func (p *Primary) RenewLink(ctx context.Context, req *ospreyv1.RenewLinkRequest) (*ospreyv1.RenewLinkResponse, error) {
	srv, version, err := p.linkedServer(ctx)
	if err != nil {
		return nil, err
	}
	pub, err := csrKey(req.GetCsr())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	fp, err := pki.PublicKeyFingerprint(pub)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "csr: %v", err)
	}
	now := p.opts.Now()
	der, err := p.opts.CA.SignServerLink(req.GetCsr(), srv.GetId(), p.opts.CertValidity, now)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "sign the link certificate: %v", err)
	}
	srv = proto.Clone(srv).(*ospreyv1.Server)
	issued(srv, der, fp)
	if _, err := p.opts.Store.UpdateServer(ctx, store.AllTenants(), srv, version); err != nil {
		return nil, storeStatus(err)
	}
	p.log.InfoContext(ctx, "renewed a server's link certificate", "server", srv.GetId(), "expires", srv.GetCertExpiresAt().AsTime())
	return &ospreyv1.RenewLinkResponse{Certificate: der}, nil
}

// linkedServer returns the record of the SCN whose link certificate the
// call was made with, refusing one that may not link: a call without a link
// certificate (a sensor's included), of an unknown or disconnected SCN, or
// with the key of an older certificate.
func (p *Primary) linkedServer(ctx context.Context) (*ospreyv1.Server, int64, error) {
	leaf, err := clientLeaf(ctx)
	if err != nil {
		return nil, 0, err
	}
	id, err := pki.ServerIDFromCert(leaf)
	if err != nil {
		return nil, 0, status.Errorf(codes.Unauthenticated, "not a server's link certificate: %v", err)
	}
	srv, version, err := p.opts.Store.GetServer(ctx, store.AllTenants(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, status.Errorf(codes.PermissionDenied, "server %q is unknown to this PCN: join again", id)
	}
	if err != nil {
		return nil, 0, storeStatus(err)
	}
	switch srv.GetState() {
	case ospreyv1.ServerState_SERVER_STATE_ACCEPTED:
	case ospreyv1.ServerState_SERVER_STATE_DISCONNECTED:
		return nil, 0, status.Error(codes.PermissionDenied, ErrDisconnected.Error())
	default:
		return nil, 0, status.Errorf(codes.PermissionDenied, "server %q is not accepted", id)
	}
	fp, err := pki.PublicKeyFingerprint(leaf.PublicKey)
	if err != nil || !slices.Contains(srv.GetKeyFingerprints(), fp) {
		return nil, 0, status.Error(codes.PermissionDenied, "this link certificate was replaced: join again")
	}
	return srv, version, nil
}

// Link serves an SCN's link until it ends, the SCN goes silent for
// missedHeartbeats intervals, or the SCN is disconnected.
func (p *Primary) Link(stream ospreyv1.HierarchyService_LinkServer) error {
	ctx := stream.Context()
	srv, version, err := p.linkedServer(ctx)
	if err != nil {
		return err
	}
	first, err := recvTimeout(ctx, stream, missedHeartbeats*p.opts.Heartbeat)
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message of a link is a hello")
	}
	now := p.opts.Now()
	if len(srv.GetTokenHash()) == 0 || subtle.ConstantTimeCompare(srv.GetTokenHash(), hash(hello.GetToken())) != 1 {
		return status.Error(codes.Unauthenticated, ErrTokenExpired.Error()+" (the token is not the latest: log in again)")
	}
	if !now.Before(srv.GetTokenExpiresAt().AsTime()) {
		return status.Error(codes.Unauthenticated, ErrTokenExpired.Error())
	}
	// Linked: the request secret has done its work.
	srv = proto.Clone(srv).(*ospreyv1.Server)
	srv.RequestSecretHash, srv.Csr = nil, nil
	srv.SoftwareVersion = hello.GetSoftwareVersion()
	if srv, err = p.refresh(ctx, srv, version, now); err != nil {
		return err
	}
	link := &ospreyv1.ServerLink{
		ServerId: srv.GetId(), Node: p.opts.NodeName, Online: true, SoftwareVersion: hello.GetSoftwareVersion(),
		LastDataAt: timestamppb.New(now), ConnectedAt: timestamppb.New(now), Peer: peerAddr(ctx),
	}
	log := p.log.With("server", srv.GetId())
	if err := p.putLink(ctx, link); err != nil {
		return err
	}
	log.InfoContext(ctx, "server linked", "peer", link.GetPeer(), "version", link.GetSoftwareVersion())
	defer func() {
		link.Online = false
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := p.putLink(wctx, link); err != nil {
			log.WarnContext(ctx, "record the end of a server's link", "err", err)
		}
		log.InfoContext(ctx, "server link ended")
	}()
	send := lockedSend(stream.Send)
	if err := send(&ospreyv1.LinkResponse{Msg: &ospreyv1.LinkResponse_Welcome{Welcome: &ospreyv1.LinkWelcome{
		ServerId: srv.GetId(), Tenant: srv.GetTenant(), HeartbeatInterval: durationpb.New(p.opts.Heartbeat),
	}}}); err != nil {
		return err
	}
	if err := send(tokenRefresh(srv)); err != nil {
		return err
	}
	lctx, fail := context.WithCancelCause(ctx)
	chans := runChannels(lctx, fail, p.opts.Channels, srv.GetId(), srv.GetTenant(), send)
	defer chans.wait()
	defer fail(nil)
	refreshEvery := min(p.opts.TokenLifetime/10, time.Minute)
	lastRefresh := now
	for {
		msg, err := recvTimeout(lctx, stream, missedHeartbeats*p.opts.Heartbeat)
		if err != nil {
			if cause := context.Cause(lctx); ctx.Err() == nil && cause != nil {
				return status.Error(codes.Unavailable, cause.Error())
			}
			return err
		}
		hb := msg.GetHeartbeat()
		if hb == nil {
			if _, err := chans.deliver(lctx, msg); err != nil {
				return status.FromContextError(err).Err()
			}
			continue // delivered, or a later kind of message this node does not know
		}
		now := p.opts.Now()
		cur, version, err := p.linkedServer(ctx)
		if err != nil {
			return err // disconnected meanwhile
		}
		link.SoftwareVersion, link.Sensors, link.Alerts = hb.GetSoftwareVersion(), hb.GetSensors(), hb.GetAlerts()
		link.LastDataAt, link.ScnLastDataAt = timestamppb.New(now), hb.GetLastDataAt()
		if err := p.putLink(ctx, link); err != nil {
			return err
		}
		if err := send(&ospreyv1.LinkResponse{Msg: &ospreyv1.LinkResponse_Heartbeat{Heartbeat: &ospreyv1.LinkHeartbeatAck{At: timestamppb.New(now)}}}); err != nil {
			return err
		}
		if now.Sub(lastRefresh) >= refreshEvery {
			refreshed, err := p.refresh(ctx, cur, version, now)
			if err != nil {
				return err
			}
			lastRefresh = now
			if err := send(tokenRefresh(refreshed)); err != nil {
				return err
			}
		}
	}
}

// refresh moves the token's expiry to a lifetime from now.
func (p *Primary) refresh(ctx context.Context, srv *ospreyv1.Server, version int64, now time.Time) (*ospreyv1.Server, error) {
	srv = proto.Clone(srv).(*ospreyv1.Server)
	srv.TokenExpiresAt = timestamppb.New(now.Add(p.opts.TokenLifetime))
	if _, err := p.opts.Store.UpdateServer(ctx, store.AllTenants(), srv, version); err != nil {
		return nil, storeStatus(err)
	}
	return srv, nil
}

func tokenRefresh(srv *ospreyv1.Server) *ospreyv1.LinkResponse {
	return &ospreyv1.LinkResponse{Msg: &ospreyv1.LinkResponse_Token{Token: &ospreyv1.TokenRefresh{TokenExpiresAt: srv.GetTokenExpiresAt()}}}
}

func (p *Primary) putLink(ctx context.Context, link *ospreyv1.ServerLink) error {
	lease, err := p.lease.get(ctx)
	if err != nil {
		return status.Errorf(codes.Unavailable, "record the link: %v", err)
	}
	if err := p.opts.Store.PutServerLink(ctx, lease, link); err != nil {
		return storeStatus(err)
	}
	return nil
}

// Accept lets a pending SCN link, bound to tenant.
func (p *Primary) Accept(ctx context.Context, scope store.Scope, id, tenant string) (*ospreyv1.Server, error) {
	if err := store.CheckID("tenant", tenant); err != nil {
		return nil, err
	}
	srv, version, err := p.opts.Store.GetServer(ctx, scope, id)
	if err != nil {
		return nil, err
	}
	if srv.GetState() != ospreyv1.ServerState_SERVER_STATE_PENDING {
		return nil, fmt.Errorf("server %q is not pending: %w", id, ErrNotPending)
	}
	srv = proto.Clone(srv).(*ospreyv1.Server)
	srv.State, srv.Tenant, srv.AcceptedAt = ospreyv1.ServerState_SERVER_STATE_ACCEPTED, tenant, timestamppb.New(p.opts.Now())
	if _, err := p.opts.Store.UpdateServer(ctx, scope, srv, version); err != nil {
		return nil, err
	}
	p.log.InfoContext(ctx, "accepted a server", "server", id, "tenant", tenant)
	return srv, nil
}

// Reject forgets a pending request.
func (p *Primary) Reject(ctx context.Context, scope store.Scope, id string) error {
	srv, version, err := p.opts.Store.GetServer(ctx, scope, id)
	if err != nil {
		return err
	}
	if srv.GetState() != ospreyv1.ServerState_SERVER_STATE_PENDING {
		return fmt.Errorf("server %q is not pending: %w", id, ErrNotPending)
	}
	if err := p.opts.Store.DeleteServer(ctx, scope, id, version); err != nil {
		return err
	}
	p.log.InfoContext(ctx, "rejected a server", "server", id)
	return nil
}

// Disconnect refuses an accepted SCN's link from now on; its current link
// ends at its next heartbeat.
func (p *Primary) Disconnect(ctx context.Context, scope store.Scope, id string) (*ospreyv1.Server, error) {
	srv, version, err := p.opts.Store.GetServer(ctx, scope, id)
	if err != nil {
		return nil, err
	}
	if srv.GetState() != ospreyv1.ServerState_SERVER_STATE_ACCEPTED {
		return nil, fmt.Errorf("server %q is not accepted: %w", id, ErrNotPending)
	}
	srv = proto.Clone(srv).(*ospreyv1.Server)
	srv.State, srv.DisconnectedAt = ospreyv1.ServerState_SERVER_STATE_DISCONNECTED, timestamppb.New(p.opts.Now())
	srv.TokenHash, srv.KeyFingerprints, srv.RequestSecretHash = nil, nil, nil
	if _, err := p.opts.Store.UpdateServer(ctx, scope, srv, version); err != nil {
		return nil, err
	}
	p.log.InfoContext(ctx, "disconnected a server", "server", id)
	return srv, nil
}

// ErrNotPending is returned by Accept and Reject for an SCN that is not
// pending, and by Disconnect for one that is not accepted.
var ErrNotPending = errors.New("not in a state that allows it")

// ErrTokenExpired and ErrDisconnected are the reasons a PCN refuses a link
// the SCN cannot fix by retrying; the SCN shows them.
var (
	ErrTokenExpired = errors.New("the link token expired (this server was offline longer than the PCN allows): log in again with the PCN account")
	ErrDisconnected = errors.New("the PCN's administrator disconnected this server")
)

// recvTimeout receives one message, failing with DeadlineExceeded when none
// comes within d.
func recvTimeout(ctx context.Context, stream ospreyv1.HierarchyService_LinkServer, d time.Duration) (*ospreyv1.LinkRequest, error) {
	type result struct {
		msg *ospreyv1.LinkRequest
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := stream.Recv()
		ch <- result{m, err}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.msg, r.err
	case <-t.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "no heartbeat for %v", d)
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// clientLeaf returns the client certificate the TLS handshake verified
// against the cluster CA.
func clientLeaf(ctx context.Context) (*x509.Certificate, error) {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no peer")
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil, status.Error(codes.Unauthenticated, "a link certificate is required")
	}
	return info.State.VerifiedChains[0][0], nil
}

func peerAddr(ctx context.Context) string {
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		return pr.Addr.String()
	}
	return ""
}

// csrKey checks a CSR's signature and returns its public key.
func csrKey(der []byte) (any, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	return csr.PublicKey, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

func hash(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// authStatus turns a failed credentials check into a gRPC status.
func authStatus(err error) error {
	switch {
	case errors.Is(err, auth.ErrThrottled):
		return status.Error(codes.ResourceExhausted, "too many failed sign-ins for this account: try again in a minute")
	case errors.Is(err, auth.ErrUnauthenticated):
		return status.Error(codes.Unauthenticated, "the PCN account's user name or password is wrong")
	default:
		return status.Errorf(codes.Unavailable, "check the account: %v", err)
	}
}

// storeStatus turns a store error into a gRPC status.
func storeStatus(err error) error {
	switch {
	case errors.Is(err, store.ErrConflict):
		return status.Error(codes.Aborted, "the server's record changed meanwhile: retry")
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	default:
		return status.Errorf(codes.Unavailable, "the PCN's store: %v", err)
	}
}
