package pop3

import (
	"errors"
	"fmt"
	"strings"
)

// Errors that callers tell apart with errors.Is.
var (
	// ErrMalformed means a reply broke the protocol's syntax.
	ErrMalformed = errors.New("malformed reply")
	// ErrLineTooLong means a status or listing line was longer than
	// Options.MaxLineLength.
	ErrLineTooLong = errors.New("reply line too long")
	// ErrLimit means a reply broke a bound: a message count, a message
	// number, the lines of a listing, or the size of a message.
	ErrLimit = errors.New("reply over limit")
	// ErrSTLS means STLS could not bring TLS up: the server does not offer
	// it, refused it, or sent bytes before the handshake. The client never
	// goes on in plaintext.
	ErrSTLS = errors.New("STLS failed")
	// ErrAuthFailed means the server refused the credentials. A refusal
	// whose response code says the cause is elsewhere (SYS/TEMP, SYS/PERM,
	// IN-USE, LOGIN-DELAY) does not match it.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrNotOffered means the server does not offer what a method needs:
	// APOP without a timestamp in the greeting, AUTH without SASL PLAIN.
	ErrNotOffered = errors.New("not offered by the server")
	// ErrClosed means the client was closed or quit.
	ErrClosed = errors.New("connection closed")
)

// Error is a -ERR reply. Command is the command's name only (never its
// arguments, which may hold credentials); Code is the response code of RFC
// 2449 without brackets ("AUTH", "SYS/TEMP", "IN-USE"), if the server sent
// one.
type Error struct {
	Command string
	Code    string
	Text    string
	auth    bool // the reply to an authentication command
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pop3 %s: -ERR", e.Command)
	if e.Code != "" {
		fmt.Fprintf(&b, " [%s]", e.Code)
	}
	if e.Text != "" {
		b.WriteString(" ")
		b.WriteString(e.Text)
	}
	return b.String()
}

// Is matches ErrAuthFailed for the refusal of an authentication command
// that does not blame something else.
func (e *Error) Is(target error) bool {
	if target != ErrAuthFailed || !e.auth {
		return false
	}
	switch strings.ToUpper(e.Code) {
	case "SYS/TEMP", "SYS/PERM", "IN-USE", "LOGIN-DELAY":
		return false
	}
	return true
}

// Temporary reports whether the server says the failure is temporary
// (RFC 3206's SYS/TEMP, RFC 2449's IN-USE and LOGIN-DELAY).
func (e *Error) Temporary() bool {
	switch strings.ToUpper(e.Code) {
	case "SYS/TEMP", "IN-USE", "LOGIN-DELAY":
		return true
	}
	return false
}

// newError makes the Error of a -ERR reply's text.
func newError(cmd, text string, auth bool) *Error {
	e := &Error{Command: cmd, Text: text, auth: auth}
	if strings.HasPrefix(text, "[") {
		if end := strings.IndexByte(text, ']'); end > 0 {
			e.Code = text[1:end]
			e.Text = strings.TrimLeft(text[end+1:], " ")
		}
	}
	return e
}
