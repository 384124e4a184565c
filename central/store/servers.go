package store

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The distributed mode's records. On a PCN: one ospreyv1.Server per SCN
// (pending, accepted or disconnected) and the live state of each link. On an
// SCN: its one ospreyv1.Primary and the live state of its link. An SCN is
// bound to one tenant only once accepted, and its pending request to none,
// so only the all-tenants scope reads a pending server.

// CreateServer stores a new SCN request (ErrExists when the id is taken).
func (s *Store) CreateServer(ctx context.Context, srv *ospreyv1.Server) (int64, error) {
	id := srv.GetId()
	if err := CheckID("server", id); err != nil {
		return 0, err
	}
	b, err := encode(srv)
	if err != nil {
		return 0, err
	}
	key := serverKey(id)
	return s.put(ctx, write{
		what: fmt.Sprintf("server %q", id), key: key, value: b, expect: AnyVersion,
		conds: []clientv3.Cmp{absent(key)},
		failErr: func([]*etcdserverpb.ResponseOp) error {
			return fmt.Errorf("server %q: %w", id, ErrExists)
		},
	})
}

// GetServer returns an SCN's record and its version; a tenant scope finds
// only the accepted SCNs of its tenant.
func (s *Store) GetServer(ctx context.Context, scope Scope, id string) (*ospreyv1.Server, int64, error) {
	if err := scope.Check(); err != nil {
		return nil, 0, err
	}
	if err := CheckID("server", id); err != nil {
		return nil, 0, err
	}
	srv := new(ospreyv1.Server)
	v, err := s.get(ctx, serverKey(id), srv)
	if err == nil && !scope.Allows(srv.GetTenant()) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("server %q: %w", id, err)
	}
	return srv, v, nil
}

// ListServers returns the SCNs in scope, by id.
func (s *Store) ListServers(ctx context.Context, scope Scope) ([]*ospreyv1.Server, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	all, err := list(ctx, s, serversPrefix, nil, func() *ospreyv1.Server { return new(ospreyv1.Server) })
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, srv := range all {
		if scope.Allows(srv.GetTenant()) {
			out = append(out, srv)
		}
	}
	return out, nil
}

// UpdateServer replaces an SCN's record if its version is still expect
// (ErrConflict otherwise, ErrNotFound when it is gone) and returns the new
// version. Only the all-tenants scope changes SCNs; an accepted SCN's
// tenant must exist.
func (s *Store) UpdateServer(ctx context.Context, scope Scope, srv *ospreyv1.Server, expect int64) (int64, error) {
	if err := scope.RequireAll("change a server"); err != nil {
		return 0, err
	}
	id := srv.GetId()
	if err := CheckID("server", id); err != nil {
		return 0, err
	}
	b, err := encode(srv)
	if err != nil {
		return 0, err
	}
	key := serverKey(id)
	conds, onFail := []clientv3.Cmp{exists(key)}, []clientv3.Op{probe(key)}
	if t := srv.GetTenant(); t != "" {
		if err := CheckID("tenant", t); err != nil {
			return 0, err
		}
		conds = append(conds, exists(tenantKey(t)))
	}
	return s.put(ctx, write{
		what: fmt.Sprintf("server %q", id), key: key, value: b, expect: expect,
		conds: conds, onFail: onFail,
		failErr: func(r []*etcdserverpb.ResponseOp) error {
			if !found(r[0]) {
				return fmt.Errorf("server %q: %w", id, ErrNotFound)
			}
			return fmt.Errorf("tenant %q: %w", srv.GetTenant(), ErrNotFound)
		},
	})
}

// DeleteServer forgets an SCN if its version is still expect, with its last
// known link state.
func (s *Store) DeleteServer(ctx context.Context, scope Scope, id string, expect int64) error {
	if err := scope.RequireAll("delete a server"); err != nil {
		return err
	}
	if err := CheckID("server", id); err != nil {
		return err
	}
	key := serverKey(id)
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", expect)).
		Then(clientv3.OpDelete(key), clientv3.OpDelete(serverLastSeenKey(id))).
		Else(probe(key)).Commit()
	if err != nil {
		return etcdErr("txn", key, err)
	}
	if !resp.Succeeded {
		if !found(resp.Responses[0]) {
			return fmt.Errorf("server %q: %w", id, ErrNotFound)
		}
		return fmt.Errorf("server %q: %w", id, ErrConflict)
	}
	return nil
}

// PutServerLink records an SCN's link as the node holding it sees it: live
// under lease, or, when the link ended (Online false), as its last known
// state with the live entry deleted. It is the node's machinery: no scope.
func (s *Store) PutServerLink(ctx context.Context, lease clientv3.LeaseID, link *ospreyv1.ServerLink) error {
	id := link.GetServerId()
	if err := CheckID("server", id); err != nil {
		return err
	}
	b, err := encode(link)
	if err != nil {
		return err
	}
	ops := []clientv3.Op{clientv3.OpPut(serverStatusKey(id), string(b), clientv3.WithLease(lease))}
	if !link.GetOnline() {
		ops = []clientv3.Op{clientv3.OpDelete(serverStatusKey(id)), clientv3.OpPut(serverLastSeenKey(id), string(b))}
	}
	if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		return etcdErr("txn", serverStatusKey(id), err)
	}
	return nil
}

// ServerLinks returns the link of every SCN that ever linked, by id: the
// live entry of a linked SCN, else its last known state (Online false).
func (s *Store) ServerLinks(ctx context.Context) (map[string]*ospreyv1.ServerLink, error) {
	out := map[string]*ospreyv1.ServerLink{}
	for _, prefix := range []string{serverLastSeenPrefix, serverStatusPrefix} {
		links, err := list(ctx, s, prefix, nil, func() *ospreyv1.ServerLink { return new(ospreyv1.ServerLink) })
		if err != nil {
			return nil, err
		}
		for _, l := range links {
			if prefix == serverLastSeenPrefix {
				l.Online = false
			}
			out[l.GetServerId()] = l
		}
	}
	return out, nil
}

// Primary returns an SCN's record of its PCN and its version, ErrNotFound
// on a node that never asked to join one.
func (s *Store) Primary(ctx context.Context) (*ospreyv1.Primary, int64, error) {
	p := new(ospreyv1.Primary)
	v, err := s.get(ctx, primaryKey, p)
	if err != nil {
		return nil, 0, fmt.Errorf("primary: %w", err)
	}
	return p, v, nil
}

// PutPrimary writes the record of the PCN if its version is still expect
// (0: there is none yet) and returns the new version.
func (s *Store) PutPrimary(ctx context.Context, p *ospreyv1.Primary, expect int64) (int64, error) {
	b, err := encode(p)
	if err != nil {
		return 0, err
	}
	var conds []clientv3.Cmp
	if expect == 0 {
		conds = []clientv3.Cmp{absent(primaryKey)}
	}
	return s.put(ctx, write{
		what: "primary", key: primaryKey, value: b, expect: expect, conds: conds,
		failErr: func([]*etcdserverpb.ResponseOp) error {
			return fmt.Errorf("primary: %w", ErrConflict)
		},
	})
}

// PutPrimaryLink records the link to the PCN under the lease of the node
// holding it.
func (s *Store) PutPrimaryLink(ctx context.Context, lease clientv3.LeaseID, l *ospreyv1.PrimaryLink) error {
	b, err := encode(l)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, primaryLinkKey, string(b), clientv3.WithLease(lease)); err != nil {
		return etcdErr("put", primaryLinkKey, err)
	}
	return nil
}

// PrimaryLink returns the link to the PCN, nil when no node holds it.
func (s *Store) PrimaryLink(ctx context.Context) (*ospreyv1.PrimaryLink, error) {
	l := new(ospreyv1.PrimaryLink)
	if _, err := s.get(ctx, primaryLinkKey, l); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("primary link: %w", err)
	}
	return proto.Clone(l).(*ospreyv1.PrimaryLink), nil
}

// PrimaryLeaderPrefix is the etcd election of the SCN node that holds the
// link to the PCN.
func PrimaryLeaderPrefix() string { return primaryLeaderPrefix }
