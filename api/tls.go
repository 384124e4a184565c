package api

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// FingerprintError is the error of a connection whose server presented a certificate that
// none of Config.TLSFingerprints names.
type FingerprintError struct {
	// Got is the SHA-256 fingerprint of the certificate the server presented, in lower-case
	// hex; Want are the pinned ones.
	Got  string
	Want []string
}

func (e *FingerprintError) Error() string {
	return fmt.Sprintf("the server's certificate has SHA-256 fingerprint %s, which is not the pinned %s", e.Got, strings.Join(e.Want, " or "))
}

// ParseFingerprint returns a certificate's SHA-256 fingerprint in the form Config.TLSFingerprints
// compares: lower-case hex without separators. It takes that form, upper case, and the
// colon-separated form that openssl prints ("AB:CD:..."), with or without a "sha256:" prefix.
func ParseFingerprint(s string) (string, error) {
	fp := strings.TrimSpace(s)
	if len(fp) > 7 && strings.EqualFold(fp[:7], "sha256:") {
		fp = fp[7:]
	}
	fp = strings.ToLower(strings.ReplaceAll(fp, ":", ""))
	if b, err := hex.DecodeString(fp); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("fingerprint %q: want the 64 hex digits of a SHA-256", s)
	}
	return fp, nil
}

// pinnedTLS returns base (or a new configuration) that accepts exactly the server
// certificates whose fingerprints are in fps, whatever their chain and names.
func pinnedTLS(base *tls.Config, fps []string) (*tls.Config, error) {
	var want []string
	var errs []error
	for _, s := range fps {
		fp, err := ParseFingerprint(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("api: TLSFingerprints: %w", err))
			continue
		}
		want = append(want, fp)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if base != nil {
		cfg = base.Clone()
	}
	// The pin replaces the usual verification (chain and names), which would refuse
	// a node's self-signed certificate; VerifyConnection runs on every handshake,
	// resumed ones included.
	cfg.InsecureSkipVerify = true //nolint:gosec // Verified by the pin below.
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the server presented no certificate")
		}
		sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
		got := hex.EncodeToString(sum[:])
		if !slices.Contains(want, got) {
			return &FingerprintError{Got: got, Want: want}
		}
		return nil
	}
	return cfg, nil
}
