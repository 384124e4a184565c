package agent

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ospreysec/osprey/pkg/pki"
)

// testPair is a client key and certificate, PEM, as the identity dir holds
// them.
type testPair struct {
	keyPEM, certPEM []byte
	fingerprint     string
}

func newTestPair(t *testing.T, ca *pki.CA, id pki.Identity) testPair {
	t.Helper()
	key, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, id.SensorID)
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.SignClient(csr, id, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := pki.MarshalKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	return testPair{keyPEM: keyPEM, certPEM: encodeCertPEM(der), fingerprint: pki.Fingerprint(der)}
}

// TestLoadIdentityAfterInterruptedRenewal checks every state a crash during
// savePair can leave.
func TestLoadIdentityAfterInterruptedRenewal(t *testing.T) {
	ca, err := pki.NewCA("test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	pid := pki.Identity{Tenant: "tenant-1", SensorID: "sensor-1"}
	old, renewed := newTestPair(t, ca, pid), newTestPair(t, ca, pid)

	tests := []struct {
		name  string
		files map[string][]byte // written over the old identity
		want  string            // fingerprint loaded
	}{
		{"no renewal", nil, old.fingerprint},
		{"key.next written", map[string][]byte{keyFile + nextSuffix: renewed.keyPEM}, old.fingerprint},
		{"both written", map[string][]byte{
			keyFile + nextSuffix:  renewed.keyPEM,
			certFile + nextSuffix: renewed.certPEM,
		}, renewed.fingerprint},
		{"key switched", map[string][]byte{
			keyFile:               renewed.keyPEM,
			certFile + nextSuffix: renewed.certPEM,
		}, renewed.fingerprint},
		{"both switched", map[string][]byte{
			keyFile:  renewed.keyPEM,
			certFile: renewed.certPEM,
		}, renewed.fingerprint},
		{"cert.next of another key", map[string][]byte{
			certFile + nextSuffix: renewed.certPEM,
		}, old.fingerprint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pair, err := tls.X509KeyPair(old.certPEM, old.keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			err = saveIdentity(dir, &Identity{
				SensorID: pid.SensorID, Tenant: pid.Tenant, Targets: []string{"central:7443"},
				CA: ca.Cert, Certificate: pair,
			}, old.keyPEM, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}

			id, err := LoadIdentity(dir)
			if err != nil {
				t.Fatalf("LoadIdentity: %v", err)
			}
			if id.Fingerprint != tt.want {
				t.Errorf("loaded certificate %s, want %s", id.Fingerprint, tt.want)
			}
			for _, name := range []string{keyFile + nextSuffix, certFile + nextSuffix} {
				if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
					t.Errorf("%s is left over (stat: %v)", name, err)
				}
			}
			// Loading again finds the same, now from key.pem and cert.pem.
			again, err := LoadIdentity(dir)
			if err != nil {
				t.Fatalf("second LoadIdentity: %v", err)
			}
			if again.Fingerprint != tt.want {
				t.Errorf("second load: certificate %s, want %s", again.Fingerprint, tt.want)
			}
		})
	}
}

func TestLoadIdentityRefusesBrokenIdentity(t *testing.T) {
	ca, err := pki.NewCA("test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := pki.NewCA("other CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	pid := pki.Identity{Tenant: "tenant-1", SensorID: "sensor-1"}
	good := newTestPair(t, ca, pid)
	tests := []struct {
		name  string
		files map[string][]byte
	}{
		{"certificate of another sensor", map[string][]byte{certFile: newTestPair(t, ca, pki.Identity{Tenant: "tenant-1", SensorID: "sensor-2"}).certPEM}},
		{"certificate from another CA", map[string][]byte{caFile: otherCA.CertPEM()}},
		{"key of another certificate", map[string][]byte{keyFile: newTestPair(t, ca, pid).keyPEM}},
		{"malformed sensor.json", map[string][]byte{sensorFile: []byte("{")}},
		{"bad sensor id", map[string][]byte{sensorFile: []byte(`{"sensor_id": "../x", "tenant": "tenant-1"}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pair, err := tls.X509KeyPair(good.certPEM, good.keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			if err := saveIdentity(dir, &Identity{SensorID: pid.SensorID, Tenant: pid.Tenant, CA: ca.Cert, Certificate: pair}, good.keyPEM, time.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadIdentity(dir); err != nil {
				t.Fatalf("LoadIdentity before breaking it: %v", err)
			}
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := LoadIdentity(dir); err == nil {
				t.Error("LoadIdentity = nil error, want one")
			}
		})
	}
}

func TestCheckClientCertValidity(t *testing.T) {
	ca, err := pki.NewCA("test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	pid := pki.Identity{Tenant: "tenant-1", SensorID: "sensor-1"}
	p := newTestPair(t, ca, pid)
	pair, err := tls.X509KeyPair(p.certPEM, p.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf := pair.Leaf
	if err := checkClientCert(leaf, ca.Cert, pid, time.Now()); err != nil {
		t.Errorf("valid now: %v", err)
	}
	if err := checkClientCert(leaf, ca.Cert, pid, time.Now().Add(2*time.Hour)); err == nil {
		t.Error("expired: nil error, want one")
	}
	if err := checkClientCert(leaf, ca.Cert, pid, time.Time{}); err != nil {
		t.Errorf("validity not checked: %v", err)
	}
}
