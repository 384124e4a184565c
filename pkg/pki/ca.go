package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// DefaultCAValidity is how long a CA made by [NewCA] is valid when no
// validity is given: ten years (of 365 days). Rotating the cluster CA means
// re-enrolling every sensor, so it is made to outlive the hardware.
const DefaultCAValidity = 10 * 365 * 24 * time.Hour

// backdate is how far before "now" a certificate becomes valid, so that a peer
// whose clock is a little behind accepts it at once.
const backdate = 5 * time.Minute

// CA is the cluster certificate authority: it signs the sensors' client
// certificates and the central nodes' serving certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a CA with a fresh ECDSA P-256 key and a self-signed certificate
// named commonName, valid from five minutes ago for validity
// ([DefaultCAValidity] when validity is zero or negative). The CA may sign
// leaf certificates only (path length 0), never intermediates.
func NewCA(commonName string, validity time.Duration) (*CA, error) {
	if validity <= 0 {
		validity = DefaultCAValidity
	}
	key, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Osprey"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM returns the CA certificate as a PEM block.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: ca.Cert.Raw})
}

// MarshalCA encodes ca as PEM: its certificate, and its private key as PKCS#8.
// The key is in clear: [Seal] it before it leaves the process.
func MarshalCA(ca *CA) (certPEM, keyPEM []byte, err error) {
	keyPEM, err = MarshalKeyPEM(ca.Key)
	if err != nil {
		return nil, nil, err
	}
	return ca.CertPEM(), keyPEM, nil
}

// ParseCA decodes what [MarshalCA] encoded. It checks that the certificate is
// a CA that may sign certificates and that the key is the certificate's.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	block, rest := pem.Decode(certPEM)
	if block == nil {
		return nil, errors.New("parse CA: no PEM block in certificate")
	}
	if block.Type != pemCertificate {
		return nil, fmt.Errorf("parse CA: PEM block is %q, want %q", block.Type, pemCertificate)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("parse CA: data after the certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA: %w", err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("parse CA: certificate is not a CA that may sign certificates")
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse CA: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("parse CA: key does not match the certificate")
	}
	return &CA{Cert: cert, Key: key}, nil
}

// SignClient issues a client certificate for the public key in csrDER (a DER
// PKCS#10 request) to the sensor id, valid from five minutes before now for
// validity (but not past the CA's own expiry).
//
// It checks the request's signature, so the requester holds the private key,
// and takes nothing else from it: subject, SANs and extensions of the request
// are ignored. The identity is the one given: the URI SAN
// "osprey://sensor/<tenant>/<sensor-id>" and the common name sensor-id. The
// certificate allows client authentication only. Keys described at
// [ErrUnsupportedKey] are refused.
func (ca *CA) SignClient(csrDER []byte, id Identity, validity time.Duration, now time.Time) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("sign client certificate: %w", err)
	}
	der, err := ca.signIdentity(csrDER, id.SensorID, id.String(), validity, now)
	if err != nil {
		return nil, fmt.Errorf("sign client certificate: %w", err)
	}
	return der, nil
}

// SignServerLink issues the link certificate of the SCN serverID, as
// [CA.SignClient] issues a sensor's: for the public key of csrDER only, with
// the URI SAN "osprey://server/<server-id>" (see [ServerIDFromCert]) and the
// common name server-id, for client authentication only. A sensor's
// certificate never carries that URI, nor a link certificate a sensor's.
func (ca *CA) SignServerLink(csrDER []byte, serverID string, validity time.Duration, now time.Time) ([]byte, error) {
	if err := checkID("server id", serverID); err != nil {
		return nil, fmt.Errorf("sign link certificate: %w", err)
	}
	der, err := ca.signIdentity(csrDER, serverID, ServerIdentity(serverID), validity, now)
	if err != nil {
		return nil, fmt.Errorf("sign link certificate: %w", err)
	}
	return der, nil
}

// signIdentity signs a client certificate for the key of csrDER (whose
// signature it checks, and nothing else) named commonName with the one URI
// SAN identity.
func (ca *CA) signIdentity(csrDER []byte, commonName, identity string, validity time.Duration, now time.Time) ([]byte, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("parse request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("request signature: %w", err)
	}
	uri, err := url.Parse(identity)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		URIs:        []*url.URL{uri},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return ca.sign(tmpl, csr.PublicKey, validity, now)
}

// SignServer issues a serving certificate for a central node's public key,
// for hosts (DNS names and IP addresses; the first is also the common name),
// valid from five minutes before now for validity (but not past the CA's own
// expiry). The certificate allows server authentication only. The central
// node makes the key itself: it never leaves the node.
func (ca *CA) SignServer(pub crypto.PublicKey, hosts []string, validity time.Duration, now time.Time) ([]byte, error) {
	der, err := ca.signHost(pub, hosts, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, validity, now)
	if err != nil {
		return nil, fmt.Errorf("sign server certificate: %w", err)
	}
	return der, nil
}

// SignPeer issues a certificate for a member of a cluster whose members
// connect to each other (etcd's peers): like [CA.SignServer], but for
// client authentication too.
func (ca *CA) SignPeer(pub crypto.PublicKey, hosts []string, validity time.Duration, now time.Time) ([]byte, error) {
	der, err := ca.signHost(pub, hosts, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, validity, now)
	if err != nil {
		return nil, fmt.Errorf("sign peer certificate: %w", err)
	}
	return der, nil
}

func (ca *CA) signHost(pub crypto.PublicKey, hosts []string, usage []x509.ExtKeyUsage, validity time.Duration, now time.Time) ([]byte, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "osprey central node", Organization: []string{"Osprey"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: usage,
	}
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
		if len(tmpl.IPAddresses)+len(tmpl.DNSNames) == 1 {
			tmpl.Subject.CommonName = h
		}
	}
	return ca.sign(tmpl, pub, validity, now)
}

// IssuedAt is when a certificate this package signed was issued, as near as
// the certificate tells: its NotBefore is backdated by five minutes (or
// moved up to the CA's own NotBefore). A holder that renews at a share of
// the lifetime measures from here, so that a short lifetime is not mostly
// the backdating.
func IssuedAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(backdate)
}

// sign fills in what every leaf shares and signs tmpl for pub.
func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey, validity time.Duration, now time.Time) ([]byte, error) {
	if validity <= 0 {
		return nil, fmt.Errorf("validity %v is not positive", validity)
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	if k, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); ok && k.Equal(ca.Cert.PublicKey) {
		return nil, errors.New("key is the CA's own key")
	}
	if now.Before(ca.Cert.NotBefore) || now.After(ca.Cert.NotAfter) {
		return nil, fmt.Errorf("CA is not valid at %v (valid %v to %v)", now.UTC(), ca.Cert.NotBefore.UTC(), ca.Cert.NotAfter.UTC())
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(validity)
	if tmpl.NotBefore.Before(ca.Cert.NotBefore) {
		tmpl.NotBefore = ca.Cert.NotBefore
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	return der, nil
}

// TLSCertificate returns the chain a central node serves: its leaf (from
// [CA.SignServer]) followed by the CA certificate, which sensors need to check
// their pin during enrollment (see [VerifyPinnedChain]).
func (ca *CA) TLSCertificate(leafDER []byte, key crypto.Signer) (tls.Certificate, error) {
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parse leaf certificate: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return tls.Certificate{}, errors.New("key does not match the leaf certificate")
	}
	return tls.Certificate{
		Certificate: [][]byte{leafDER, ca.Cert.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}
