package delivery

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// This file is one SMTP session with one next hop, spoken by go-smtp's
// Client, and the replies it gets turned into results. The rules of which
// host to try, and what a reply means for the recipients, are in client.go.

// maxReplyBytes bounds what a next hop may send in reply to one command.
const maxReplyBytes = 1 << 20

// errProtocol is a reply that is not SMTP, or not one the command allows.
var errProtocol = errors.New("malformed SMTP reply")

// reply is an SMTP reply as a result: its code, its RFC 3463 enhanced
// status code (from the reply, or the class's x.0.0 when it had none) and
// its text, the lines joined by a space with the codes taken off.
type reply struct {
	code     int
	enhanced string
	text     string
}

// parseReply makes a reply of a code and the text go-smtp read with it
// (lines joined by "\n", each perhaps starting with an enhanced status).
// The text is made printable: control characters become spaces.
func parseReply(code int, msg string) reply {
	r := reply{code: code}
	var texts []string
	for line := range strings.SplitSeq(msg, "\n") {
		line = printable(line)
		if enh, rest, ok := cutEnhanced(line, code); ok {
			if r.enhanced == "" {
				r.enhanced = enh
			}
			line = rest
		}
		if line = strings.TrimSpace(line); line != "" {
			texts = append(texts, line)
		}
	}
	if r.enhanced == "" {
		r.enhanced = fmt.Sprintf("%d.0.0", code/100)
	}
	r.text = strings.Join(texts, " ")
	return r
}

// cutEnhanced takes an RFC 3463 status code of code's class off the start
// of text ("5.1.1 User unknown").
func cutEnhanced(text string, code int) (enh, rest string, ok bool) {
	enh, rest, _ = strings.Cut(text, " ")
	parts := strings.Split(enh, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(code/100) {
		return "", text, false
	}
	for i, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
			return "", text, false
		}
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return "", text, false
		}
		parts[i+1] = strings.TrimLeft(p, "0")
		if parts[i+1] == "" {
			parts[i+1] = "0"
		}
	}
	return strings.Join(parts, "."), rest, true
}

func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// refusal returns the reply of a command the next hop refused with a 4xx or
// 5xx. Any other error (a lost connection, a reply out of place) is not one.
func refusal(err error) (reply, bool) {
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code < 400 || se.Code > 599 {
		return reply{}, false
	}
	// go-smtp took the first line's enhanced status off the text; it goes
	// back on so that one parser checks it against the code's class.
	msg := se.Message
	if e := se.EnhancedCode; e != smtp.EnhancedCodeNotSet && e != smtp.NoEnhancedCode {
		msg = fmt.Sprintf("%d.%d.%d %s", e[0], e[1], e[2], msg)
	}
	return parseReply(se.Code, msg), true
}

// session is one SMTP connection to a next hop, after EHLO (and STARTTLS).
// It is used by one delivery at a time: the connection cache hands it out
// and takes it back.
type session struct {
	raw *boundedConn // the TCP connection
	c   *smtp.Client
	out io.Writer // what c writes to: raw, or the TLS connection over it

	host    string // "mx1.example.com [192.0.2.1]:25"
	tls     string // "TLS 1.3 TLS_AES_128_GCM_SHA256", "" for plaintext
	key     string // the connection cache's key
	born    time.Time
	idle    time.Time // when it went into the cache
	uses    int       // transactions done
	broken  bool      // the conversation is out of step: close it, never reuse
	cmdTime time.Duration
	dataT   time.Duration
}

func newSession(conn net.Conn, host string, cmdTimeout, dataTimeout time.Duration) *session {
	s := &session{raw: &boundedConn{Conn: conn, left: maxReplyBytes}, host: host, cmdTime: cmdTimeout, dataT: dataTimeout}
	s.c = s.client(s.raw)
	return s
}

// client returns a go-smtp Client on conn with the session's timeouts: a
// command's reply within cmdTime, the final dot's within dataT.
func (s *session) client(conn net.Conn) *smtp.Client {
	s.out = conn
	c := smtp.NewClient(conn)
	c.CommandTimeout = s.cmdTime
	c.SubmissionTimeout = s.dataT
	return c
}

// startTLS sends STARTTLS and does the handshake under the command
// timeout; the session then speaks through a new Client over the TLS
// connection, and the caller says EHLO again (RFC 3207 §4.2).
//
// go-smtp's Client starts TLS only in NewClientStartTLS, before the caller
// can name itself with Hello, so the command is ours: one line out, one
// reply read by net/textproto, on the connection the first Client greeted.
// Anything the next hop sent beyond that reply is dropped with the first
// Client, as RFC 3207 §5 asks.
func (s *session) startTLS(ctx context.Context, conf *tls.Config) error {
	s.raw.SetDeadline(time.Now().Add(s.cmdTime))
	if _, err := io.WriteString(s.raw, "STARTTLS\r\n"); err != nil {
		s.broken = true
		return err
	}
	if _, _, err := textproto.NewReader(bufio.NewReader(s.raw)).ReadResponse(220); err != nil {
		var te *textproto.Error
		if !errors.As(err, &te) {
			s.broken = true
			return err
		}
		// A refusal, as go-smtp reports one; the text keeps its enhanced
		// status for parseReply.
		return &smtp.SMTPError{Code: te.Code, Message: te.Msg}
	}
	s.raw.SetDeadline(time.Time{})
	tc := tls.Client(s.raw, conf)
	hctx, cancel := context.WithTimeout(ctx, s.cmdTime)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		s.broken = true
		return &tlsError{err}
	}
	st := tc.ConnectionState()
	s.tls = tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
	s.c = s.client(&greeted{Conn: tc, r: io.MultiReader(strings.NewReader("220 STARTTLS\r\n"), tc)})
	return nil
}

// greeted is a TLS connection that begins with the greeting the session
// already had: a new go-smtp Client reads a greeting before its EHLO, and
// a server sends none after STARTTLS.
type greeted struct {
	net.Conn
	r io.Reader
}

func (g *greeted) Read(p []byte) (int, error) { return g.r.Read(p) }

// tlsError is a failed TLS handshake.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// send writes the message after DATA's 354 reply, dot-stuffed (see
// dotStuffer), each write under the data timeout, then the final dot, and
// returns the reply to it. It sends the dot only when body gave exactly
// size bytes (size < 0: any), so a message cut short by a read error is
// never delivered truncated: w is left unclosed (the dot unsent) and the
// session broken, for the caller to close its connection.
func (s *session) send(w *smtp.DataCommand, body io.Reader, size int64) (reply, error) {
	buf := make([]byte, 32<<10)
	out := newDotStuffer(bufio.NewWriterSize(s.out, 32<<10))
	var n int64
	for {
		k, rerr := body.Read(buf)
		if k > 0 {
			s.raw.SetWriteDeadline(time.Now().Add(s.dataT))
			if _, err := out.Write(buf[:k]); err != nil {
				s.broken = true
				return reply{}, err
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			s.broken = true
			return reply{}, &bodyError{fmt.Errorf("read message: %w", rerr)}
		}
	}
	if size >= 0 && n != size {
		s.broken = true
		return reply{}, &bodyError{fmt.Errorf("read message: %d bytes, want %d", n, size)}
	}
	s.raw.SetWriteDeadline(time.Now().Add(s.dataT))
	if err := out.finish(w); err != nil {
		s.broken = true
		return reply{}, err
	}
	resp, err := w.CloseWithResponse() // writes the final dot, reads the reply
	if err != nil {
		if _, ok := refusal(err); !ok {
			s.broken = true
		}
		return reply{}, err
	}
	return parseReply(250, resp.StatusText), nil
}

// bodyError is a failure to read the message to send: ours, not the next
// hop's.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// quit says goodbye within a short time and closes the connection.
func (s *session) quit() {
	if !s.broken {
		s.c.CommandTimeout = min(s.cmdTime, 5*time.Second)
		if s.c.Quit() == nil {
			return
		}
	}
	s.raw.Close()
}

// boundedConn bounds what a next hop may send in reply to one command:
// go-smtp's Client bounds a line of a reply (2000 bytes), but reads a
// reply's lines with textproto.Reader.ReadResponse, which takes any number
// of them, so a hostile next hop could fill memory within one command's
// timeout. Every write (a command, the message) renews the allowance.
type boundedConn struct {
	net.Conn
	left int
}

func (c *boundedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("%w: more than %d bytes in reply to one command", errProtocol, maxReplyBytes)
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= n
	return n, err
}

func (c *boundedConn) Write(p []byte) (int, error) {
	c.left = maxReplyBytes
	return c.Conn.Write(p)
}
