package store

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// SensorConfig is the whole configuration of one sensor as of one revision:
// what the configuration push sends.
type SensorConfig struct {
	// Revision is the etcd revision the configuration holds at; a watch from
	// it delivers every later change.
	Revision int64

	Sensor        *ospreyv1.Sensor
	SensorVersion int64
	// SMTP and POP3 are never nil: an integration never written is the zero
	// (disabled) message at version 0.
	SMTP        *ospreyv1.SmtpIntegration
	SMTPVersion int64
	POP3        *ospreyv1.Pop3Integration
	POP3Version int64
}

// Version is the version of what the sensor runs: the newest of its
// integrations' versions. Changes to the sensor's record alone (its name, its
// state, a renewed certificate) are not a new configuration.
func (c *SensorConfig) Version() int64 {
	return max(c.SMTPVersion, c.POP3Version)
}

// clone returns a deep copy, so each event owns its messages.
func (c *SensorConfig) clone() *SensorConfig {
	out := *c
	out.Sensor = proto.Clone(c.Sensor).(*ospreyv1.Sensor)
	out.SMTP = proto.Clone(c.SMTP).(*ospreyv1.SmtpIntegration)
	out.POP3 = proto.Clone(c.POP3).(*ospreyv1.Pop3Integration)
	return &out
}

// apply sets one part of c from kv; a deleted part (kv nil) becomes zero,
// except the sensor's record, which becomes nil.
func (c *SensorConfig) apply(part string, kv *mvccpb.KeyValue) error {
	var (
		m       proto.Message
		version *int64
	)
	switch part {
	case partMeta:
		c.Sensor = new(ospreyv1.Sensor)
		m, version = c.Sensor, &c.SensorVersion
	case partSMTP:
		c.SMTP = new(ospreyv1.SmtpIntegration)
		m, version = c.SMTP, &c.SMTPVersion
	case partPOP3:
		c.POP3 = new(ospreyv1.Pop3Integration)
		m, version = c.POP3, &c.POP3Version
	default:
		return nil
	}
	*version = 0
	if kv == nil {
		if part == partMeta {
			c.Sensor = nil
		}
		return nil
	}
	*version = kv.ModRevision
	return decode(kv, m)
}

// SensorConfig reads a sensor's configuration (meta, SMTP, POP3) at one
// revision, with one range read.
func (s *Store) SensorConfig(ctx context.Context, scope Scope, sensorID string) (*SensorConfig, error) {
	tenant, err := s.sensorTenant(ctx, scope, sensorID)
	if err != nil {
		return nil, err
	}
	return s.sensorConfigAt(ctx, tenant, sensorID, 0)
}

// sensorConfigAt reads a sensor's configuration at rev (0: the latest).
func (s *Store) sensorConfigAt(ctx context.Context, tenant, id string, rev int64) (*SensorConfig, error) {
	prefix := sensorPrefix(tenant, id)
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := s.cli.Get(ctx, prefix, opts...)
	if err != nil {
		return nil, etcdErr("range", prefix, err)
	}
	cfg := &SensorConfig{
		Revision: resp.Header.Revision,
		SMTP:     new(ospreyv1.SmtpIntegration),
		POP3:     new(ospreyv1.Pop3Integration),
	}
	if rev > 0 {
		cfg.Revision = rev
	}
	for _, kv := range resp.Kvs {
		if _, _, part, ok := parseSensorKey(string(kv.Key)); ok {
			if err := cfg.apply(part, kv); err != nil {
				return nil, err
			}
		}
	}
	if cfg.Sensor == nil {
		return nil, fmt.Errorf("sensor %q: %w", id, ErrNotFound)
	}
	return cfg, nil
}

// ConfigEvent is one change of a sensor's configuration, or the end of a
// watch. Exactly one of Config and Err is set.
type ConfigEvent struct {
	// Config is the whole configuration after the change; Config.Revision is
	// the revision of the change.
	Config *SensorConfig
	// Err ends the watch: ErrCompacted (take a fresh snapshot and watch from
	// its revision), ErrNotFound (the sensor is gone) or an etcd error.
	Err error
}

// WatchSensorConfig delivers, in order, the configuration after every change
// to a sensor's keys made after revision afterRev (a SensorConfig's Revision;
// 0 means from now). The changes of one transaction make one event. When etcd
// no longer has afterRev the watch delivers an event whose Err is ErrCompacted
// and closes; it delivers other failures the same way. The channel is closed
// when ctx ends, and the goroutine behind it exits.
func (s *Store) WatchSensorConfig(ctx context.Context, scope Scope, sensorID string, afterRev int64) <-chan ConfigEvent {
	ch := make(chan ConfigEvent)
	go func() {
		defer close(ch)
		err := s.watchSensorConfig(ctx, scope, sensorID, afterRev, func(cfg *SensorConfig) bool {
			select {
			case ch <- ConfigEvent{Config: cfg}:
				return true
			case <-ctx.Done():
				return false
			}
		})
		if err != nil && ctx.Err() == nil {
			select {
			case ch <- ConfigEvent{Err: err}:
			case <-ctx.Done():
			}
		}
	}()
	return ch
}

// watchSensorConfig runs one watch until ctx ends (nil), emit refuses an
// event (nil), or it fails.
func (s *Store) watchSensorConfig(ctx context.Context, scope Scope, id string, afterRev int64, emit func(*SensorConfig) bool) error {
	tenant, err := s.sensorTenant(ctx, scope, id)
	if err != nil {
		return err
	}
	cfg, err := s.sensorConfigAt(ctx, tenant, id, max(afterRev, 0))
	if err != nil {
		return fmt.Errorf("watch sensor %q from revision %d: %w", id, afterRev, err)
	}
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	prefix := sensorPrefix(tenant, id)
	wch := s.cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(cfg.Revision+1))
	for wr := range wch {
		if wr.CompactRevision != 0 {
			return fmt.Errorf("watch sensor %q from revision %d: compacted at %d: %w", id, cfg.Revision, wr.CompactRevision, ErrCompacted)
		}
		if err := wr.Err(); err != nil {
			return etcdErr("watch", prefix, err)
		}
		// Events arrive in revision order, and etcd never splits one
		// revision across responses: emit once per revision.
		for i, ev := range wr.Events {
			_, _, part, ok := parseSensorKey(string(ev.Kv.Key))
			if !ok {
				continue
			}
			kv := ev.Kv
			if ev.Type == clientv3.EventTypeDelete {
				kv = nil
			}
			if err := cfg.apply(part, kv); err != nil {
				return err
			}
			rev := ev.Kv.ModRevision
			if i+1 < len(wr.Events) && wr.Events[i+1].Kv.ModRevision == rev {
				continue
			}
			if cfg.Sensor == nil {
				return fmt.Errorf("sensor %q deleted at revision %d: %w", id, rev, ErrNotFound)
			}
			cfg.Revision = rev
			if !emit(cfg.clone()) {
				return nil
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("etcd watch closed")
}

// SensorChange says that one part of a sensor's configuration changed.
type SensorChange struct {
	Tenant   string
	SensorID string
	// Part is "meta", "smtp" or "pop3".
	Part     string
	Revision int64
	Deleted  bool
	// Err ends the watch, as in ConfigEvent.
	Err error
}

// WatchSensors delivers, in order, every change to the configuration of the
// sensors in scope after revision afterRev (0: from now): a notice naming
// the sensor and part, for lists and caches to refresh. It ends like
// WatchSensorConfig.
func (s *Store) WatchSensors(ctx context.Context, scope Scope, afterRev int64) <-chan SensorChange {
	ch := make(chan SensorChange)
	send := func(c SensorChange) bool {
		select {
		case ch <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	go func() {
		defer close(ch)
		if err := s.watchSensors(ctx, scope, afterRev, send); err != nil && ctx.Err() == nil {
			send(SensorChange{Err: err})
		}
	}()
	return ch
}

func (s *Store) watchSensors(ctx context.Context, scope Scope, afterRev int64, emit func(SensorChange) bool) error {
	if err := scope.check(); err != nil {
		return err
	}
	prefix := tenantsPrefix
	if !scope.all {
		prefix = tenantSensorsPrefix(scope.tenant)
	}
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if afterRev > 0 {
		opts = append(opts, clientv3.WithRev(afterRev+1))
	}
	for wr := range s.cli.Watch(ctx, prefix, opts...) {
		if wr.CompactRevision != 0 {
			return fmt.Errorf("watch sensors from revision %d: compacted at %d: %w", afterRev, wr.CompactRevision, ErrCompacted)
		}
		if err := wr.Err(); err != nil {
			return etcdErr("watch", prefix, err)
		}
		for _, ev := range wr.Events {
			tenant, id, part, ok := parseSensorKey(string(ev.Kv.Key))
			if !ok {
				continue
			}
			if !emit(SensorChange{
				Tenant: tenant, SensorID: id, Part: part,
				Revision: ev.Kv.ModRevision, Deleted: ev.Type == clientv3.EventTypeDelete,
			}) {
				return nil
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("etcd watch closed")
}
