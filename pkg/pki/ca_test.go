package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// testNow is a fixed instant inside every test CA's validity.
var testNow = time.Now().Truncate(time.Second)

func newTestCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("osprey test CA", 0)
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

func newTestCSR(t *testing.T, tmpl *x509.CertificateRequest) (crypto.Signer, []byte) {
	t.Helper()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if tmpl == nil {
		tmpl = &x509.CertificateRequest{Subject: pkix.Name{CommonName: "sensor"}}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func parseCert(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	return cert
}

func TestNewCA(t *testing.T) {
	before := time.Now()
	ca := newTestCA(t)
	c := ca.Cert
	if !c.IsCA || !c.BasicConstraintsValid {
		t.Errorf("IsCA, BasicConstraintsValid: got %v, %v, want true, true", c.IsCA, c.BasicConstraintsValid)
	}
	if c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("MaxPathLen, MaxPathLenZero: got %d, %v, want 0, true", c.MaxPathLen, c.MaxPathLenZero)
	}
	if got, want := c.KeyUsage, x509.KeyUsageCertSign|x509.KeyUsageCRLSign; got != want {
		t.Errorf("KeyUsage: got %v, want %v", got, want)
	}
	if got := c.PublicKeyAlgorithm; got != x509.ECDSA {
		t.Errorf("PublicKeyAlgorithm: got %v, want ECDSA", got)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	if got, want := c.NotAfter.Sub(before), DefaultCAValidity; got < want-time.Minute || got > want+time.Minute {
		t.Errorf("validity with 0: got %v, want about %v", got, want)
	}
	if c.NotBefore.After(before.Add(-4 * time.Minute)) {
		t.Errorf("NotBefore: got %v, want five minutes before %v", c.NotBefore, before)
	}
	if c.Subject.CommonName != "osprey test CA" {
		t.Errorf("CommonName: got %q, want %q", c.Subject.CommonName, "osprey test CA")
	}

	short, err := NewCA("short", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := short.Cert.NotAfter.Sub(before); got > time.Hour+time.Minute {
		t.Errorf("validity with 1h: got %v, want about 1h", got)
	}
}

func TestClientRoundTrip(t *testing.T) {
	ca := newTestCA(t)
	// A minute past the point from which a backdated certificate starts
	// within the CA's validity, so its NotBefore is not clamped to the
	// CA's (now, taken when the package started, may be before it).
	now := ca.Cert.NotBefore.Add(backdate + time.Minute)
	key, csr := newTestCSR(t, nil)
	id := Identity{Tenant: "default", SensorID: "s-0123456789abcdef"}

	der, err := ca.SignClient(csr, id, 24*time.Hour, now)
	if err != nil {
		t.Fatalf("SignClient: %v", err)
	}
	cert := parseCert(t, der)

	got, err := IdentityFromCert(cert)
	if err != nil {
		t.Fatalf("IdentityFromCert: %v", err)
	}
	if diff := cmp.Diff(id, got); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	if got, want := id.String(), "osprey://sensor/default/s-0123456789abcdef"; got != want {
		t.Errorf("String: got %q, want %q", got, want)
	}
	if !key.Public().(*ecdsa.PublicKey).Equal(cert.PublicKey) {
		t.Error("certificate key is not the CSR's key")
	}
	if got, want := cert.NotBefore, now.Add(-5*time.Minute); !got.Equal(want) {
		t.Errorf("NotBefore: got %v, want %v", got, want)
	}
	if got, want := cert.NotAfter, now.Add(24*time.Hour); !got.Equal(want) {
		t.Errorf("NotAfter: got %v, want %v", got, want)
	}
	if cert.IsCA {
		t.Error("client certificate is a CA")
	}
	if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, cert.ExtKeyUsage); diff != "" {
		t.Errorf("ExtKeyUsage (-want +got):\n%s", diff)
	}
	if n := cert.SerialNumber.BitLen(); n == 0 || n > 128 {
		t.Errorf("serial: got %d bits, want 1 to 128", n)
	}
	if !bytes.Equal(cert.AuthorityKeyId, ca.Cert.SubjectKeyId) || len(cert.AuthorityKeyId) == 0 {
		t.Errorf("AuthorityKeyId: got %x, want the CA's SubjectKeyId %x", cert.AuthorityKeyId, ca.Cert.SubjectKeyId)
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	verify := func(usage x509.ExtKeyUsage) error {
		_, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	if err := verify(x509.ExtKeyUsageClientAuth); err != nil {
		t.Errorf("verify for client auth: %v", err)
	}
	if err := verify(x509.ExtKeyUsageServerAuth); err == nil {
		t.Error("verify for server auth: got nil error, want the client certificate refused")
	}

	second, err := ca.SignClient(csr, id, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if parseCert(t, second).SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
}

// A CSR may claim anything; the certificate says only what the CA assigned.
func TestSignClientIgnoresCSRClaims(t *testing.T) {
	ca := newTestCA(t)
	evil, _ := url.Parse("osprey://sensor/other-tenant/other-sensor")
	basicCA, err := asn1.Marshal(struct {
		IsCA bool `asn1:"optional"`
	}{IsCA: true})
	if err != nil {
		t.Fatal(err)
	}
	_, csr := newTestCSR(t, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "other-sensor", Organization: []string{"other-tenant"}},
		DNSNames:       []string{"central.example"},
		IPAddresses:    []net.IP{net.ParseIP("10.0.0.1")},
		EmailAddresses: []string{"admin@example.com"},
		URIs:           []*url.URL{evil},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: basicCA},               // basic constraints: CA
			{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: mustEKU(t, 1, 3, 6, 1, 5, 5, 7, 3, 1)}, // server auth
		},
	})
	id := Identity{Tenant: "default", SensorID: "assigned"}
	der, err := ca.SignClient(csr, id, time.Hour, testNow)
	if err != nil {
		t.Fatalf("SignClient: %v", err)
	}
	cert := parseCert(t, der)
	got, err := IdentityFromCert(cert)
	if err != nil {
		t.Fatalf("IdentityFromCert: %v", err)
	}
	if diff := cmp.Diff(id, got); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	if cert.Subject.CommonName != "assigned" || len(cert.Subject.Organization) != 0 {
		t.Errorf("subject: got %v, want CN=assigned only", cert.Subject)
	}
	if len(cert.DNSNames)+len(cert.IPAddresses)+len(cert.EmailAddresses) != 0 || len(cert.URIs) != 1 {
		t.Errorf("SANs: got DNS %v, IP %v, email %v, URI %v; want the one assigned URI",
			cert.DNSNames, cert.IPAddresses, cert.EmailAddresses, cert.URIs)
	}
	if cert.IsCA {
		t.Error("IsCA: got true from the CSR's extension, want false")
	}
	if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, cert.ExtKeyUsage); diff != "" {
		t.Errorf("ExtKeyUsage (-want +got):\n%s", diff)
	}
}

func mustEKU(t *testing.T, oid ...int) []byte {
	t.Helper()
	b, err := asn1.Marshal([]asn1.ObjectIdentifier{oid})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSignClientRefuses(t *testing.T) {
	ca := newTestCA(t)
	_, good := newTestCSR(t, nil)
	id := Identity{Tenant: "default", SensorID: "s1"}

	tampered := bytes.Clone(good)
	tampered[len(tampered)-5] ^= 0x01 // in the signature

	// The request is signed, but its content changed afterwards: a name
	// byte flipped inside the signed part.
	renamed := bytes.Clone(good)
	i := bytes.Index(renamed, []byte("sensor"))
	renamed[i] = 'S'

	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, rsa1024)
	if err != nil {
		t.Fatal(err)
	}
	own, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, ca.Key)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		csr      []byte
		id       Identity
		validity time.Duration
		now      time.Time
		want     string
		wantIs   error
	}{
		{name: "signature tampered", csr: tampered, id: id, want: "request signature"},
		{name: "content tampered", csr: renamed, id: id, want: "request signature"},
		{name: "garbage", csr: []byte("not a CSR"), id: id, want: "parse request"},
		{name: "empty", csr: nil, id: id, want: "parse request"},
		{name: "certificate instead of CSR", csr: ca.Cert.Raw, id: id, want: "parse request"},
		{name: "RSA 1024", csr: weak, id: id, want: "RSA of 1024 bits", wantIs: ErrUnsupportedKey},
		{name: "the CA's own key", csr: own, id: id, want: "CA's own key"},
		{name: "empty tenant", csr: good, id: Identity{SensorID: "s1"}, want: "tenant is empty"},
		{name: "slash in sensor id", csr: good, id: Identity{Tenant: "default", SensorID: "a/b"}, want: "sensor id"},
		{name: "zero validity", csr: good, id: id, validity: -1, want: "not positive"},
		{name: "before the CA", csr: good, id: id, now: ca.Cert.NotBefore.Add(-time.Hour), want: "CA is not valid"},
		{name: "after the CA", csr: good, id: id, now: ca.Cert.NotAfter.Add(time.Hour), want: "CA is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.validity == 0 {
				tt.validity = time.Hour
			}
			if tt.now.IsZero() {
				tt.now = testNow
			}
			der, err := ca.SignClient(tt.csr, tt.id, tt.validity, tt.now)
			if err == nil {
				t.Fatalf("SignClient: got a certificate of %d bytes, want an error containing %q", len(der), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SignClient: got error %q, want it to contain %q", err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("SignClient: got error %v, want one matching %v", err, tt.wantIs)
			}
		})
	}
}

func TestSignClientClampsToCAExpiry(t *testing.T) {
	ca, err := NewCA("short-lived CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, csr := newTestCSR(t, nil)
	der, err := ca.SignClient(csr, Identity{Tenant: "t", SensorID: "s"}, 48*time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := parseCert(t, der).NotAfter, ca.Cert.NotAfter; !got.Equal(want) {
		t.Errorf("NotAfter: got %v, want the CA's %v", got, want)
	}
}

func TestSignServerKeys(t *testing.T) {
	ca := newTestCA(t)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pub  crypto.PublicKey
		ok   bool
	}{
		{name: "ECDSA P-384", pub: p384.Public(), ok: true},
		{name: "Ed25519", pub: edPub, ok: true},
		{name: "RSA 2048", pub: rsa2048.Public(), ok: true},
		{name: "ECDSA P-224", pub: p224.Public()},
		{name: "X25519", pub: x25519.PublicKey()},
		{name: "short Ed25519", pub: ed25519.PublicKey(edPub[:16])},
		{name: "nil", pub: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ca.SignServer(tt.pub, []string{"central-1"}, time.Hour, testNow)
			if tt.ok && err != nil {
				t.Errorf("SignServer: got error %v, want a certificate", err)
			}
			if !tt.ok && !errors.Is(err, ErrUnsupportedKey) {
				t.Errorf("SignServer: got error %v, want one matching ErrUnsupportedKey", err)
			}
		})
	}
}

func TestSignServer(t *testing.T) {
	ca := newTestCA(t)
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.SignServer(key.Public(), []string{"central-1.osprey.example", "", "192.0.2.7", "::1"}, time.Hour, testNow)
	if err != nil {
		t.Fatalf("SignServer: %v", err)
	}
	cert := parseCert(t, der)
	if got, want := cert.Subject.CommonName, "central-1.osprey.example"; got != want {
		t.Errorf("CommonName: got %q, want %q", got, want)
	}
	if diff := cmp.Diff([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, cert.ExtKeyUsage); diff != "" {
		t.Errorf("ExtKeyUsage (-want +got):\n%s", diff)
	}
	if _, err := IdentityFromCert(cert); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("IdentityFromCert(server certificate): got %v, want ErrNoIdentity", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, host := range []string{"central-1.osprey.example", "192.0.2.7", "::1"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, CurrentTime: testNow}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("verify for client auth: got nil error, want the server certificate refused")
	}

	if _, err := ca.TLSCertificate(der, key); err != nil {
		t.Errorf("TLSCertificate: %v", err)
	}
	other, _ := GenerateKey()
	if _, err := ca.TLSCertificate(der, other); err == nil {
		t.Error("TLSCertificate with another key: got nil error, want a mismatch")
	}
}

func TestMarshalParseCA(t *testing.T) {
	ca := newTestCA(t)
	certPEM, keyPEM, err := MarshalCA(ca)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(certPEM, ca.CertPEM()) {
		t.Error("MarshalCA certificate differs from CertPEM")
	}
	back, err := ParseCA(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("ParseCA: %v", err)
	}
	if !back.Cert.Equal(ca.Cert) {
		t.Error("ParseCA: got another certificate")
	}
	// The parsed CA still signs certificates that chain to the original.
	_, csr := newTestCSR(t, nil)
	der, err := back.SignClient(csr, Identity{Tenant: "t", SensorID: "s"}, time.Hour, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if err := parseCert(t, der).CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("certificate from parsed CA: %v", err)
	}

	otherCA := newTestCA(t)
	_, otherKeyPEM, _ := MarshalCA(otherCA)
	leafKey, _ := GenerateKey()
	leafDER, _ := ca.SignServer(leafKey.Public(), []string{"x"}, time.Hour, testNow)
	leafPEM := (&CA{Cert: parseCert(t, leafDER)}).CertPEM()
	leafKeyPEM, _ := MarshalKeyPEM(leafKey)

	tests := []struct {
		name            string
		certPEM, keyPEM []byte
		want            string
	}{
		{name: "key of another CA", certPEM: certPEM, keyPEM: otherKeyPEM, want: "does not match"},
		{name: "not a CA", certPEM: leafPEM, keyPEM: leafKeyPEM, want: "not a CA"},
		{name: "key where the certificate goes", certPEM: keyPEM, keyPEM: keyPEM, want: `"PRIVATE KEY"`},
		{name: "certificate where the key goes", certPEM: certPEM, keyPEM: certPEM, want: `"CERTIFICATE"`},
		{name: "two certificates", certPEM: append(bytes.Clone(certPEM), certPEM...), keyPEM: keyPEM, want: "data after"},
		{name: "no PEM", certPEM: []byte("hello"), keyPEM: keyPEM, want: "no PEM block"},
		{name: "no key", certPEM: certPEM, keyPEM: nil, want: "no PEM block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCA(tt.certPEM, tt.keyPEM)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseCA: got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestKeyPEMRoundTrip(t *testing.T) {
	ecKey, _ := GenerateKey()
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for name, key := range map[string]crypto.Signer{"ECDSA": ecKey, "Ed25519": edKey} {
		t.Run(name, func(t *testing.T) {
			p, err := MarshalKeyPEM(key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(p, []byte("-----BEGIN PRIVATE KEY-----")) {
				t.Errorf("MarshalKeyPEM: got %.30q, want a PRIVATE KEY block", p)
			}
			back, err := ParseKeyPEM(p)
			if err != nil {
				t.Fatalf("ParseKeyPEM: %v", err)
			}
			if !back.(interface{ Equal(crypto.PrivateKey) bool }).Equal(key) {
				t.Error("ParseKeyPEM: got another key")
			}
		})
	}
	if _, err := ParseKeyPEM([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")); err == nil {
		t.Error("ParseKeyPEM(EC PRIVATE KEY): got nil error, want PKCS#8 only")
	}
}

func TestFingerprints(t *testing.T) {
	ca := newTestCA(t)
	fp, err := PublicKeyFingerprint(ca.Cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := SPKIHash(ca.Cert); got != fp {
		t.Errorf("SPKIHash: got %s, want PublicKeyFingerprint %s", got, fp)
	}
	if len(fp) != 64 || strings.ToLower(fp) != fp {
		t.Errorf("fingerprint %q: want 64 lower-case hex characters", fp)
	}
	other := newTestCA(t)
	if SPKIHash(other.Cert) == fp {
		t.Error("two CAs share an SPKI hash")
	}
	if _, err := PublicKeyFingerprint(struct{}{}); err == nil {
		t.Error("PublicKeyFingerprint(struct{}{}): got nil error")
	}
}
