package dsn

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
)

// Errors of Build. A report with a bad field wraps ErrInvalid and names the
// field.
var (
	// ErrNullSender: the original message came from the null sender (a
	// notice itself); RFC 3464 §2 forbids answering it with a notice.
	ErrNullSender = errors.New("dsn: no notice for the null sender")
	// ErrNoRecipients: the report has no recipient to report on.
	ErrNoRecipients = errors.New("dsn: no recipients to report")
	// ErrInvalid: a field of the report cannot be written as it is.
	ErrInvalid = errors.New("dsn: invalid report")
)

// The subjects of the two kinds of notice, as Postfix words them.
const (
	SubjectFailed  = "Undelivered Mail Returned to Sender"
	SubjectDelayed = "Delayed Mail (still being retried)"
)

// dateLayout is RFC 5322's date-time.
const dateLayout = time.RFC1123Z

// Build returns the notice for r, a complete message with CRLF line endings
// ready to be queued from the null sender to r.To. A report that holds a
// failed recipient is a failure notice, one that holds only delayed ones a
// delay warning.
func Build(r Report) ([]byte, error) {
	if err := check(r); err != nil {
		return nil, err
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	failed := false
	for _, rc := range r.Recipients {
		failed = failed || rc.Action == Failed
	}

	var h mail.Header
	h.SetAddressList("From", []*mail.Address{{Name: "Mail Delivery System", Address: "MAILER-DAEMON@" + r.ReportingMTA}})
	h.SetAddressList("To", []*mail.Address{{Address: r.To}})
	if failed {
		h.SetSubject(SubjectFailed)
	} else {
		h.SetSubject(SubjectDelayed)
	}
	h.SetDate(now)
	h.SetMessageID(messageID(now, r.ReportingMTA))
	h.Set("Auto-Submitted", "auto-replied")
	h.SetContentType("multipart/report", map[string]string{"report-type": "delivery-status"})

	var buf bytes.Buffer
	w, err := message.CreateWriter(&buf, h.Header)
	if err != nil {
		return nil, fmt.Errorf("dsn: write header: %w", err)
	}
	text := humanText(r, failed)
	var th message.Header
	if isASCII(text) && maxLineLen(text) <= maxLine {
		th.SetContentType("text/plain", map[string]string{"charset": "us-ascii"})
		th.Set("Content-Transfer-Encoding", "7bit")
	} else {
		th.SetContentType("text/plain", map[string]string{"charset": "utf-8"})
		th.Set("Content-Transfer-Encoding", "quoted-printable")
	}
	th.Set("Content-Description", "Notification")
	if err := writePart(w, th, []byte(text)); err != nil {
		return nil, err
	}

	var sh message.Header
	sh.SetContentType("message/delivery-status", nil)
	sh.Set("Content-Description", "Delivery report")
	if err := writePart(w, sh, statusFields(r)); err != nil {
		return nil, err
	}

	if orig := headerSection(r.Original); len(orig) > 0 {
		var oh message.Header
		oh.SetContentType("text/rfc822-headers", nil)
		oh.Set("Content-Description", "Undelivered Message Headers")
		if isASCII(string(orig)) {
			oh.Set("Content-Transfer-Encoding", "7bit")
		} else {
			oh.Set("Content-Transfer-Encoding", "8bit")
		}
		if err := writePart(w, oh, orig); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("dsn: close: %w", err)
	}
	return buf.Bytes(), nil
}

// check validates r; it names the first field that cannot be written.
func check(r Report) error {
	if r.To == "" {
		return ErrNullSender
	}
	if len(r.Recipients) == 0 {
		return ErrNoRecipients
	}
	if hasControl(r.To) || !strings.Contains(r.To, "@") {
		return fmt.Errorf("%w: To %q is not an address", ErrInvalid, r.To)
	}
	if !validHostname(r.ReportingMTA) {
		return fmt.Errorf("%w: ReportingMTA %q is not a host name", ErrInvalid, r.ReportingMTA)
	}
	for i, rc := range r.Recipients {
		if rc.Rcpt == "" {
			return fmt.Errorf("%w: Recipients[%d].Rcpt is empty", ErrInvalid, i)
		}
		switch rc.Action {
		case Failed:
			if !validStatus(rc.Status, "45") {
				return fmt.Errorf("%w: Recipients[%d].Status %q is not a 4.x.x or 5.x.x status", ErrInvalid, i, rc.Status)
			}
		case Delayed:
			if !validStatus(rc.Status, "4") {
				return fmt.Errorf("%w: Recipients[%d].Status %q is not a 4.x.x status (delayed)", ErrInvalid, i, rc.Status)
			}
		default:
			return fmt.Errorf("%w: Recipients[%d].Action %q is neither failed nor delayed", ErrInvalid, i, rc.Action)
		}
	}
	return nil
}

func writePart(w *message.Writer, h message.Header, body []byte) error {
	pw, err := w.CreatePart(h)
	if err != nil {
		return fmt.Errorf("dsn: create part: %w", err)
	}
	if _, err := pw.Write(body); err != nil {
		return fmt.Errorf("dsn: write part: %w", err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("dsn: close part: %w", err)
	}
	return nil
}

// humanText is the text/plain part, worded after Postfix's bounce(8).
func humanText(r Report, failed bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "This is the mail system at host %s.\r\n\r\n", r.ReportingMTA)
	if failed {
		b.WriteString("I'm sorry to have to inform you that your message could not\r\n" +
			"be delivered to one or more recipients. It's attached below.\r\n\r\n" +
			"For further assistance, please send mail to postmaster.\r\n\r\n" +
			"If you do so, please include this problem report. You can\r\n" +
			"delete your own text from the attached returned message.\r\n\r\n")
	} else {
		b.WriteString("####################################################################\r\n" +
			"# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n" +
			"####################################################################\r\n\r\n" +
			"Your message could not be delivered yet to one or more recipients.\r\n" +
			"The mail system will keep trying; you will be told if it gives up.\r\n\r\n")
	}
	fmt.Fprintf(&b, "                   The mail system\r\n\r\n")
	for _, rc := range r.Recipients {
		fmt.Fprintf(&b, "<%s>: ", sanitizeText(rc.Rcpt))
		switch {
		case rc.RemoteMTA != "" && rc.Diagnostic != "":
			fmt.Fprintf(&b, "host %s said: %s", sanitizeText(remoteName(rc.RemoteMTA)), sanitizeText(rc.Diagnostic))
		case rc.Diagnostic != "":
			b.WriteString(sanitizeText(rc.Diagnostic))
		default:
			fmt.Fprintf(&b, "delivery status %s", rc.Status)
		}
		if rc.Action == Delayed {
			if rc.WillRetryUntil.IsZero() {
				b.WriteString(" (still being retried)")
			} else {
				fmt.Fprintf(&b, " (still being retried until %s)", rc.WillRetryUntil.Format(dateLayout))
			}
		}
		b.WriteString("\r\n\r\n")
	}
	return b.String()
}

// statusFields is the message/delivery-status body: the per-message fields,
// then one group of fields per recipient (RFC 3464 §2.1), each group ended
// by an empty line. Field names keep RFC 3464's spelling ("Reporting-MTA").
func statusFields(r Report) []byte {
	var b bytes.Buffer
	writeField(&b, "Reporting-MTA", "dns; "+r.ReportingMTA)
	if r.QueueID != "" {
		writeField(&b, "X-Osprey-Queue-ID", sanitizeASCII(r.QueueID))
	}
	if !r.Arrival.IsZero() {
		writeField(&b, "Arrival-Date", r.Arrival.Format(dateLayout))
	}
	b.WriteString("\r\n")
	for _, rc := range r.Recipients {
		writeField(&b, "Final-Recipient", addressType(rc.Rcpt))
		writeField(&b, "Action", string(rc.Action))
		writeField(&b, "Status", rc.Status)
		if rc.RemoteMTA != "" {
			writeField(&b, "Remote-MTA", "dns; "+sanitizeASCII(remoteName(rc.RemoteMTA)))
		}
		if rc.Diagnostic != "" {
			writeField(&b, "Diagnostic-Code", diagnosticType(rc.Diagnostic)+"; "+sanitizeASCII(rc.Diagnostic))
		}
		if !rc.LastAttempt.IsZero() {
			writeField(&b, "Last-Attempt-Date", rc.LastAttempt.Format(dateLayout))
		}
		if rc.Action == Delayed && !rc.WillRetryUntil.IsZero() {
			writeField(&b, "Will-Retry-Until", rc.WillRetryUntil.Format(dateLayout))
		}
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// Folding limits of RFC 5322 §2.1.1: lines should be at most 78 characters
// and must be at most 998.
const (
	foldAt  = 78
	maxLine = 998
)

// writeField writes "name: value" folded at white space into lines of at
// most foldAt characters where the value allows it; a word too long for
// maxLine is split by a folding space of its own. value has no CR or LF
// (it went through sanitizeText).
func writeField(b *bytes.Buffer, name, value string) {
	line := name + ":"
	for w := range strings.FieldsSeq(value) {
		switch {
		case len(line)+1+len(w) <= foldAt:
			line += " " + w
		case len(line)+1+len(w) <= maxLine && strings.TrimSpace(line) == name+":":
			line += " " + w
		default:
			b.WriteString(line + "\r\n")
			line = ""
			for len(w) > maxLine-1 {
				b.WriteString(" " + w[:maxLine-1] + "\r\n")
				w = w[maxLine-1:]
			}
			line = " " + w
		}
	}
	b.WriteString(line + "\r\n")
}

// addressType is a Final-Recipient value: "rfc822; addr" for an ASCII
// address, "utf-8; " and the utf-8-addr-xtext form of RFC 6533 §3 for
// any other.
func addressType(addr string) string {
	if isASCII(addr) {
		return "rfc822; " + sanitizeASCII(addr)
	}
	var b strings.Builder
	b.WriteString("utf-8; ")
	for _, c := range addr {
		switch {
		case c == utf8.RuneError:
			b.WriteString(`\x{FFFD}`)
		case c <= ' ' || c == '+' || c == '=' || c == '\\' || c >= 0x7f:
			fmt.Fprintf(&b, `\x{%X}`, c)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

// diagnosticType is "smtp" for a next hop's reply (it starts with a reply
// code), "X-Osprey" for the gateway's own description of a failure.
func diagnosticType(d string) string {
	if len(d) >= 3 && d[0] >= '2' && d[0] <= '5' && isDigit(d[1]) && isDigit(d[2]) && (len(d) == 3 || d[3] == ' ' || d[3] == '-') {
		return "smtp"
	}
	return "X-Osprey"
}

// remoteName is the host name of a next hop as the delivery client names
// it ("mx.example.com [192.0.2.1]:25" gives "mx.example.com").
func remoteName(s string) string {
	if i := strings.IndexAny(s, " \t"); i > 0 {
		return s[:i]
	}
	return s
}

// headerSection returns the header section of a message (up to its first
// empty line) with CRLF line endings; a header section without a body is
// returned whole.
func headerSection(msg []byte) []byte {
	var out bytes.Buffer
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		out.Write(line)
		out.WriteString("\r\n")
	}
	return out.Bytes()
}

// sanitizeText turns control characters (CR and LF included) into spaces
// and collapses runs of white space, for a value that goes into one line.
func sanitizeText(s string) string {
	s = strings.ToValidUTF8(s, "?")
	var b strings.Builder
	space := false
	for _, c := range s {
		if c < ' ' || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == ' ' {
			if !space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(c)
	}
	return strings.TrimRight(b.String(), " ")
}

// sanitizeASCII is sanitizeText with every non-ASCII character as "?".
func sanitizeASCII(s string) string {
	s = sanitizeText(s)
	if isASCII(s) {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		if c >= 0x80 {
			c = '?'
		}
		b.WriteRune(c)
	}
	return b.String()
}

func messageID(now time.Time, host string) string {
	var rnd [8]byte
	rand.Read(rnd[:])
	return fmt.Sprintf("%s.%s@%s", now.UTC().Format("20060102150405"), hex.EncodeToString(rnd[:]), host)
}

func validStatus(s, classes string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.Contains(classes, parts[0]) {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
			return false
		}
		for i := range len(p) {
			if !isDigit(p[i]) {
				return false
			}
		}
	}
	return true
}

// validHostname accepts a DNS name of letters, digits, hyphens and dots.
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := range len(label) {
			c := label[i]
			if !(isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return false
			}
		}
	}
	return true
}

func hasControl(s string) bool {
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// maxLineLen is the length of the longest CRLF-ended line of s.
func maxLineLen(s string) int {
	n := 0
	for line := range strings.SplitSeq(s, "\r\n") {
		n = max(n, len(line))
	}
	return n
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
