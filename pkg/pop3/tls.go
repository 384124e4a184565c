package pop3

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/ospreysec/osprey/pkg/ciphersuite"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TLSMode is how TLS starts on a connection.
type TLSMode int

const (
	// NoTLS is plaintext throughout.
	NoTLS TLSMode = iota
	// ImplicitTLS starts TLS with the connection (port 995).
	ImplicitTLS
	// StartTLS upgrades the connection with STLS after the greeting (port
	// 110, RFC 2595).
	StartTLS
)

func (m TLSMode) String() string {
	switch m {
	case NoTLS:
		return "none"
	case ImplicitTLS:
		return "implicit"
	case StartTLS:
		return "starttls"
	}
	return fmt.Sprintf("TLSMode(%d)", int(m))
}

// TLSPolicy is how the server's certificate is checked and which cipher
// suites are offered.
type TLSPolicy struct {
	// Certificate is the certificate policy; UNSPECIFIED means
	// TRUSTED_ONLY, the safe choice.
	Certificate ospreyv1.TlsCertificatePolicy
	// ServerName is the name the certificate must match (trusted_only)
	// and the SNI sent; empty means the host of Options.Addr.
	ServerName string
	// CAPEM holds CA certificates (PEM) trusted besides the system roots.
	CAPEM []byte
	// CipherSuite is an OpenSSL cipher list for TLS 1.2 (see package
	// ciphersuite); empty means Go's defaults. TLS 1.3 suites are fixed by
	// Go.
	CipherSuite string
}

// Validate reports every problem of p that would make a connection fail
// before it is made.
func (p TLSPolicy) Validate() error {
	var errs []error
	switch p.Certificate {
	case ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_UNSPECIFIED,
		ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_ANY,
		ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_SELF_SIGNED,
		ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY:
	default:
		errs = append(errs, fmt.Errorf("certificate policy: unknown value %d", p.Certificate))
	}
	if len(p.CAPEM) > 0 {
		if _, err := parseCAs(p.CAPEM); err != nil {
			errs = append(errs, err)
		}
	}
	if p.CipherSuite != "" {
		if _, err := ciphersuite.Parse(p.CipherSuite); err != nil {
			errs = append(errs, fmt.Errorf("cipher suite: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Trust says why a server certificate was accepted.
type Trust int

const (
	// TrustVerified: the chain leads to a trusted root and the leaf
	// matches the server name.
	TrustVerified Trust = iota + 1
	// TrustSelfSigned: the leaf is self-signed (accept_self_signed); the
	// caller should pin [TLSState.Fingerprint].
	TrustSelfSigned
	// TrustNone: nothing was verified (accept_any).
	TrustNone
)

func (t Trust) String() string {
	switch t {
	case TrustVerified:
		return "verified"
	case TrustSelfSigned:
		return "self-signed"
	case TrustNone:
		return "unverified"
	}
	return fmt.Sprintf("Trust(%d)", int(t))
}

// TLSState describes the TLS of a connection.
type TLSState struct {
	Version     uint16
	CipherSuite uint16
	Trust       Trust
	// Fingerprint is the SHA-256 of the server's leaf certificate (DER),
	// in lower-case hex.
	Fingerprint string
	// Leaf is the server's certificate.
	Leaf *x509.Certificate
}

// parseCAs reads the certificates of a PEM bundle; anything else in it is
// an error, and so is a bundle without a certificate.
func parseCAs(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			if len(bytes.TrimSpace(rest)) > 0 {
				return nil, errors.New("ca_pem: data that is not PEM")
			}
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("ca_pem: a %q block, want CERTIFICATE", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca_pem: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("ca_pem: no certificate")
	}
	return certs, nil
}

// tlsConfig builds the configuration of one connection; the verdict of its
// certificate check is written to *trust.
func (p TLSPolicy) tlsConfig(serverName string, trust *Trust) (*tls.Config, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if len(p.CAPEM) > 0 {
		cas, err := parseCAs(p.CAPEM)
		if err != nil {
			return nil, err
		}
		for _, c := range cas {
			roots.AddCert(c)
		}
	}
	cfg := &tls.Config{
		ServerName: serverName,
		MinVersion: tls.VersionTLS12,
		RootCAs:    roots,
	}
	if p.CipherSuite != "" {
		r, err := ciphersuite.Parse(p.CipherSuite)
		if err != nil {
			return nil, fmt.Errorf("cipher suite: %w", err)
		}
		cfg.CipherSuites = r.Suites
	}
	switch p.Certificate {
	case ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_UNSPECIFIED,
		ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY:
		// crypto/tls verifies the chain and the name itself.
		cfg.VerifyConnection = func(tls.ConnectionState) error {
			*trust = TrustVerified
			return nil
		}
	case ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_SELF_SIGNED,
		ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_ANY:
		selfSignedOK := p.Certificate == ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_SELF_SIGNED
		cfg.InsecureSkipVerify = true // checked in VerifyConnection below
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			t, err := classify(cs.PeerCertificates, roots, serverName, selfSignedOK)
			*trust = t
			return err
		}
	default:
		return nil, fmt.Errorf("certificate policy: unknown value %d", p.Certificate)
	}
	return cfg, nil
}

// classify checks a peer's chain for accept_self_signed (selfSignedOK) or
// accept_any.
func classify(certs []*x509.Certificate, roots *x509.CertPool, serverName string, selfSignedOK bool) (Trust, error) {
	if len(certs) == 0 {
		return 0, errors.New("server sent no certificate")
	}
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, verr := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: serverName})
	switch {
	case verr == nil:
		return TrustVerified, nil
	case selfSignedOK && isSelfSigned(leaf):
		return TrustSelfSigned, nil
	case selfSignedOK:
		return 0, fmt.Errorf("certificate is neither trusted (%v) nor self-signed", verr)
	}
	return TrustNone, nil
}

// isSelfSigned reports whether c names itself as its issuer and its
// signature checks with its own public key. It does not ask for the CA
// flag, which many self-signed server certificates lack.
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// fingerprint is the SHA-256 of a DER certificate, in lower-case hex.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}
