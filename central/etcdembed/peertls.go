package etcdembed

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ospreysec/osprey/pkg/pki"
)

// peerCert is a member's peer certificate and key, as files for etcd.
// Only the goroutine that renews it touches it once the member runs.
type peerCert struct {
	ca                        *pki.CA
	key                       crypto.Signer
	hosts                     []string
	certFile, keyFile, caFile string
	notBefore, notAfter       time.Time
	retryAt                   time.Time // after a failed renewal
}

// newPeerCert makes a key for this start of the member, writes it, the
// CA's certificate and a certificate for the key and hosts to p.Dir.
func newPeerCert(p *PeerTLS, hosts []string) (*peerCert, error) {
	if p.CA == nil || p.Dir == "" {
		return nil, errors.New("etcd peer TLS: a CA and a directory are required")
	}
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd peer TLS: %w", err)
	}
	key, err := pki.GenerateKey()
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.MarshalKeyPEM(key)
	if err != nil {
		return nil, err
	}
	pc := &peerCert{
		ca: p.CA, key: key, hosts: hosts,
		certFile: filepath.Join(p.Dir, "peer.crt"),
		keyFile:  filepath.Join(p.Dir, "peer.key"),
		caFile:   filepath.Join(p.Dir, "ca.crt"),
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{pc.caFile, p.CA.CertPEM()}, {pc.keyFile, keyPEM}} {
		if err := pki.WriteFileAtomic(f.name, f.data, 0o600); err != nil {
			return nil, fmt.Errorf("etcd peer TLS: %w", err)
		}
	}
	if err := pc.renew(time.Now()); err != nil {
		return nil, err
	}
	return pc, nil
}

// renew signs a new certificate for the same key and replaces the file;
// etcd reads it at its next handshake.
func (pc *peerCert) renew(now time.Time) error {
	der, err := pc.ca.SignPeer(pc.key.Public(), pc.hosts, peerCertValidity, now)
	if err != nil {
		return fmt.Errorf("etcd peer TLS: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("etcd peer TLS: %w", err)
	}
	if err := pki.WriteFileAtomic(pc.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("etcd peer TLS: %w", err)
	}
	pc.notBefore, pc.notAfter, pc.retryAt = leaf.NotBefore, leaf.NotAfter, time.Time{}
	return nil
}

// renewAt is when the certificate is renewed next: when a third of its
// life is left, or an hour after a failed renewal.
func (pc *peerCert) renewAt() time.Time {
	if !pc.retryAt.IsZero() {
		return pc.retryAt
	}
	return pc.notAfter.Add(-pc.notAfter.Sub(pc.notBefore) / 3)
}

// peerHosts is what a member's peer certificate names: the hosts of its
// advertised peer URLs, which the other members dial and check, and the
// host it listens on unless that is a wildcard.
func peerHosts(listen url.URL, advertised []url.URL) []string {
	var hosts []string
	for _, u := range append([]url.URL{listen}, advertised...) {
		h := u.Hostname()
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() || h == "" || slices.Contains(hosts, h) {
			continue
		}
		hosts = append(hosts, h)
	}
	return hosts
}
