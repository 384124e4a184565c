package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// What an SCN holds of its PCN: users and global rules with origin "pcn",
// written by ApplyPrimaryUpdate only (the API's writes refuse them), made
// local by ClearPrimaryOrigin when the PCN disconnects the SCN. On the PCN,
// UsersAndGlobalRules and WaitUsersOrGlobalRules are what the link sends
// down, and DownStatus what each SCN answered.

// UsersAndGlobalRules returns every user and every global rule (with its
// Version) as they were at one etcd revision, which it returns too.
func (s *Store) UsersAndGlobalRules(ctx context.Context) (int64, []*ospreyv1.User, []*ospreyv1.Rule, error) {
	resp, err := s.cli.Get(ctx, usersPrefix, clientv3.WithPrefix())
	if err != nil {
		return 0, nil, nil, etcdErr("range", usersPrefix, err)
	}
	rev := resp.Header.Revision
	users, err := decodeAll(resp.Kvs, func() *ospreyv1.User { return new(ospreyv1.User) })
	if err != nil {
		return 0, nil, nil, err
	}
	rresp, err := s.cli.Get(ctx, globalRulesPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return 0, nil, nil, etcdErr("range", globalRulesPrefix, err)
	}
	var rules []*ospreyv1.Rule
	for _, kv := range rresp.Kvs {
		if _, _, ok := parseGlobalRuleKey(string(kv.Key)); !ok {
			continue
		}
		r := new(ospreyv1.Rule)
		if err := decode(kv, r); err != nil {
			return 0, nil, nil, err
		}
		r.Version = kv.ModRevision
		rules = append(rules, r)
	}
	return rev, users, rules, nil
}

func decodeAll[T proto.Message](kvs []*mvccpb.KeyValue, newT func() T) ([]T, error) {
	out := make([]T, 0, len(kvs))
	for _, kv := range kvs {
		m := newT()
		if err := decode(kv, m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// WaitUsersOrGlobalRules returns once a user or a global rule changed after
// revision rev (at once if etcd compacted rev away: something may have), or
// with ctx's error.
func (s *Store) WaitUsersOrGlobalRules(ctx context.Context, rev int64) error {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	changed := make(chan error, 2)
	for _, prefix := range []string{usersPrefix, globalRulesPrefix} {
		wch := s.cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		go func() {
			for wr := range wch {
				if wr.CompactRevision != 0 || len(wr.Events) > 0 {
					changed <- nil
					return
				}
				if err := wr.Err(); err != nil {
					changed <- etcdErr("watch", prefix, err)
					return
				}
			}
			changed <- ctx.Err()
		}()
	}
	select {
	case err := <-changed:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ErrClash says that an update from the PCN named a user or global rule
// this SCN has as a local one; the rest of the update was applied.
var ErrClash = errors.New("clashes with a local one, which was left as it is")

// ApplyPrimaryUpdate writes what the PCN sent down (users and global rules,
// origin "pcn") and deletes what it says to; a snapshot also deletes the
// PCN's users and rules that are not in it. It first validates everything:
// an invalid user or rule (validate.Errors, named by its position) refuses
// the whole update, which then changes nothing.
//
// A user or rule whose name is taken by a local one is left out and the
// local one kept; the rest is applied and the error wraps ErrClash naming
// them. The PCN's account does not win: replacing a local account would
// hand it (its password, its role) to whoever holds the PCN's, without
// the SCN's administrator knowing; the SCN's administrator renames or
// deletes the local one, and the PCN's arrives with its next change or
// snapshot (the NACK on the PCN says which name clashed).
//
// Each write is its own transaction guarded by the revision it read, so a
// local write racing the update is never overwritten.
func (s *Store) ApplyPrimaryUpdate(ctx context.Context, up *ospreyv1.DownUpdate) error {
	var bad validate.Errors
	for i, u := range up.GetUsers() {
		if err := checkUserName(u.GetName()); err != nil {
			bad = append(bad, validate.FieldError{Field: fmt.Sprintf("users[%d].name", i), Message: err.Error()})
			continue
		}
		c := proto.Clone(u).(*ospreyv1.User)
		c.Origin = validate.OriginPCN
		if err := validateUser(c); err != nil {
			bad = append(bad, validate.FieldError{Field: fmt.Sprintf("users[%d] (%s)", i, u.GetName()), Message: err.Error()})
		}
	}
	for i, r := range up.GetRules() {
		if err := CheckID("rule", r.GetId()); err != nil {
			bad = append(bad, validate.FieldError{Field: fmt.Sprintf("rules[%d].id", i), Message: err.Error()})
			continue
		}
		c := proto.Clone(r).(*ospreyv1.Rule)
		c.Global, c.Origin = true, validate.OriginPCN
		if err := validateRule(c); err != nil {
			bad = append(bad, validate.FieldError{Field: fmt.Sprintf("rules[%d] (%s)", i, r.GetId()), Message: err.Error()})
		}
	}
	if len(bad) > 0 {
		return bad
	}

	var clashes []string
	// Users.
	users := map[string]*ospreyv1.User{}
	for _, u := range up.GetUsers() {
		users[u.GetName()] = u
	}
	stored, err := s.cli.Get(ctx, usersPrefix, clientv3.WithPrefix())
	if err != nil {
		return etcdErr("range", usersPrefix, err)
	}
	deleted := map[string]bool{}
	for _, n := range up.GetDeletedUsers() {
		deleted[n] = true
	}
	have := map[string]bool{}
	for _, kv := range stored.Kvs {
		u := new(ospreyv1.User)
		if err := decode(kv, u); err != nil {
			return err
		}
		have[u.GetName()] = true
		fromPCN := u.GetOrigin() != ""
		want, sent := users[u.GetName()]
		switch {
		case sent && !fromPCN:
			clashes = append(clashes, fmt.Sprintf("user %q", u.GetName()))
		case sent:
			if err := s.putFromPrimary(ctx, string(kv.Key), kv.ModRevision, kv.Value, userFromPrimary(want)); err != nil {
				return err
			}
		case fromPCN && (deleted[u.GetName()] || up.GetSnapshot()):
			if err := s.deleteFromPrimary(ctx, string(kv.Key), kv.ModRevision); err != nil {
				return err
			}
		}
	}
	for _, u := range up.GetUsers() {
		if !have[u.GetName()] {
			if err := s.putFromPrimary(ctx, userKey(u.GetName()), 0, nil, userFromPrimary(u)); err != nil {
				return err
			}
		}
	}
	// Global rules.
	rules := map[string]*ospreyv1.Rule{}
	for _, r := range up.GetRules() {
		rules[r.GetId()] = r
	}
	clear(deleted)
	for _, id := range up.GetDeletedRules() {
		deleted[id] = true
	}
	clear(have)
	storedRules, err := s.cli.Get(ctx, globalRulesPrefix, clientv3.WithPrefix())
	if err != nil {
		return etcdErr("range", globalRulesPrefix, err)
	}
	for _, kv := range storedRules.Kvs {
		_, id, ok := parseGlobalRuleKey(string(kv.Key))
		if !ok {
			continue
		}
		r := new(ospreyv1.Rule)
		if err := decode(kv, r); err != nil {
			return err
		}
		have[id] = true
		fromPCN := r.GetOrigin() != ""
		want, sent := rules[id]
		switch {
		case sent && !fromPCN:
			clashes = append(clashes, fmt.Sprintf("global rule %q", id))
		case sent:
			if err := s.putRuleFromPrimary(ctx, kv.ModRevision, kv.Value, want); err != nil {
				return err
			}
		case fromPCN && (deleted[id] || up.GetSnapshot()):
			if err := s.deleteFromPrimary(ctx, string(kv.Key), kv.ModRevision); err != nil {
				return err
			}
		}
	}
	for _, r := range up.GetRules() {
		if !have[r.GetId()] {
			if err := s.putRuleFromPrimary(ctx, 0, nil, r); err != nil {
				return err
			}
		}
	}
	if len(clashes) > 0 {
		slices.Sort(clashes)
		return fmt.Errorf("%s: %w", strings.Join(clashes, ", "), ErrClash)
	}
	return nil
}

func userFromPrimary(u *ospreyv1.User) proto.Message {
	u = proto.Clone(u).(*ospreyv1.User)
	u.Origin = validate.OriginPCN
	return u
}

func (s *Store) putRuleFromPrimary(ctx context.Context, read int64, old []byte, r *ospreyv1.Rule) error {
	r = proto.Clone(r).(*ospreyv1.Rule)
	r.Tenant, r.Global, r.Origin = "", true, validate.OriginPCN
	b, err := encodeRule(r)
	if err != nil {
		return err
	}
	return s.putFromPrimaryBytes(ctx, globalRuleKey(r.GetId()), read, old, b)
}

func (s *Store) putFromPrimary(ctx context.Context, key string, read int64, old []byte, m proto.Message) error {
	b, err := encode(m)
	if err != nil {
		return err
	}
	return s.putFromPrimaryBytes(ctx, key, read, old, b)
}

// putFromPrimaryBytes writes b at key if it is still at revision read (0:
// absent) and holds something else than old (a snapshot at each link
// start rewrites nothing that did not change). A key changed meanwhile is
// a local write that won the race: ErrConflict, and the PCN's next
// snapshot (the link's next start, or the update after this NACK) tries
// again.
func (s *Store) putFromPrimaryBytes(ctx context.Context, key string, read int64, old, b []byte) error {
	if read != 0 && bytes.Equal(old, b) {
		return nil
	}
	resp, err := s.cli.Txn(ctx).If(unmodifiedSince(key, read)).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return etcdErr("txn", key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s changed while the PCN's update was applied: %w", key, ErrConflict)
	}
	return nil
}

func (s *Store) deleteFromPrimary(ctx context.Context, key string, read int64) error {
	resp, err := s.cli.Txn(ctx).If(unmodifiedSince(key, read)).Then(clientv3.OpDelete(key)).Commit()
	if err != nil {
		return etcdErr("txn", key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%s changed while the PCN's update was applied: %w", key, ErrConflict)
	}
	return nil
}

// ClearPrimaryOrigin makes the users and global rules this SCN got from
// its PCN local (their origin cleared), when the PCN disconnected it: the
// accounts keep working and the rules keep matching, now managed here. It
// returns how many it changed; calling it again changes nothing.
func (s *Store) ClearPrimaryOrigin(ctx context.Context) (int, error) {
	n := 0
	for _, prefix := range []string{usersPrefix, globalRulesPrefix} {
		resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return n, etcdErr("range", prefix, err)
		}
		for _, kv := range resp.Kvs {
			var m interface {
				proto.Message
				GetOrigin() string
			}
			if prefix == usersPrefix {
				m = new(ospreyv1.User)
			} else {
				m = new(ospreyv1.Rule)
			}
			if err := decode(kv, m); err != nil {
				return n, err
			}
			if m.GetOrigin() == "" {
				continue
			}
			switch v := m.(type) {
			case *ospreyv1.User:
				v.Origin = ""
			case *ospreyv1.Rule:
				v.Origin, v.Version = "", 0
			}
			err := s.putFromPrimary(ctx, string(kv.Key), kv.ModRevision, nil, m)
			if errors.Is(err, ErrConflict) {
				continue // a newer write (none but ours is allowed): left for the next call
			}
			if err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// PutDownStatus records what an SCN answered to the users and rules sent
// down. It is the PCN node's machinery: no scope.
func (s *Store) PutDownStatus(ctx context.Context, st *ospreyv1.DownStatus) error {
	id := st.GetServerId()
	if err := CheckID("server", id); err != nil {
		return err
	}
	b, err := encode(st)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, serverDownKey(id), string(b)); err != nil {
		return etcdErr("put", serverDownKey(id), err)
	}
	return nil
}

// DownStatuses returns every SCN's DownStatus by server id.
func (s *Store) DownStatuses(ctx context.Context) (map[string]*ospreyv1.DownStatus, error) {
	all, err := list(ctx, s, serverDownPrefix, nil, func() *ospreyv1.DownStatus { return new(ospreyv1.DownStatus) })
	if err != nil {
		return nil, err
	}
	out := make(map[string]*ospreyv1.DownStatus, len(all))
	for _, d := range all {
		out[d.GetServerId()] = d
	}
	return out, nil
}
