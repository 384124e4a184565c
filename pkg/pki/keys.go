package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// ErrUnsupportedKey is returned for a public key the CA will not certify: an
// RSA key shorter than 2048 or longer than 8192 bits, an ECDSA key on a curve
// other than P-256, P-384 or P-521, or any other key type but Ed25519.
var ErrUnsupportedKey = errors.New("unsupported public key")

// PEM block types.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
)

// GenerateKey makes an ECDSA P-256 private key, the kind every Osprey
// certificate carries.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return key, nil
}

// NewCSR makes a DER PKCS#10 certificate request for key's public key, with
// commonName as its subject. The CA uses only the public key (see
// [CA.SignClient]); the name is a courtesy for logs.
func NewCSR(key crypto.Signer, commonName string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create certificate request: %w", err)
	}
	return der, nil
}

// MarshalKeyPEM encodes a private key as a PKCS#8 "PRIVATE KEY" PEM block.
func MarshalKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// ParseKeyPEM decodes the first PEM block of data, which must be a PKCS#8
// "PRIVATE KEY" holding a signing key.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parse key: no PEM block")
	}
	if block.Type != pemPrivateKey {
		return nil, fmt.Errorf("parse key: PEM block is %q, want %q", block.Type, pemPrivateKey)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse key: %T cannot sign", key)
	}
	return signer, nil
}

// PublicKeyFingerprint is the SHA-256 of pub's DER SubjectPublicKeyInfo, in
// lower-case hex. The central node records it for every key it certifies and
// refuses a CSR whose key it has seen before, so a captured CSR cannot be
// replayed. For a certificate's key it equals [SPKIHash].
func PublicKeyFingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("marshal public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// SPKIHash is the SHA-256 of cert's SubjectPublicKeyInfo, in lower-case hex:
// the CA pin that join tokens carry. It depends on the key only, so it survives
// re-issuing the CA certificate with the same key.
func SPKIHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// checkPublicKey refuses the keys described at [ErrUnsupportedKey].
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("key is ECDSA on curve %s: %w", k.Curve.Params().Name, ErrUnsupportedKey)
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > 8192 {
			return fmt.Errorf("key is RSA of %d bits, want 2048 to 8192: %w", bits, ErrUnsupportedKey)
		}
		return nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("key is Ed25519 of %d bytes: %w", len(k), ErrUnsupportedKey)
		}
		return nil
	default:
		return fmt.Errorf("key is %T: %w", pub, ErrUnsupportedKey)
	}
}

// serialLimit is 2^128: serial numbers are random 128-bit integers.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// newSerial returns a random serial number in [1, 2^128).
func newSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("generate serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
