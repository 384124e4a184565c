package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Options are what a Client is built with.
type Options struct {
	Logger *slog.Logger
	// Resolver finds MX records and addresses; nil means
	// net.DefaultResolver.
	Resolver Resolver
	// Dialer opens connections to next hops; nil means a net.Dialer.
	Dialer Dialer
	// Hostname is the default HeloName; nil means os.Hostname.
	Hostname func() (string, error)
	// Now is the connection cache's clock; nil means time.Now.
	Now func() time.Time
	// CacheIdle is how long an idle session is kept for the next message
	// to its next hop (default 5 s; Postfix keeps 2 s); CacheSize bounds
	// the idle sessions (default 32, at most 4 per next hop). A negative
	// CacheSize turns the cache off.
	CacheIdle time.Duration
	CacheSize int
}

// Dialer opens a TCP connection; *net.Dialer satisfies it.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Client hands messages to their next hop over SMTP. It is safe for
// concurrent use: each Deliver runs its own transaction.
type Client struct {
	log      *slog.Logger
	resolver Resolver
	dialer   Dialer
	hostname func() (string, error)
	now      func() time.Time
	cfg      atomic.Pointer[compiled]
	gen      atomic.Uint64
	cache    cache
}

// New returns a Client. It delivers nothing until Apply gives it a
// configuration, and caches sessions only while Run runs.
func New(opts Options) *Client {
	c := &Client{
		log:      opts.Logger,
		resolver: opts.Resolver,
		dialer:   opts.Dialer,
		hostname: opts.Hostname,
		now:      opts.Now,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "delivery")
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	if c.dialer == nil {
		c.dialer = &net.Dialer{}
	}
	if c.hostname == nil {
		c.hostname = os.Hostname
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.cache = cache{
		idle:     map[string][]*session{},
		now:      c.now,
		idleTime: opts.CacheIdle,
		maxAge:   5 * time.Minute,
		maxIdle:  opts.CacheSize,
		perKey:   4,
	}
	if c.cache.idleTime <= 0 {
		c.cache.idleTime = 5 * time.Second
	}
	switch {
	case c.cache.maxIdle == 0:
		c.cache.maxIdle = 32
	case c.cache.maxIdle < 0:
		c.cache.maxIdle = 0
	}
	return c
}

// Apply validates cfg and makes it the configuration of the deliveries
// that start from now on; deliveries in flight finish with the one they
// started with. On error (a [validate.Errors] naming every bad field)
// nothing changes.
func (c *Client) Apply(cfg Config) error {
	cc, err := compile(cfg, c.hostname)
	if err != nil {
		return err
	}
	cc.gen = c.gen.Add(1)
	c.cfg.Store(cc)
	return nil
}

// Run keeps the connection cache: it caches idle sessions while it runs,
// closes them when they expire, and closes them all when ctx ends.
func (c *Client) Run(ctx context.Context) error {
	c.cache.run(ctx)
	return nil
}

// Destination returns the routing key of a recipient, for the queue to
// group recipients that can share one transaction and to schedule by next
// hop. It is stable for one configuration:
//
//   - "example.com", the recipient's domain (normalised), when it goes by
//     MX lookup;
//   - "[192.0.2.1]" for an address literal delivered by MX rules;
//   - "route:example.com" for a configured route's hosts, "relay" for the
//     default route's hosts, with "+tls" added for a domain in RequireTLS,
//     so mail that must be encrypted never shares a transaction with mail
//     that may not be;
//   - "invalid:" and the recipient when its domain cannot be parsed
//     (Deliver fails it permanently).
//
// Before the first Apply the zero Config's routing applies.
func (c *Client) Destination(rcpt string) string {
	rd, err := parseRcptDomain(rcpt)
	if err != nil {
		return "invalid:" + rcpt
	}
	cc := c.cfg.Load()
	if cc == nil {
		cc = &compiled{def: &route{}}
	}
	return cc.destination(rd)
}

// Deliver makes one attempt to hand req's message to the next hop of its
// recipients, which must share a destination (see Destination): it tries
// the addresses of the next hop in order until one takes part in a
// transaction, and reports per recipient what that host answered, or why
// no host was reached. It never fails as a whole: a Result always has one
// RcptResult per recipient, in the class of its outcome (2xx delivered, 4xx
// to retry, 5xx to bounce). The route is worked out from the recipients
// with the current configuration; req.Destination only names it in logs.
func (c *Client) Deliver(ctx context.Context, req Request) (res Result) {
	start := time.Now()
	res.Rcpts = make([]RcptResult, len(req.Rcpts))
	defer func() {
		res.Took = time.Since(start)
		c.logResult(req, res)
	}()
	cc := c.cfg.Load()
	if cc == nil {
		failAll(&res, req, tempFail("4.3.5", "delivery is not configured yet"))
		return res
	}

	// go-smtp refuses to send a line with CR or LF in it; such an address
	// is refused here, as it would be by any next hop.
	if strings.ContainsAny(req.From, "\r\n") {
		failAll(&res, req, permFail(553, "5.1.7", "sender address %q has a line break", req.From))
		return res
	}
	var rd rcptDomain
	dest, requireTLS := "", false
	var rcpts []string
	var index []int
	for i, rcpt := range req.Rcpts {
		d, err := parseRcptDomain(rcpt)
		if err == nil && strings.ContainsAny(rcpt, "\r\n") {
			err = fmt.Errorf("recipient %q has a line break", rcpt)
		}
		if err != nil {
			res.Rcpts[i] = failure{code: 553, enhanced: "5.1.3", text: err.Error()}.rcpt(rcpt)
			continue
		}
		key := cc.destination(d)
		if dest == "" {
			rd, dest = d, key
		} else if key != dest {
			res.Rcpts[i] = tempFail("4.3.5", "recipient's destination is %s, not %s (the configuration changed): it waits for its own delivery", key, dest).rcpt(rcpt)
			continue
		}
		if d.name != "" && cc.tlsRequired(d.name) {
			requireTLS = true
		}
		rcpts = append(rcpts, rcpt)
		index = append(index, i)
	}
	if len(rcpts) == 0 {
		return res
	}
	// The transaction works on the recipients that passed; its results go
	// back to their places in res.
	sub := Result{Rcpts: make([]RcptResult, len(rcpts))}
	req.Rcpts = rcpts
	defer func() {
		for j, i := range index {
			res.Rcpts[i] = sub.Rcpts[j]
		}
		res.Host, res.TLS = sub.Host, sub.TLS
	}()

	targets, f := c.targets(ctx, cc, rd)
	if f != nil {
		failAll(&sub, req, *f)
		return res
	}
	last := tempFail("4.4.1", "no host to try")
	for i, t := range targets {
		if i == maxAddresses {
			break
		}
		if err := ctx.Err(); err != nil {
			last = tempFail("4.4.2", "delivery interrupted: %v", err)
			break
		}
		out, f := c.attempt(ctx, cc, t, requireTLS, req, &sub)
		switch out {
		case delivered:
			return res
		case final:
			failAll(&sub, req, f)
			return res
		}
		c.log.Debug("next hop failed", "id", req.ID, "host", t.label(), "code", f.code, "status", f.enhanced, "text", f.text)
		last = f
	}
	failAll(&sub, req, last)
	return res
}

// outcome is what one address made of a delivery.
type outcome int

const (
	nextHost  outcome = iota // no transaction: try the next address
	delivered                // the transaction ran: its results stand
	final                    // the failure stands for every recipient
)

// attempt runs the transaction with one address, on a cached session or a
// new one; a cached session that turns out dead is replaced once.
func (c *Client) attempt(ctx context.Context, cc *compiled, t target, requireTLS bool, req Request, res *Result) (outcome, failure) {
	key := fmt.Sprintf("%d|%s|%s|%t", cc.gen, t.addr, t.name, requireTLS)
	s := c.cache.get(key)
	reused := s != nil
	for {
		if s == nil {
			var f *failure
			if s, f = c.open(ctx, cc, t, requireTLS, false); f != nil {
				return nextHost, *f
			}
			s.key = key
		}
		res.Host, res.TLS = s.host, s.tls
		out, f, dead := c.transact(ctx, s, req, res)
		if dead && reused {
			c.log.Debug("cached session is dead, opening a new one", "host", s.host)
			s.broken = true
			s.quit()
			s, reused = nil, false
			continue
		}
		c.release(s)
		return out, f
	}
}

// release caches a session that is between transactions, or closes it.
func (c *Client) release(s *session) {
	if s.broken || !c.cache.put(s) {
		s.quit()
	}
}

// open connects to t and says EHLO, with STARTTLS as the policy says:
// required (offered and verified, or no session), or opportunistic (used
// when offered, unverified; when the handshake fails, the host is tried
// again in plaintext, as Postfix's "may" level does).
func (c *Client) open(ctx context.Context, cc *compiled, t target, requireTLS, plaintext bool) (*session, *failure) {
	dctx, cancel := context.WithTimeout(ctx, cc.connTimeout)
	conn, err := c.dialer.DialContext(dctx, "tcp", t.addr.String())
	cancel()
	if err != nil {
		f := tempFail("4.4.1", "connect to %s: %v", t.label(), unwrapOp(err))
		if ctx.Err() != nil {
			f = tempFail("4.4.2", "delivery to %s interrupted during connect: %v", t.label(), context.Cause(ctx))
		}
		return nil, &f
	}
	s := newSession(conn, t.label(), cc.cmdTimeout, cc.dataT)
	s.born = c.now()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fail := func(stage string, err error) (*session, *failure) {
		s.broken = true
		s.quit()
		f := sessionFailure(ctx, t, stage, err)
		return nil, &f
	}
	// Hello reads the greeting and says EHLO (HELO when EHLO is refused
	// with 500 or 502); the error does not say which of the two failed.
	if err := s.c.Hello(cc.helo); err != nil {
		return fail("the greeting or EHLO", err)
	}
	offered, _ := s.c.Extension("STARTTLS")
	switch {
	case requireTLS && !offered:
		s.quit()
		f := tempFail("4.7.4", "TLS is required, but was not offered by host %s", t.label())
		return nil, &f
	case offered && !plaintext:
		conf := &tls.Config{RootCAs: cc.roots}
		if requireTLS {
			conf.ServerName = t.verify
		} else {
			conf.InsecureSkipVerify = true
			if validHostname(t.name) {
				conf.ServerName = t.name
			}
		}
		err := s.startTLS(ctx, conf)
		var te *tlsError
		_, refused := refusal(err)
		switch {
		case err == nil:
		case errors.As(err, &te) && requireTLS:
			s.quit()
			f := tempFail("4.7.5", "TLS is required, but host %s failed the TLS handshake or the certificate check for %q: %v", t.label(), t.verify, te.err)
			return nil, &f
		case errors.As(err, &te):
			c.log.Debug("TLS handshake failed, trying again in plaintext", "host", t.label(), "err", te.err)
			s.quit()
			return c.open(ctx, cc, t, false, true)
		case requireTLS || !refused:
			return fail("STARTTLS", err)
		default:
			// The server refused STARTTLS: carry on in plaintext.
		}
		if s.tls != "" {
			if err := s.c.Hello(cc.helo); err != nil {
				return fail("EHLO", err)
			}
		}
	}
	if ctx.Err() != nil {
		return fail("EHLO", ctx.Err())
	}
	return s, nil
}

// transact runs one mail transaction on s. dead reports that s failed
// before the transaction began in a way that says the connection was
// already gone (an I/O error or a 421 at MAIL FROM): for a cached session
// the caller tries a new one.
func (c *Client) transact(ctx context.Context, s *session, req Request, res *Result) (out outcome, f failure, dead bool) {
	stop := context.AfterFunc(ctx, func() { s.raw.Conn.Close() })
	defer func() {
		if !stop() {
			s.broken = true
		}
	}()
	// A session reset after its last transaction says EHLO again at its
	// first command (go-smtp's Reset asks for it), which is this one.
	if limit, ok := s.c.MaxMessageSize(); ok && limit > 0 && req.Size > int64(limit) {
		return final, permFail(552, "5.3.4", "message size %d exceeds the size limit %d of host %s", req.Size, limit, s.host), false
	}
	utf8OK, _ := s.c.Extension("SMTPUTF8")
	if req.SMTPUTF8 && !utf8OK && !envelopeASCII(req) {
		return final, permFail(553, "5.6.7", "SMTPUTF8 is required, but was not offered by host %s", s.host), false
	}
	// go-smtp's Mail sends SIZE when offered (and Size is not 0), and
	// BODY=8BITMIME whenever the next hop offers 8BITMIME.
	opts := &smtp.MailOptions{UTF8: req.SMTPUTF8 && utf8OK}
	if req.Size > 0 {
		opts.Size = req.Size
	}
	if err := s.c.Mail(req.From, opts); err != nil {
		r, refused := refusal(err)
		switch {
		case !refused || r.code == 421:
			s.broken = true
			return nextHost, sessionFailure(ctx, s.target(), "MAIL FROM", err), true
		case r.code >= 500:
			c.rset(s)
			return final, replyFailure(s, r, "MAIL FROM"), false
		default:
			c.rset(s)
			return nextHost, replyFailure(s, r, "MAIL FROM"), false
		}
	}
	s.uses++

	var accepted []int
	for i, rcpt := range req.Rcpts {
		err := s.c.Rcpt(rcpt, nil)
		if err == nil {
			accepted = append(accepted, i)
			continue
		}
		r, refused := refusal(err)
		if !refused || r.code == 421 {
			// The session ended: the recipients accepted so far and
			// those not yet sent wait for another try.
			s.broken = true
			f := sessionFailure(ctx, s.target(), "RCPT TO", err)
			for _, j := range accepted {
				res.Rcpts[j] = f.rcpt(req.Rcpts[j])
			}
			for j := i; j < len(req.Rcpts); j++ {
				res.Rcpts[j] = f.rcpt(req.Rcpts[j])
			}
			return delivered, failure{}, false
		}
		res.Rcpts[i] = replyResult(rcpt, r)
	}
	if len(accepted) == 0 {
		c.rset(s)
		return delivered, failure{}, false
	}
	setAccepted := func(r RcptResult) {
		for _, j := range accepted {
			r.Rcpt = req.Rcpts[j]
			res.Rcpts[j] = r
		}
	}
	w, err := s.c.Data()
	if err != nil {
		if r, refused := refusal(err); refused && r.code != 421 {
			c.rset(s)
			setAccepted(replyResult("", r))
		} else {
			s.broken = true
			setAccepted(sessionFailure(ctx, s.target(), "DATA", err).rcpt(""))
		}
		return delivered, failure{}, false
	}
	size := req.Size
	if size <= 0 {
		size = -1
	}
	body := req.Body
	if body == nil {
		body = eofReader{}
	}
	r, err := s.send(w, body, size)
	var be *bodyError
	switch {
	case err == nil:
		setAccepted(replyResult("", r))
	case errors.As(err, &be):
		setAccepted(tempFail("4.3.0", "message not sent: %v", be.err).rcpt(""))
	default:
		if r, refused := refusal(err); refused {
			setAccepted(replyResult("", r))
		} else {
			setAccepted(sessionFailure(ctx, s.target(), "the message body", err).rcpt(""))
		}
	}
	return delivered, failure{}, false
}

// rset ends an unfinished transaction so the session can be reused; a
// session that does not answer it is closed.
func (c *Client) rset(s *session) {
	if err := s.c.Reset(); err != nil {
		s.broken = true
	}
}

// target returns a target naming s, for failure texts.
func (s *session) target() target { return target{name: s.host} }

// sessionFailure describes a failure before or outside a reply to a
// recipient: the server's refusal in its class, or a lost connection or a
// reply out of place (to retry).
func sessionFailure(ctx context.Context, t target, stage string, err error) failure {
	host := t.name
	if t.addr.IsValid() {
		host = t.label()
	}
	var se *smtp.SMTPError
	var pe textproto.ProtocolError
	if r, ok := refusal(err); ok {
		return failure{code: r.code, enhanced: r.enhanced, text: fmt.Sprintf("host %s said: %d %s (in reply to %s)", host, r.code, r.text, stage)}
	}
	switch {
	case ctx.Err() != nil:
		return tempFail("4.4.2", "delivery to %s interrupted during %s: %v", host, stage, context.Cause(ctx))
	case errors.As(err, &se):
		r := parseReply(se.Code, se.Message)
		return tempFail("4.5.0", "host %s sent an unexpected reply to %s: %d %s", host, stage, r.code, r.text)
	case errors.Is(err, errProtocol), errors.As(err, &pe), errors.Is(err, smtp.ErrTooLongLine):
		return tempFail("4.5.0", "host %s sent a malformed reply to %s: %v", host, stage, err)
	}
	return tempFail("4.4.2", "lost connection with %s during %s: %v", host, stage, unwrapOp(err))
}

func replyFailure(s *session, r reply, cmd string) failure {
	return failure{code: r.code, enhanced: r.enhanced, text: fmt.Sprintf("host %s said: %d %s (in reply to %s)", s.host, r.code, r.text, cmd)}
}

func replyResult(rcpt string, r reply) RcptResult {
	return RcptResult{Rcpt: rcpt, Code: r.code, Enhanced: r.enhanced, Text: r.text}
}

func (f failure) rcpt(rcpt string) RcptResult {
	return RcptResult{Rcpt: rcpt, Code: f.code, Enhanced: f.enhanced, Text: f.text}
}

// failAll gives f to every recipient of req.
func failAll(res *Result, req Request, f failure) {
	for i, rcpt := range req.Rcpts {
		res.Rcpts[i] = f.rcpt(rcpt)
	}
}

func (c *Client) logResult(req Request, res Result) {
	var ok, temp, perm int
	for _, r := range res.Rcpts {
		switch {
		case r.OK():
			ok++
		case r.Permanent():
			perm++
		default:
			temp++
		}
	}
	c.log.Info("delivery", "id", req.ID, "destination", req.Destination, "host", res.Host, "tls", res.TLS,
		"delivered", ok, "deferred", temp, "bounced", perm, "took", res.Took)
}

// unwrapOp drops a *net.OpError's addresses, which the text names already.
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

func envelopeASCII(req Request) bool {
	if !isASCII(req.From) {
		return false
	}
	for _, r := range req.Rcpts {
		if !isASCII(r) {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
