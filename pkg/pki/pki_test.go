package pki

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSelfSignedVerifiesForItsHosts(t *testing.T) {
	certPEM, keyPEM, err := SelfSigned("node1", []string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(keyPEM) == 0 {
		t.Fatal("empty key")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("certificate does not parse")
	}
	dir := t.TempDir()
	cert, created, err := LoadOrCreateSelfSigned(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), "node1", []string{"localhost", "127.0.0.1"})
	if err != nil || !created {
		t.Fatalf("LoadOrCreateSelfSigned: created=%v err=%v", created, err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, host := range []string{"localhost", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.example"}); err == nil {
		t.Error("verify for other.example: got nil error, want a host name mismatch")
	}
	st, err := os.Stat(filepath.Join(dir, "k.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("key mode: got %v, want 0600", got)
	}
	again, created, err := LoadOrCreateSelfSigned(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), "node1", nil)
	if err != nil || created {
		t.Fatalf("second LoadOrCreateSelfSigned: created=%v err=%v, want the same pair loaded", created, err)
	}
	if Fingerprint(again.Certificate[0]) != Fingerprint(cert.Certificate[0]) {
		t.Error("second load returned another certificate")
	}
}
