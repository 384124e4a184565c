package validate

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/ospreysec/osprey/pkg/ciphersuite"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"golang.org/x/net/idna"
)

// Bounds of a POP3 integration's poll interval: polling more often than
// every 10 seconds only loads the mail server, and a mailbox polled less
// than once a day delays detection past usefulness.
const (
	MinPOP3IntervalSeconds = 10
	MaxPOP3IntervalSeconds = 86400
)

// POP3Integration validates a sensor's POP3 integration. A nil integration
// is a disabled, empty one.
//
//   - server: required when enabled; an IP address (without a zone or
//     brackets) or a host name, internationalised names allowed. A port
//     belongs in port, not here.
//   - port: required when enabled; 1 to 65535.
//   - interval_seconds: required when enabled; MinPOP3IntervalSeconds to
//     MaxPOP3IntervalSeconds.
//   - tls_mode: IMPLICIT or STARTTLS; UNSPECIFIED means IMPLICIT. Like the
//     other TLS settings it is kept, and checked, when tls is off.
//   - tls_certificate: required when enabled with tls; one of the three
//     policies (see package tlspolicy).
//   - cipher_suite: empty for Go's defaults, or an OpenSSL cipher list that
//     package ciphersuite accepts; each bad element is its own error.
//   - username: required when enabled; at most 256 bytes, no control
//     characters (a CR or LF would inject POP3 commands).
//   - password: never required, as the API keeps the stored one when a
//     write leaves it empty; at most 1024 bytes, no control characters.
//   - ca_pem: when set, PEM certificates only.
func POP3Integration(p *ospreyv1.Pop3Integration) error {
	var r report
	enabled := p.GetEnabled()

	if s := p.GetServer(); s != "" {
		host(&r, "server", s)
	} else if enabled {
		r.add("server", "required")
	}
	switch port := p.GetPort(); {
	case port == 0 && enabled:
		r.add("port", "required")
	case port > 65535:
		r.add("port", "must be 1 to 65535")
	}
	switch iv := p.GetIntervalSeconds(); {
	case iv == 0 && !enabled:
	case iv < MinPOP3IntervalSeconds || iv > MaxPOP3IntervalSeconds:
		r.add("interval_seconds", "must be %d to %d", MinPOP3IntervalSeconds, MaxPOP3IntervalSeconds)
	}
	switch p.GetTlsMode() {
	case ospreyv1.Pop3TlsMode_POP3_TLS_MODE_UNSPECIFIED, ospreyv1.Pop3TlsMode_POP3_TLS_MODE_IMPLICIT, ospreyv1.Pop3TlsMode_POP3_TLS_MODE_STARTTLS:
	default:
		r.add("tls_mode", "must be IMPLICIT or STARTTLS")
	}
	switch p.GetTlsCertificate() {
	case ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_UNSPECIFIED:
		if enabled && p.GetTls() {
			r.add("tls_certificate", "required with tls: accept_any, accept_self_signed or trusted_only")
		}
	case ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_ANY,
		ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_SELF_SIGNED,
		ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY:
	default:
		r.add("tls_certificate", "must be accept_any, accept_self_signed or trusted_only")
	}
	if cs := p.GetCipherSuite(); cs != "" {
		cipherSuite(&r, "cipher_suite", cs)
	}
	if u := p.GetUsername(); u != "" {
		r.text("username", u, 256)
	} else if enabled {
		r.add("username", "required")
	}
	r.secret("password", p.GetPassword(), 1024)
	if ca := p.GetCaPem(); ca != "" {
		r.certificates("ca_pem", ca)
	}
	return r.err()
}

func cipherSuite(r *report, field, s string) {
	if len(s) > 4096 {
		r.add(field, "must be at most 4096 bytes long")
		return
	}
	_, err := ciphersuite.Parse(s)
	var errs ciphersuite.Errors
	switch {
	case err == nil:
	case errors.As(err, &errs):
		for _, e := range errs {
			r.add(field, "%v", e)
		}
	default:
		r.add(field, "%v", err)
	}
}

// host checks a server name: an IP address or a DNS host name (one label
// is enough: "mail" resolves on many internal networks).
func host(r *report, field, s string) {
	if strings.HasPrefix(s, "[") || strings.Contains(s, "%") {
		r.add(field, "must be a host name or an IP address, without brackets or zone")
		return
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return
	}
	if strings.Count(s, ":") == 1 {
		r.add(field, "must not include a port: set port")
		return
	}
	a, err := idna.Lookup.ToASCII(s)
	if err != nil {
		r.add(field, "not a valid host name: %v", strings.TrimPrefix(err.Error(), "idna: "))
		return
	}
	a = strings.TrimSuffix(a, ".")
	if a == "" || len(a) > 253 {
		r.add(field, "host name must be 1 to 253 bytes long")
		return
	}
	for label := range strings.SplitSeq(a, ".") {
		if label == "" || len(label) > 63 {
			r.add(field, "host name labels must be 1 to 63 bytes long")
			return
		}
	}
	if last := a[strings.LastIndexByte(a, '.')+1:]; strings.Trim(last, "0123456789") == "" {
		r.add(field, "not a valid IP address or host name")
	}
}
