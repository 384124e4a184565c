package store

import (
	"context"
	"errors"
	"fmt"
	"maps"

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
	// AcceptanceVersions holds the version of each acceptance list ever
	// written.
	AcceptanceVersions map[ospreyv1.AcceptanceListKind]int64

	// lists holds the acceptance lists' heads and chunks, when read (see
	// Acceptance).
	lists *acceptanceParts
}

// acceptanceParts are the heads and chunks of a sensor's acceptance lists
// as read, orphan chunks included: Acceptance follows the heads.
type acceptanceParts struct {
	heads  map[ospreyv1.AcceptanceListKind]acceptanceHead
	chunks map[string][]byte // by part ("acceptance/inbound/<generation>/<n>")
}

// Version is the version of what the sensor runs: the newest of its
// integrations' and acceptance lists' versions. Changes to the sensor's
// record alone (its name, its state, a renewed certificate) are not a new
// configuration.
func (c *SensorConfig) Version() int64 {
	v := max(c.SMTPVersion, c.POP3Version)
	for _, lv := range c.AcceptanceVersions {
		v = max(v, lv)
	}
	return v
}

// Acceptance returns the sensor's acceptance lists that have entries, in
// the order of their kinds. The configuration must have been read with
// its lists (as a Follower reads it); otherwise it returns an error.
func (c *SensorConfig) Acceptance() ([]*ospreyv1.AcceptanceList, error) {
	if c.lists == nil {
		return nil, errors.New("sensor configuration read without its acceptance lists")
	}
	var out []*ospreyv1.AcceptanceList
	for _, kind := range []ospreyv1.AcceptanceListKind{
		ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND,
		ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND,
		ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_AUTH,
	} {
		h, ok := c.lists.heads[kind]
		if !ok || h.total == 0 {
			continue
		}
		l := &ospreyv1.AcceptanceList{Kind: kind, Entries: make([]string, 0, h.total)}
		for n, count := range h.counts {
			part := acceptanceChunkPart(kind, h.generation, n)
			v, ok := c.lists.chunks[part]
			if !ok {
				return nil, fmt.Errorf("sensor %q %s acceptance list: chunk %d of generation %s missing", c.Sensor.GetId(), acceptanceKinds[kind], n, h.generation)
			}
			entries, err := chunkEntries(part, v, count)
			if err != nil {
				return nil, err
			}
			l.Entries = append(l.Entries, entries...)
		}
		out = append(out, l)
	}
	return out, nil
}

// clone returns a deep copy, so each event owns its messages. Chunks,
// which are never modified, are shared.
func (c *SensorConfig) clone() *SensorConfig {
	out := *c
	out.Sensor = proto.Clone(c.Sensor).(*ospreyv1.Sensor)
	out.SMTP = proto.Clone(c.SMTP).(*ospreyv1.SmtpIntegration)
	out.POP3 = proto.Clone(c.POP3).(*ospreyv1.Pop3Integration)
	out.AcceptanceVersions = maps.Clone(c.AcceptanceVersions)
	if c.lists != nil {
		out.lists = &acceptanceParts{heads: maps.Clone(c.lists.heads), chunks: maps.Clone(c.lists.chunks)}
	}
	return &out
}

// applyAcceptance sets a head or chunk of an acceptance list from kv (nil:
// deleted). Without lists, only the heads' versions are kept.
func (c *SensorConfig) applyAcceptance(part string, kv *mvccpb.KeyValue) error {
	ap, ok := parseAcceptancePart(part)
	if !ok {
		return nil
	}
	if ap.generation != "" {
		if c.lists != nil {
			if kv == nil {
				delete(c.lists.chunks, part)
			} else {
				c.lists.chunks[part] = kv.Value
			}
		}
		return nil
	}
	if c.AcceptanceVersions == nil {
		c.AcceptanceVersions = map[ospreyv1.AcceptanceListKind]int64{}
	}
	if kv == nil {
		delete(c.AcceptanceVersions, ap.kind)
		if c.lists != nil {
			delete(c.lists.heads, ap.kind)
		}
		return nil
	}
	c.AcceptanceVersions[ap.kind] = kv.ModRevision
	if c.lists != nil {
		h, err := parseAcceptanceHead(string(kv.Key), kv.Value)
		if err != nil {
			return err
		}
		c.lists.heads[ap.kind] = h
	}
	return nil
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
		return c.applyAcceptance(part, kv)
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

// SensorConfig reads a sensor's configuration (meta, SMTP, POP3, and the
// versions of its acceptance lists, but not their entries) at one
// revision, with one transaction of two range reads.
func (s *Store) SensorConfig(ctx context.Context, scope Scope, sensorID string) (*SensorConfig, error) {
	tenant, err := s.sensorTenant(ctx, scope, sensorID)
	if err != nil {
		return nil, err
	}
	return s.sensorConfigAt(ctx, tenant, sensorID, false)
}

// sensorConfigAt reads a sensor's latest configuration; with lists, the
// entries of its acceptance lists too (what the push sends), with one
// range read of its prefix. Without, the acceptance keys are read without
// their values (the versions of the heads are all it needs), in the same
// transaction as the rest.
func (s *Store) sensorConfigAt(ctx context.Context, tenant, id string, lists bool) (*SensorConfig, error) {
	prefix := sensorPrefix(tenant, id)
	var (
		kvs []*mvccpb.KeyValue
		rev int64
	)
	if lists {
		resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			return nil, etcdErr("range", prefix, err)
		}
		kvs, rev = resp.Kvs, resp.Header.Revision
	} else {
		// "acceptance/..." sorts before every other part.
		accept := prefix + partAcceptance + "/"
		rest := prefix + partAcceptance + "0" // just past "acceptance/..."
		resp, err := s.cli.Txn(ctx).Then(
			clientv3.OpGet(accept, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
			clientv3.OpGet(rest, clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix))),
		).Commit()
		if err != nil {
			return nil, etcdErr("txn", prefix, err)
		}
		for _, r := range resp.Responses {
			kvs = append(kvs, r.GetResponseRange().GetKvs()...)
		}
		rev = resp.Header.Revision
	}
	cfg := &SensorConfig{
		Revision: rev,
		SMTP:     new(ospreyv1.SmtpIntegration),
		POP3:     new(ospreyv1.Pop3Integration),
	}
	if lists {
		cfg.lists = &acceptanceParts{heads: map[ospreyv1.AcceptanceListKind]acceptanceHead{}, chunks: map[string][]byte{}}
	}
	for _, kv := range kvs {
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
