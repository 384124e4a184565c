package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// MessageRetention is how long the record of an uploaded message is kept: the
// window in which a sensor's retry of the same message is recognised as a
// duplicate. Sensors retry within minutes; three days covers a sensor that
// was cut off over a weekend.
const MessageRetention = 72 * time.Hour

// messageLeases hands out one etcd lease per hour of uploads, so message
// records expire by themselves without a lease per key.
type messageLeases struct {
	mu     sync.Mutex
	hour   int64
	lease  clientv3.LeaseID
	expiry time.Time
}

// GetMessage returns the record of an uploaded message.
func (s *Store) GetMessage(ctx context.Context, scope Scope, tenant, sensorID, messageID string) (*ospreyv1.MessageRecord, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	if !scope.Allows(tenant) {
		return nil, ErrNotFound
	}
	for kind, id := range map[string]string{"tenant": tenant, "sensor": sensorID, "message": messageID} {
		if err := CheckID(kind, id); err != nil {
			return nil, err
		}
	}
	rec := &ospreyv1.MessageRecord{}
	if _, err := s.get(ctx, messageKey(tenant, sensorID, messageID), rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// CountMessages counts the records of a sensor's uploaded messages.
func (s *Store) CountMessages(ctx context.Context, scope Scope, tenant, sensorID string) (int64, error) {
	if err := scope.Check(); err != nil {
		return 0, err
	}
	if !scope.Allows(tenant) {
		return 0, ErrNotFound
	}
	prefix := messagesPrefix + tenant + "/" + sensorID + "/"
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, etcdErr("count", prefix, err)
	}
	return resp.Count, nil
}

// messageLease returns the lease for records written in now's hour; it lives
// MessageRetention past the end of that hour.
func (s *Store) messageLease(ctx context.Context, now time.Time) (clientv3.LeaseID, error) {
	hour := now.Unix() / 3600
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	if s.leases.lease != 0 && s.leases.hour == hour && now.Before(s.leases.expiry) {
		return s.leases.lease, nil
	}
	ttl := MessageRetention + time.Hour
	resp, err := s.cli.Grant(ctx, int64(ttl/time.Second))
	if err != nil {
		return 0, fmt.Errorf("etcd grant message lease: %w", err)
	}
	s.leases.hour, s.leases.lease = hour, resp.ID
	s.leases.expiry = now.Add(ttl - time.Hour) // never hand out a lease about to expire
	return resp.ID, nil
}

// ListMessages returns the records of a sensor's uploaded messages that are
// still kept (see MessageRetention), in message id order.
func (s *Store) ListMessages(ctx context.Context, scope Scope, tenant, sensorID string) ([]*ospreyv1.MessageRecord, error) {
	if err := scope.Check(); err != nil {
		return nil, err
	}
	if !scope.Allows(tenant) {
		return nil, ErrNotFound
	}
	for kind, id := range map[string]string{"tenant": tenant, "sensor": sensorID} {
		if err := CheckID(kind, id); err != nil {
			return nil, err
		}
	}
	return list(ctx, s, messagesPrefix+tenant+"/"+sensorID+"/", nil, func() *ospreyv1.MessageRecord { return &ospreyv1.MessageRecord{} })
}
