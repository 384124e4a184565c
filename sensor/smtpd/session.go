package smtpd

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/spool"
)

// backend makes go-smtp's sessions; go-smtp calls NewSession at the first
// HELO or EHLO of a connection.
type backend struct{ srv *Server }

func (b backend) NewSession(sc *smtp.Conn) (smtp.Session, error) {
	c, ok := sc.Conn().(*conn)
	if !ok {
		return nil, errors.New("connection not accepted by this server")
	}
	ctx, cancel := context.WithCancel(c.ctx)
	s := &session{c: c, sc: sc, srv: b.srv, ctx: ctx, cancel: cancel}
	// The server waits for the session until Logout and the end of the
	// last Data; see enter.
	b.srv.sessions.Add(1)
	c.sess.Store(s)
	return s, nil
}

// session is one SMTP session: it applies the recipient and size rules and
// spools each message. Its context is the connection's, cancelled at
// Logout.
type session struct {
	c      *conn
	sc     *smtp.Conn
	srv    *Server
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex // Data runs on its own goroutine for BDAT
	over    bool       // Logout was called
	running int        // Data calls in progress
	mail    bool
	from    string
	utf8    bool
	helo    string
	ehlo    bool
	tls     *tls.ConnectionState
	user    string // the AUTH user of the transaction
	rcpts   []string
}

// transaction reports whether MAIL was accepted and how many recipients.
func (s *session) transaction() (mail bool, rcpts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mail, len(s.rcpts)
}

func (s *session) inTransaction() bool {
	mail, _ := s.transaction()
	return mail
}

func (s *session) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mail, s.from, s.utf8, s.rcpts = false, "", false, nil
}

func (s *session) Logout() error {
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.over {
		s.over = true
		if s.running == 0 {
			s.srv.sessions.Done()
		}
	}
	return nil
}

// enter registers a Data call; it fails after Logout. go-smtp runs Data for
// BDAT on a goroutine that it does not wait for, and that may even start
// after the session ended: the server's sessions wait group, which Run
// waits for, is held from NewSession until Logout and the last Data have
// both returned.
func (s *session) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.over {
		return false
	}
	s.running++
	return true
}

func (s *session) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	if s.over && s.running == 0 {
		s.srv.sessions.Done()
	}
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if err := s.srv.opts.Spool.Check(); err != nil {
		return s.refuse(spoolRejection(err), "from", from, "err", err)
	}
	if opts.Size > s.c.pol.maxSize {
		return s.refuse(errTooLarge, "from", from, "size", opts.Size)
	}
	if rej, detail := s.limitMail(); rej != nil {
		return s.refuse(rej, "from", from, "limit", detail)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mail, s.from, s.utf8 = true, from, opts.UTF8
	// What the Received header says of the client is what it was when the
	// transaction started.
	s.helo, s.ehlo, s.tls, s.user = s.sc.Hostname(), s.c.ehlo, s.c.tlsState, s.c.user
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mu.Lock()
	n := len(s.rcpts)
	s.mu.Unlock()
	if n >= s.c.pol.maxRecipients {
		// RFC 5321 §4.5.3.1.10: the client is to send the rest later, so
		// this is flow control rather than an error of the client.
		s.c.noCount.Store(true)
		return s.refuse(errTooManyRcpts)
	}
	if rej, detail := s.limitRcpt(); rej != nil {
		return s.refuse(rej, "rcpt", to, "limit", detail)
	}
	if rej := s.c.pol.recipient(to, s.c.trusted); rej != nil {
		return s.refuse(rej, "rcpt", to)
	}
	if err := s.verify(to); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcpts = append(s.rcpts, to)
	return nil
}

// Data receives the message of a BDAT transfer, which go-smtp reads; conn
// reads DATA bodies itself (see conn.data).
func (s *session) Data(r io.Reader) error {
	return s.receive(r, false)
}

// receive spools the message: a Received header, then the body as the
// client sent it (dot-stuffing undone). It answers 250 only once
// Spool.Put has returned nil, that is once the message is on disk. The
// answer is always an *smtp.SMTPError, 250 included. checked says that r
// already enforces the rule for line endings (see dataScanner).
func (s *session) receive(r io.Reader, checked bool) error {
	if !s.enter() {
		return smtp.ErrDataReset
	}
	defer s.leave()

	s.mu.Lock()
	from, rcpts, helo, ehlo, tlsState, utf8, user := s.from, append([]string(nil), s.rcpts...), s.helo, s.ehlo, s.tls, s.utf8, s.user
	s.mu.Unlock()

	now := s.srv.now()
	trace := rand.Text()[:16]
	env := &ospreyv1.Envelope{
		MailFrom:   from,
		RcptTo:     rcpts,
		ClientAddr: s.c.raw.RemoteAddr().String(),
		Helo:       helo,
		Tls:        tlsState != nil,
		ReceivedAt: timestamppb.New(now),
		Direction:  s.c.pol.direction,
		AuthUser:   user,
	}
	if tlsState != nil {
		env.TlsVersion, env.TlsCipher = tls.VersionName(tlsState.Version), tls.CipherSuiteName(tlsState.CipherSuite)
	}
	hdr := receivedHeader(stamp{
		helo:     helo,
		ip:       s.c.ip,
		host:     s.srv.hostname,
		sensorID: s.srv.opts.SensorID,
		protocol: protocol(ehlo, tlsState != nil, utf8, user != ""),
		id:       trace,
		tls:      tlsState,
		rcpts:    rcpts,
		now:      now,
	})
	body := &bodyReader{r: r, limit: s.c.pol.maxSize, checked: checked}
	meta := spool.Meta{Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP, Envelope: env}
	var src io.Reader = body
	if a := s.c.pol.auth; a != nil {
		// The checks read the message as it is spooled; their results
		// are sealed into the envelope before the message is durable.
		check := a.Start(s.ctx, s.c.ip, helo, from)
		defer check.Close()
		src = io.TeeReader(body, check)
		meta.Seal = func(env *ospreyv1.Envelope) { env.Auth = check.Results() }
	}
	id, err := s.srv.opts.Spool.Put(s.ctx, meta, io.MultiReader(strings.NewReader(hdr), src))
	if err != nil {
		return s.dataErr(err, trace)
	}
	size := int64(len(hdr)) + body.n
	s.c.errs.Store(0)
	s.srv.stats.accepted.Add(1)
	s.srv.stats.acceptedBytes.Add(uint64(size))
	s.srv.stats.lastAccepted.Store(s.srv.now().UnixNano())
	args := []any{"id", id, "trace", trace, "from", from, "rcpts", len(rcpts), "bytes", size, "tls", tlsState != nil}
	if a := meta.Envelope.GetAuth(); a != nil {
		args = append(args, "spf", a.GetSpf(), "dmarc", a.GetDmarc())
		st := &s.srv.stats
		st.countAuth(0, a.GetSpf())
		for _, d := range a.GetDkim() {
			st.countAuth(1, d.GetResult())
		}
		if len(a.GetDkim()) == 0 {
			st.countAuth(1, "none")
		}
		st.countAuth(2, a.GetDmarc())
	}
	s.c.log.Info("message accepted", args...)
	// go-smtp writes an *SMTPError as it is, so this carries the spool id
	// to the client, where it ends up in the sending MTA's log.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK: queued as " + id}
}

// dataErr turns a failed Put into the reply.
func (s *session) dataErr(err error, trace string) error {
	var rej *rejection
	var ce *clientError
	switch {
	case errors.As(err, &rej):
		return s.refuse(rej, "trace", trace)
	case errors.As(err, &ce), s.ctx.Err() != nil:
		// The client went away or reset the transfer, or the server is
		// stopping: nobody is waiting for this reply.
		s.c.log.Debug("message not received", "trace", trace, "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Message not received in full"}
	}
	return s.refuse(spoolRejection(err), "trace", trace, "err", err)
}

// spoolRejection is the reply while the spool cannot take a message.
func spoolRejection(err error) *rejection {
	if errors.Is(err, spool.ErrFull) || errors.Is(err, spool.ErrLowDisk) {
		return errSpoolFull
	}
	return errSpoolFailed
}

// refuse counts and logs a refusal and returns its reply for go-smtp.
func (s *session) refuse(rej *rejection, args ...any) error {
	from, rcpt, detail := detailOf(args)
	if from == "" {
		from = s.c.mailFrom()
	}
	s.srv.refused(rej.reason, s.c.ip, from, rcpt, detail)
	level := slogLevel(rej.reason)
	s.c.log.Log(s.ctx, level, "refused", append([]any{"reason", rej.reason, "code", rej.reply.Code}, args...)...)
	return rej.reply
}

// clientError is a failure to read the message from the client.
type clientError struct{ err error }

func (e *clientError) Error() string { return "read message: " + e.err.Error() }
func (e *clientError) Unwrap() error { return e.err }

// bodyReader reads the message body, enforcing the size limit and, unless
// its source already does, the CRLF rule (see dataScanner).
type bodyReader struct {
	r       io.Reader
	limit   int64
	n       int64
	checked bool // r enforces the CRLF rule
	crlf    crlfChecker
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > b.limit {
		return 0, errTooLarge
	}
	if b.checked {
		if err != nil && err != io.EOF {
			return n, &clientError{err}
		}
		return n, err
	}
	if cerr := b.crlf.check(p[:n]); cerr != nil {
		return 0, cerr
	}
	switch {
	case err == io.EOF:
		if cerr := b.crlf.end(); cerr != nil {
			return 0, cerr
		}
	case err != nil:
		return n, &clientError{err}
	}
	return n, err
}

// stamp is what the Received header records.
type stamp struct {
	helo, host, sensorID, protocol, id string
	ip                                 netip.Addr
	tls                                *tls.ConnectionState
	rcpts                              []string
	now                                time.Time
}

// receivedHeader writes the trace header of RFC 5321 §4.4:
//
//	Received: from mta.example ([192.0.2.1])
//		by sensor.example (Osprey sensor s-1) with ESMTPS id 3JX...
//		(using TLS1.3 with cipher TLS_AES_128_GCM_SHA256)
//		for <user@example.com>;
//		Mon, 02 Jan 2006 15:04:05 +0000
//
// The "for" clause is there only for a single recipient, so that a copy of
// the message does not tell one recipient who the others are.
func receivedHeader(st stamp) string {
	clauses := []string{
		"from " + cleanHelo(st.helo) + " (" + addressLiteral(st.ip) + ")",
		"by " + st.host + " (Osprey sensor" + prefixed(" ", st.sensorID) + ") with " + st.protocol + " id " + st.id,
	}
	if st.tls != nil {
		clauses = append(clauses, "(using "+tlsVersionName(st.tls.Version)+" with cipher "+tls.CipherSuiteName(st.tls.CipherSuite)+")")
	}
	if len(st.rcpts) == 1 {
		clauses = append(clauses, "for <"+st.rcpts[0]+">")
	}
	return "Received: " + strings.Join(clauses, "\r\n\t") + ";\r\n\t" + st.now.Format(time.RFC1123Z) + "\r\n"
}

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// protocol is the "with" keyword of the Received header (RFC 3848, RFC
// 6531 §3.7.3): "A" at the end after AUTH.
func protocol(ehlo, tls, utf8, auth bool) string {
	p := "ESMTP"
	switch {
	case !ehlo:
		return "SMTP"
	case utf8 && tls:
		p = "UTF8SMTPS"
	case utf8:
		p = "UTF8SMTP"
	case tls:
		p = "ESMTPS"
	}
	if auth {
		p += "A"
	}
	return p
}

// cleanHelo makes the client's HELO argument safe to put in a header: it
// keeps the characters of a domain or an address literal and replaces the
// others.
func cleanHelo(h string) string {
	if h == "" {
		return "unknown"
	}
	if len(h) > 255 {
		h = h[:255]
	}
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', strings.ContainsRune(".-_:[]", r):
			return r
		}
		return '?'
	}, h)
}

func addressLiteral(ip netip.Addr) string {
	if ip.Is4() {
		return "[" + ip.String() + "]"
	}
	return "[IPv6:" + ip.String() + "]"
}
