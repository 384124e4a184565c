package hierarchy

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Servers lists the SCNs in scope with their links, as the API and the UI
// show them, pending requests first.
func (p *Primary) Servers(ctx context.Context, scope store.Scope) ([]api.Server, error) {
	srvs, err := p.opts.Store.ListServers(ctx, scope)
	if err != nil {
		return nil, err
	}
	links, err := p.opts.Store.ServerLinks(ctx)
	if err != nil {
		return nil, err
	}
	downs, err := p.opts.Store.DownStatuses(ctx)
	if err != nil {
		return nil, err
	}
	now := p.opts.Now()
	out := make([]api.Server, 0, len(srvs))
	for _, pending := range []bool{true, false} {
		for _, s := range srvs {
			if (s.GetState() == ospreyv1.ServerState_SERVER_STATE_PENDING) == pending {
				v := ServerView(s, links[s.GetId()], now)
				v.Down = DownView(downs[s.GetId()])
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// Server returns one SCN as Servers does.
func (p *Primary) Server(ctx context.Context, scope store.Scope, id string) (api.Server, error) {
	s, _, err := p.opts.Store.GetServer(ctx, scope, id)
	if err != nil {
		return api.Server{}, err
	}
	links, err := p.opts.Store.ServerLinks(ctx)
	if err != nil {
		return api.Server{}, err
	}
	downs, err := p.opts.Store.DownStatuses(ctx)
	if err != nil {
		return api.Server{}, err
	}
	v := ServerView(s, links[id], p.opts.Now())
	v.Down = DownView(downs[id])
	return v, nil
}

var serverStates = map[ospreyv1.ServerState]api.ServerState{
	ospreyv1.ServerState_SERVER_STATE_PENDING:      api.ServerPending,
	ospreyv1.ServerState_SERVER_STATE_ACCEPTED:     api.ServerAccepted,
	ospreyv1.ServerState_SERVER_STATE_DISCONNECTED: api.ServerDisconnected,
}

// ServerView is an SCN and its link (nil if it never linked) as the API
// shows them at now.
func ServerView(s *ospreyv1.Server, l *ospreyv1.ServerLink, now time.Time) api.Server {
	v := api.Server{
		ID: s.GetId(), Name: s.GetName(), Tenant: s.GetTenant(), State: serverStates[s.GetState()],
		Address: s.GetAddress(), Peer: s.GetPeer(), Fingerprint: s.GetFingerprint(), Version: s.GetSoftwareVersion(),
		Username: s.GetUsername(), TokenExpiresAt: timeOf(s.GetTokenExpiresAt()), CertExpiresAt: timeOf(s.GetCertExpiresAt()),
		CreatedAt: timeOf(s.GetCreatedAt()), AcceptedAt: timeOf(s.GetAcceptedAt()),
	}
	if l != nil {
		v.Online, v.LastDataAt, v.Sensors, v.Alerts = l.GetOnline(), timeOf(l.GetLastDataAt()), l.GetSensors(), l.GetAlerts()
		if v.Online {
			v.Node, v.Peer = l.GetNode(), l.GetPeer()
		}
		if l.GetSoftwareVersion() != "" {
			v.Version = l.GetSoftwareVersion()
		}
	}
	if v.State == api.ServerAccepted {
		v.NoData = v.LastDataAt == nil || now.Sub(*v.LastDataAt) > api.NoDataAfter
	}
	return v
}

// DownView is an SCN's answers to the users and global rules sent down,
// as the API shows them; nil for none.
func DownView(d *ospreyv1.DownStatus) *api.ServerDown {
	if d == nil {
		return nil
	}
	return &api.ServerDown{
		SentVersion: d.GetSentVersion(), AppliedVersion: d.GetAppliedVersion(), AppliedAt: timeOf(d.GetAppliedAt()),
		NackVersion: d.GetNackVersion(), NackReason: d.GetNackReason(), NackAt: timeOf(d.GetNackAt()),
	}
}

var primaryStates = map[ospreyv1.PrimaryState]api.PrimaryState{
	ospreyv1.PrimaryState_PRIMARY_STATE_PENDING:       api.PrimaryPending,
	ospreyv1.PrimaryState_PRIMARY_STATE_LINKED:        api.PrimaryLinked,
	ospreyv1.PrimaryState_PRIMARY_STATE_TOKEN_EXPIRED: api.PrimaryTokenExpired,
	ospreyv1.PrimaryState_PRIMARY_STATE_REJECTED:      api.PrimaryRejected,
	ospreyv1.PrimaryState_PRIMARY_STATE_DISCONNECTED:  api.PrimaryDisconnected,
}

// View is this node's place in the distributed mode, as the API shows it.
// A node is an SCN from its request on, until the PCN rejects or
// disconnects it; then it is standalone again (the record says why).
func (s *Secondary) View(ctx context.Context) (api.Hierarchy, error) {
	v := api.Hierarchy{Role: api.HierarchyStandalone, OwnFingerprint: s.opts.OwnFingerprint}
	if s.opts.IsPrimary {
		v.Role = api.HierarchyPrimary
	}
	p, l, err := s.State(ctx)
	if err != nil || p == nil {
		return v, err
	}
	v.PCNAddress, v.Fingerprint, v.State, v.Name, v.Username = p.GetAddress(), p.GetCaFingerprint(), primaryStates[p.GetState()], p.GetName(), p.GetUsername()
	v.ServerID, v.Tenant, v.Error = p.GetServerId(), p.GetTenant(), p.GetError()
	v.TokenExpiresAt, v.RequestedAt = timeOf(p.GetTokenExpiresAt()), timeOf(p.GetRequestedAt())
	switch v.State {
	case api.PrimaryPending, api.PrimaryLinked, api.PrimaryTokenExpired:
		v.Role = api.HierarchySecondary
	}
	if cert, err := s.linkCert(p); err == nil && len(p.GetCertificate()) > 0 {
		t := cert.Leaf.NotAfter.UTC()
		v.CertExpiresAt = &t
	}
	if l != nil && l.GetOnline() && v.State == api.PrimaryLinked {
		v.Online, v.Node, v.LastHeartbeat = true, l.GetNode(), timeOf(l.GetLastHeartbeatAt())
	}
	return v, nil
}

func timeOf(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime().UTC()
	return &t
}
