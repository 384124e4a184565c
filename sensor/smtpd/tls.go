package smtpd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// tls12Suites are the TLS 1.2 suites offered: forward-secret (ECDHE) and
// AEAD only. TLS 1.3 suites are not configurable in Go, and all are sound.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// selfSignedValidity is the validity of the certificate the server makes
// for itself when the configuration has none. A sending MTA that uses
// STARTTLS opportunistically does not check it; one that does needs a
// configured certificate anyway.
const selfSignedValidity = 5 * 365 * 24 * time.Hour

func (p *policy) compileTLS(t *ospreyv1.SmtpTls, selfSigned func() (tls.Certificate, error)) error {
	switch t.GetMode() {
	case ospreyv1.TlsMode_TLS_MODE_ACCEPT:
	case ospreyv1.TlsMode_TLS_MODE_REQUIRE:
		p.requireTLS = true
	default:
		return nil
	}
	var cert tls.Certificate
	var err error
	if t.GetCertPem() != "" {
		cert, err = tls.X509KeyPair([]byte(t.GetCertPem()), []byte(t.GetKeyPem()))
	} else {
		cert, err = selfSigned()
	}
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	p.tls = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tls12Suites,
		Certificates: []tls.Certificate{cert},
	}
	switch t.GetClientCert() {
	case ospreyv1.ClientCertMode_CLIENT_CERT_MODE_REQUEST:
		p.tls.ClientAuth = tls.RequestClientCert
	case ospreyv1.ClientCertMode_CLIENT_CERT_MODE_REQUIRE:
		p.tls.ClientAuth = tls.RequireAnyClientCert
	default:
		return nil
	}
	// The certificate is verified by verifyClientCert rather than by
	// crypto/tls, so that the reason of a failure is known and logged.
	if ca := t.GetClientCaPem(); ca != "" {
		p.clientCAs = x509.NewCertPool()
		if !p.clientCAs.AppendCertsFromPEM([]byte(ca)) {
			return errors.New("client_ca_pem: no certificate")
		}
	} else if p.clientCAs, err = x509.SystemCertPool(); err != nil {
		return fmt.Errorf("system roots for client certificates: %w", err)
	}
	return nil
}

// verifyClientCert checks the certificate chain a client presented: it must
// chain to the client CAs, be valid at now and allow client authentication.
// No certificate is fine here: crypto/tls has already refused a handshake
// without one when one is required.
func verifyClientCert(rawCerts [][]byte, roots *x509.CertPool, now time.Time) error {
	if len(rawCerts) == 0 {
		return nil
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return fmt.Errorf("parse client certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "TLS1.2"
	case tls.VersionTLS13:
		return "TLS1.3"
	}
	return fmt.Sprintf("TLS(0x%04x)", v)
}
