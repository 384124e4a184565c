package store

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ClusterCA returns the cluster CA record, or ErrNotFound on a new cluster.
func (s *Store) ClusterCA(ctx context.Context) (*ospreyv1.ClusterCA, error) {
	ca := &ospreyv1.ClusterCA{}
	if _, err := s.get(ctx, clusterCAKey, ca); err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	return ca, nil
}

// CreateClusterCA stores the cluster CA unless one exists (ErrExists): when
// several nodes start a new cluster at once, one CA wins and the others load it.
func (s *Store) CreateClusterCA(ctx context.Context, ca *ospreyv1.ClusterCA) error {
	b, err := encode(ca)
	if err != nil {
		return err
	}
	resp, err := s.cli.Txn(ctx).If(absent(clusterCAKey)).Then(clientv3.OpPut(clusterCAKey, string(b))).Commit()
	if err != nil {
		return etcdErr("txn", clusterCAKey, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("cluster CA: %w", ErrExists)
	}
	return nil
}

// ClaimPublicKey records that the public key with this fingerprint (hex
// SHA-256 of its SubjectPublicKeyInfo) belongs to sensorID. A key is enrolled
// at most once: a second claim, a replayed CSR, gets ErrExists.
func (s *Store) ClaimPublicKey(ctx context.Context, fingerprint, sensorID string) error {
	if len(fingerprint) != 64 || strings.Trim(fingerprint, "0123456789abcdef") != "" {
		return fmt.Errorf("public key fingerprint %q: want 64 lower-case hex digits: %w", fingerprint, ErrInvalidID)
	}
	key := pubkeyKey(fingerprint)
	resp, err := s.cli.Txn(ctx).If(absent(key)).Then(clientv3.OpPut(key, sensorID)).Commit()
	if err != nil {
		return etcdErr("txn", key, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("public key %s: %w", fingerprint, ErrExists)
	}
	return nil
}
