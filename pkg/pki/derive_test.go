package pki

import (
	"bytes"
	"crypto/x509"
	"testing"
	"time"
)

func TestDeriveCA(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, KEKSize)
	other := bytes.Repeat([]byte{8}, KEKSize)
	a, err := DeriveCA(kek, "etcd peers", "peer CA")
	if err != nil {
		t.Fatal(err)
	}
	b, err := DeriveCA(kek, "etcd peers", "peer CA")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Cert.Raw, b.Cert.Raw) {
		t.Error("the same key derived two different CA certificates")
	}
	for name, args := range map[string]struct {
		kek   []byte
		label string
	}{"another key": {other, "etcd peers"}, "another label": {kek, "something else"}} {
		c, err := DeriveCA(args.kek, args.label, "peer CA")
		if err != nil {
			t.Fatal(err)
		}
		if c.Cert.Equal(a.Cert) || bytes.Equal(c.Cert.RawSubjectPublicKeyInfo, a.Cert.RawSubjectPublicKeyInfo) {
			t.Errorf("%s derived the same CA", name)
		}
	}
	if !a.Cert.IsCA || a.Cert.SerialNumber.Sign() <= 0 {
		t.Errorf("derived certificate: IsCA %v, serial %v", a.Cert.IsCA, a.Cert.SerialNumber)
	}

	// A peer certificate that one node signs verifies against the CA that
	// another node derives, for both ends of a connection; not against a
	// CA derived from another key.
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := a.SignPeer(key.Public(), []string{"10.0.0.2", "n2.example"}, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(b.Cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "n2.example", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for usage %v: %v", usage, err)
		}
	}
	if err := leaf.VerifyHostname("10.0.0.2"); err != nil {
		t.Error(err)
	}
	o, err := DeriveCA(other, "etcd peers", "peer CA")
	if err != nil {
		t.Fatal(err)
	}
	otherPool := x509.NewCertPool()
	otherPool.AddCert(o.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: otherPool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a certificate from one key's CA verified against another key's")
	}

	if _, err := DeriveCA(kek[:16], "etcd peers", "peer CA"); err == nil {
		t.Error("a 16-byte key derived a CA")
	}
}
