package pki

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"
)

// Validity of a derived CA: fixed dates, so that every holder of the key
// derives the same certificate.
var (
	derivedNotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	derivedNotAfter  = time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC)
)

// DeriveCA returns the CA that kek alone determines: HKDF-SHA256 of kek,
// under label, seeds an Ed25519 key, and the self-signed certificate,
// named commonName, has a serial number from the same derivation and fixed
// dates. Every holder of kek therefore derives the same CA, with nothing
// to distribute or store, and a certificate it signs proves that its
// holder has kek. Different labels give unrelated CAs. The CA may sign
// leaf certificates only.
//
// The central nodes use it for etcd's peer TLS, which must be up before
// etcd (where the cluster CA lives) can be read.
func DeriveCA(kek []byte, label, commonName string) (*CA, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("derive CA: key has %d bytes, want %d", len(kek), KEKSize)
	}
	seed, err := hkdf.Key(sha256.New, kek, nil, "osprey derived CA key: "+label, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("derive CA key: %w", err)
	}
	serial, err := hkdf.Key(sha256.New, kek, nil, "osprey derived CA serial: "+label, 16)
	if err != nil {
		return nil, fmt.Errorf("derive CA serial: %w", err)
	}
	serial[0] &= 0x7f // positive, as RFC 5280 §4.1.2.2 wants
	serial[0] |= 0x01 // and never zero
	key := ed25519.NewKeyFromSeed(seed)
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Osprey"}},
		NotBefore:             derivedNotBefore,
		NotAfter:              derivedNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	// Ed25519 signatures use no randomness: the certificate is the same
	// bytes on every node.
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create derived CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse derived CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}
