package validate

import (
	"net"
	"strings"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults of a syslog export (SyslogExport); the exporter, the API
// documentation and the UI take them from here.
const (
	// DefaultSyslogFacility is facility 13, "log audit" (RFC 5424 §6.2.1),
	// used when facility is 0.
	DefaultSyslogFacility = 13
	// MaxSyslogFacility is the highest facility number, local7.
	MaxSyslogFacility = 23
	// DefaultSyslogAppName is the APP-NAME used when app_name is empty.
	DefaultSyslogAppName = "osprey"
	// MaxSyslogAppNameBytes is RFC 5424's bound on APP-NAME.
	MaxSyslogAppNameBytes = 48
)

// SyslogExport validates a tenant's syslog export: address required when
// enabled, host:port with a host name or IP address and a port 1 to 65535;
// facility at most 23 (0 means the default, 13); ca_pem, when set, PEM
// certificates; server_name, when set, a host name; app_name, when set, 1
// to 48 printable US-ASCII characters without spaces (RFC 5424 APP-NAME).
// A disabled export is validated for what it contains.
func SyslogExport(e *ospreyv1.SyslogExport) error {
	var r report
	if addr := e.GetAddress(); addr == "" {
		if e.GetEnabled() {
			r.add("address", "required when enabled")
		}
	} else {
		h, port, err := net.SplitHostPort(addr)
		switch {
		case err != nil:
			r.add("address", "must be host:port, such as siem.example.com:6514 or [2001:db8::1]:514")
		case h == "":
			r.add("address", "host required")
		case !validPort(port):
			r.add("address", "port must be a number from 1 to 65535")
		default:
			host(&r, "address", h)
		}
	}
	if f := e.GetFacility(); f > MaxSyslogFacility {
		r.add("facility", "must be 0 (the default, %d) to %d", DefaultSyslogFacility, MaxSyslogFacility)
	}
	if ca := e.GetCaPem(); ca != "" {
		r.certificates("ca_pem", ca)
	}
	if sn := e.GetServerName(); sn != "" {
		host(&r, "server_name", sn)
	}
	if app := e.GetAppName(); app != "" {
		switch {
		case len(app) > MaxSyslogAppNameBytes:
			r.add("app_name", "must be at most %d characters long", MaxSyslogAppNameBytes)
		case strings.ContainsFunc(app, func(c rune) bool { return c < 33 || c > 126 }):
			r.add("app_name", "must be printable US-ASCII without spaces (RFC 5424 APP-NAME)")
		case app == "-":
			r.add("app_name", `"-" is syslog's nil value; leave app_name empty for the default`)
		}
	}
	return r.err()
}
