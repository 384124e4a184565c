package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
)

// ReissueNonceSize is the size of the challenge a central node sends for
// a reissue: 32 random bytes.
const ReissueNonceSize = 32

// reissueContext starts every message a reissue proof signs, so that the
// signature cannot be taken for one made for any other purpose.
const reissueContext = "osprey sensor certificate reissue v1\x00"

// ErrBadReissueProof is returned by [VerifyReissueProof] for a proof that
// does not verify.
var ErrBadReissueProof = errors.New("reissue proof does not verify")

// SignReissueProof proves, for a reissue, that the sensor holds key, the
// private key of its certificate certDER: it signs the central's challenge
// nonce bound to that certificate and to csrDER, the request for the new
// key. The signature is good for that one challenge, certificate and
// request, and nothing else (see [VerifyReissueProof]).
//
// An ECDSA key signs the SHA-256 of the message (ASN.1 signature), an
// Ed25519 key the message itself, an RSA key its SHA-256 with PSS.
func SignReissueProof(key crypto.Signer, nonce, certDER, csrDER []byte) ([]byte, error) {
	if len(nonce) != ReissueNonceSize {
		return nil, fmt.Errorf("sign reissue proof: nonce has %d bytes, want %d", len(nonce), ReissueNonceSize)
	}
	msg := reissueMessage(nonce, certDER, csrDER)
	var (
		sig []byte
		err error
	)
	switch key.Public().(type) {
	case *ecdsa.PublicKey:
		digest := sha256.Sum256(msg)
		sig, err = key.Sign(rand.Reader, digest[:], crypto.SHA256)
	case ed25519.PublicKey:
		sig, err = key.Sign(rand.Reader, msg, crypto.Hash(0))
	case *rsa.PublicKey:
		digest := sha256.Sum256(msg)
		sig, err = key.Sign(rand.Reader, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	default:
		return nil, fmt.Errorf("sign reissue proof: key is %T: %w", key.Public(), ErrUnsupportedKey)
	}
	if err != nil {
		return nil, fmt.Errorf("sign reissue proof: %w", err)
	}
	return sig, nil
}

// VerifyReissueProof checks a proof made by [SignReissueProof]: that sig is
// a signature by cert's key over nonce, cert itself and csrDER. A proof made
// for another challenge (a replay), another certificate or another request
// fails with an error matching [ErrBadReissueProof].
//
// It checks only the signature: whether cert is one this cluster issued, and
// still the sensor's, is for the caller to decide.
func VerifyReissueProof(cert *x509.Certificate, nonce, csrDER, sig []byte) error {
	if len(nonce) != ReissueNonceSize {
		return fmt.Errorf("nonce has %d bytes, want %d: %w", len(nonce), ReissueNonceSize, ErrBadReissueProof)
	}
	var algo x509.SignatureAlgorithm
	switch cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		algo = x509.ECDSAWithSHA256
	case ed25519.PublicKey:
		algo = x509.PureEd25519
	case *rsa.PublicKey:
		algo = x509.SHA256WithRSAPSS
	default:
		return fmt.Errorf("certificate key is %T: %w", cert.PublicKey, ErrUnsupportedKey)
	}
	if err := cert.CheckSignature(algo, reissueMessage(nonce, cert.Raw, csrDER), sig); err != nil {
		return fmt.Errorf("%w: %w", ErrBadReissueProof, err)
	}
	return nil
}

// reissueMessage is what a reissue proof signs: the context, the nonce, and
// the SHA-256 of the certificate and of the request. Every part has a fixed
// length, so no two inputs make the same message.
func reissueMessage(nonce, certDER, csrDER []byte) []byte {
	certSum, csrSum := sha256.Sum256(certDER), sha256.Sum256(csrDER)
	msg := make([]byte, 0, len(reissueContext)+len(nonce)+2*sha256.Size)
	msg = append(msg, reissueContext...)
	msg = append(msg, nonce...)
	msg = append(msg, certSum[:]...)
	return append(msg, csrSum[:]...)
}

// VerifyIssuedClient checks that cert is a client certificate ca issued
// ([CA.SignClient]), whatever its validity period, and returns the identity
// it carries. It serves a reissue: TLS refuses an expired certificate, so
// the central checks the one the sensor sends this way, and its key by
// [VerifyReissueProof]. Errors wrap [ErrNoIdentity] for a certificate of
// the CA that is not a sensor's.
func (ca *CA) VerifyIssuedClient(cert *x509.Certificate) (Identity, error) {
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		return Identity{}, fmt.Errorf("certificate was not issued by this CA: %w", err)
	}
	return IdentityFromCert(cert)
}
