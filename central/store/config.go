package store

import (
	"context"
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
