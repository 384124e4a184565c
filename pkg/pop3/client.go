package pop3

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults of the zero Options fields.
const (
	DefaultTimeout        = 60 * time.Second
	DefaultMaxLineLength  = 4096
	DefaultMaxMessages    = 100000
	DefaultMaxMessageSize = 64 << 20
)

// maxCapaLines bounds the lines of a CAPA reply; RFC 2449 and its
// extensions define about a dozen capabilities.
const maxCapaLines = 100

// maxUIDLength is RFC 1939's bound on a unique-id.
const maxUIDLength = 70

// maxCommandLength is RFC 2449's bound on a command line, CRLF included.
const maxCommandLength = 255

// Options configure a client.
type Options struct {
	// Addr is the server's host:port.
	Addr string
	// TLS is how TLS starts; NoTLS is plaintext.
	TLS TLSMode
	// TLSPolicy checks the server's certificate when TLS is not NoTLS.
	TLSPolicy TLSPolicy
	// Timeout bounds the dial, the TLS handshake and each read and write;
	// 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxLineLength bounds a status or listing line, CRLF included; 0
	// means DefaultMaxLineLength.
	MaxLineLength int
	// MaxMessages bounds STAT's count, message numbers and the lines of a
	// listing; 0 means DefaultMaxMessages.
	MaxMessages int
	// MaxMessageSize bounds a retrieved message, in bytes after
	// dot-unstuffing; 0 means DefaultMaxMessageSize.
	MaxMessageSize int64
	// Dial opens the connection; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Validate reports every problem of o.
func (o Options) Validate() error {
	var errs []error
	if o.Addr == "" {
		errs = append(errs, errors.New("addr: empty"))
	} else if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr: %w", err))
	}
	switch o.TLS {
	case NoTLS:
	case ImplicitTLS, StartTLS:
		if err := o.TLSPolicy.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("tls policy: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("tls: unknown mode %d", int(o.TLS)))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: %v is negative", o.Timeout))
	}
	if o.MaxLineLength < 0 || (o.MaxLineLength > 0 && o.MaxLineLength < 64) {
		errs = append(errs, fmt.Errorf("max line length: %d, want 0 or at least 64", o.MaxLineLength))
	}
	if o.MaxMessages < 0 {
		errs = append(errs, fmt.Errorf("max messages: %d is negative", o.MaxMessages))
	}
	if o.MaxMessageSize < 0 {
		errs = append(errs, fmt.Errorf("max message size: %d is negative", o.MaxMessageSize))
	}
	return errors.Join(errs...)
}

func (o *Options) setDefaults() {
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxLineLength == 0 {
		o.MaxLineLength = DefaultMaxLineLength
	}
	if o.MaxMessages == 0 {
		o.MaxMessages = DefaultMaxMessages
	}
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
}

// Capabilities are the server's CAPA reply: each capability's name, upper
// case, with its arguments.
type Capabilities map[string][]string

// Has reports whether the server offers capability name.
func (c Capabilities) Has(name string) bool {
	_, ok := c[strings.ToUpper(name)]
	return ok
}

// SASL reports whether the server offers SASL mechanism mech.
func (c Capabilities) SASL(mech string) bool {
	for _, m := range c["SASL"] {
		if strings.EqualFold(m, mech) {
			return true
		}
	}
	return false
}

// MessageInfo is one line of a LIST or UIDL listing.
type MessageInfo struct {
	// Number is the message number, from 1.
	Number int
	// Size is the size in octets (LIST).
	Size int64
	// UID is the unique id (UIDL).
	UID string
}

// Client is a POP3 connection.
type Client struct {
	opts     Options
	host     string
	conn     net.Conn // the raw connection, or the tls.Conn over it
	br       *bufio.Reader
	greeting string
	stamp    string // APOP timestamp of the greeting, brackets included
	capa     Capabilities
	tls      *TLSState

	err  error       // sticky: the connection is unusable
	body *bodyReader // the RETR reply being read, if any

	// ctx is the context of the command in progress; stop removes the
	// AfterFunc that cuts the connection's deadline when it is done.
	ctx  context.Context
	stop func() bool
}

// Dial connects to opts.Addr, starts TLS as opts.TLS says, reads the
// greeting and the capabilities. ctx bounds the whole of it.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("pop3 options: %w", err)
	}
	opts.setDefaults()
	dctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	var conn net.Conn
	var err error
	if opts.Dial != nil {
		conn, err = opts.Dial(dctx, "tcp", opts.Addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(dctx, "tcp", opts.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("pop3 dial %s: %w", opts.Addr, err)
	}
	return NewClient(ctx, conn, opts)
}

// NewClient runs a client over conn, an open connection to opts.Addr
// (whose host names the server for TLS): it starts TLS as opts.TLS says,
// reads the greeting and the capabilities. On failure conn is closed.
func NewClient(ctx context.Context, conn net.Conn, opts Options) (*Client, error) {
	if err := opts.Validate(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("pop3 options: %w", err)
	}
	opts.setDefaults()
	host, _, _ := net.SplitHostPort(opts.Addr)
	c := &Client{opts: opts, host: host, conn: conn}
	c.br = bufio.NewReaderSize(deadlineReader{c}, max(opts.MaxLineLength, 32<<10))
	if err := c.start(ctx); err != nil {
		c.fail(err)
		return nil, err
	}
	return c, nil
}

// start does the work of NewClient.
func (c *Client) start(ctx context.Context) error {
	if c.opts.TLS == ImplicitTLS {
		if err := c.handshake(ctx); err != nil {
			return err
		}
	}
	if err := c.begin(ctx); err != nil {
		return err
	}
	text, err := c.status("greeting", false)
	c.end()
	if err != nil {
		return err
	}
	c.greeting = text
	c.stamp = apopStamp(text)
	capaErr := c.readCapa(ctx)
	if capaErr != nil && c.err != nil {
		return capaErr
	}
	if c.opts.TLS != StartTLS {
		return nil
	}
	// RFC 2595 servers announce STLS in CAPA; a server without CAPA is
	// asked anyway. Either way, no STLS means no session.
	if capaErr == nil && !c.capa.Has("STLS") {
		return fmt.Errorf("pop3 %s: server does not offer STLS: %w", c.opts.Addr, ErrSTLS)
	}
	if err := c.begin(ctx); err != nil {
		return err
	}
	if err := c.writeLine("STLS"); err != nil {
		c.end()
		return err
	}
	_, err = c.status("STLS", false)
	c.end()
	var perr *Error
	if errors.As(err, &perr) {
		return fmt.Errorf("pop3 %s: server refused STLS (%v): %w", c.opts.Addr, perr, ErrSTLS)
	}
	if err != nil {
		return err
	}
	if n := c.br.Buffered(); n > 0 {
		return fmt.Errorf("pop3 %s: server sent %d bytes after its STLS reply, before the TLS handshake: %w", c.opts.Addr, n, ErrSTLS)
	}
	if err := c.handshake(ctx); err != nil {
		return err
	}
	c.capa = nil
	if err := c.readCapa(ctx); err != nil && c.err != nil {
		return err
	}
	return nil
}

// handshake starts TLS on c.conn, as a client.
func (c *Client) handshake(ctx context.Context) error {
	name := c.opts.TLSPolicy.ServerName
	if name == "" {
		name = c.host
	}
	var trust Trust
	cfg, err := c.opts.TLSPolicy.tlsConfig(name, &trust)
	if err != nil {
		return fmt.Errorf("pop3 %s: tls configuration: %w", c.opts.Addr, err)
	}
	// The handshake's own context bounds it, not a deadline left over
	// from the plaintext commands.
	c.conn.SetDeadline(time.Time{})
	hctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	tc := tls.Client(c.conn, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("pop3 %s: tls handshake: %w", c.opts.Addr, err)
	}
	cs := tc.ConnectionState()
	c.tls = &TLSState{
		Version:     cs.Version,
		CipherSuite: cs.CipherSuite,
		Trust:       trust,
		Fingerprint: fingerprint(cs.PeerCertificates[0].Raw),
		Leaf:        cs.PeerCertificates[0],
	}
	c.conn = tc
	c.br.Reset(deadlineReader{c})
	return nil
}

// readCapa asks for the capabilities. A -ERR leaves c.capa nil.
func (c *Client) readCapa(ctx context.Context) error {
	if err := c.begin(ctx); err != nil {
		return err
	}
	defer c.end()
	if err := c.writeLine("CAPA"); err != nil {
		return err
	}
	if _, err := c.status("CAPA", false); err != nil {
		return err
	}
	capa := Capabilities{}
	err := c.readList("CAPA", maxCapaLines, func(line []byte) error {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			return nil
		}
		capa[strings.ToUpper(f[0])] = f[1:]
		return nil
	})
	if err != nil {
		return err
	}
	c.capa = capa
	return nil
}

// Greeting returns the text of the server's greeting.
func (c *Client) Greeting() string { return c.greeting }

// Capabilities returns the server's capabilities, nil when it does not
// support CAPA. After STLS they are those the server announced over TLS.
func (c *Client) Capabilities() Capabilities { return c.capa }

// TLS returns the TLS state of the connection, nil for plaintext.
func (c *Client) TLS() *TLSState { return c.tls }

// Login authenticates with the best method the server offers (see the
// package comment).
func (c *Client) Login(ctx context.Context, user, pass string) error {
	if err := checkCredentials(user, pass); err != nil {
		return err
	}
	plain := c.capa.SASL("PLAIN")
	userPass := c.capa == nil || c.capa.Has("USER")
	apop := c.stamp != ""
	var order []func(context.Context, string, string) error
	if c.tls == nil {
		order = []func(context.Context, string, string) error{
			cond(apop, c.APOP), cond(plain, c.AuthPlain), cond(userPass, c.UserPass),
		}
	} else {
		order = []func(context.Context, string, string) error{
			cond(plain, c.AuthPlain), cond(userPass, c.UserPass), cond(apop, c.APOP),
		}
	}
	for _, f := range order {
		if f != nil {
			return f(ctx, user, pass)
		}
	}
	// Nothing announced: USER/PASS is the method every server has.
	return c.UserPass(ctx, user, pass)
}

func cond(ok bool, f func(context.Context, string, string) error) func(context.Context, string, string) error {
	if ok {
		return f
	}
	return nil
}

// UserPass authenticates with USER and PASS.
func (c *Client) UserPass(ctx context.Context, user, pass string) error {
	if err := checkCredentials(user, pass); err != nil {
		return err
	}
	if _, err := c.cmd(ctx, "USER", "USER "+user, true); err != nil {
		return err
	}
	_, err := c.cmd(ctx, "PASS", "PASS "+pass, true)
	return err
}

// APOP authenticates with APOP, which sends an MD5 digest of the
// greeting's timestamp and the password instead of the password. It fails
// with ErrNotOffered when the greeting holds no timestamp.
func (c *Client) APOP(ctx context.Context, user, pass string) error {
	if err := checkCredentials(user, pass); err != nil {
		return err
	}
	if c.stamp == "" {
		return fmt.Errorf("pop3 APOP: no timestamp in the greeting: %w", ErrNotOffered)
	}
	sum := md5.Sum([]byte(c.stamp + pass))
	_, err := c.cmd(ctx, "APOP", "APOP "+user+" "+hex.EncodeToString(sum[:]), true)
	return err
}

// AuthPlain authenticates with SASL PLAIN (RFC 4616) through AUTH (RFC
// 5034). It fails with ErrNotOffered when CAPA did not list it.
func (c *Client) AuthPlain(ctx context.Context, user, pass string) error {
	if err := checkCredentials(user, pass); err != nil {
		return err
	}
	if !c.capa.SASL("PLAIN") {
		return fmt.Errorf("pop3 AUTH PLAIN: %w", ErrNotOffered)
	}
	resp := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
	if len("AUTH PLAIN ")+len(resp)+2 <= maxCommandLength {
		_, err := c.cmd(ctx, "AUTH PLAIN", "AUTH PLAIN "+resp, true)
		return err
	}
	// Too long for one command line: wait for the server's challenge.
	if err := c.begin(ctx); err != nil {
		return err
	}
	defer c.end()
	if err := c.writeLine("AUTH PLAIN"); err != nil {
		return err
	}
	line, err := c.readLine()
	if err != nil {
		return err
	}
	if string(line) != "+" && !strings.HasPrefix(string(line), "+ ") {
		if st, text, _ := parseStatus(line); st == statusERR {
			return newError("AUTH PLAIN", text, true)
		}
		return c.fail(fmt.Errorf("pop3 AUTH PLAIN: %w: want a continuation, got %q", ErrMalformed, clip(line)))
	}
	if err := c.writeLine(resp); err != nil {
		return err
	}
	_, err = c.status("AUTH PLAIN", true)
	return err
}

// checkCredentials refuses what would inject commands or break the AUTH
// PLAIN message.
func checkCredentials(user, pass string) error {
	if user == "" {
		return errors.New("pop3: empty user name")
	}
	if strings.ContainsAny(user, "\x00\r\n ") {
		return errors.New("pop3: user name holds a NUL, CR, LF or space")
	}
	if strings.ContainsAny(pass, "\x00\r\n") {
		return errors.New("pop3: password holds a NUL, CR or LF")
	}
	return nil
}

// Stat returns the number of messages and their total size. A count over
// Options.MaxMessages is an ErrLimit.
func (c *Client) Stat(ctx context.Context) (count int, size int64, err error) {
	text, err := c.cmd(ctx, "STAT", "STAT", false)
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(text)
	if len(f) < 2 {
		return 0, 0, c.fail(fmt.Errorf("pop3 STAT: %w: %q", ErrMalformed, clip([]byte(text))))
	}
	n, err := parseNumber(f[0])
	if err != nil {
		return 0, 0, c.fail(fmt.Errorf("pop3 STAT: count: %w", err))
	}
	if n > int64(c.opts.MaxMessages) {
		return 0, 0, c.fail(fmt.Errorf("pop3 STAT: server reports %d messages, more than %d: %w", n, c.opts.MaxMessages, ErrLimit))
	}
	sz, err := parseNumber(f[1])
	if err != nil {
		return 0, 0, c.fail(fmt.Errorf("pop3 STAT: size: %w", err))
	}
	return int(n), sz, nil
}

// List returns each message's number and size, by number.
func (c *Client) List(ctx context.Context) ([]MessageInfo, error) {
	return c.listing(ctx, "LIST", func(m *MessageInfo, arg string) error {
		n, err := parseNumber(arg)
		m.Size = n
		return err
	})
}

// UIDL returns each message's number and unique id, by number. A unique id
// that is not 1 to 70 characters from 0x21 to 0x7E is ErrMalformed. Two
// messages with the same id are not an error here.
func (c *Client) UIDL(ctx context.Context) ([]MessageInfo, error) {
	return c.listing(ctx, "UIDL", func(m *MessageInfo, arg string) error {
		if err := checkUID(arg); err != nil {
			return err
		}
		m.UID = arg
		return nil
	})
}

// listing runs LIST or UIDL without argument.
func (c *Client) listing(ctx context.Context, cmd string, parse func(*MessageInfo, string) error) ([]MessageInfo, error) {
	if err := c.begin(ctx); err != nil {
		return nil, err
	}
	defer c.end()
	if err := c.writeLine(cmd); err != nil {
		return nil, err
	}
	if _, err := c.status(cmd, false); err != nil {
		return nil, err
	}
	var out []MessageInfo
	seen := make(map[int]bool)
	err := c.readList(cmd, c.opts.MaxMessages, func(line []byte) error {
		f := strings.Fields(string(line))
		if len(f) < 2 {
			return fmt.Errorf("%w: listing line %q", ErrMalformed, clip(line))
		}
		n, err := c.messageNumber(f[0])
		if err != nil {
			return err
		}
		if seen[n] {
			return fmt.Errorf("%w: message %d listed twice", ErrMalformed, n)
		}
		seen[n] = true
		m := MessageInfo{Number: n}
		if err := parse(&m, f[1]); err != nil {
			return fmt.Errorf("message %d: %w", n, err)
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b MessageInfo) int { return a.Number - b.Number })
	return out, nil
}

// Retr retrieves message n. The returned reader yields the message
// dot-unstuffed, line endings as the server sent them, and io.EOF after the
// terminating line; more than Options.MaxMessageSize bytes is an ErrLimit.
// It is valid until the next command, which discards what is left of it.
// ctx bounds the reading of the message too.
func (c *Client) Retr(ctx context.Context, n int) (io.Reader, error) {
	if n < 1 {
		return nil, fmt.Errorf("pop3 RETR: message number %d", n)
	}
	if err := c.begin(ctx); err != nil {
		return nil, err
	}
	if err := c.writeLine("RETR " + strconv.Itoa(n)); err != nil {
		c.end()
		return nil, err
	}
	if _, err := c.status("RETR", false); err != nil {
		c.end()
		return nil, err
	}
	c.body = &bodyReader{c: c, max: c.opts.MaxMessageSize, bol: true}
	return c.body, nil
}

// Dele marks message n deleted; QUIT deletes it.
func (c *Client) Dele(ctx context.Context, n int) error {
	_, err := c.cmd(ctx, "DELE", "DELE "+strconv.Itoa(n), false)
	return err
}

// Noop does nothing, and keeps the connection alive.
func (c *Client) Noop(ctx context.Context) error {
	_, err := c.cmd(ctx, "NOOP", "NOOP", false)
	return err
}

// Rset unmarks the messages marked deleted.
func (c *Client) Rset(ctx context.Context) error {
	_, err := c.cmd(ctx, "RSET", "RSET", false)
	return err
}

// Quit ends the session: the server deletes the messages marked deleted
// and answers +OK once it did. The connection is closed whatever happens.
// An error means the deletions may not have happened.
func (c *Client) Quit(ctx context.Context) error {
	_, err := c.cmd(ctx, "QUIT", "QUIT", false)
	if c.err == nil {
		c.fail(ErrClosed)
	}
	return err
}

// Close closes the connection without QUIT: the server deletes nothing.
func (c *Client) Close() error {
	if c.err == nil {
		c.fail(ErrClosed)
	}
	return nil
}

// cmd sends a command line and reads its status reply. name is what
// errors show of the command.
func (c *Client) cmd(ctx context.Context, name, line string, auth bool) (string, error) {
	if err := c.begin(ctx); err != nil {
		return "", err
	}
	defer c.end()
	if err := c.writeLine(line); err != nil {
		return "", err
	}
	return c.status(name, auth)
}

// begin starts a command under ctx: it finishes a pending RETR reply and
// arranges for ctx to cut the connection's deadline when it is done.
func (c *Client) begin(ctx context.Context) error {
	if c.err != nil {
		return c.err
	}
	if b := c.body; b != nil {
		_, err := io.Copy(io.Discard, b)
		c.body = nil
		c.end()
		if err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.ctx = ctx
	conn := c.conn
	c.stop = context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return nil
}

// end ends what begin started.
func (c *Client) end() {
	if c.stop != nil {
		c.stop()
		c.stop = nil
	}
	c.ctx = nil
}

// fail closes the connection for good; every later command returns err.
func (c *Client) fail(err error) error {
	if c.err == nil {
		c.err = err
		c.conn.Close()
	}
	c.end()
	return err
}

// ioErr turns a read or write error into the error of the command: the
// context's error when it is why the deadline passed. It closes the
// connection.
func (c *Client) ioErr(op string, err error) error {
	if c.ctx != nil && c.ctx.Err() != nil {
		err = c.ctx.Err()
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return c.fail(fmt.Errorf("pop3 %s %s: %w", op, c.opts.Addr, err))
}

// writeLine writes line and CRLF.
func (c *Client) writeLine(line string) error {
	if err := c.arm(func(t time.Time) error { return c.conn.SetWriteDeadline(t) }); err != nil {
		return c.ioErr("write", err)
	}
	if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
		return c.ioErr("write", err)
	}
	return nil
}

// arm sets a deadline of Timeout from now, or ctx's deadline when sooner.
// It checks ctx after setting it, so that a cancellation that raced with it
// is not undone.
func (c *Client) arm(set func(time.Time) error) error {
	t := time.Now().Add(c.opts.Timeout)
	if c.ctx != nil {
		if d, ok := c.ctx.Deadline(); ok && d.Before(t) {
			t = d
		}
	}
	if err := set(t); err != nil {
		return err
	}
	if c.ctx != nil {
		return c.ctx.Err()
	}
	return nil
}

// deadlineReader reads from the client's connection under a fresh read
// deadline each time.
type deadlineReader struct{ c *Client }

func (d deadlineReader) Read(p []byte) (int, error) {
	if err := d.c.arm(func(t time.Time) error { return d.c.conn.SetReadDeadline(t) }); err != nil {
		return 0, err
	}
	return d.c.conn.Read(p)
}

// readLine reads a status or listing line, without its line ending.
func (c *Client) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > c.opts.MaxLineLength {
		return nil, c.fail(fmt.Errorf("pop3 %s: %w: over %d bytes", c.opts.Addr, ErrLineTooLong, c.opts.MaxLineLength))
	}
	if err != nil {
		return nil, c.ioErr("read", err)
	}
	return trimEOL(line), nil
}

// status reads a status line: its text for +OK, an *Error for -ERR.
func (c *Client) status(cmd string, auth bool) (string, error) {
	line, err := c.readLine()
	if err != nil {
		return "", err
	}
	st, text, _ := parseStatus(line)
	switch st {
	case statusOK:
		return text, nil
	case statusERR:
		return "", newError(cmd, text, auth)
	}
	return "", c.fail(fmt.Errorf("pop3 %s: %w: status line %q", cmd, ErrMalformed, clip(line)))
}

// readList reads the lines of a multi-line reply up to its terminating
// ".", unstuffed, and calls fn for each; more than max lines is ErrLimit.
// An error of fn ends the connection.
func (c *Client) readList(cmd string, max int, fn func(line []byte) error) error {
	for n := 0; ; n++ {
		line, err := c.readLine()
		if err != nil {
			return err
		}
		line, end := unstuff(line)
		if end {
			return nil
		}
		if n >= max {
			return c.fail(fmt.Errorf("pop3 %s: %w: more than %d lines", cmd, ErrLimit, max))
		}
		if err := fn(line); err != nil {
			return c.fail(fmt.Errorf("pop3 %s: %w", cmd, err))
		}
	}
}

// messageNumber parses a message number of a listing.
func (c *Client) messageNumber(s string) (int, error) {
	n, err := parseNumber(s)
	if err != nil {
		return 0, fmt.Errorf("message number: %w", err)
	}
	if n < 1 {
		return 0, fmt.Errorf("%w: message number 0", ErrMalformed)
	}
	if n > int64(c.opts.MaxMessages) {
		return 0, fmt.Errorf("%w: message number %d, more than %d", ErrLimit, n, c.opts.MaxMessages)
	}
	return int(n), nil
}

// apopStamp returns the timestamp of a greeting ("<1896.697170952@dbc.mtview.ca.us>"),
// or "" when it has none.
func apopStamp(greeting string) string {
	i := strings.IndexByte(greeting, '<')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(greeting[i:], '>')
	if j < 0 {
		return ""
	}
	s := greeting[i : i+j+1]
	if !strings.Contains(s, "@") || len(s) > 256 {
		return ""
	}
	for _, r := range s {
		if r <= ' ' || r > '~' {
			return ""
		}
	}
	return s
}
