package pki

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newNonce returns a fresh challenge.
func newNonce(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, ReissueNonceSize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// clientCert issues a client certificate to id for key.
func clientCert(t *testing.T, ca *CA, key crypto.Signer, id Identity, validity time.Duration, now time.Time) *x509.Certificate {
	t.Helper()
	csr, err := NewCSR(key, id.SensorID)
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.SignClient(csr, id, validity, now)
	if err != nil {
		t.Fatal(err)
	}
	return parseCert(t, der)
}

func TestReissueProof(t *testing.T) {
	ca := newTestCA(t)
	id := Identity{Tenant: "default", SensorID: "s1"}
	ecKey, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, kt := range []struct {
		name string
		key  crypto.Signer
	}{{"ecdsa", ecKey}, {"ed25519", edKey}, {"rsa", rsaKey}} {
		t.Run(kt.name, func(t *testing.T) {
			cert := clientCert(t, ca, kt.key, id, time.Hour, testNow)
			// The same sensor's certificate for another key, and another key.
			otherKey, err := GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			other := clientCert(t, ca, otherKey, id, time.Hour, testNow)
			newKey, err := GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			csr, err := NewCSR(newKey, "s1")
			if err != nil {
				t.Fatal(err)
			}
			otherCSR, err := NewCSR(otherKey, "s1")
			if err != nil {
				t.Fatal(err)
			}
			nonce := newNonce(t)
			sig, err := SignReissueProof(kt.key, nonce, cert.Raw, csr)
			if err != nil {
				t.Fatalf("SignReissueProof: %v", err)
			}
			if err := VerifyReissueProof(cert, nonce, csr, sig); err != nil {
				t.Fatalf("VerifyReissueProof of a good proof: %v", err)
			}
			forged, err := SignReissueProof(otherKey, nonce, cert.Raw, csr)
			if err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name  string
				cert  *x509.Certificate
				nonce []byte
				csr   []byte
				sig   []byte
			}{
				{"replayed for another challenge", cert, newNonce(t), csr, sig},
				{"for another request", cert, nonce, otherCSR, sig},
				{"presented with another certificate of the sensor", other, nonce, csr, sig},
				{"signed by another key", cert, nonce, csr, forged},
				{"truncated", cert, nonce, csr, sig[:len(sig)-1]},
				{"empty", cert, nonce, csr, nil},
				{"short nonce", cert, nonce[:16], csr, sig},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					err := VerifyReissueProof(tt.cert, tt.nonce, tt.csr, tt.sig)
					if !errors.Is(err, ErrBadReissueProof) {
						t.Errorf("VerifyReissueProof: got %v, want ErrBadReissueProof", err)
					}
				})
			}
		})
	}
	if _, err := SignReissueProof(ecKey, make([]byte, 8), nil, nil); err == nil {
		t.Error("SignReissueProof with an 8-byte nonce: got nil error")
	}
}

func TestVerifyIssuedClient(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	id := Identity{Tenant: "default", SensorID: "s1"}
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// Issued four minutes back for a minute: expired (the CA is valid from
	// five minutes back).
	expired := clientCert(t, ca, key, id, time.Minute, time.Now().Add(-4*time.Minute))
	if _, err := expired.Verify(x509.VerifyOptions{Roots: poolOf(ca.Cert), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Fatal("the test's expired certificate verifies")
	}
	uri, _ := url.Parse(id.String())
	server := issue(t, ca, &x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, URIs: []*url.URL{uri}})

	got, err := ca.VerifyIssuedClient(expired)
	if err != nil {
		t.Fatalf("VerifyIssuedClient of an expired certificate of ours: %v", err)
	}
	if diff := cmp.Diff(id, got); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	foreign := clientCert(t, other, key, id, time.Hour, testNow)
	if _, err := ca.VerifyIssuedClient(foreign); err == nil {
		t.Error("VerifyIssuedClient of another CA's certificate for the same identity and key: got nil error")
	}
	if _, err := ca.VerifyIssuedClient(server); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("VerifyIssuedClient of a server certificate of ours: got %v, want ErrNoIdentity", err)
	}
	if _, err := ca.VerifyIssuedClient(ca.Cert); err == nil {
		t.Error("VerifyIssuedClient of the CA itself: got nil error")
	}
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
