// Package clusterca loads the cluster's certificate authority, making it on
// the first start of a new cluster, and keeps the node's gRPC serving
// certificate fresh.
//
// The CA's certificate and its key, sealed with the cluster key, live in etcd
// so that every central node signs with the same CA. The cluster key (32 random
// bytes) never enters etcd: it is a file in each node's data dir, made by the
// first node and copied to the others (or given with --cluster-key-file), so a
// copy of etcd alone cannot mint sensor certificates.
package clusterca

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ServerCertValidity is the lifetime of a node's gRPC serving certificate; it
// is renewed in memory when two thirds of it have passed.
const ServerCertValidity = 30 * 24 * time.Hour

// Load returns the cluster CA from the store, making and storing a new one on
// a new cluster. kek is the cluster key (pki.LoadOrCreateKEK).
func Load(ctx context.Context, st *store.Store, kek []byte) (*pki.CA, error) {
	rec, err := st.ClusterCA(ctx)
	if errors.Is(err, store.ErrNotFound) {
		rec, err = create(ctx, st, kek)
	}
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.Open(rec.GetSealedKey(), kek, pki.CAKeyLabel)
	if err != nil {
		return nil, fmt.Errorf("open the cluster CA key: %w (every central node needs the same cluster key file: copy it from the first node)", err)
	}
	ca, err := pki.ParseCA([]byte(rec.GetCertPem()), keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster CA: %w", err)
	}
	return ca, nil
}

func create(ctx context.Context, st *store.Store, kek []byte) (*ospreyv1.ClusterCA, error) {
	ca, err := pki.NewCA("Osprey cluster CA", 0)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := pki.MarshalCA(ca)
	if err != nil {
		return nil, err
	}
	sealed, err := pki.Seal(keyPEM, kek, pki.CAKeyLabel)
	if err != nil {
		return nil, err
	}
	rec := &ospreyv1.ClusterCA{CertPem: string(certPEM), SealedKey: sealed, CreatedAt: timestamppb.Now()}
	err = st.CreateClusterCA(ctx, rec)
	if errors.Is(err, store.ErrExists) {
		// Another node made the cluster's CA first: use that one.
		return st.ClusterCA(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("store the cluster CA: %w", err)
	}
	return rec, nil
}

// ServerCert is a node's gRPC serving certificate, signed by the cluster CA
// and renewed in memory before it expires (a tls.Config.GetCertificate).
type ServerCert struct {
	ca    *pki.CA
	hosts []string
	now   func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	renewAt time.Time
}

// NewServerCert makes the node's first serving certificate for hosts.
func NewServerCert(ca *pki.CA, hosts []string, now func() time.Time) (*ServerCert, error) {
	if now == nil {
		now = time.Now
	}
	s := &ServerCert{ca: ca, hosts: hosts, now: now}
	if _, err := s.GetCertificate(nil); err != nil {
		return nil, err
	}
	return s, nil
}

// GetCertificate returns the current certificate, renewing it when due.
func (s *ServerCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.cert != nil && now.Before(s.renewAt) {
		return s.cert, nil
	}
	key, err := pki.GenerateKey()
	if err != nil {
		return nil, err
	}
	der, err := s.ca.SignServer(key.Public(), s.hosts, ServerCertValidity, now)
	if err != nil {
		return nil, fmt.Errorf("sign the node's gRPC certificate: %w", err)
	}
	cert, err := s.ca.TLSCertificate(der, key)
	if err != nil {
		return nil, err
	}
	s.cert, s.renewAt = &cert, now.Add(ServerCertValidity*2/3)
	return s.cert, nil
}
