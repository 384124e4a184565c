package pki

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrPinMismatch is returned by [VerifyPinnedChain] when no CA certificate in
// the server's chain has the pinned key: the server is not the cluster the
// join token was made for, or someone is in the middle.
var ErrPinMismatch = errors.New("server chain has no CA with the pinned key")

// VerifyPinnedChain checks a server's certificate chain (leaf first, DER, as
// tls.Config.VerifyPeerCertificate receives it) against a pinned CA key, the
// hex SHA-256 of its SubjectPublicKeyInfo (see [SPKIHash]). It accepts the
// chain only if a later certificate in it is a self-signed CA whose key has
// that hash and the leaf is a server-authentication certificate that CA
// signed, valid now. It returns that CA certificate, which the sensor keeps as
// its trust root once enrolled (see [VerifyAgainstCA]).
//
// It does not check the host name: the pin is stronger (see the package
// documentation). Use it during enrollment with InsecureSkipVerify set, which
// only turns off Go's own chain and name check in favour of this one:
//
//	&tls.Config{
//		ServerName:         host,
//		InsecureSkipVerify: true,
//		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
//			ca, err := pki.VerifyPinnedChain(raw, tok.CAHash)
//			...
//		},
//	}
//
// Leave ClientSessionCache nil: Go does not call VerifyPeerCertificate on a
// resumed session.
func VerifyPinnedChain(rawCerts [][]byte, caSPKIHash string) (*x509.Certificate, error) {
	if len(caSPKIHash) != 64 {
		return nil, fmt.Errorf("pinned CA hash has %d characters, want 64 hex", len(caSPKIHash))
	}
	if _, err := hex.DecodeString(caSPKIHash); err != nil {
		return nil, errors.New("pinned CA hash is not hex")
	}
	pin := strings.ToLower(caSPKIHash)
	if len(rawCerts) == 0 {
		return nil, errors.New("server sent no certificate")
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return nil, fmt.Errorf("parse server certificate: %w", err)
	}
	var ca *x509.Certificate
	for i, raw := range rawCerts[1:] {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, fmt.Errorf("parse certificate %d of the server chain: %w", i+2, err)
		}
		if SPKIHash(c) != pin {
			continue
		}
		// A certificate with our key but signed by someone else could be made
		// by anyone; keep only the CA's own self-signed one.
		if err := c.CheckSignatureFrom(c); err != nil {
			return nil, fmt.Errorf("pinned CA certificate is not a self-signed CA: %w", err)
		}
		ca = c
		break
	}
	if ca == nil {
		return nil, fmt.Errorf("%d certificates: %w", len(rawCerts), ErrPinMismatch)
	}
	if err := verifyServerLeaf(leaf, ca); err != nil {
		return nil, err
	}
	return ca, nil
}

// VerifyAgainstCA checks a server's certificate chain (leaf first, DER) against
// the cluster CA a sensor stored at enrollment: the leaf must be signed by ca,
// valid now, and allow server authentication. The host name is not checked
// (see the package documentation); certificates after the leaf are ignored.
// It returns the leaf.
func VerifyAgainstCA(rawCerts [][]byte, ca *x509.Certificate) (*x509.Certificate, error) {
	if len(rawCerts) == 0 {
		return nil, errors.New("server sent no certificate")
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return nil, fmt.Errorf("parse server certificate: %w", err)
	}
	if err := verifyServerLeaf(leaf, ca); err != nil {
		return nil, err
	}
	return leaf, nil
}

// verifyServerLeaf checks that ca signed leaf, a server certificate valid now.
// Go's check alone would take a leaf with no extended key usage as good for
// any, and a CA as a leaf; we want exactly what [CA.SignServer] issues.
func verifyServerLeaf(leaf, ca *x509.Certificate) error {
	if leaf.IsCA {
		return errors.New("verify server certificate: it is a CA")
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return errors.New("verify server certificate: it does not allow server authentication")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:     roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("verify server certificate: %w", err)
	}
	return nil
}
