package store

import (
	"context"
	"fmt"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// sensorTenant returns the tenant under whose keys sensor id lives, as far as
// scope is concerned: a scope of one tenant only ever looks under its own
// tenant (the sensor may then turn out not to be there); any other asks the
// index, and a scope of several finds only the sensors of its tenants.
func (s *Store) sensorTenant(ctx context.Context, scope Scope, id string) (string, error) {
	if err := scope.Check(); err != nil {
		return "", err
	}
	if err := CheckID("sensor", id); err != nil {
		return "", err
	}
	if only := scope.Tenant(); only != "" {
		return only, nil
	}
	key := sensorTenantKey(id)
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return "", etcdErr("get", key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("sensor %q: %w", id, ErrNotFound)
	}
	tenant := string(resp.Kvs[0].Value)
	if !validID(tenant) {
		return "", fmt.Errorf("index %s holds invalid tenant id %q", key, tenant)
	}
	if !scope.Allows(tenant) {
		return "", fmt.Errorf("sensor %q: %w", id, ErrNotFound)
	}
	return tenant, nil
}

// ListSensors returns the sensors in scope, ordered by tenant and id.
func (s *Store) ListSensors(ctx context.Context, scope Scope) ([]*ospreyv1.Sensor, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	prefixes := []string{tenantsPrefix}
	if !scope.all {
		prefixes = prefixes[:0]
		for _, t := range scope.tenants {
			prefixes = append(prefixes, tenantSensorsPrefix(t))
		}
	}
	var out []*ospreyv1.Sensor
	for _, prefix := range prefixes {
		got, err := list(ctx, s, prefix, func(key string) bool {
			_, _, part, ok := parseSensorKey(key)
			return ok && part == partMeta
		}, func() *ospreyv1.Sensor { return new(ospreyv1.Sensor) })
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// GetSensor returns a sensor and its version.
func (s *Store) GetSensor(ctx context.Context, scope Scope, id string) (*ospreyv1.Sensor, int64, error) {
	tenant, err := s.sensorTenant(ctx, scope, id)
	if err != nil {
		return nil, 0, err
	}
	sn := new(ospreyv1.Sensor)
	v, err := s.get(ctx, sensorKey(tenant, id, partMeta), sn)
	if err != nil {
		return nil, 0, fmt.Errorf("sensor %q: %w", id, err)
	}
	return sn, v, nil
}

// CreateSensor stores a new sensor and its index entry in one transaction, and
// returns its version. An empty tenant means the scope's own; a tenant scope
// naming another tenant gets ErrForbidden. The tenant must exist (ErrNotFound);
// sensor ids are unique across tenants (ErrExists).
func (s *Store) CreateSensor(ctx context.Context, scope Scope, sn *ospreyv1.Sensor) (int64, error) {
	if err := scope.Check(); err != nil {
		return 0, err
	}
	sn = proto.Clone(sn).(*ospreyv1.Sensor)
	tenant, err := scope.Claim(sn.GetTenant())
	if err != nil {
		return 0, err
	}
	sn.Tenant = tenant
	if err := CheckID("tenant", tenant); err != nil {
		return 0, err
	}
	id := sn.GetId()
	if err := CheckID("sensor", id); err != nil {
		return 0, err
	}
	if err := validateSensor(sn); err != nil {
		return 0, err
	}
	b, err := encode(sn)
	if err != nil {
		return 0, err
	}
	key, index, tk := sensorKey(tenant, id, partMeta), sensorTenantKey(id), tenantKey(tenant)
	return s.put(ctx, write{
		what: fmt.Sprintf("sensor %q", id), key: key, value: b, expect: AnyVersion,
		conds:  []clientv3.Cmp{exists(tk), absent(index), absent(key)},
		onFail: []clientv3.Op{probe(tk)},
		failErr: func(r []*etcdserverpb.ResponseOp) error {
			if !found(r[0]) {
				return fmt.Errorf("tenant %q: %w", tenant, ErrNotFound)
			}
			return fmt.Errorf("sensor %q: %w", id, ErrExists)
		},
		also: []clientv3.Op{clientv3.OpPut(index, tenant)},
	})
}

// UpdateSensor replaces a sensor's record (to approve or revoke it, rename it,
// record its certificate) if its version is still expect, and returns the new
// version. A sensor never changes tenant: an empty tenant means the current
// one, another tenant is ErrForbidden in a tenant scope and a validation error
// in AllTenants. A sensor outside the scope is ErrNotFound.
func (s *Store) UpdateSensor(ctx context.Context, scope Scope, sn *ospreyv1.Sensor, expect int64) (int64, error) {
	id := sn.GetId()
	tenant, err := s.sensorTenant(ctx, scope, id)
	if err != nil {
		return 0, err
	}
	sn = proto.Clone(sn).(*ospreyv1.Sensor)
	claimed, err := scope.Claim(sn.GetTenant())
	if err != nil {
		return 0, err
	}
	if claimed != "" && claimed != tenant {
		return 0, fieldError("tenant", "a sensor cannot move to another tenant")
	}
	sn.Tenant = tenant
	if err := validateSensor(sn); err != nil {
		return 0, err
	}
	b, err := encode(sn)
	if err != nil {
		return 0, err
	}
	key := sensorKey(tenant, id, partMeta)
	return s.put(ctx, write{
		what: fmt.Sprintf("sensor %q", id), key: key, value: b, expect: expect,
		conds: []clientv3.Cmp{exists(key)},
		failErr: func([]*etcdserverpb.ResponseOp) error {
			return fmt.Errorf("sensor %q: %w", id, ErrNotFound)
		},
	})
}

// GetSMTP returns a sensor's SMTP integration and its version; one never
// written is the zero (disabled) message at version 0.
func (s *Store) GetSMTP(ctx context.Context, scope Scope, sensorID string) (*ospreyv1.SmtpIntegration, int64, error) {
	m := new(ospreyv1.SmtpIntegration)
	v, err := s.getPart(ctx, scope, sensorID, partSMTP, m)
	if err != nil {
		return nil, 0, err
	}
	return m, v, nil
}

// PutSMTP replaces a sensor's SMTP integration if its version is still
// expect (AnyVersion: the version it reads first), and returns the new
// version. A TLS private key left empty keeps the stored one while the
// certificate is the stored one (see secrets.go); the result is validated,
// once. Storing the value already stored changes nothing and returns the
// current version. The sensor must exist in scope (ErrNotFound). It costs
// one read and one conditional write (and, in the all-tenants scope, a read
// of the sensor's tenant).
func (s *Store) PutSMTP(ctx context.Context, scope Scope, sensorID string, cfg *ospreyv1.SmtpIntegration, expect int64) (int64, error) {
	next := proto.Clone(cfg).(*ospreyv1.SmtpIntegration)
	return s.updatePart(ctx, scope, sensorID, partSMTP, new(ospreyv1.SmtpIntegration), expect, func(stored proto.Message) (proto.Message, error) {
		mergeSMTPSecrets(stored.(*ospreyv1.SmtpIntegration), next)
		return next, validateSMTP(next)
	})
}

// GetPOP3 returns a sensor's POP3 integration and its version; one never
// written is the zero (disabled) message at version 0. The password is
// returned: callers that show it to people must blank it.
func (s *Store) GetPOP3(ctx context.Context, scope Scope, sensorID string) (*ospreyv1.Pop3Integration, int64, error) {
	m := new(ospreyv1.Pop3Integration)
	v, err := s.getPart(ctx, scope, sensorID, partPOP3, m)
	if err != nil {
		return nil, 0, err
	}
	return m, v, nil
}

// PutPOP3 is PutSMTP for the POP3 integration: an empty password keeps
// the stored one while the server and user name are the stored ones.
func (s *Store) PutPOP3(ctx context.Context, scope Scope, sensorID string, cfg *ospreyv1.Pop3Integration, expect int64) (int64, error) {
	next := proto.Clone(cfg).(*ospreyv1.Pop3Integration)
	return s.updatePart(ctx, scope, sensorID, partPOP3, new(ospreyv1.Pop3Integration), expect, func(stored proto.Message) (proto.Message, error) {
		old := stored.(*ospreyv1.Pop3Integration)
		mergePOP3Secrets(old, next)
		if next.GetEnabled() && next.GetPassword() == "" && old.GetPassword() != "" {
			// Dropping the stored password without a word would leave
			// the sensor failing to log in.
			return next, validate.Merge(validate.Errors{{Field: "password",
				Message: "enter the password again: the mail server or user name changed, so the stored password is not kept"}}, validatePOP3(next))
		}
		return next, validatePOP3(next)
	})
}

// updatePart reads one integration of a sensor into stored, makes the
// value to write from it with next, and writes that if the integration is
// still at expect (AnyVersion: the version read), on condition that the
// sensor exists in its tenant.
func (s *Store) updatePart(ctx context.Context, scope Scope, id, part string, stored proto.Message, expect int64,
	next func(stored proto.Message) (proto.Message, error)) (int64, error) {
	tenant, err := s.sensorTenant(ctx, scope, id)
	if err != nil {
		return 0, err
	}
	version, err := s.getPartAt(ctx, tenant, id, part, stored)
	if err != nil {
		return 0, err
	}
	if expect == AnyVersion {
		expect = version
	}
	m, err := next(stored)
	if err != nil {
		return 0, err
	}
	return s.putPartAt(ctx, tenant, id, part, m, expect)
}

// getPart reads one integration of a sensor, with the sensor's existence, in
// one transaction. m stays zero when the integration was never written.
func (s *Store) getPart(ctx context.Context, scope Scope, id, part string, m proto.Message) (int64, error) {
	tenant, err := s.sensorTenant(ctx, scope, id)
	if err != nil {
		return 0, err
	}
	return s.getPartAt(ctx, tenant, id, part, m)
}

// getPartAt is getPart of a sensor of tenant.
func (s *Store) getPartAt(ctx context.Context, tenant, id, part string, m proto.Message) (int64, error) {
	key := sensorKey(tenant, id, part)
	resp, err := s.cli.Txn(ctx).Then(probe(sensorKey(tenant, id, partMeta)), clientv3.OpGet(key)).Commit()
	if err != nil {
		return 0, etcdErr("txn", key, err)
	}
	if !found(resp.Responses[0]) {
		return 0, fmt.Errorf("sensor %q: %w", id, ErrNotFound)
	}
	kvs := resp.Responses[1].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return 0, nil
	}
	if err := decode(kvs[0], m); err != nil {
		return 0, err
	}
	return kvs[0].ModRevision, nil
}

// putPart writes one integration of a sensor, on condition that the sensor
// exists in its tenant.
func (s *Store) putPart(ctx context.Context, scope Scope, id, part string, m proto.Message, expect int64) (int64, error) {
	tenant, err := s.sensorTenant(ctx, scope, id)
	if err != nil {
		return 0, err
	}
	return s.putPartAt(ctx, tenant, id, part, m, expect)
}

// putPartAt is putPart of a sensor of tenant.
func (s *Store) putPartAt(ctx context.Context, tenant, id, part string, m proto.Message, expect int64) (int64, error) {
	b, err := encode(m)
	if err != nil {
		return 0, err
	}
	return s.put(ctx, write{
		what: fmt.Sprintf("sensor %q %s", id, part), key: sensorKey(tenant, id, part), value: b, expect: expect,
		conds: []clientv3.Cmp{exists(sensorKey(tenant, id, partMeta))},
		failErr: func([]*etcdserverpb.ResponseOp) error {
			return fmt.Errorf("sensor %q: %w", id, ErrNotFound)
		},
	})
}
