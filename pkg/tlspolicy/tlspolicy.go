// Package tlspolicy names the policies by which a sensor checks the TLS
// certificate of a mail server it connects to, as the POP3 integration
// settings spell them: "accept_any", "accept_self_signed" and
// "trusted_only". It converts between those names, which the REST API, the
// CLI and the documentation use, and the proto enum
// [ospreyv1.TlsCertificatePolicy] stored in the configuration.
//
// The policies, from the weakest to the strongest:
//
//   - accept_any: any certificate is accepted, the connection is encrypted
//     but not authenticated (no protection against an active attacker).
//   - accept_self_signed: a certificate that chains to a trusted CA is
//     accepted, and so is a self-signed certificate (one that is its own
//     issuer), as many internal mail servers have.
//   - trusted_only: the certificate must chain to the system roots (or to
//     the CAs configured with the integration) and match the server name.
//     This is the recommended policy.
//
// Cipher-suite selection lives in the sibling package ciphersuite.
package tlspolicy

import (
	"errors"
	"fmt"
	"strings"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The policy names, as used by the API and the CLI.
const (
	AcceptAny        = "accept_any"
	AcceptSelfSigned = "accept_self_signed"
	TrustedOnly      = "trusted_only"
)

// ErrUnknownPolicy is returned for a name or enum value that is not one of
// the three policies.
var ErrUnknownPolicy = errors.New("unknown TLS certificate policy, want accept_any, accept_self_signed or trusted_only")

// ParseCertificatePolicy converts a policy name to the enum. Names are
// matched case-insensitively, and '-' is accepted for '_'.
func ParseCertificatePolicy(name string) (ospreyv1.TlsCertificatePolicy, error) {
	switch strings.ReplaceAll(strings.ToLower(name), "-", "_") {
	case AcceptAny:
		return ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_ANY, nil
	case AcceptSelfSigned:
		return ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_SELF_SIGNED, nil
	case TrustedOnly:
		return ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY, nil
	}
	return ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_UNSPECIFIED, fmt.Errorf("%q: %w", name, ErrUnknownPolicy)
}

// CertificatePolicyName returns the name of a policy. It fails for
// TLS_CERTIFICATE_POLICY_UNSPECIFIED and values outside the enum.
func CertificatePolicyName(p ospreyv1.TlsCertificatePolicy) (string, error) {
	switch p {
	case ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_ANY:
		return AcceptAny, nil
	case ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_SELF_SIGNED:
		return AcceptSelfSigned, nil
	case ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY:
		return TrustedOnly, nil
	}
	return "", fmt.Errorf("%v: %w", p, ErrUnknownPolicy)
}
