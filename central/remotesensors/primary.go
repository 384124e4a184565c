package remotesensors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/etcdcall"
	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// DefaultTimeout bounds a Call's wait for the SCN's answer: below the API's
// own request timeout, so the caller hears why.
const DefaultTimeout = 8 * time.Second

// ErrOffline is the error of a Call to an SCN whose link is down: it was
// not asked.
var ErrOffline = errors.New("the SCN is offline (its link to the PCN is down): its sensors cannot be reached; retry once it is online")

// ErrNoAnswer is the error of a Call the SCN did not answer in time.
var ErrNoAnswer = errors.New("the SCN did not answer in time: its link may have just gone down; read the sensor again before retrying a write")

// PrimaryOptions configures the PCN's side.
type PrimaryOptions struct {
	Client *clientv3.Client
	Store  *store.Store
	// Timeout bounds a Call's wait for the answer (DefaultTimeout when zero).
	Timeout time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// Primary is the PCN's side: a link channel (Claims, Serve) on the node
// holding an SCN's link, and the calls and reads of the API and the UI on
// any node.
type Primary struct {
	opts PrimaryOptions
	log  *slog.Logger
}

var _ hierarchy.PrimaryChannel = (*Primary)(nil)

// NewPrimary builds the PCN's side.
func NewPrimary(opts PrimaryOptions) *Primary {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Primary{opts: opts, log: log}
}

// Claims takes the SCN's sensor lists and answers.
func (p *Primary) Claims(m *ospreyv1.LinkRequest) bool {
	return m.GetSensorList() != nil || m.GetSensorAnswer() != nil
}

// Serve stores the SCN's lists and answers, and sends down the calls made
// for it on any PCN node, while the link is up.
func (p *Primary) Serve(ctx context.Context, l *hierarchy.Link[*ospreyv1.LinkResponse, *ospreyv1.LinkRequest]) error {
	s := &served{p: p, link: l, leases: map[string]clientv3.LeaseID{}, log: p.log.With("server", l.ServerID)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		for ctx.Err() == nil {
			if err := s.follow(ctx); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "watch of the calls to an SCN's sensors", "err", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	defer func() { <-followed }()
	defer cancel()
	for {
		m, err := l.Recv(ctx)
		if err != nil {
			return nil // the link ended
		}
		if list := m.GetSensorList(); list != nil {
			list = proto.CloneOf(list)
			list.ServerId, list.ReceivedAt = l.ServerID, timestamppb.New(p.opts.Now())
			if err := p.opts.Store.PutServerSensors(ctx, list); err != nil {
				return fmt.Errorf("store the sensors of SCN %s: %w", l.ServerID, err)
			}
		}
		if a := m.GetSensorAnswer(); a != nil {
			s.answer(ctx, a)
		}
	}
}

// served is one link's calls in flight.
type served struct {
	p    *Primary
	link *hierarchy.Link[*ospreyv1.LinkResponse, *ospreyv1.LinkRequest]
	log  *slog.Logger

	mu sync.Mutex
	// leases are the leases of the calls sent down and not yet answered,
	// by request id; a call is sent once.
	leases map[string]clientv3.LeaseID
}

// follow sends down the calls waiting now, then those that come, until
// the watch fails.
func (s *served) follow(ctx context.Context) error {
	prefix := store.ServerRequestKey(s.link.ServerID, "")
	resp, err := s.p.opts.Client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	for _, kv := range resp.Kvs {
		if err := s.send(string(kv.Key), kv.Value, clientv3.LeaseID(kv.Lease)); err != nil {
			return err
		}
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range s.p.opts.Client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithFilterDelete(), clientv3.WithRev(resp.Header.Revision+1)) {
		if err := wr.Err(); err != nil {
			return err
		}
		for _, ev := range wr.Events {
			if err := s.send(string(ev.Kv.Key), ev.Kv.Value, clientv3.LeaseID(ev.Kv.Lease)); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

func (s *served) send(key string, value []byte, lease clientv3.LeaseID) error {
	call := new(ospreyv1.RemoteSensorCall)
	if err := proto.Unmarshal(value, call); err != nil || !strings.HasSuffix(key, "/"+call.GetId()) {
		s.log.Warn("unreadable call to an SCN's sensor", "key", key, "err", err)
		return nil
	}
	s.mu.Lock()
	_, dup := s.leases[call.GetId()]
	if !dup {
		s.leases[call.GetId()] = lease
	}
	s.mu.Unlock()
	if dup {
		return nil
	}
	return s.link.Send(&ospreyv1.LinkResponse{Msg: &ospreyv1.LinkResponse_SensorCall{SensorCall: call}})
}

// answer stores the SCN's answer for its caller, under the call's lease;
// an answer to no call of this link is dropped.
func (s *served) answer(ctx context.Context, a *ospreyv1.RemoteSensorAnswer) {
	s.mu.Lock()
	lease, ok := s.leases[a.GetId()]
	delete(s.leases, a.GetId())
	s.mu.Unlock()
	if !ok || store.CheckID("request", a.GetId()) != nil {
		return
	}
	b, err := proto.Marshal(a)
	if err != nil {
		s.log.WarnContext(ctx, "encode an SCN's answer", "err", err)
		return
	}
	if _, err := s.p.opts.Client.Put(ctx, store.ServerReplyKey(a.GetId()), string(b), clientv3.WithLease(lease)); err != nil && ctx.Err() == nil {
		// Most often the caller's lease ran out: it gave up.
		s.log.InfoContext(ctx, "SCN's answer not stored", "request", a.GetId(), "err", err)
	}
}

// Call hands call to SCN server, which must be in scope sc (else the
// store's not found) and online (else ErrOffline), and returns its answer:
// what the SCN's API answered, an error status included. No answer within
// the bound is ErrNoAnswer.
func (p *Primary) Call(ctx context.Context, sc store.Scope, server string, call *ospreyv1.RemoteSensorCall) (*ospreyv1.RemoteSensorAnswer, error) {
	if _, _, err := p.opts.Store.GetServer(ctx, sc, server); err != nil {
		return nil, err
	}
	links, err := p.opts.Store.ServerLinks(ctx)
	if err != nil {
		return nil, err
	}
	if !links[server].GetOnline() {
		return nil, fmt.Errorf("SCN %s: %w", server, ErrOffline)
	}
	id, err := etcdcall.NewID()
	if err != nil {
		return nil, err
	}
	call = proto.CloneOf(call)
	call.Id = id
	a := new(ospreyv1.RemoteSensorAnswer)
	err = etcdcall.Call(ctx, p.opts.Client, store.ServerRequestKey(server, id), store.ServerReplyKey(id), call, p.opts.Timeout, a)
	switch {
	case errors.Is(err, etcdcall.ErrNoReply):
		return nil, fmt.Errorf("SCN %s, after %v: %w", server, p.opts.Timeout, ErrNoAnswer)
	case err != nil:
		return nil, fmt.Errorf("call to SCN %s: %w", server, err)
	}
	return a, nil
}

// Sensors returns the sensors of SCN server, in scope sc, as the PCN last
// heard of them.
func (p *Primary) Sensors(ctx context.Context, sc store.Scope, server string) (api.ServerSensors, error) {
	srv, _, err := p.opts.Store.GetServer(ctx, sc, server)
	if err != nil {
		return api.ServerSensors{}, err
	}
	links, err := p.opts.Store.ServerLinks(ctx)
	if err != nil {
		return api.ServerSensors{}, err
	}
	list, err := p.opts.Store.ServerSensors(ctx, server)
	if err != nil {
		return api.ServerSensors{}, err
	}
	return View(srv, links[server], list), nil
}

// View is the API's view of an SCN's last sensor list (nil: none yet).
func View(srv *ospreyv1.Server, link *ospreyv1.ServerLink, list *ospreyv1.RemoteSensorList) api.ServerSensors {
	v := api.ServerSensors{Server: srv.GetId(), Tenant: srv.GetTenant(), Online: link.GetOnline(), Sensors: []api.RemoteSensor{}}
	if list == nil {
		return v
	}
	if list.GetReceivedAt() != nil {
		t := list.GetReceivedAt().AsTime().UTC()
		v.ReceivedAt = &t
	}
	v.WritesRefused, v.Truncated = list.GetWritesRefused(), list.GetTruncated()
	for _, s := range list.GetSensors() {
		r := api.RemoteSensor{
			ID: s.GetId(), Name: s.GetName(), Tenant: s.GetTenant(), State: api.SensorState(s.GetState()),
			Online: s.GetOnline(), Node: s.GetNode(), Type: api.SensorType(s.GetType()), SoftwareVersion: s.GetSoftwareVersion(),
			ConfigVersion: s.GetConfigVersion(), AppliedVersion: s.GetAppliedVersion(), LastError: s.GetLastError(),
			Healthy: s.GetHealthy(), SMTPState: api.IntegrationState(s.GetSmtpState()), POP3State: api.IntegrationState(s.GetPop3State()),
			Gateway: s.GetGateway(),
		}
		r.Config = configState(r)
		v.Sensors = append(v.Sensors, r)
	}
	return v
}

func configState(s api.RemoteSensor) api.RemoteConfigState {
	switch {
	case s.AppliedVersion >= s.ConfigVersion:
		return api.ConfigApplied
	case s.LastError != "":
		return api.ConfigRefused
	}
	return api.ConfigPending
}
