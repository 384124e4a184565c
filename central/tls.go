package central

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ospreysec/osprey/pkg/pki"
)

// httpTLSConfig loads the API's certificate, or makes a self-signed one in the
// data dir and logs its fingerprint so an operator can check it in a browser.
func httpTLSConfig(opts Options, log *slog.Logger) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	if opts.HTTPTLSCert != "" {
		cert, err = tls.LoadX509KeyPair(opts.HTTPTLSCert, opts.HTTPTLSKey)
		if err != nil {
			return nil, fmt.Errorf("load --http-tls-cert: %w", err)
		}
	} else {
		hosts := []string{opts.NodeName, "localhost", "127.0.0.1", "::1"}
		if h, err := os.Hostname(); err == nil {
			hosts = append(hosts, h)
		}
		var created bool
		dir := filepath.Join(opts.DataDir, "http-tls")
		cert, created, err = pki.LoadOrCreateSelfSigned(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), opts.NodeName, hosts)
		if err != nil {
			return nil, fmt.Errorf("self-signed HTTP certificate: %w", err)
		}
		log.Warn("serving the API with a self-signed certificate; give --http-tls-cert for production",
			"created", created, "sha256", pki.Fingerprint(cert.Certificate[0]))
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// etcdClientTLS builds the TLS configuration for an external etcd.
func etcdClientTLS(opts Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.EtcdCAFile != "" {
		pemBytes, err := os.ReadFile(opts.EtcdCAFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("--etcd-ca: %s holds no PEM certificate", opts.EtcdCAFile)
		}
		cfg.RootCAs = pool
	}
	if opts.EtcdCertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.EtcdCertFile, opts.EtcdKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
