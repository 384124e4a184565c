package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// phase is what the bytes the client sends next are.
type phase uint8

const (
	phaseCommand phase = iota // command lines
	phaseData                 // a DATA body, which this connection reads (see data)
	phaseChunk                // a BDAT chunk that go-smtp reads
	phaseSwallow              // a BDAT chunk of a refused BDAT command, dropped here
	phaseAborted              // a refused DATA body: the session ends with its reply
)

// How long and how much a connection closed by the server reads after its
// last reply (see lingerClose).
const (
	lingerTime  = time.Second
	lingerBytes = 256 << 10
)

// readBufferSize is the size of the connection's read buffer; it must hold
// a whole command line.
const readBufferSize = 4096

// conn is the transport under go-smtp: the net.Conn that go-smtp's server
// reads commands from and writes replies to. See the package comment for
// why it exists; in short, it sees the client's bytes before go-smtp and
// after TLS, one line at a time, and enforces what go-smtp cannot.
//
// go-smtp's connection goroutine makes every Read and Write call, so the
// fields below the mutex-free line are only touched there. The session's
// methods run on that goroutine too, except Data for BDAT, which go-smtp
// runs on a goroutine of its own and which only reads what was set before
// it started.
type conn struct {
	raw      net.Conn
	srv      *Server
	pol      *policy
	ip       netip.Addr
	trusted  bool // the client is in the outbound acceptance list: it may relay to any domain
	log      *slog.Logger
	ctx      context.Context // cancelled when the connection closes
	cancel   context.CancelFunc
	deadline time.Time // the session time limit

	sess    atomic.Pointer[session]
	errs    atomic.Int32 // failed replies since the start or the last accepted message
	noCount atomic.Bool  // the next failed reply is not counted as an error
	linger  atomic.Bool  // the server ends the session while the client may still be sending
	hangUp  atomic.Bool  // the session's next 421 ends it (see access.go)

	closeOnce sync.Once
	closeErr  error

	// Only go-smtp's connection goroutine touches these.
	tr        net.Conn      // raw, or the *tls.Conn after STARTTLS
	br        *bufio.Reader // reads tr
	phase     phase
	pending   []byte // the rest of a command line being handed to go-smtp
	next      phase  // the phase after pending is handed over
	chunkLeft int64  // bytes left of the BDAT chunk being read or dropped
	scan      dataScanner
	abortErr  error  // why the DATA body was refused
	verb      string // verb of the last command line read
	hello     bool   // HELO or EHLO was answered 250 (since the last STARTTLS)
	ehlo      bool   // and it was EHLO
	tlsState  *tls.ConnectionState
	certErr   error  // why the client certificate was refused
	user      string // the name AUTH succeeded for (since the last STARTTLS)
	closing   bool   // the session is over: Read returns EOF, Write drops
	quiet     bool   // drop go-smtp's next reply (to the RSET that ends a DATA)
	wline     []byte // the start of the reply line being written
	contd     bool   // the last reply line written has more lines after it
	// out gathers the reply lines of one Write (and the replies that
	// observing them adds), sent with one write to the socket; nil outside
	// Write.
	out    []byte
	outBuf []byte // out's storage, kept between Writes
}

// newConn wraps raw, admitted under pol. Its context derives from base, the
// context of the Run's sessions.
func newConn(base context.Context, srv *Server, raw net.Conn, ip netip.Addr, pol *policy) *conn {
	ctx, cancel := context.WithCancel(base)
	c := &conn{
		raw:      raw,
		srv:      srv,
		pol:      pol,
		ip:       ip,
		log:      srv.log.With("client", ip.String()),
		ctx:      ctx,
		cancel:   cancel,
		deadline: time.Now().Add(pol.sessionTimeout),
		tr:       raw,
		br:       bufio.NewReaderSize(raw, readBufferSize),
	}
	return c
}

// Read hands go-smtp the client's bytes: in the command phase one line per
// call at most, so that go-smtp's own buffer never holds more than the
// command it is working on (whatever follows stays here, where STARTTLS
// can discard it and the DATA phase can check it raw).
func (c *conn) Read(p []byte) (int, error) {
	for {
		if c.closing {
			return 0, c.eof()
		}
		switch c.phase {
		case phaseCommand:
			if len(c.pending) > 0 {
				n := copy(p, c.pending)
				c.pending = c.pending[n:]
				if len(c.pending) == 0 {
					c.phase, c.next = c.next, phaseCommand
				}
				return n, nil
			}
			c.readCommand()
		case phaseData, phaseAborted:
			// Only data reads a DATA body, and the reply that ends it
			// either returns to the command phase or ends the session.
			return 0, io.ErrUnexpectedEOF
		case phaseChunk:
			if c.chunkLeft == 0 {
				c.phase = phaseCommand
				continue
			}
			return c.readChunk(p)
		case phaseSwallow:
			c.swallow()
		}
	}
}

// readCommand reads one command line and either queues it for go-smtp or
// answers it here.
func (c *conn) readCommand() {
	if line, ok := c.readLine(smtp.EnhancedCode{5, 5, 2}, "Line too long"); ok {
		c.command(line)
	}
}

// readLine reads a line of at most MaxCommandLine bytes, its line ending
// included, within the command timeout. A longer line is answered 500
// with enh and msg, and the session closes: the rest of the line can no
// longer be told from commands. A failed read ends the session too (see
// readErr). false when the session ends.
func (c *conn) readLine(enh smtp.EnhancedCode, msg string) ([]byte, bool) {
	c.setReadDeadline(c.pol.commandTimeout)
	line, err := c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > MaxCommandLine {
		c.refuse(reasonLineTooLong, 500, enh, msg)
		c.closing = true
		c.linger.Store(true)
		return nil, false
	}
	if err != nil {
		c.readErr(err)
		return nil, false
	}
	return line, true
}

// command decides what to do with a command line: go-smtp gets the lines
// it handles correctly; this connection answers STARTTLS (which it
// implements), AUTH (see auth), commands go-smtp does not know (so that
// max_errors, not go-smtp's fixed threshold, decides when to hang up), and
// commands out of sequence or refused by the TLS requirement (go-smtp would
// answer some of them with the wrong code, or not at all after STARTTLS).
func (c *conn) command(line []byte) {
	text := bytes.TrimSuffix(line, []byte("\n"))
	text = bytes.TrimSuffix(text, []byte("\r"))
	if bytes.IndexByte(text, '\r') >= 0 {
		c.verb = ""
		c.refuse(reasonProtocol, 500, smtp.EnhancedCode{5, 5, 2}, "Syntax error: CR in command line")
		return
	}
	verb, arg, ok := parseCommand(string(text))
	c.verb = verb
	if !ok {
		c.refuse(reasonProtocol, 500, smtp.EnhancedCode{5, 5, 2}, "Syntax error, command unrecognized")
		return
	}
	switch verb {
	case "STARTTLS":
		c.startTLS(arg)
		return
	case "AUTH":
		if c.pol.submission != nil {
			c.auth(arg)
			return
		}
		c.refuse(reasonProtocol, 502, smtp.EnhancedCode{5, 5, 1}, "AUTH not available")
		return
	case "BDAT":
		c.bdat(arg, line)
		return
	case "DATA":
		c.data(arg)
		return
	case "MAIL", "RCPT", "VRFY":
		if rej := c.gate(verb); rej != nil {
			c.refuseWith(rej)
			return
		}
	case "HELO", "EHLO", "LHLO", "RSET", "NOOP", "QUIT", "SEND", "SOML", "SAML", "EXPN", "HELP", "TURN":
	default:
		c.refuse(reasonProtocol, 500, smtp.EnhancedCode{5, 5, 2}, "Syntax error, command unrecognized")
		return
	}
	c.pending = append(c.pending[:0], line...)
}

// parseCommand splits a command line (without its line ending) as go-smtp
// does, so that a line handed to go-smtp means to it what it means here.
func parseCommand(line string) (verb, arg string, ok bool) {
	if len(line) >= 8 && strings.EqualFold(line[:8], "STARTTLS") {
		return "STARTTLS", strings.TrimSpace(line[8:]), true
	}
	switch {
	case len(line) == 4:
		return strings.ToUpper(line), "", true
	case len(line) > 5 && line[4] == ' ':
		return strings.ToUpper(line[:4]), strings.TrimSpace(line[5:]), true
	}
	return "", "", false
}

// bdat handles a BDAT command. Its chunk follows it without waiting for
// the reply (RFC 3030 §2), so whatever the reply, exactly that many bytes
// are consumed: by go-smtp when it takes the command (go-smtp v0.25.1
// consumes the chunk of a BDAT it refuses for want of MAIL or RCPT, but
// not the chunk of one it refuses for its syntax, "BDAT 5 FOO"), here when
// the command is refused before go-smtp sees it. A BDAT without a readable
// size leaves no way to find the next command: it is refused and the
// session closed.
func (c *conn) bdat(arg string, line []byte) {
	f := strings.Fields(arg)
	var size uint64
	var err error = errors.New("no size")
	if len(f) > 0 {
		size, err = strconv.ParseUint(f[0], 10, 32)
	}
	if err != nil {
		c.refuse(reasonProtocol, 501, smtp.EnhancedCode{5, 5, 4}, "Syntax: BDAT <size> [LAST], closing connection")
		c.closing = true
		c.linger.Store(true)
		return
	}
	var rej *rejection
	if len(f) > 2 || len(f) == 2 && !strings.EqualFold(f[1], "LAST") {
		rej = reject(reasonProtocol, 501, smtp.EnhancedCode{5, 5, 4}, "Syntax: BDAT <size> [LAST]")
	} else {
		rej = c.gate("BDAT")
	}
	c.chunkLeft = int64(size)
	if rej != nil {
		c.refuseWith(rej)
		c.phase = phaseSwallow
		return
	}
	c.pending = append(c.pending[:0], line...)
	c.next = phaseChunk
}

// gate refuses a mail command that the TLS requirement or the state of
// the transaction does not allow, with the codes of RFC 3207 §4 and RFC
// 5321 §4.1.4 (503 for a bad sequence) and RFC 2920 §3.1 (554 for DATA
// without any accepted recipient).
func (c *conn) gate(verb string) *rejection {
	if c.pol.requireTLS && c.tlsState == nil {
		return reject(reasonTLSRequired, 530, smtp.EnhancedCode{5, 7, 0}, "Must issue a STARTTLS command first")
	}
	if verb == "VRFY" {
		return nil
	}
	if !c.hello {
		return reject(reasonProtocol, 503, smtp.EnhancedCode{5, 5, 1}, "Send HELO or EHLO first")
	}
	mail, rcpts := false, 0
	if s := c.sess.Load(); s != nil {
		mail, rcpts = s.transaction()
	}
	switch verb {
	case "MAIL":
		if mail {
			return reject(reasonProtocol, 503, smtp.EnhancedCode{5, 5, 1}, "Sender already specified")
		}
		if c.pol.submission != nil && c.user == "" {
			return reject(reasonAuthRequired, 530, smtp.EnhancedCode{5, 7, 0}, "Authentication required")
		}
	case "RCPT":
		if !mail {
			return reject(reasonProtocol, 503, smtp.EnhancedCode{5, 5, 1}, "Need MAIL before RCPT")
		}
	case "DATA", "BDAT":
		if !mail {
			return reject(reasonProtocol, 503, smtp.EnhancedCode{5, 5, 1}, "Need MAIL before "+verb)
		}
		if rcpts == 0 {
			return reject(reasonProtocol, 554, smtp.EnhancedCode{5, 5, 1}, "No valid recipients")
		}
	}
	return nil
}

// startTLS implements STARTTLS (RFC 3207) here rather than in go-smtp, so
// that this connection stays the layer that sees the client's plaintext.
func (c *conn) startTLS(arg string) {
	s := c.sess.Load()
	switch {
	case arg != "":
		c.refuse(reasonProtocol, 501, smtp.EnhancedCode{5, 5, 4}, "Syntax: STARTTLS")
		return
	case c.pol.tls == nil:
		c.refuse(reasonProtocol, 502, smtp.EnhancedCode{5, 5, 1}, "STARTTLS not available")
		return
	case c.tlsState != nil:
		c.refuse(reasonProtocol, 503, smtp.EnhancedCode{5, 5, 1}, "TLS already active")
		return
	case s != nil && s.inTransaction():
		c.refuse(reasonProtocol, 503, smtp.EnhancedCode{5, 5, 1}, "STARTTLS not allowed during a mail transaction")
		return
	}
	// Whatever the client sent after STARTTLS, before it could have seen
	// our 220, was sent in plaintext and must not be read as if it came
	// through TLS (CVE-2011-0411): drop it.
	if n := c.br.Buffered(); n > 0 {
		_, _ = c.br.Discard(n)
		c.srv.refused(reasonSTARTTLSPipelining, c.ip, "", "", fmt.Sprintf("%d bytes sent before the TLS handshake", n))
		c.log.Warn("discarded data pipelined after STARTTLS", "reason", reasonSTARTTLSPipelining, "bytes", n)
	}
	c.reply(220, smtp.EnhancedCode{2, 0, 0}, "Ready to start TLS")
	if c.closing {
		return
	}
	cfg := c.pol.tls
	if c.pol.clientCAs != nil {
		cfg = cfg.Clone()
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if err := verifyClientCert(raw, c.pol.clientCAs, c.srv.now()); err != nil {
				c.certErr = err
				return err
			}
			return nil
		}
	}
	tc := tls.Server(c.raw, cfg)
	_ = c.raw.SetDeadline(c.capDeadline(min(c.pol.commandTimeout, tlsHandshakeTimeout)))
	if err := tc.HandshakeContext(c.ctx); err != nil {
		if c.certErr != nil {
			c.srv.refused(reasonTLSInvalidClientCert, c.ip, "", "", c.certErr.Error())
			c.log.Warn("refused client certificate", "reason", reasonTLSInvalidClientCert, "err", c.certErr)
		} else {
			c.srv.refused(reasonTLSHandshake, c.ip, "", "", err.Error())
			c.log.Info("TLS handshake failed", "reason", reasonTLSHandshake, "err", err)
		}
		c.closing = true
		return
	}
	st := tc.ConnectionState()
	c.tlsState = &st
	c.tr = tc
	c.br.Reset(tc)
	// RFC 3207 §4.2: forget what the client said before TLS, an AUTH
	// included. No transaction is open (see above); the greeting must be
	// given again.
	c.hello, c.ehlo, c.user = false, false, ""
	c.log.Debug("TLS started", "version", tlsVersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))
}

// data answers a DATA command (RFC 5321 §4.1.1.4) and receives its body
// here, not in go-smtp: dataScanner reads the raw body once, checking it,
// undoing the dot-stuffing and finding its end a line segment at a time,
// where go-smtp would read it a byte at a time behind this connection's
// own check. go-smtp's transaction state is then reset with an RSET whose
// reply is dropped, as go-smtp resets it after a DATA of its own.
func (c *conn) data(arg string) {
	if rej := c.gate("DATA"); rej != nil {
		c.refuseWith(rej)
		return
	}
	if arg != "" {
		c.refuse(reasonProtocol, 501, smtp.EnhancedCode{5, 5, 4}, "Syntax: DATA")
		return
	}
	s := c.sess.Load() // gate found a transaction, so there is a session
	// go-smtp recovers a panic in the commands it runs; this one runs
	// inside Read, where go-smtp does not: do as it does.
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("panic while receiving a message", "panic", v, "stack", string(debug.Stack()))
			c.reply(421, smtp.EnhancedCode{4, 0, 0}, "Internal server error")
			c.closing = true
		}
	}()
	c.phase, c.scan = phaseData, newDataScanner(MaxTextLine)
	if err := c.send([]byte("354 End data with <CR><LF>.<CR><LF>\r\n")); err != nil {
		return
	}
	body := &dataReader{c: c}
	err := s.receive(body, true)
	// Whatever the session made of the body (a size limit refuses it
	// before its end), the rest of it is read and dropped up to the
	// end-of-data line, so that it is not read as commands.
	_, _ = io.Copy(io.Discard, body)
	var reply *smtp.SMTPError
	if !errors.As(err, &reply) { // receive answers with an *smtp.SMTPError
		reply = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message not received in full"}
	}
	c.reply(reply.Code, reply.EnhancedCode, reply.Message)
	if c.phase == phaseData {
		c.phase = phaseCommand // the body was cut short: the session is closing
	}
	c.pending = append(c.pending[:0], "RSET\r\n"...)
	c.quiet = true
}

// dataReader is the body of a DATA command as the session reads it: the
// message with its dot-stuffing undone, up to the end-of-data line. It
// fails with the violation (see dataScanner) when the client breaks the
// rule for line endings, and with io.ErrUnexpectedEOF when the connection
// ends or times out before the end-of-data line, so that a message cut
// short is never taken for a whole one.
type dataReader struct{ c *conn }

func (r *dataReader) Read(p []byte) (int, error) {
	c := r.c
	for {
		switch {
		case c.phase == phaseAborted:
			return 0, c.abortErr
		case c.phase != phaseData:
			return 0, io.EOF
		case c.closing:
			return 0, io.ErrUnexpectedEOF
		case len(p) == 0:
			return 0, nil
		}
		if err := c.fill(c.pol.dataTimeout); err != nil {
			return 0, io.ErrUnexpectedEOF
		}
		buf, _ := c.br.Peek(c.br.Buffered())
		n, used, end, err := c.scan.unstuff(p, buf)
		_, _ = c.br.Discard(used)
		switch {
		case err != nil:
			c.phase, c.abortErr = phaseAborted, err
			return n, err
		case end:
			c.phase = phaseCommand
			return n, io.EOF
		case n > 0:
			return n, nil
		}
	}
}

func (c *conn) readChunk(p []byte) (int, error) {
	if err := c.fill(c.pol.dataTimeout); err != nil {
		return 0, err
	}
	n := int(min(int64(len(p)), c.chunkLeft, int64(c.br.Buffered())))
	n, _ = c.br.Read(p[:n])
	c.chunkLeft -= int64(n)
	if c.chunkLeft == 0 {
		c.phase = phaseCommand
	}
	return n, nil
}

// swallow drops the chunk of a refused BDAT command.
func (c *conn) swallow() {
	for c.chunkLeft > 0 {
		if err := c.fill(c.pol.dataTimeout); err != nil {
			return
		}
		n, _ := c.br.Discard(int(min(c.chunkLeft, int64(c.br.Buffered()))))
		c.chunkLeft -= int64(n)
	}
	c.phase = phaseCommand
}

// fill makes sure the read buffer holds at least one byte, waiting at most
// timeout for it.
func (c *conn) fill(timeout time.Duration) error {
	if c.br.Buffered() > 0 {
		return nil
	}
	c.setReadDeadline(timeout)
	if _, err := c.br.Peek(1); err != nil {
		return c.readErr(err)
	}
	return nil
}

// capDeadline returns the time d from now, or the end of the session time
// limit if that comes first.
func (c *conn) capDeadline(d time.Duration) time.Time {
	t := time.Now().Add(d)
	if t.After(c.deadline) {
		return c.deadline
	}
	return t
}

func (c *conn) setReadDeadline(d time.Duration) {
	_ = c.tr.SetReadDeadline(c.capDeadline(d))
}

// readErr ends the session after a failed read: a timeout is answered with
// 421, anything else (the client went away) just closes. It returns what
// Read then returns (see eof).
func (c *conn) readErr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		what := "Command timeout"
		switch {
		case !time.Now().Before(c.deadline):
			what = "Session time limit"
		case c.phase != phaseCommand:
			what = "Data timeout"
		}
		c.srv.refused(reasonTimeout, c.ip, c.mailFrom(), "", what)
		c.log.Info("closing session", "reason", reasonTimeout, "limit", what)
		c.reply(421, smtp.EnhancedCode{4, 4, 2}, what+" exceeded, closing connection")
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.log.Debug("read failed", "err", err)
	}
	c.closing = true
	return c.eof()
}

// eof is what Read returns once the session is over: io.EOF, on which
// go-smtp closes quietly, except in the middle of a BDAT chunk. go-smtp
// copies a chunk with io.Copy and does not check that it got all of it,
// so an io.EOF there would pass a cut message on as complete.
func (c *conn) eof() error {
	if c.phase == phaseChunk && c.chunkLeft > 0 {
		return io.ErrUnexpectedEOF
	}
	return io.EOF
}

// Write sends go-smtp's replies, one line at a time, watching them: the
// 250 that answers HELO or EHLO, and every failed reply, which counts
// towards max_errors. To the EHLO reply
// it adds STARTTLS, which go-smtp cannot offer since TLS is done here, and
// the size limit (go-smtp advertises a number only when it enforces the
// limit itself, and the limit is enforced in the session). The text of
// go-smtp's successful replies is replaced with this server's (see
// reword).
func (c *conn) Write(p []byte) (int, error) {
	if c.closing {
		return len(p), nil
	}
	if c.quiet {
		c.quiet = false
		return len(p), nil
	}
	// go-smtp writes a whole reply (all the lines of EHLO's) at once: it
	// goes out in one write, not one per line.
	if c.outBuf == nil {
		c.outBuf = make([]byte, 0, 512)
	}
	c.out = c.outBuf[:0]
	defer func() { c.outBuf, c.out = c.out[:0], nil }()
	for off := 0; off < len(p) && !c.closing; {
		line := p[off:]
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i+1]
		}
		n := len(line)
		if r := c.reword(line); r != nil {
			line = r
		}
		if c.verb == "EHLO" && len(c.wline) == 0 && isSizeCapability(line) {
			if err := c.ehloSize(line[3]); err != nil {
				return off, err
			}
		} else if err := c.send(line); err != nil {
			return off, err
		}
		off += n
	}
	if err := c.flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Replies that take the place of go-smtp's texts for the commands it
// accepts ("Roger, accepting mail from <...>", "I'll make sure <...> gets
// this", "I have successfully done nothing"): the plain texts of RFC 5321's
// examples, with the enhanced status codes of RFC 3463 that the EHLO reply
// advertises (ENHANCEDSTATUSCODES).
var (
	replySenderOK    = []byte("250 2.1.0 Sender OK\r\n")
	replyRecipientOK = []byte("250 2.1.5 Recipient OK\r\n")
	replyOK          = []byte("250 2.0.0 OK\r\n")
)

// reword returns the line this server sends in place of go-smtp's reply
// line, or nil to send line as it is. Besides the texts above, the reply
// to HELO and the first line of the reply to EHLO start with the server's
// name, as RFC 5321 §4.1.1.1 has them, where go-smtp writes "Hello
// <client's name>"; neither carries an enhanced status code (RFC 2034 §3).
// go-smtp answers one command line at a time (see Read), so the verb read
// last is the command that line answers.
func (c *conn) reword(line []byte) []byte {
	if len(c.wline) != 0 || len(line) < 4 || line[len(line)-1] != '\n' || string(line[:3]) != "250" {
		return nil
	}
	switch last := line[3] == ' '; {
	case c.verb == "EHLO" && !last && !c.contd:
		return []byte("250-" + c.srv.hostname + "\r\n")
	case !last:
		return nil
	}
	switch c.verb {
	case "MAIL":
		return replySenderOK
	case "RCPT":
		return replyRecipientOK
	case "RSET", "NOOP":
		return replyOK
	case "HELO":
		return []byte("250 " + c.srv.hostname + "\r\n")
	}
	return nil
}

// flush writes the gathered reply lines.
func (c *conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_ = c.tr.SetWriteDeadline(time.Now().Add(c.pol.commandTimeout))
	_, err := c.tr.Write(c.out)
	c.out = c.out[:0]
	if err != nil {
		c.log.Debug("write failed", "err", err)
		c.closing = true
	}
	return err
}

func isSizeCapability(line []byte) bool {
	return len(line) > 4 && string(line[:3]) == "250" && (line[3] == ' ' || line[3] == '-') &&
		string(bytes.TrimRight(line[4:], "\r\n")) == "SIZE"
}

func (c *conn) ehloSize(sep byte) error {
	if c.pol.tls != nil && c.tlsState == nil {
		if err := c.send([]byte("250-STARTTLS\r\n")); err != nil {
			return err
		}
	}
	if c.authOffered() {
		if err := c.send(authLine); err != nil {
			return err
		}
	}
	line := []byte{'2', '5', '0', sep}
	line = append(line, "SIZE"...)
	if !c.pol.unlimited {
		line = fmt.Appendf(line, " %d", c.pol.maxSize)
	}
	return c.send(append(line, "\r\n"...))
}

// reply writes a reply of this connection's own.
func (c *conn) reply(code int, enh smtp.EnhancedCode, msg string) {
	if c.closing {
		return
	}
	_ = c.send(fmt.Appendf(nil, "%d %d.%d.%d %s\r\n", code, enh[0], enh[1], enh[2], msg))
}

// refuse counts and logs a refusal and replies with it.
func (c *conn) refuse(r reason, code int, enh smtp.EnhancedCode, msg string) {
	detail := fmt.Sprintf("%d %s", code, msg)
	if c.verb != "" {
		detail = c.verb + ": " + detail
	}
	c.srv.refused(r, c.ip, c.mailFrom(), "", detail)
	c.log.Debug("refused command", "reason", r, "verb", c.verb, "code", code)
	c.reply(code, enh, msg)
}

func (c *conn) refuseWith(rej *rejection) {
	c.refuse(rej.reason, rej.reply.Code, rej.reply.EnhancedCode, rej.reply.Message)
}

// send writes line (a reply line or a part of one) and observes it.
func (c *conn) send(line []byte) error {
	if c.out != nil {
		c.out = append(c.out, line...) // within Write: flushed at its end
	} else {
		_ = c.tr.SetWriteDeadline(time.Now().Add(c.pol.commandTimeout))
		if _, err := c.tr.Write(line); err != nil {
			c.log.Debug("write failed", "err", err)
			c.closing = true
			return err
		}
	}
	if len(c.wline) < 4 {
		c.wline = append(c.wline, line[:min(len(line), 4-len(c.wline))]...)
	}
	if line[len(line)-1] == '\n' {
		var head [4]byte
		n := copy(head[:], c.wline)
		c.wline = c.wline[:0] // observe may write a reply of its own
		c.contd = n == 4 && head[3] == '-'
		c.observe(head[:n])
	}
	return nil
}

// observe follows the session through the replies written.
func (c *conn) observe(head []byte) {
	if len(head) < 4 {
		return
	}
	code, err := strconv.Atoi(string(head[:3]))
	if err != nil || head[3] == '-' {
		return // not a reply, or not its last line
	}
	if c.phase == phaseAborted {
		// The reply to a DATA body refused for its line endings or line
		// length: the rest of the body can no longer be told apart from
		// commands, so the session ends here.
		c.closing = true
		c.linger.Store(true)
	}
	if code == 250 && (c.verb == "HELO" || c.verb == "EHLO") {
		c.hello, c.ehlo = true, c.verb == "EHLO"
	}
	if code == 421 && c.hangUp.Load() {
		// A 421 of the session's own (the harvest guard): RFC 5321 §3.8,
		// the server closes the connection after it.
		c.closing = true
		c.linger.Store(true)
		return
	}
	if code < 400 || code == 421 || c.closing || c.noCount.Swap(false) {
		return
	}
	if n := c.errs.Add(1); int(n) >= c.pol.maxErrors {
		c.srv.refused(reasonTooManyErrors, c.ip, c.mailFrom(), "", fmt.Sprintf("%d failed commands", n))
		c.log.Info("closing session", "reason", reasonTooManyErrors, "errors", n)
		c.reply(421, smtp.EnhancedCode{4, 7, 0}, "Too many errors, closing connection")
		c.closing = true
		c.linger.Store(true)
	}
}

// Close closes the connection; go-smtp calls it when the session ends, and
// the server when it is forced to stop.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		// Free the slot before the client can see the connection close,
		// so that a client that reconnects right away finds it free.
		c.srv.release(c)
		if c.linger.Load() {
			c.lingerClose()
		}
		c.closeErr = c.raw.Close()
	})
	return c.closeErr
}

// lingerClose sends FIN and reads what the client still sends for a
// moment before the connection is closed: closing a socket with unread
// data makes the kernel send RST, which can destroy our last reply (the
// 550 or 421 that says why) before the client reads it.
func (c *conn) lingerClose() {
	tc, ok := c.raw.(interface{ CloseWrite() error })
	if !ok || tc.CloseWrite() != nil {
		return
	}
	_ = c.raw.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, c.raw, lingerBytes)
}

func (c *conn) LocalAddr() net.Addr  { return c.raw.LocalAddr() }
func (c *conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// The deadlines are this connection's business (see setReadDeadline):
// go-smtp, which runs with ReadTimeout and WriteTimeout zero, never sets
// them.
func (c *conn) SetDeadline(time.Time) error      { return nil }
func (c *conn) SetReadDeadline(time.Time) error  { return nil }
func (c *conn) SetWriteDeadline(time.Time) error { return nil }
