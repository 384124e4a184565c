package delivery

import (
	"bufio"
	"bytes"
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
)

// This file is the SMTP client's wire protocol: one session with one next
// hop, over plaintext or STARTTLS. The rules of which host to try, and what
// a reply means for the recipients, are in client.go.

// Bounds on what a next hop may send: a reply line (RFC 5321 §4.5.3.1.5
// allows 512 octets; real servers send more) and the lines of one reply.
const (
	maxReplyLine  = 4096
	maxReplyLines = 100
)

// reply is an SMTP reply: its code, its RFC 3463 enhanced status code
// (from the reply, or the class's x.0.0 when it had none) and its text, the
// lines joined by a space with the codes taken off.
type reply struct {
	code     int
	enhanced string
	text     string
	lines    []string // the text of each line, for EHLO's keywords
}

func (r reply) String() string { return fmt.Sprintf("%d %s %s", r.code, r.enhanced, r.text) }

// errProtocol is a reply that is not SMTP.
var errProtocol = errors.New("malformed SMTP reply")

// readReply reads one reply, single or multi-line.
func readReply(br *bufio.Reader) (reply, error) {
	var r reply
	var texts []string
	for n := 0; ; n++ {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return reply{}, fmt.Errorf("%w: line longer than %d bytes", errProtocol, br.Size())
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return reply{}, err
		}
		code, more, text, err := parseReplyLine(line)
		if err != nil {
			return reply{}, err
		}
		if n == 0 {
			r.code = code
		} else if code != r.code {
			return reply{}, fmt.Errorf("%w: code %d within a %d reply", errProtocol, code, r.code)
		}
		if enh, rest, ok := cutEnhanced(text, code); ok {
			if r.enhanced == "" {
				r.enhanced = enh
			}
			text = rest
		}
		r.lines = append(r.lines, text)
		if text != "" {
			texts = append(texts, text)
		}
		if !more {
			break
		}
		if n+1 >= maxReplyLines {
			return reply{}, fmt.Errorf("%w: more than %d lines", errProtocol, maxReplyLines)
		}
	}
	if r.enhanced == "" {
		r.enhanced = fmt.Sprintf("%d.0.0", r.code/100)
	}
	r.text = strings.Join(texts, " ")
	return r, nil
}

// parseReplyLine splits "250-text\r\n" into its code, whether more lines
// follow, and its text (printable, control characters replaced by spaces).
func parseReplyLine(line []byte) (code int, more bool, text string, err error) {
	line = bytes.TrimRight(line, "\r\n")
	if len(line) < 3 || (len(line) > 3 && line[3] != ' ' && line[3] != '-') {
		return 0, false, "", fmt.Errorf("%w: %q", errProtocol, truncate(line))
	}
	for _, c := range line[:3] {
		if c < '0' || c > '9' {
			return 0, false, "", fmt.Errorf("%w: %q", errProtocol, truncate(line))
		}
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if code < 200 || code > 599 {
		return 0, false, "", fmt.Errorf("%w: code %d", errProtocol, code)
	}
	if len(line) > 3 {
		more = line[3] == '-'
		text = printable(line[4:])
	}
	return code, more, text, nil
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

func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// replyError is a reply that refused a command.
type replyError struct {
	cmd string // the command it answered: "MAIL FROM", "end of DATA", ...
	reply
}

func (e *replyError) Error() string {
	return fmt.Sprintf("%s (in reply to %s)", e.reply, e.cmd)
}

// session is one SMTP connection to a next hop, after EHLO (and STARTTLS).
// It is used by one delivery at a time: the connection cache hands it out
// and takes it back.
type session struct {
	raw  net.Conn // the TCP connection
	conn net.Conn // raw, or the TLS connection over it
	br   *bufio.Reader
	bw   *bufio.Writer
	ext  map[string]string // EHLO keywords (upper case) and their parameters

	host    string // "mx1.example.com [192.0.2.1]:25"
	tls     string // "TLS 1.3 TLS_AES_128_GCM_SHA256", "" for plaintext
	key     string // the connection cache's key
	born    time.Time
	idle    time.Time // when it went into the cache
	uses    int       // transactions done
	broken  bool      // the conversation is out of step: close it, never reuse
	cmdTime time.Duration
}

func newSession(conn net.Conn, host string, cmdTimeout time.Duration) *session {
	s := &session{raw: conn, host: host, cmdTime: cmdTimeout}
	s.setConn(conn)
	return s
}

func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.br = bufio.NewReaderSize(c, maxReplyLine)
	s.bw = bufio.NewWriter(c)
}

// read reads a reply within the command timeout.
func (s *session) read(timeout time.Duration) (reply, error) {
	s.raw.SetReadDeadline(time.Now().Add(timeout))
	r, err := readReply(s.br)
	if err != nil {
		s.broken = true
	}
	return r, err
}

// cmd sends one command line and reads its reply; a reply outside want's
// class (2 for 2xx, 3 for 3xx) is a *replyError.
func (s *session) cmd(want int, name, line string) (reply, error) {
	s.raw.SetWriteDeadline(time.Now().Add(s.cmdTime))
	s.bw.WriteString(line)
	s.bw.WriteString("\r\n")
	if err := s.bw.Flush(); err != nil {
		s.broken = true
		return reply{}, err
	}
	r, err := s.read(s.cmdTime)
	if err != nil {
		return reply{}, err
	}
	if r.code/100 != want {
		return r, &replyError{cmd: name, reply: r}
	}
	return r, nil
}

// greet reads the server's greeting.
func (s *session) greet() error {
	r, err := s.read(s.cmdTime)
	if err != nil {
		return err
	}
	if r.code != 220 {
		return &replyError{cmd: "initial greeting", reply: r}
	}
	return nil
}

// hello sends EHLO, and HELO when the server does not know EHLO (a 5xx
// reply: RFC 5321 §4.1.4 lets a client fall back to HELO then).
func (s *session) hello(name string) error {
	s.ext = map[string]string{}
	r, err := s.cmd(2, "EHLO", "EHLO "+name)
	var re *replyError
	if errors.As(err, &re) && re.code >= 500 {
		_, err = s.cmd(2, "HELO", "HELO "+name)
		return err
	}
	if err != nil {
		return err
	}
	// The first line is the server's name; each later one a keyword. The
	// text came joined with spaces, so the keywords are read again from
	// the lines themselves.
	s.ext = parseEHLO(r.lines)
	return nil
}

// startTLS sends STARTTLS and does the handshake under the command
// timeout. The caller sends EHLO again after it (RFC 3207 §4.2).
func (s *session) startTLS(ctx context.Context, conf *tls.Config) error {
	if _, err := s.cmd(2, "STARTTLS", "STARTTLS"); err != nil {
		return err
	}
	tc := tls.Client(s.raw, conf)
	hctx, cancel := context.WithTimeout(ctx, s.cmdTime)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		s.broken = true
		return &tlsError{err}
	}
	st := tc.ConnectionState()
	s.tls = tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
	s.setConn(tc)
	return nil
}

// tlsError is a failed TLS handshake.
type tlsError struct{ err error }

func (e *tlsError) Error() string { return "TLS handshake: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// data sends the message after a 354 reply, dot-stuffed, each write under
// timeout, then the final dot. It sends the dot only when body gave
// exactly size bytes (size < 0: any), so a message cut short by a read
// error is never delivered truncated: the connection is closed instead.
func (s *session) data(body io.Reader, size int64, timeout time.Duration) (reply, error) {
	dw := textproto.NewWriter(s.bw).DotWriter()
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, rerr := body.Read(buf)
		if k > 0 {
			s.raw.SetWriteDeadline(time.Now().Add(timeout))
			if _, err := dw.Write(buf[:k]); err != nil {
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
	s.raw.SetWriteDeadline(time.Now().Add(timeout))
	if err := dw.Close(); err != nil { // writes the final dot and flushes
		s.broken = true
		return reply{}, err
	}
	r, err := s.read(timeout)
	if err != nil {
		return reply{}, err
	}
	if r.code/100 != 2 {
		return r, &replyError{cmd: "end of DATA", reply: r}
	}
	return r, nil
}

// bodyError is a failure to read the message to send: ours, not the next
// hop's.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// quit says goodbye within a short time and closes the connection.
func (s *session) quit() {
	if !s.broken {
		d := min(s.cmdTime, 5*time.Second)
		s.raw.SetDeadline(time.Now().Add(d))
		s.bw.WriteString("QUIT\r\n")
		if s.bw.Flush() == nil {
			readReply(s.br)
		}
	}
	s.conn.Close()
}

// parseEHLO reads the keywords of an EHLO reply's lines after the first.
func parseEHLO(lines []string) map[string]string {
	ext := map[string]string{}
	for i, l := range lines {
		if i == 0 {
			continue
		}
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		if k != "" {
			ext[strings.ToUpper(k)] = v
		}
	}
	return ext
}
