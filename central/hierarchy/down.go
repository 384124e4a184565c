package hierarchy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Users and global rules down the link.
//
// The PCN's channel (Down) reads every user and global rule at one etcd
// revision and sends the SCN a snapshot of those it should have: the users
// that see its tenant (SeesTenant) and the PCN's own global rules, with the
// revision as the version. It then waits for a change (a watch of users/
// and global-rules/ from that revision), reads everything again at the new
// revision and sends the difference with the new version: level-triggered,
// so a burst of changes travels as one update and nothing is lost between
// two watches. Password hashes travel (the link is mutual TLS, pinned to
// the PCN's CA on the SCN's side and to the link certificate on the PCN's);
// API tokens never do: a PCN user has none on the SCN.
//
// The SCN's channel (DownApply) applies each update to its own etcd
// (store.ApplyPrimaryUpdate: users and rules marked origin "pcn",
// read-only there) and answers DownAck: ok, or a NACK with the reason (an
// invalid user or rule, which changes nothing; a name taken by a local
// user or rule, which is left out, the rest applied). The PCN records the
// last ACKed version and the last NACK per SCN (store.PutDownStatus) for
// the Servers page, the API and `osprey ctl servers`.

// SeesTenant reports whether user u sees tenant t, and so is sent to an
// SCN of t: a user of all tenants, or one whose tenants include t.
func SeesTenant(u *ospreyv1.User, t string) bool {
	return u.GetAllTenants() || slices.Contains(u.GetTenants(), t)
}

// onSCN is what an SCN gets of a PCN user that sees its tenant: the same
// account, of every tenant of the SCN. An SCN serves one tenant of its PCN
// (in multitenancy mode, an SCN belongs to a tenant), so all of its own
// tenants are that tenant's, whatever the SCN calls them.
func onSCN(u *ospreyv1.User) *ospreyv1.User {
	u = proto.Clone(u).(*ospreyv1.User)
	u.Tenants, u.AllTenants, u.Tenant = nil, true, ""
	return u
}

// Down is the PCN's channel of users and global rules.
type Down struct {
	st  *store.Store
	now func() time.Time
	log *slog.Logger
}

// NewDown returns the PCN's channel of users and global rules over st.
func NewDown(st *store.Store, logger *slog.Logger) *Down {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Down{st: st, now: time.Now, log: logger}
}

// Claims takes the SCN's answers.
func (d *Down) Claims(m *ospreyv1.LinkRequest) bool { return m.GetDownAck() != nil }

// Serve sends the snapshot, then every change, and records the answers.
func (d *Down) Serve(ctx context.Context, l *Link[*ospreyv1.LinkResponse, *ospreyv1.LinkRequest]) error {
	rec := &downRecord{st: d.st, now: d.now}
	if err := rec.load(ctx, l.ServerID); err != nil {
		return err
	}
	// After a NACK the next update is a snapshot again: what the SCN left
	// out (a name clash it has since resolved) then travels with it.
	var nacked atomic.Bool
	acks := make(chan error, 1)
	go func() { acks <- d.answers(ctx, l, rec, &nacked) }()

	sent := downSet{users: map[string]*ospreyv1.User{}, rules: map[string]*ospreyv1.Rule{}}
	snapshot := true
	for {
		if nacked.Swap(false) {
			snapshot = true
			sent = downSet{users: map[string]*ospreyv1.User{}, rules: map[string]*ospreyv1.Rule{}}
		}
		rev, users, rules, err := d.st.UsersAndGlobalRules(ctx)
		if err != nil {
			return err
		}
		next := wanted(users, rules, l.Tenant)
		up := sent.diff(next)
		up.Version, up.Snapshot = rev, snapshot
		if snapshot || !up.empty() {
			if err := l.Send(&ospreyv1.LinkResponse{Msg: &ospreyv1.LinkResponse_Down{Down: up.DownUpdate}}); err != nil {
				return nil // the link is gone; it ends
			}
			if err := rec.sent(ctx, rev); err != nil {
				return err
			}
		}
		sent, snapshot = next, false
		if err := d.st.WaitUsersOrGlobalRules(ctx, rev); err != nil {
			if ctx.Err() != nil {
				return <-acks
			}
			return err
		}
	}
}

// answers records the SCN's ACKs and NACKs until the link ends.
func (d *Down) answers(ctx context.Context, l *Link[*ospreyv1.LinkResponse, *ospreyv1.LinkRequest], rec *downRecord, nacked *atomic.Bool) error {
	for {
		m, err := l.Recv(ctx)
		if err != nil {
			return nil
		}
		a := m.GetDownAck()
		if !a.GetOk() {
			nacked.Store(true)
			d.log.WarnContext(ctx, "an SCN refused users or global rules", "server", l.ServerID, "version", a.GetVersion(), "reason", a.GetReason())
		}
		if err := rec.answer(ctx, a); err != nil && ctx.Err() == nil {
			d.log.WarnContext(ctx, "record an SCN's answer", "server", l.ServerID, "err", err)
		}
	}
}

// downRecord is the PCN's record of one SCN's answers, kept in etcd.
type downRecord struct {
	st  *store.Store
	now func() time.Time
	mu  sync.Mutex
	cur *ospreyv1.DownStatus
}

func (r *downRecord) load(ctx context.Context, id string) error {
	all, err := r.st.DownStatuses(ctx)
	if err != nil {
		return err
	}
	r.cur = all[id]
	if r.cur == nil {
		r.cur = &ospreyv1.DownStatus{ServerId: id}
	}
	return nil
}

func (r *downRecord) sent(ctx context.Context, version int64) error {
	return r.update(ctx, func(s *ospreyv1.DownStatus) { s.SentVersion = version })
}

func (r *downRecord) answer(ctx context.Context, a *ospreyv1.DownAck) error {
	now := timestamppb.New(r.now())
	return r.update(ctx, func(s *ospreyv1.DownStatus) {
		if a.GetOk() {
			s.AppliedVersion, s.AppliedAt = max(s.GetAppliedVersion(), a.GetVersion()), now
			return
		}
		s.NackVersion, s.NackReason, s.NackAt = a.GetVersion(), a.GetReason(), now
	})
}

func (r *downRecord) update(ctx context.Context, f func(*ospreyv1.DownStatus)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := proto.Clone(r.cur).(*ospreyv1.DownStatus)
	f(next)
	if err := r.st.PutDownStatus(ctx, next); err != nil {
		return err
	}
	r.cur = next
	return nil
}

// downSet is what an SCN should hold: users by name, rules by id.
type downSet struct {
	users map[string]*ospreyv1.User
	rules map[string]*ospreyv1.Rule
}

// wanted is what the PCN sends an SCN of tenant: the users that see it
// and its own global rules (not those it got from a PCN of its own, which
// it cannot have: the hierarchy has two levels).
func wanted(users []*ospreyv1.User, rules []*ospreyv1.Rule, tenant string) downSet {
	s := downSet{users: map[string]*ospreyv1.User{}, rules: map[string]*ospreyv1.Rule{}}
	for _, u := range users {
		if u.GetOrigin() == "" && SeesTenant(u, tenant) {
			s.users[u.GetName()] = onSCN(u)
		}
	}
	for _, r := range rules {
		if r.GetOrigin() == "" {
			r = proto.Clone(r).(*ospreyv1.Rule)
			r.Version = 0 // the SCN's store has its own
			s.rules[r.GetId()] = r
		}
	}
	return s
}

type downUpdate struct{ *ospreyv1.DownUpdate }

func (u downUpdate) empty() bool {
	return len(u.Users)+len(u.DeletedUsers)+len(u.Rules)+len(u.DeletedRules) == 0
}

// diff is the update that takes an SCN holding s to next.
func (s downSet) diff(next downSet) downUpdate {
	up := downUpdate{&ospreyv1.DownUpdate{}}
	up.Users, up.DeletedUsers = diffMap(s.users, next.users)
	up.Rules, up.DeletedRules = diffMap(s.rules, next.rules)
	return up
}

func diffMap[T proto.Message](had, want map[string]T) (changed []T, deleted []string) {
	for k, v := range want {
		if old, ok := had[k]; !ok || !proto.Equal(old, v) {
			changed = append(changed, v)
		}
	}
	for k := range had {
		if _, ok := want[k]; !ok {
			deleted = append(deleted, k)
		}
	}
	return changed, deleted
}

// DownApply is an SCN's channel of users and global rules from its PCN.
type DownApply struct {
	st  *store.Store
	log *slog.Logger
}

// NewDownApply returns the SCN's channel of users and global rules, which
// applies them to st.
func NewDownApply(st *store.Store, logger *slog.Logger) *DownApply {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &DownApply{st: st, log: logger}
}

// Claims takes the PCN's updates.
func (d *DownApply) Claims(m *ospreyv1.LinkResponse) bool { return m.GetDown() != nil }

// Serve applies each update and answers it.
func (d *DownApply) Serve(ctx context.Context, l *Link[*ospreyv1.LinkRequest, *ospreyv1.LinkResponse]) error {
	for {
		m, err := l.Recv(ctx)
		if err != nil {
			return nil
		}
		up := m.GetDown()
		ack := &ospreyv1.DownAck{Version: up.GetVersion(), Ok: true}
		err = d.st.ApplyPrimaryUpdate(ctx, up)
		var bad validate.Errors
		switch {
		case err == nil:
		case errors.As(err, &bad), errors.Is(err, store.ErrClash), errors.Is(err, store.ErrConflict):
			ack.Ok, ack.Reason = false, err.Error()
			d.log.WarnContext(ctx, "refused users or global rules from the PCN", "version", up.GetVersion(), "reason", err)
		default:
			// The store failed: a new link (and snapshot) may cure it.
			return fmt.Errorf("apply the PCN's users and global rules: %w", err)
		}
		if err := l.Send(&ospreyv1.LinkRequest{Msg: &ospreyv1.LinkRequest_DownAck{DownAck: ack}}); err != nil {
			return nil
		}
	}
}

// MakeLocal is what an SCN does when its PCN disconnected it: the users
// and global rules it got from the PCN become its own (store.ClearPrimaryOrigin).
// The global rules are kept rather than dropped: they protected the SCN's
// tenant until now, and dropping them would silently stop detections the
// operators relied on; its administrator may delete them.
func MakeLocal(st *store.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := st.ClearPrimaryOrigin(ctx)
		return err
	}
}
