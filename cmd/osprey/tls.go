package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ospreysec/osprey/api"
)

// insecureTLS is for --tls-skip-verify against a node's self-signed certificate.
func insecureTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // The operator asked for it.
}

// ctlTLS sets how ctl verifies the API's certificate: against the CAs of
// --tls-ca, by the pinned fingerprints of --tls-fingerprint, not at all
// (--tls-skip-verify), or, with none of them, against the system's CAs.
func ctlTLS(cfg *api.Config, src *flagSources, caFile, fingerprints string, insecure bool) error {
	var given []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"tls-ca", caFile != ""}, {"tls-fingerprint", fingerprints != ""}, {"tls-skip-verify", insecure}} {
		if f.set {
			given = append(given, src.name(f.name))
		}
	}
	if len(given) > 1 {
		return usageErrorf("%s: give one of them", strings.Join(given, " and "))
	}
	switch {
	case insecure:
		cfg.TLSConfig = insecureTLS()
	case caFile != "":
		pemBytes, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("%s: %w", src.name("tls-ca"), err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return fmt.Errorf("%s: %s holds no PEM certificate", src.name("tls-ca"), caFile)
		}
		cfg.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	case fingerprints != "":
		for _, s := range strings.Split(fingerprints, ",") {
			fp, err := api.ParseFingerprint(s)
			if err != nil {
				return usageErrorf("%s: %v", src.name("tls-fingerprint"), err)
			}
			cfg.TLSFingerprints = append(cfg.TLSFingerprints, fp)
		}
	}
	return nil
}

// explainTLS adds the way out to an error in verifying the API's certificate.
func explainTLS(err error) error {
	var fp *api.FingerprintError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.As(err, &fp):
		return fmt.Errorf("%w (compare --tls-fingerprint with the \"API certificate\" the node printed at start)", err)
	case errors.As(err, &unknown):
		return fmt.Errorf("%w: no CA this host trusts signed the API's certificate: pin it with --tls-fingerprint SHA256 "+
			"(the node prints it at start, as \"API certificate\"), or give its CA with --tls-ca FILE", err)
	case errors.As(err, &host):
		return fmt.Errorf("%w: use an address the certificate names, or pin it with --tls-fingerprint SHA256 "+
			"(the node prints it at start, as \"API certificate\")", err)
	}
	return err
}
