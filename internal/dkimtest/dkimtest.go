// Package dkimtest makes DKIM keys for tests and benchmarks, the DNS
// record that publishes each, and signs messages with them
// (github.com/emersion/go-msgauth/dkim), so that a test checks real
// signatures against keys that a dnstest.Server serves.
package dkimtest

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

// Key is a DKIM key of a domain and selector.
type Key struct {
	Domain, Selector string
	signer           crypto.Signer
	kind             string // "rsa" or "ed25519"
}

// NewRSA makes a 2048-bit RSA key, the usual kind.
func NewRSA(domain, selector string) (*Key, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &Key{Domain: domain, Selector: selector, signer: k, kind: "rsa"}, nil
}

// NewEd25519 makes an Ed25519 key (RFC 8463).
func NewEd25519(domain, selector string) (*Key, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Key{Domain: domain, Selector: selector, signer: k, kind: "ed25519"}, nil
}

// Name is where the key is published: <selector>._domainkey.<domain>.
func (k *Key) Name() string { return k.Selector + "._domainkey." + k.Domain }

// Record is the key's TXT record: "v=DKIM1; k=rsa; p=...".
func (k *Key) Record() string {
	var pub []byte
	switch p := k.signer.Public().(type) {
	case ed25519.PublicKey:
		pub = p
	default:
		der, err := x509.MarshalPKIXPublicKey(p)
		if err != nil {
			panic(err) // an RSA public key always marshals
		}
		pub = der
	}
	return fmt.Sprintf("v=DKIM1; k=%s; p=%s", k.kind, base64.StdEncoding.EncodeToString(pub))
}

// Sign returns msg (CRLF lines) with a DKIM-Signature of the key on top,
// relaxed/relaxed, over the header fields RFC 6376 §5.4.1 recommends.
func (k *Key) Sign(msg []byte) ([]byte, error) {
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
		Domain: k.Domain, Selector: k.Selector, Signer: k.signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Subject", "Date", "Message-ID"},
	})
	if err != nil {
		return nil, fmt.Errorf("sign with %s: %w", k.Name(), err)
	}
	return out.Bytes(), nil
}

// MustSign is Sign for tests.
func (k *Key) MustSign(t testing.TB, msg []byte) []byte {
	t.Helper()
	b, err := k.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
