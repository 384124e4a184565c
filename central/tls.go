package central

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/ospreysec/osprey/pkg/pki"
)

// httpCert is the certificate the API and web UI are served with.
type httpCert struct {
	config *tls.Config
	// fingerprint is the SHA-256 of the certificate, in lower-case hex, as
	// the node prints it for `osprey ctl --tls-fingerprint` to pin.
	fingerprint string
	selfSigned  bool
}

// Validity of the node's self-signed API certificate; it is made anew at a
// start within selfSignedRenewBefore of its end.
const (
	selfSignedValidity    = 2 * 365 * 24 * time.Hour
	selfSignedRenewBefore = 30 * 24 * time.Hour
)

// httpTLSConfig loads the API's certificate, or makes a self-signed one in
// the data dir for every name and address the node is reached at (bound
// lists the addresses the node listens on), and logs its fingerprint.
func httpTLSConfig(opts Options, bound []net.Addr, log *slog.Logger) (*httpCert, error) {
	var cert tls.Certificate
	var err error
	selfSigned := opts.HTTP.TLSCert == ""
	if !selfSigned {
		cert, err = tls.LoadX509KeyPair(opts.HTTP.TLSCert, opts.HTTP.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("load --http-tls-cert: %w", err)
		}
	} else {
		hosts := httpCertHosts(opts, bound, net.InterfaceAddrs)
		var created bool
		cert, created, err = selfSignedCert(filepath.Join(opts.DataDir, "http-tls"), opts.NodeName, hosts, time.Now())
		if err != nil {
			return nil, fmt.Errorf("self-signed HTTP certificate: %w", err)
		}
		log.Warn("serving the API with a self-signed certificate; give --http-tls-cert for production",
			"created", created, "sha256", pki.Fingerprint(cert.Certificate[0]), "names", hosts)
	}
	return &httpCert{
		config:      &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		fingerprint: pki.Fingerprint(cert.Certificate[0]),
		selfSigned:  selfSigned,
	}, nil
}

// httpCertHosts are the names and addresses a self-signed API certificate
// covers, so that a client that verifies it (with the certificate as its CA)
// may use any of them: loopback, the node's name and the host's, the node's
// names in the cluster's DNS zone (<node>.nodes.<zone>, and central.<zone>
// for any node), and every address the node binds or advertises, which for
// a wildcard bind are the addresses of every interface.
func httpCertHosts(opts Options, bound []net.Addr, interfaceAddrs func() ([]net.Addr, error)) []string {
	hosts := []string{opts.NodeName, "localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		h = strings.ToLower(h)
		hosts = append(hosts, h)
		if short, _, ok := strings.Cut(h, "."); ok && short != "" {
			hosts = append(hosts, short)
		}
	}
	zone := strings.TrimSuffix(dns.CanonicalName(cmp.Or(opts.DNS.Zone, DefaultDNSZone)), ".")
	hosts = append(hosts, opts.NodeName+".nodes."+zone, "central."+zone)

	addrs := []string{opts.HTTP.Addr, opts.GRPC.Addr, opts.Gossip.AdvertiseAddr}
	for _, a := range bound {
		addrs = append(addrs, a.String())
	}
	wildcard := false
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			wildcard = true
			continue
		}
		hosts = append(hosts, strings.ToLower(host))
	}
	if wildcard {
		ifAddrs, _ := interfaceAddrs() // none on error: loopback and the names still work
		for _, a := range ifAddrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLinkLocalUnicast() {
				hosts = append(hosts, n.IP.String())
			}
		}
	}
	// One spelling of each address, in a stable order.
	seen := map[string]bool{}
	out := hosts[:0]
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		}
		if h != "" && !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// selfSignedCert loads the self-signed key pair in dir, or makes a new one
// when there is none, when it is damaged, when it does not cover every one
// of hosts (the node binds or is named otherwise than when it was made), or
// when it ends within selfSignedRenewBefore. A kept certificate keeps its
// fingerprint across restarts, so a client that pinned it still connects.
func selfSignedCert(dir, commonName string, hosts []string, now time.Time) (tls.Certificate, bool, error) {
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	var pathErr *fs.PathError
	switch {
	case err == nil:
		if cert.Leaf != nil && covers(cert.Leaf, hosts) && now.Before(cert.Leaf.NotAfter.Add(-selfSignedRenewBefore)) {
			return cert, false, nil
		}
	case errors.As(err, &pathErr) && !errors.Is(err, fs.ErrNotExist):
		return tls.Certificate{}, false, fmt.Errorf("load %s: %w", certFile, err)
	}
	certPEM, keyPEM, err := pki.SelfSigned(commonName, hosts, selfSignedValidity)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, false, fmt.Errorf("create %s: %w", dir, err)
	}
	// A crash between the two writes leaves a pair that does not match,
	// which the next start replaces.
	if err := pki.WriteFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, false, err
	}
	if err := pki.WriteFileAtomic(certFile, certPEM, 0o644); err != nil {
		return tls.Certificate{}, false, err
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	return cert, true, err
}

// covers reports whether c names every one of hosts (IP addresses and DNS
// names).
func covers(c *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.ContainsFunc(c.DNSNames, func(n string) bool { return strings.EqualFold(n, h) }) {
			return false
		}
	}
	return true
}

// EtcdClientTLS builds the TLS configuration of a client of an external
// etcd: the CAs of caFile verify it (the system's when empty), and the pair
// certFile, keyFile is presented when given (--etcd-ca, --etcd-cert,
// --etcd-key).
func EtcdClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pemBytes, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("--etcd-ca: %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
