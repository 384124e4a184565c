package validate

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ospreysec/osprey/pkg/domainlist"
	"github.com/ospreysec/osprey/pkg/netlist"
	"github.com/ospreysec/osprey/pkg/sizeunit"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Limits of an SMTP listener (SmtpLimits). A zero in the configuration
// means the default; a value outside [1, Max...] (timeouts: [Min..., Max...])
// is refused. The SMTP server, the API documentation and the UI take the
// numbers from here.
const (
	// DefaultMaxRecipients is the number of RCPT commands accepted per
	// message: RFC 5321 §4.5.3.1.8 requires a server to accept at least 100.
	DefaultMaxRecipients = 100
	MaxMaxRecipients     = 10000

	// DefaultMaxConnections bounds the SMTP sessions of one listener.
	DefaultMaxConnections = 200
	MaxMaxConnections     = 10000

	// DefaultMaxConnectionsPerClient bounds the sessions of one client IP,
	// so that one busy or hostile server cannot take every slot. It may not
	// exceed the listener's max_connections.
	DefaultMaxConnectionsPerClient = 20

	// DefaultCommandTimeoutSeconds is how long the server waits for the next
	// command: RFC 5321 §4.5.3.2.7 asks for at least 5 minutes. Shorter
	// values are allowed (down to MinTimeoutSeconds) for exposed listeners.
	DefaultCommandTimeoutSeconds = 300
	// DefaultDataTimeoutSeconds is how long the server waits for more of
	// the message after DATA: RFC 5321 §4.5.3.2.5–6 gives a client 3
	// minutes per chunk and 10 minutes for the final dot.
	DefaultDataTimeoutSeconds = 600
	MinTimeoutSeconds         = 10
	MaxTimeoutSeconds         = 3600

	// DefaultSessionTimeoutSeconds bounds a whole session, however busy,
	// so that a slow client cannot hold a connection for ever. It may not be
	// shorter than the command or data timeout.
	DefaultSessionTimeoutSeconds = 1800
	MaxSessionTimeoutSeconds     = 86400

	// DefaultMaxErrors is the number of failed commands after which the
	// server closes the session (a client probing addresses or speaking
	// another protocol).
	DefaultMaxErrors = 10
	MaxMaxErrors     = 1000
)

// SMTPLimits returns l with each zero field replaced by its default; l may
// be nil. It does not check the values: use [SMTPIntegration] for that.
func SMTPLimits(l *ospreyv1.SmtpLimits) *ospreyv1.SmtpLimits {
	orDefault := func(v, def uint32) uint32 {
		if v == 0 {
			return def
		}
		return v
	}
	return &ospreyv1.SmtpLimits{
		MaxRecipients:           orDefault(l.GetMaxRecipients(), DefaultMaxRecipients),
		MaxConnections:          orDefault(l.GetMaxConnections(), DefaultMaxConnections),
		MaxConnectionsPerClient: orDefault(l.GetMaxConnectionsPerClient(), DefaultMaxConnectionsPerClient),
		CommandTimeoutSeconds:   orDefault(l.GetCommandTimeoutSeconds(), DefaultCommandTimeoutSeconds),
		DataTimeoutSeconds:      orDefault(l.GetDataTimeoutSeconds(), DefaultDataTimeoutSeconds),
		SessionTimeoutSeconds:   orDefault(l.GetSessionTimeoutSeconds(), DefaultSessionTimeoutSeconds),
		MaxErrors:               orDefault(l.GetMaxErrors(), DefaultMaxErrors),
	}
}

// SMTPIntegration validates a sensor's SMTP integration. A nil integration
// is a disabled, empty one.
//
//   - listen: required when enabled; "host:port" where host is an IP
//     address without a zone, or empty for every address, and port is 1 to
//     65535 (a number, not a service name).
//   - destination_domains and clients: see packages domainlist and netlist;
//     each bad entry is its own error ("clients[2]").
//   - max_message_size: required when enabled: unlimited, or a value above
//     zero with a unit, at most sizeunit.HardCeiling. A value needs a unit
//     even when unlimited is set or the integration is disabled.
//   - tls.mode: OFF, ACCEPT or REQUIRE; UNSPECIFIED means OFF.
//     tls.cert_pem and tls.key_pem come together and must form a key pair;
//     without them the sensor makes a self-signed certificate.
//     tls.client_cert REQUEST or REQUIRE needs TLS (mode ACCEPT or
//     REQUIRE); tls.client_ca_pem, when set, must hold PEM certificates
//     (without it, client certificates are checked against the system roots).
//   - limits: see the constants; 0 means the default.
func SMTPIntegration(s *ospreyv1.SmtpIntegration) error {
	var r report
	enabled := s.GetEnabled()

	mode := s.GetMode()
	listen(&r, "listen", s.GetListen(), enabled && !Gateway(mode))
	entryErrors(&r, "destination_domains", domainlistErrors(s.GetDestinationDomains()))
	entryErrors(&r, "clients", netlistErrors(s.GetClients()))
	sizeLimit(&r, "max_message_size", s.GetMaxMessageSize(), enabled)
	smtpTLS(&r, "tls", s.GetTls())
	smtpLimits(&r, s.GetLimits())
	if _, ok := ospreyv1.SmtpMode_name[int32(mode)]; !ok {
		r.add("mode", "must be MONITOR, INBOUND, OUTBOUND or INBOUND_OUTBOUND")
	}
	smtpGateway(&r, s.GetGateway(), mode, enabled)
	return r.err()
}

func listen(r *report, field, v string, required bool) {
	if v == "" {
		if required {
			r.add(field, "required")
		}
		return
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		r.add(field, "must be host:port, such as 0.0.0.0:25, [::]:25 or :25")
		return
	}
	if host != "" {
		if strings.Contains(host, "%") {
			r.add(field, "IPv6 zones are not allowed")
		} else if _, err := netip.ParseAddr(host); err != nil {
			r.add(field, "host must be an IP address, or empty for every address")
		}
	}
	if !validPort(port) {
		r.add(field, "port must be a number from 1 to 65535")
	}
}

func validPort(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n > 0
}

type entryError struct {
	index int
	err   error
}

func domainlistErrors(entries []string) []entryError {
	_, err := domainlist.Parse(entries)
	var errs domainlist.Errors
	if !errors.As(err, &errs) {
		return nil
	}
	out := make([]entryError, len(errs))
	for i, e := range errs {
		out[i] = entryError{e.Index, e.Err}
	}
	return out
}

func netlistErrors(entries []string) []entryError {
	_, err := netlist.Parse(entries)
	var errs netlist.Errors
	if !errors.As(err, &errs) {
		return nil
	}
	out := make([]entryError, len(errs))
	for i, e := range errs {
		out[i] = entryError{e.Index, e.Err}
	}
	return out
}

func entryErrors(r *report, field string, errs []entryError) {
	for _, e := range errs {
		r.add(fmt.Sprintf("%s[%d]", field, e.index), "%v", e.err)
	}
}

func sizeLimit(r *report, field string, l *ospreyv1.SizeLimit, enabled bool) {
	if l == nil {
		if enabled {
			r.add(field, "required: unlimited, or a value and a unit")
		}
		return
	}
	need := enabled && !l.GetUnlimited()
	valueField, unitField := field+".value", field+".unit"
	var unit sizeunit.Unit
	switch u, err := sizeunit.FromProto(l.GetUnit()); {
	case err == nil:
		unit = u
	case errors.Is(err, sizeunit.ErrNoUnit):
		if need || l.GetValue() != 0 {
			r.add(unitField, "required: KB, MB or GB")
		}
	default:
		r.add(unitField, "must be KB, MB or GB")
	}
	if l.GetValue() == 0 {
		// One message for a value left out and a 0, which the API cannot
		// tell apart: what is wanted, not only that something is.
		if need {
			r.add(valueField, "must be at least 1 unless unlimited")
		}
		return
	}
	if unit == 0 {
		return
	}
	if _, err := sizeunit.Bytes(l.GetValue(), unit); err != nil {
		r.add(valueField, "%d %v exceeds the maximum of %s", l.GetValue(), unit, sizeunit.Format(sizeunit.HardCeiling))
	}
}

func smtpTLS(r *report, field string, t *ospreyv1.SmtpTls) {
	off := true
	switch t.GetMode() {
	case ospreyv1.TlsMode_TLS_MODE_UNSPECIFIED, ospreyv1.TlsMode_TLS_MODE_OFF:
	case ospreyv1.TlsMode_TLS_MODE_ACCEPT, ospreyv1.TlsMode_TLS_MODE_REQUIRE:
		off = false
	default:
		r.add(field+".mode", "must be OFF, ACCEPT or REQUIRE")
		off = false // do not pile a client_cert error on top
	}
	r.keyPair(field+".cert_pem", field+".key_pem", t.GetCertPem(), t.GetKeyPem())
	switch t.GetClientCert() {
	case ospreyv1.ClientCertMode_CLIENT_CERT_MODE_UNSPECIFIED, ospreyv1.ClientCertMode_CLIENT_CERT_MODE_OFF:
	case ospreyv1.ClientCertMode_CLIENT_CERT_MODE_REQUEST, ospreyv1.ClientCertMode_CLIENT_CERT_MODE_REQUIRE:
		if off {
			r.add(field+".client_cert", "needs %s.mode ACCEPT or REQUIRE", field)
		}
	default:
		r.add(field+".client_cert", "must be OFF, REQUEST or REQUIRE")
	}
	if ca := t.GetClientCaPem(); ca != "" {
		r.certificates(field+".client_ca_pem", ca)
	}
}

func smtpLimits(r *report, l *ospreyv1.SmtpLimits) {
	upTo := func(field string, v, max uint32) {
		if v > max {
			r.add("limits."+field, "must be at most %d (0 for the default)", max)
		}
	}
	between := func(field string, v, min, max uint32) {
		if v != 0 && (v < min || v > max) {
			r.add("limits."+field, "must be %d to %d seconds (0 for the default)", min, max)
		}
	}
	upTo("max_recipients", l.GetMaxRecipients(), MaxMaxRecipients)
	upTo("max_connections", l.GetMaxConnections(), MaxMaxConnections)
	upTo("max_errors", l.GetMaxErrors(), MaxMaxErrors)
	between("command_timeout_seconds", l.GetCommandTimeoutSeconds(), MinTimeoutSeconds, MaxTimeoutSeconds)
	between("data_timeout_seconds", l.GetDataTimeoutSeconds(), MinTimeoutSeconds, MaxTimeoutSeconds)
	between("session_timeout_seconds", l.GetSessionTimeoutSeconds(), MinTimeoutSeconds, MaxSessionTimeoutSeconds)

	eff := SMTPLimits(l)
	if eff.GetMaxConnectionsPerClient() > eff.GetMaxConnections() {
		r.add("limits.max_connections_per_client", "must not exceed max_connections (%d)", eff.GetMaxConnections())
	}
	inRange := func(v, min, max uint32) bool { return v >= min && v <= max }
	timeoutsValid := inRange(eff.GetCommandTimeoutSeconds(), MinTimeoutSeconds, MaxTimeoutSeconds) &&
		inRange(eff.GetDataTimeoutSeconds(), MinTimeoutSeconds, MaxTimeoutSeconds) &&
		inRange(eff.GetSessionTimeoutSeconds(), MinTimeoutSeconds, MaxSessionTimeoutSeconds)
	if s, longest := eff.GetSessionTimeoutSeconds(), max(eff.GetCommandTimeoutSeconds(), eff.GetDataTimeoutSeconds()); s < longest && timeoutsValid {
		r.add("limits.session_timeout_seconds", "must not be shorter than the command and data timeouts (%d s)", longest)
	}
}
