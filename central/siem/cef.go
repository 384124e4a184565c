package siem

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// CEF header constants.
const (
	cefVendor  = "Osprey"
	cefProduct = "Osprey"
)

// Bounds of CEF fields, as ArcSight's CEF specification (rev. 25) gives
// them for the keys used here; longer values are cut (on a rune boundary).
const (
	maxSignatureID = 1023
	maxName        = 512
	maxMsg         = 1023
	maxUser        = 1023
	maxCS          = 4000
	maxFname       = 1023
	maxFileHash    = 255
)

// CEFSeverity maps an alert's severity to CEF's 0–10 scale: low 3, medium
// 6, high 8, critical 10. An unspecified severity is 5, so that a
// detection nobody classified is not filed away as harmless.
func CEFSeverity(s ospreyv1.Severity) int {
	switch s {
	case ospreyv1.Severity_SEVERITY_LOW:
		return 3
	case ospreyv1.Severity_SEVERITY_MEDIUM:
		return 6
	case ospreyv1.Severity_SEVERITY_HIGH:
		return 8
	case ospreyv1.Severity_SEVERITY_CRITICAL:
		return 10
	default:
		return 5
	}
}

// CEF formats alert as one CEF:0 event; version is the Osprey version
// reported as the device version. The result is valid UTF-8 on one line.
//
// Header: the signature id is the top match's "engine:rule" (the match of
// the highest severity, the first among equals), the name its description
// ("what"). Extensions:
//
//	rt        the alert's time, milliseconds since the Unix epoch
//	cat       the source of the message: smtp or pop3
//	src       the SMTP client's IP address (when it is one)
//	suser     the envelope sender (MAIL FROM)
//	duser     the envelope recipients, comma-separated; a POP3 mailbox when there are none
//	fname     the file name of the attachment the top match is about, else of the first attachment
//	fileHash  that attachment's SHA-256
//	fsize     the message's size in bytes
//	msg       every match, "engine:rule (severity) what", separated by "; "
//	dvchost   the central node that scanned the message
//	externalId the alert id
//	cs1..cs6  tenant, sensor, alert id, message id (the sensor's), matched rules, subject,
//	          each with its csNLabel
func CEF(alert *ospreyv1.Alert, version string) string {
	top := topMatch(alert)
	sigID := "alert"
	name := "Osprey detection"
	if top != nil {
		sigID = top.GetEngine()
		if r := top.GetRuleId(); r != "" {
			sigID += ":" + r
		}
		if w := top.GetWhat(); w != "" {
			name = w
		}
	}
	var b strings.Builder
	b.WriteString("CEF:0|")
	for _, f := range []string{cefVendor, cefProduct, version, clip(sigID, maxSignatureID), clip(name, maxName)} {
		b.WriteString(escapeHeader(f))
		b.WriteByte('|')
	}
	b.WriteString(strconv.Itoa(CEFSeverity(alert.GetSeverity())))
	b.WriteByte('|')

	ext := extensions{b: &b}
	if t := alert.GetCreatedAt(); t != nil {
		ext.add("rt", strconv.FormatInt(t.AsTime().UnixMilli(), 10), 0)
	}
	switch alert.GetSource() {
	case ospreyv1.MailSource_MAIL_SOURCE_SMTP:
		ext.add("cat", "smtp", 0)
	case ospreyv1.MailSource_MAIL_SOURCE_POP3:
		ext.add("cat", "pop3", 0)
	}
	env := alert.GetEnvelope()
	if ip, ok := clientIP(env.GetClientAddr()); ok {
		ext.add("src", ip, 0)
	}
	ext.add("suser", env.GetMailFrom(), maxUser)
	if rcpts := env.GetRcptTo(); len(rcpts) > 0 {
		ext.add("duser", strings.Join(rcpts, ","), maxUser)
	} else {
		ext.add("duser", env.GetMailbox(), maxUser)
	}
	if att := topAttachment(alert, top); att != nil {
		name := att.GetFilename()
		if name == "" {
			name = att.GetPath()
		}
		ext.add("fname", name, maxFname)
		ext.add("fileHash", att.GetSha256(), maxFileHash)
	}
	if alert.GetSize() > 0 {
		ext.add("fsize", strconv.FormatInt(alert.GetSize(), 10), 0)
	}
	var msgs, rules []string
	for _, m := range alert.GetMatches() {
		id := m.GetEngine()
		if r := m.GetRuleId(); r != "" {
			id += ":" + r
		}
		rules = append(rules, id)
		msgs = append(msgs, id+" ("+severityName(m.GetSeverity())+") "+m.GetWhat())
	}
	ext.add("msg", strings.Join(msgs, "; "), maxMsg)
	ext.add("dvchost", alert.GetNode(), 0)
	ext.add("externalId", alert.GetId(), 0)
	for i, cs := range []struct{ label, value string }{
		{"tenant", alert.GetTenant()},
		{"sensor", alert.GetSensorId()},
		{"alertId", alert.GetId()},
		{"messageId", alert.GetMessageId()},
		{"rules", strings.Join(rules, ",")},
		{"subject", alert.GetHeaders().GetSubject()},
	} {
		if cs.value == "" {
			continue
		}
		n := strconv.Itoa(i + 1)
		ext.add("cs"+n, cs.value, maxCS)
		ext.add("cs"+n+"Label", cs.label, 0)
	}
	return b.String()
}

// extensions writes key=value pairs separated by spaces.
type extensions struct {
	b     *strings.Builder
	first bool
}

func (e *extensions) add(key, value string, limit int) {
	if value == "" {
		return
	}
	if limit > 0 {
		value = clip(value, limit)
	}
	if e.first {
		e.b.WriteByte(' ')
	}
	e.first = true
	e.b.WriteString(key)
	e.b.WriteByte('=')
	e.b.WriteString(escapeExtension(value))
}

// escapeHeader escapes a CEF header field: backslash and pipe get a
// backslash; line breaks, which a header cannot hold, become spaces.
func escapeHeader(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.ContainsAny(s, "\\|\r\n") {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\', '|':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\r', '\n':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// escapeExtension escapes a CEF extension value: backslash and equals sign
// get a backslash, line breaks become \n and \r. Other control characters
// become spaces, so that the event stays on one line.
func escapeExtension(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\' || r == '=':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// topMatch is the match of the highest severity, the first among equals.
func topMatch(a *ospreyv1.Alert) *ospreyv1.Match {
	var top *ospreyv1.Match
	for _, m := range a.GetMatches() {
		if top == nil || m.GetSeverity() > top.GetSeverity() {
			top = m
		}
	}
	return top
}

// topAttachment is the attachment the top match is about: the one whose
// file name ends its part, else the one with the longest path in its part,
// else the first attachment.
func topAttachment(a *ospreyv1.Alert, top *ospreyv1.Match) *ospreyv1.Attachment {
	atts := a.GetAttachments()
	if len(atts) == 0 {
		return nil
	}
	part := top.GetPart()
	if part == "" {
		return atts[0]
	}
	for _, att := range atts {
		if f := att.GetFilename(); f != "" && strings.HasSuffix(part, f) {
			return att
		}
	}
	best := atts[0]
	n := 0
	for _, att := range atts {
		if p := att.GetPath(); len(p) > n && strings.Contains(part, p) {
			best, n = att, len(p)
		}
	}
	return best
}

// clientIP returns the IP address of an SMTP client address ("ip",
// "ip:port" or "[ip]:port").
func clientIP(addr string) (string, bool) {
	if addr == "" {
		return "", false
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return ap.Addr().Unmap().String(), true
	}
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	ip, err := netip.ParseAddr(strings.Trim(addr, "[]"))
	if err != nil {
		return "", false
	}
	return ip.Unmap().String(), true
}

func severityName(s ospreyv1.Severity) string {
	switch s {
	case ospreyv1.Severity_SEVERITY_LOW:
		return "low"
	case ospreyv1.Severity_SEVERITY_MEDIUM:
		return "medium"
	case ospreyv1.Severity_SEVERITY_HIGH:
		return "high"
	case ospreyv1.Severity_SEVERITY_CRITICAL:
		return "critical"
	default:
		return "unspecified"
	}
}
