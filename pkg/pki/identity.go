package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrNoIdentity is returned by [IdentityFromCert] for a certificate that does
// not carry exactly one well-formed sensor identity.
var ErrNoIdentity = errors.New("certificate carries no sensor identity")

// identityPrefix starts the URI SAN of every sensor certificate.
const identityPrefix = "osprey://sensor/"

// maxIDLen bounds tenant and sensor ids, as DNS bounds a label.
const maxIDLen = 63

// Identity is whom a client certificate speaks for. The central node assigns
// it at enrollment; it is never taken from the sensor's CSR.
//
// Both fields are 1 to 63 ASCII letters, digits, '.', '-' or '_', starting
// with a letter or a digit, so that the URI form needs no escaping and has
// exactly one spelling.
type Identity struct {
	Tenant   string
	SensorID string
}

// String returns the identity as its certificate carries it:
// "osprey://sensor/<tenant>/<sensor-id>".
func (id Identity) String() string {
	return identityPrefix + id.Tenant + "/" + id.SensorID
}

// Validate reports every malformed field of id.
func (id Identity) Validate() error {
	return errors.Join(checkID("tenant", id.Tenant), checkID("sensor id", id.SensorID))
}

func checkID(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", field)
	}
	if len(s) > maxIDLen {
		return fmt.Errorf("%s has %d characters, want at most %d", field, len(s), maxIDLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("%s %q: must start with a letter or a digit", field, s)
		}
		if !alnum && c != '.' && c != '-' && c != '_' {
			return fmt.Errorf("%s %q: character %d is not a letter, digit, '.', '-' or '_'", field, s, i+1)
		}
	}
	return nil
}

// parseIdentityURI reads "osprey://sensor/<tenant>/<sensor-id>". Since ids
// cannot hold '/', '%', '?' or '#', a plain split is exact.
func parseIdentityURI(s string) (Identity, error) {
	rest, ok := strings.CutPrefix(s, identityPrefix)
	if !ok {
		return Identity{}, fmt.Errorf("URI %q does not start with %s", s, identityPrefix)
	}
	tenant, sensorID, ok := strings.Cut(rest, "/")
	if !ok {
		return Identity{}, fmt.Errorf("URI %q: want %s<tenant>/<sensor-id>", s, identityPrefix)
	}
	id := Identity{Tenant: tenant, SensorID: sensorID}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("URI %q: %w", s, err)
	}
	return id, nil
}

// IdentityFromCert reads the sensor identity of a client certificate that
// [CA.SignClient] issued. It is strict: the certificate must carry exactly one
// URI SAN, of the form "osprey://sensor/<tenant>/<sensor-id>" with well-formed
// ids, its common name must be the sensor id, it must allow client
// authentication, and it must not be a CA. Errors wrap [ErrNoIdentity].
//
// It does not check who signed the certificate: call it on a certificate that
// TLS verified against the cluster CA, such as
// tls.ConnectionState.VerifiedChains[0][0].
func IdentityFromCert(cert *x509.Certificate) (Identity, error) {
	if cert.IsCA {
		return Identity{}, fmt.Errorf("certificate is a CA: %w", ErrNoIdentity)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return Identity{}, fmt.Errorf("certificate does not allow client authentication: %w", ErrNoIdentity)
	}
	if n := len(cert.URIs); n != 1 {
		return Identity{}, fmt.Errorf("certificate has %d URI SANs, want 1: %w", n, ErrNoIdentity)
	}
	id, err := parseIdentityURI(cert.URIs[0].String())
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", err, ErrNoIdentity)
	}
	if cert.Subject.CommonName != id.SensorID {
		return Identity{}, fmt.Errorf("certificate common name %q is not its sensor id %q: %w",
			cert.Subject.CommonName, id.SensorID, ErrNoIdentity)
	}
	return id, nil
}

// ErrNoServerIdentity is returned by [ServerIDFromCert] for a certificate
// that does not carry exactly one well-formed server (SCN) identity.
var ErrNoServerIdentity = errors.New("certificate carries no server identity")

// serverIdentityPrefix starts the URI SAN of every link certificate a PCN
// issues an SCN. It differs from a sensor's in its first path segment, and
// both parsers demand their own prefix, so neither certificate passes for the
// other.
const serverIdentityPrefix = "osprey://server/"

// ServerIdentity returns the URI SAN of the link certificate of the SCN id:
// "osprey://server/<id>".
func ServerIdentity(id string) string { return serverIdentityPrefix + id }

// parseServerURI reads "osprey://server/<id>"; as with a sensor's, an id
// cannot hold '/', '%', '?' or '#', so the URI has one spelling.
func parseServerURI(s string) (string, error) {
	id, ok := strings.CutPrefix(s, serverIdentityPrefix)
	if !ok {
		return "", fmt.Errorf("URI %q does not start with %s", s, serverIdentityPrefix)
	}
	if err := checkID("server id", id); err != nil {
		return "", fmt.Errorf("URI %q: %w", s, err)
	}
	return id, nil
}

// ServerIDFromCert reads the server id of a link certificate that
// [CA.SignServerLink] issued, as strictly as [IdentityFromCert] reads a
// sensor's: exactly one URI SAN "osprey://server/<id>", the common name the
// id, client authentication allowed, not a CA. Errors wrap
// [ErrNoServerIdentity]. Like IdentityFromCert it does not check who signed
// the certificate.
func ServerIDFromCert(cert *x509.Certificate) (string, error) {
	if cert.IsCA {
		return "", fmt.Errorf("certificate is a CA: %w", ErrNoServerIdentity)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return "", fmt.Errorf("certificate does not allow client authentication: %w", ErrNoServerIdentity)
	}
	if n := len(cert.URIs); n != 1 {
		return "", fmt.Errorf("certificate has %d URI SANs, want 1: %w", n, ErrNoServerIdentity)
	}
	id, err := parseServerURI(cert.URIs[0].String())
	if err != nil {
		return "", fmt.Errorf("%w: %w", err, ErrNoServerIdentity)
	}
	if cert.Subject.CommonName != id {
		return "", fmt.Errorf("certificate common name %q is not its server id %q: %w", cert.Subject.CommonName, id, ErrNoServerIdentity)
	}
	return id, nil
}
