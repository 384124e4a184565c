package agent

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/internal/durable"
)

// The data dir layout. Every path is relative to the data dir.
const (
	identityDir     = "identity"
	keyFile         = "identity/key.pem"     // the client key, PKCS#8 PEM, 0600
	certFile        = "identity/cert.pem"    // the client certificate, PEM
	caFile          = "identity/ca.pem"      // the cluster CA certificate, PEM: the only trust root
	sensorFile      = "identity/sensor.json" // sensorRecord; written last at enrollment
	configDir       = "config"
	appliedFile     = "config/applied.pb" // the last applied SensorConfig, binary protobuf, 0600
	nextSuffix      = ".next"             // a key or certificate being switched in
	dirPerm         = 0o700
	secretFilePerm  = 0o600
	publicFilePerm  = 0o644
	pemCertificate  = "CERTIFICATE"
	maxIdentityFile = 1 << 20
)

// ErrNotEnrolled is returned by [LoadIdentity] and [New] when the data dir
// holds no identity: the sensor must [Enroll] first.
var ErrNotEnrolled = errors.New("sensor is not enrolled")

// Identity is who a sensor is to its cluster: what [Enroll] got and
// [LoadIdentity] reads back from the data dir.
type Identity struct {
	SensorID string
	Tenant   string
	// Name is the display name the sensor enrolled with.
	Name string
	// Targets are the gRPC targets of the central nodes the sensor enrolled
	// with ("host:port" or "dns:///name:port").
	Targets []string
	// Fingerprint is the SHA-256 of the client certificate in lower-case
	// hex: what the central's server list shows, for the administrator to
	// compare before approving the sensor.
	Fingerprint string
	// State is the administrative state the central reported at enrollment
	// (pending until approved); unspecified when the identity was loaded.
	State ospreyv1.SensorState
	// Loaded is true when [Enroll] found the identity in the data dir and
	// did not enroll.
	Loaded bool
	// CA is the cluster CA certificate, the sensor's only trust root.
	CA *x509.Certificate
	// Certificate is the client key pair; its Leaf is set.
	Certificate tls.Certificate
}

// sensorRecord is identity/sensor.json.
type sensorRecord struct {
	SensorID       string    `json:"sensor_id"`
	Tenant         string    `json:"tenant"`
	Name           string    `json:"name,omitempty"`
	CentralTargets []string  `json:"central_targets"`
	EnrolledAt     time.Time `json:"enrolled_at,omitzero"`
}

// LoadIdentity reads the identity that [Enroll] stored in dataDir:
//
//	identity/sensor.json  sensor id, tenant, name, central targets
//	identity/ca.pem       the cluster CA certificate
//	identity/key.pem      the client key (0600)
//	identity/cert.pem     the client certificate
//
// It returns an error matching [ErrNotEnrolled] when sensor.json does not
// exist, and any other error when the identity is there but broken, which
// calls for an operator rather than a new enrollment. A certificate that has
// expired is loaded all the same (the sensor can still run its last
// configuration); the central will refuse it.
func LoadIdentity(dataDir string) (*Identity, error) {
	recPath := filepath.Join(dataDir, sensorFile)
	data, err := readSmall(recPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist: %w", recPath, ErrNotEnrolled)
	}
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	var rec sensorRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("load identity: parse %s: %w", recPath, err)
	}
	want := pki.Identity{Tenant: rec.Tenant, SensorID: rec.SensorID}
	if err := want.Validate(); err != nil {
		return nil, fmt.Errorf("load identity: %s: %w", recPath, err)
	}
	caPEM, err := readSmall(filepath.Join(dataDir, caFile))
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	ca, err := parseCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("load identity: %s: %w", caFile, err)
	}
	if !ca.IsCA {
		return nil, fmt.Errorf("load identity: %s is not a CA certificate", caFile)
	}
	pair, err := loadPair(dataDir)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	if err := checkClientCert(pair.Leaf, ca, want, time.Time{}); err != nil {
		return nil, fmt.Errorf("load identity: %s: %w", certFile, err)
	}
	return &Identity{
		SensorID:    rec.SensorID,
		Tenant:      rec.Tenant,
		Name:        rec.Name,
		Targets:     slices.Clone(rec.CentralTargets),
		Fingerprint: pki.Fingerprint(pair.Certificate[0]),
		CA:          ca,
		Certificate: pair,
	}, nil
}

// saveIdentity writes a new identity into dataDir, sensor.json last.
func saveIdentity(dataDir string, id *Identity, keyPEM []byte, now time.Time) error {
	if err := os.MkdirAll(filepath.Join(dataDir, identityDir), dirPerm); err != nil {
		return fmt.Errorf("create identity dir: %w", err)
	}
	if err := pki.WriteFileAtomic(filepath.Join(dataDir, caFile), encodeCertPEM(id.CA.Raw), publicFilePerm); err != nil {
		return err
	}
	// Clear what an interrupted renewal of an earlier identity may have left.
	for _, name := range []string{keyFile + nextSuffix, certFile + nextSuffix} {
		if err := os.Remove(filepath.Join(dataDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale %s: %w", name, err)
		}
	}
	if err := pki.WriteFileAtomic(filepath.Join(dataDir, keyFile), keyPEM, secretFilePerm); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(filepath.Join(dataDir, certFile), encodeCertPEM(id.Certificate.Certificate[0]), publicFilePerm); err != nil {
		return err
	}
	rec, err := json.MarshalIndent(sensorRecord{
		SensorID:       id.SensorID,
		Tenant:         id.Tenant,
		Name:           id.Name,
		CentralTargets: id.Targets,
		EnrolledAt:     now.UTC(),
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", sensorFile, err)
	}
	return pki.WriteFileAtomic(filepath.Join(dataDir, sensorFile), append(rec, '\n'), secretFilePerm)
}

// savePair replaces the client key pair in dataDir: it writes both files as
// "*.next", then renames the key and the certificate in. A crash between
// the two renames leaves a new key.pem beside cert.pem.next, which
// [loadPair] pairs up and finishes.
func savePair(dataDir string, keyPEM, certPEM []byte) error {
	keyPath, certPath := filepath.Join(dataDir, keyFile), filepath.Join(dataDir, certFile)
	if err := pki.WriteFileAtomic(keyPath+nextSuffix, keyPEM, secretFilePerm); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(certPath+nextSuffix, certPEM, publicFilePerm); err != nil {
		return err
	}
	return switchPair(dataDir, true)
}

// switchPair renames the "*.next" files in (the key only when withKey) and
// syncs the directory.
func switchPair(dataDir string, withKey bool) error {
	keyPath, certPath := filepath.Join(dataDir, keyFile), filepath.Join(dataDir, certFile)
	if withKey {
		if err := os.Rename(keyPath+nextSuffix, keyPath); err != nil {
			return fmt.Errorf("switch key: %w", err)
		}
	}
	if err := os.Rename(certPath+nextSuffix, certPath); err != nil {
		return fmt.Errorf("switch certificate: %w", err)
	}
	return durable.SyncDir(filepath.Join(dataDir, identityDir))
}

// loadPair loads the client key pair, first finishing or undoing a switch
// that [savePair] did not complete: a cert.pem.next that matches key.pem.next
// (or, when that is gone, key.pem) is switched in; any other "*.next" file is
// a half-written renewal and is removed.
func loadPair(dataDir string) (tls.Certificate, error) {
	keyPath, certPath := filepath.Join(dataDir, keyFile), filepath.Join(dataDir, certFile)
	nextCert, err := readSmall(certPath + nextSuffix)
	switch {
	case err == nil:
		nextKey, kerr := readSmall(keyPath + nextSuffix)
		withKey := kerr == nil
		if errors.Is(kerr, fs.ErrNotExist) {
			nextKey, kerr = readSmall(keyPath)
		}
		if kerr != nil {
			return tls.Certificate{}, kerr
		}
		if _, perr := tls.X509KeyPair(nextCert, nextKey); perr == nil {
			if err := switchPair(dataDir, withKey); err != nil {
				return tls.Certificate{}, fmt.Errorf("finish an interrupted renewal: %w", err)
			}
			break
		}
		if err := removeNext(dataDir); err != nil {
			return tls.Certificate{}, err
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := removeNext(dataDir); err != nil {
			return tls.Certificate{}, err
		}
	default:
		return tls.Certificate{}, err
	}
	keyPEM, err := readSmall(keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM, err := readSmall(certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s and %s: %w", keyFile, certFile, err)
	}
	if pair.Leaf == nil { // GODEBUG=x509keypairleaf=0
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("%s: %w", certFile, err)
		}
	}
	return pair, nil
}

// removeNext removes leftover "*.next" files.
func removeNext(dataDir string) error {
	for _, name := range []string{keyFile + nextSuffix, certFile + nextSuffix} {
		if err := os.Remove(filepath.Join(dataDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	return nil
}

// checkClientCert checks that cert is a client certificate for want, signed
// by ca, and, unless now is zero, valid at now.
func checkClientCert(cert, ca *x509.Certificate, want pki.Identity, now time.Time) error {
	got, err := pki.IdentityFromCert(cert)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("certificate is for %s, want %s", got, want)
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("certificate is not signed by the cluster CA: %w", err)
	}
	if !now.IsZero() && (now.Before(cert.NotBefore) || now.After(cert.NotAfter)) {
		return fmt.Errorf("certificate is valid from %v to %v, not now (%v)",
			cert.NotBefore.UTC(), cert.NotAfter.UTC(), now.UTC())
	}
	return nil
}

// sameKey reports whether cert carries key's public key.
func sameKey(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != pemCertificate {
		return nil, errors.New("no PEM certificate")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data after the certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func encodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}

// readSmall reads a file of the identity, refusing one too large to be ours.
func readSmall(name string) ([]byte, error) {
	return readLimited(name, maxIdentityFile)
}

// readLimited reads a file of at most limit bytes.
func readLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s has more than %d bytes", name, limit)
	}
	return data, nil
}
