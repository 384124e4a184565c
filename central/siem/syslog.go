package siem

import (
	"strconv"
	"strings"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Syslog severities (RFC 5424 §6.2.1) used for alerts.
const (
	sevCritical = 2
	sevError    = 3
	sevWarning  = 4
	sevNotice   = 5
)

// MsgID is the RFC 5424 MSGID of an alert.
const MsgID = "alert"

// SyslogSeverity maps an alert's severity to a syslog severity: critical
// 2 (crit), high 3 (err), medium 4 (warning), low 5 (notice); unspecified
// is 4.
func SyslogSeverity(s ospreyv1.Severity) int {
	switch s {
	case ospreyv1.Severity_SEVERITY_CRITICAL:
		return sevCritical
	case ospreyv1.Severity_SEVERITY_HIGH:
		return sevError
	case ospreyv1.Severity_SEVERITY_LOW:
		return sevNotice
	default:
		return sevWarning
	}
}

// Header is the RFC 5424 header of the messages of one sink.
type Header struct {
	// Facility is 0–23.
	Facility int
	// Hostname, AppName, ProcID and MsgID are the header fields; empty
	// ones are the nil value "-". Characters outside printable US-ASCII
	// become "_", and each is cut to its RFC 5424 bound.
	Hostname, AppName, ProcID, MsgID string
}

// AppendMessage appends to dst an RFC 5424 message of severity (0–7) at
// time t with body msg, with no structured data:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG
//
// TIMESTAMP is UTC with microseconds (RFC 5424 allows six fraction digits).
func AppendMessage(dst []byte, h Header, severity int, t time.Time, msg string) []byte {
	dst = append(dst, '<')
	dst = strconv.AppendInt(dst, int64(h.Facility*8+severity), 10)
	dst = append(dst, ">1 "...)
	dst = t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	for _, f := range []struct {
		v   string
		max int
	}{{h.Hostname, 255}, {h.AppName, 48}, {h.ProcID, 128}, {h.MsgID, 32}} {
		dst = append(dst, ' ')
		dst = appendHeaderField(dst, f.v, f.max)
	}
	dst = append(dst, " - "...)
	return append(dst, msg...)
}

// appendHeaderField appends a header field: 1 to max printable US-ASCII
// characters, or "-".
func appendHeaderField(dst []byte, v string, max int) []byte {
	if v == "" {
		return append(dst, '-')
	}
	if len(v) > max {
		v = v[:max]
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// AppendFrame appends msg framed by octet counting (RFC 6587 §3.4.1):
// "LEN SP MSG", LEN being the length of msg in bytes.
func AppendFrame(dst, msg []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(msg)), 10)
	dst = append(dst, ' ')
	return append(dst, msg...)
}

// sanitizeHostname makes a host name fit the HOSTNAME field.
func sanitizeHostname(h string) string {
	return strings.TrimSuffix(strings.TrimSpace(h), ".")
}
