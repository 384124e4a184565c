package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// SelfSigned makes a self-signed serving certificate for hosts (DNS names and
// IP addresses), valid from now for validity, and returns it and its key as PEM.
func SelfSigned(commonName string, hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Osprey"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// LoadOrCreateSelfSigned loads the key pair at certFile and keyFile, or makes a
// self-signed one there (key mode 0600) when neither exists. It reports whether
// it made a new pair.
func LoadOrCreateSelfSigned(certFile, keyFile, commonName string, hosts []string) (tls.Certificate, bool, error) {
	_, certErr := os.Stat(certFile)
	_, keyErr := os.Stat(keyFile)
	if errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist) {
		certPEM, keyPEM, err := SelfSigned(commonName, hosts, 2*365*24*time.Hour)
		if err != nil {
			return tls.Certificate{}, false, err
		}
		if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
			return tls.Certificate{}, false, fmt.Errorf("create %s: %w", filepath.Dir(certFile), err)
		}
		if err := WriteFileAtomic(keyFile, keyPEM, 0o600); err != nil {
			return tls.Certificate{}, false, err
		}
		if err := WriteFileAtomic(certFile, certPEM, 0o644); err != nil {
			return tls.Certificate{}, false, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		return cert, true, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, false, fmt.Errorf("load key pair %s: %w", certFile, err)
	}
	return cert, false, nil
}

// Fingerprint is the SHA-256 of a DER certificate, in lower-case hex.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// WriteFileAtomic writes data to a temporary file beside name, fsyncs it,
// renames it over name and fsyncs the directory, so a crash leaves either the
// old file or the new one.
func WriteFileAtomic(name string, data []byte, perm os.FileMode) error {
	return placeFile(name, data, perm, os.Rename)
}

// placeFile writes data to a temporary file beside name, fsyncs it, puts it
// in place with place (os.Rename replaces name, os.Link never does) and
// fsyncs the directory.
func placeFile(name string, data []byte, perm os.FileMode, place func(tmp, name string) error) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := place(f.Name(), name); err != nil {
		return fmt.Errorf("put %s in place: %w", name, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
