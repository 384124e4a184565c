package hierarchy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/internal/buildinfo"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// link opens the link to the PCN and keeps it until it fails or ctx ends:
// heartbeats up at the interval the PCN asks, token refreshes down. The link
// certificate is renewed first when two thirds of its life have passed.
func (s *Secondary) link(ctx context.Context, p *ospreyv1.Primary, lease clientv3.LeaseID) error {
	p, err := s.renewIfDue(ctx, p)
	if err != nil {
		return err
	}
	cert, err := s.linkCert(p)
	if err != nil {
		return err
	}
	conn, err := dial(p.GetAddress(), p.GetCaFingerprint(), &cert)
	if err != nil {
		return err
	}
	defer conn.Close()
	lctx, fail := context.WithCancelCause(ctx)
	cancel := func() { fail(nil) }
	defer cancel()
	stream, err := ospreyv1.NewHierarchyServiceClient(conn).Link(lctx)
	if err != nil {
		return err
	}
	version := s.opts.Version
	if version == "" {
		version = buildinfo.Version()
	}
	if err := stream.Send(&ospreyv1.LinkRequest{Msg: &ospreyv1.LinkRequest_Hello{Hello: &ospreyv1.LinkHello{Token: p.GetToken(), SoftwareVersion: version}}}); err != nil {
		return recvErr(stream.RecvMsg(new(ospreyv1.LinkResponse)), err)
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	welcome := first.GetWelcome()
	if welcome == nil {
		return errors.New("the PCN did not welcome the link")
	}
	interval := welcome.GetHeartbeatInterval().AsDuration()
	if interval <= 0 {
		interval = DefaultHeartbeat
	}
	now := s.opts.Now()
	state := &ospreyv1.PrimaryLink{Node: s.opts.NodeName, Online: true, ConnectedAt: timestamppb.New(now), LastHeartbeatAt: timestamppb.New(now)}
	if err := s.opts.Store.PutPrimaryLink(ctx, lease, state); err != nil {
		return err
	}
	s.update(ctx, func(p *ospreyv1.Primary) { p.Error = "" })
	s.log.InfoContext(ctx, "linked to the PCN", "pcn", p.GetAddress(), "server", welcome.GetServerId(), "heartbeat", interval)
	send := lockedSend(stream.Send)
	chans := runChannels(lctx, fail, s.opts.Channels, welcome.GetServerId(), welcome.GetTenant(), send)
	defer chans.wait()
	defer cancel()
	defer func() {
		state.Online = false
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer wcancel()
		_ = s.opts.Store.PutPrimaryLink(wctx, lease, state) // the lease ends it anyway
	}()

	// One goroutine sends the heartbeats; this one receives.
	sendErr := make(chan error, 1)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		var counts Counts
		for {
			hb := s.heartbeat(lctx, version, cert.Leaf.NotAfter, interval/2, &counts)
			if err := send(&ospreyv1.LinkRequest{Msg: &ospreyv1.LinkRequest_Heartbeat{Heartbeat: hb}}); err != nil {
				sendErr <- err
				return
			}
			select {
			case <-t.C:
			case <-lctx.Done():
				sendErr <- nil
				return
			}
		}
	}()
	recvd := make(chan *ospreyv1.LinkResponse)
	recvErrs := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErrs <- err
				return
			}
			select {
			case recvd <- m:
			case <-lctx.Done():
				recvErrs <- lctx.Err()
				return
			}
		}
	}()
	silence := time.NewTimer(missedHeartbeats * interval)
	defer silence.Stop()
	// The link ends when its certificate is due for renewal, so that the
	// next one renews it first (a blip, every two thirds of a lifetime).
	renew := time.NewTimer(renewAt(cert.Leaf).Sub(s.opts.Now()))
	defer renew.Stop()
	for {
		select {
		case <-renew.C:
			cancel()
			<-sendErr
			return errRenewDue
		case m := <-recvd:
			silence.Reset(missedHeartbeats * interval)
			if hb := m.GetHeartbeat(); hb != nil {
				state.LastHeartbeatAt = timestamppb.New(s.opts.Now())
				if err := s.opts.Store.PutPrimaryLink(ctx, lease, state); err != nil {
					return err
				}
			}
			if t := m.GetToken(); t != nil {
				s.update(ctx, func(p *ospreyv1.Primary) { p.TokenExpiresAt = t.GetTokenExpiresAt() })
			}
			if m.GetHeartbeat() == nil && m.GetToken() == nil {
				if _, err := chans.deliver(lctx, m); err != nil && ctx.Err() == nil {
					<-sendErr
					return context.Cause(lctx)
				}
			}
		case err := <-recvErrs:
			cancel()
			<-sendErr
			return err
		case err := <-sendErr:
			// The stream broke: Recv tells why (the PCN's status).
			for {
				select {
				case <-recvd:
				case rerr := <-recvErrs:
					return recvErr(rerr, err)
				}
			}
		case <-silence.C:
			cancel()
			<-sendErr
			return fmt.Errorf("no word from the PCN for %v", missedHeartbeats*interval)
		case <-ctx.Done():
			cancel()
			<-sendErr
			return nil
		case <-lctx.Done():
			// A channel failed (fail was given its error).
			<-sendErr
			return context.Cause(lctx)
		}
	}
}

// recvErr prefers the status the PCN ended the stream with over a send's
// error, which only says the stream is gone.
func recvErr(recv, send error) error {
	if _, ok := status.FromError(recv); ok && recv != nil && status.Code(recv) != codes.Canceled {
		return recv
	}
	return send
}

// heartbeat reads the SCN's state, within timeout: a heartbeat goes out
// on time with the last counts read when the stores are slow, for a late
// heartbeat would take the link down.
func (s *Secondary) heartbeat(ctx context.Context, version string, certExpires time.Time, timeout time.Duration, last *Counts) *ospreyv1.LinkHeartbeat {
	hb := &ospreyv1.LinkHeartbeat{SoftwareVersion: version, CertExpiresAt: timestamppb.New(certExpires)}
	if s.opts.Counts != nil {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		c, err := s.opts.Counts(cctx)
		cancel()
		if err == nil {
			*last = c
		} else if ctx.Err() == nil {
			s.log.WarnContext(ctx, "read the counts for the PCN; sending the last ones", "err", err)
		}
	}
	c := *last
	hb.Sensors, hb.Alerts = c.Sensors, c.Alerts
	if !c.LastData.IsZero() {
		hb.LastDataAt = timestamppb.New(c.LastData)
	}
	return hb
}

// errRenewDue ends a link whose certificate is due for renewal.
var errRenewDue = errors.New("the link certificate is due for renewal")

// renewAt is when a link certificate is renewed: two thirds into its life.
func renewAt(c *x509.Certificate) time.Time {
	issued := pki.IssuedAt(c)
	return issued.Add(c.NotAfter.Sub(issued) * 2 / 3)
}

// renewIfDue renews the link certificate, for a new key, once two thirds
// of its life have passed, and records it.
func (s *Secondary) renewIfDue(ctx context.Context, p *ospreyv1.Primary) (*ospreyv1.Primary, error) {
	cert, err := s.linkCert(p)
	if err != nil {
		return nil, err
	}
	if s.opts.Now().Before(renewAt(cert.Leaf)) {
		return p, nil
	}
	csr, sealed, err := s.newLinkKey(p.GetServerId())
	if err != nil {
		return nil, err
	}
	resp, err := call(ctx, p.GetAddress(), p.GetCaFingerprint(), &cert, func(ctx context.Context, c ospreyv1.HierarchyServiceClient) (*ospreyv1.RenewLinkResponse, error) {
		return c.RenewLink(ctx, &ospreyv1.RenewLinkRequest{Csr: csr})
	})
	if err != nil {
		return nil, fmt.Errorf("renew the link certificate: %w", err)
	}
	// The key and its certificate are written together, with the version
	// check: a node that lost the election meanwhile writes nothing, and
	// the PCN still accepts the previous key.
	for range 5 {
		cur, version, err := s.opts.Store.Primary(ctx)
		if err != nil {
			return nil, err
		}
		cur = proto.Clone(cur).(*ospreyv1.Primary)
		cur.SealedKey, cur.Certificate = sealed, resp.GetCertificate()
		if _, err := s.opts.Store.PutPrimary(ctx, cur, version); err == nil {
			s.log.InfoContext(ctx, "renewed the link certificate", "old_expiry", cert.Leaf.NotAfter)
			return cur, nil
		}
	}
	return nil, errors.New("record the renewed link certificate: the record kept changing")
}
