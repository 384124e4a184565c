package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ospreysec/osprey/pkg/netlist"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/ratelimit"
	"github.com/ospreysec/osprey/sensor/senderauth"
	"github.com/ospreysec/osprey/sensor/spool"
)

// ErrServerClosed is returned by Apply once Run has stopped, and by Run
// called again.
var ErrServerClosed = errors.New("smtp server closed")

// DefaultStopGrace is Options.StopGrace when it is zero.
const DefaultStopGrace = 10 * time.Second

// Spool keeps the messages the server accepts. *spool.Spool implements it.
type Spool interface {
	// Put stores a message and returns once it is durable (fsynced). It
	// fails, keeping nothing, when reading body fails.
	Put(ctx context.Context, meta spool.Meta, body io.Reader) (id string, err error)
	// Check returns nil when the spool can take mail, and otherwise why
	// not (spool.ErrFull, spool.ErrLowDisk, an I/O error).
	Check() error
}

// Options configure a Server.
type Options struct {
	// Spool keeps the accepted messages; required. It must stay open until
	// Run has returned: sessions write to it until then.
	Spool Spool
	// Hostname is the server's name in its greeting and in the Received
	// header; empty means the machine's host name.
	Hostname string
	// SensorID is the sensor's id, recorded in the Received header.
	SensorID string
	// Logger receives the log lines; nil discards them.
	Logger *slog.Logger
	// Registerer, when set, gets the server's Prometheus collectors.
	Registerer prometheus.Registerer
	// LocalSubnets returns the sensor's own subnets, which a blank clients
	// list stands for when no destination domain is given; nil means
	// netlist.LocalSubnets.
	LocalSubnets func() ([]netip.Prefix, error)
	// Now is the clock of the Received header, the envelope and client
	// certificate checks; nil means time.Now. (Network timeouts use the
	// real time.)
	Now func() time.Time
	// Refusals, when set, receives every refused attempt, for the message
	// audit log.
	Refusals RefusalSink
	// StopGrace is how long the sessions open when Run's context ends may
	// take to finish before they are closed; 0 or less means
	// DefaultStopGrace.
	StopGrace time.Duration
	// Role is the listener of the integration the server runs; the zero
	// Role is the monitor listener.
	Role Role
	// Resolver answers the DNS questions of a gateway's sender
	// authentication; a configuration that enables it is refused without
	// one.
	Resolver senderauth.Resolver
	// Authenticator checks the credentials of AUTH on the submission
	// listener; a configuration that enables the listener is refused
	// without one.
	Authenticator Authenticator
	// Verifier asks the next hops of a gateway's local domains whether a
	// recipient exists; a configuration that enables recipient
	// verification is refused without one.
	Verifier RecipientVerifier
	// Limiter counts what each client does, for a gateway's rate limits
	// and harvest guard; one Limiter serves every listener of a sensor. A
	// configuration that sets them is refused without one.
	Limiter *ratelimit.Limiter
}

// Server is the SMTP server of a sensor's SMTP integration. Apply hands it
// each configuration; Run serves them. It listens only while the
// integration is enabled.
type Server struct {
	opts     Options
	hostname string
	log      *slog.Logger
	now      func() time.Time
	stats    counters
	wake     chan struct{}  // Apply bound a new listener for Run
	sessions sync.WaitGroup // every session, from NewSession to Logout and its last Data
	lookups  sync.WaitGroup // the admissions waiting for a client's name

	pol atomic.Pointer[policy] // the policy new connections get; nil when disabled

	mu     sync.Mutex // serialises Apply and the start and end of Run; guards the fields below
	ran    bool       // Run was called
	closed bool       // Run is stopping or has returned: Apply refuses
	ln     net.Listener
	listen string // the configured address ln was bound for
	cert   *tls.Certificate
	cut    int // connections Run closed when its grace ran out (tests read it)

	connMu sync.Mutex // guards the connection accounting
	conns  map[*conn]struct{}
	perIP  map[netip.Addr]int
	total  int // connection slots taken

	tune func(*policy) // tests shorten the timeouts with it
}

// New returns a server that does not listen yet: Apply an enabled
// configuration, and Run it.
func New(opts Options) *Server {
	s := &Server{
		opts:     opts,
		hostname: opts.Hostname,
		log:      opts.Logger,
		now:      opts.Now,
		wake:     make(chan struct{}, 1),
		conns:    make(map[*conn]struct{}),
		perIP:    make(map[netip.Addr]int),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		s.hostname = h
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.opts.LocalSubnets == nil {
		s.opts.LocalSubnets = netlist.LocalSubnets
	}
	if s.opts.StopGrace <= 0 {
		s.opts.StopGrace = DefaultStopGrace
	}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(newCollector(&s.stats, opts.Role)); err != nil {
			s.log.Warn("SMTP metrics not registered", "err", err)
		}
	}
	return s
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// Addr returns the address the server listens on, or nil when it does not
// listen.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Apply hands cfg over to Run. It either takes the whole configuration or
// returns an error having changed nothing, so that the sensor keeps running
// the previous one (and NACKs this one): an invalid configuration, or a
// listen address that cannot be bound, leaves the server as it was.
//
// Apply binds the listen address itself, so that it can report a failure,
// and hands the listener to Run, which accepts on it; it starts nothing. It
// may be called before Run: connections wait in the listener's backlog
// until Run starts. A new configuration applies to the connections
// accepted from then on; open sessions finish under the configuration they
// started with. A disabled integration closes the listener, and its open
// sessions finish. A new listen address is bound before the old one is
// closed. (When the two overlap on one port, as ":25" after "192.0.2.1:25"
// does, the old one is closed first, and bound again if the new one cannot
// be.)
//
// Apply compiles the acceptance lists cfg holds itself, if any (the trusted
// networks of an earlier version's configuration); ApplyLists takes those
// of the sensor's configuration.
func (s *Server) Apply(ctx context.Context, cfg *ospreyv1.SmtpIntegration) error {
	lists, err := CompileLists(cfg, nil)
	if err != nil {
		return fmt.Errorf("smtp integration: %w", err)
	}
	return s.ApplyLists(ctx, cfg, lists)
}

// ApplyLists is Apply with the gateway's acceptance lists, compiled once
// for every listener by CompileLists.
func (s *Server) ApplyLists(ctx context.Context, cfg *ospreyv1.SmtpIntegration, lists Lists) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrServerClosed
	}
	if s.opts.Spool == nil {
		return errors.New("smtp integration: the server has no spool")
	}
	pol, err := compile(cfg, lists, s.opts.Role, s.opts.LocalSubnets, s.selfSigned)
	if err != nil {
		return fmt.Errorf("smtp integration: %w", err)
	}
	if pol == nil {
		// Disabled, or nothing for this listener in the integration's mode.
		s.closeListener()
		if s.pol.Swap(nil) != nil {
			s.log.Info("SMTP listener off; open sessions finish")
		}
		return nil
	}
	if err := s.checkResolver(pol); err != nil {
		return fmt.Errorf("smtp integration: %w", err)
	}
	if pol.auth, err = s.senderAuth(cfg); err != nil {
		return fmt.Errorf("smtp integration: %w", err)
	}
	if pol.submission != nil && s.opts.Authenticator == nil {
		return errors.New("smtp integration: gateway.submission: the sensor has no authenticator")
	}
	if err := s.gatewayAccess(cfg, pol); err != nil {
		return fmt.Errorf("smtp integration: %w", err)
	}
	if s.tune != nil {
		s.tune(pol)
	}
	var ln net.Listener
	if s.ln == nil || pol.listen != s.listen {
		if ln, err = s.bind(ctx, pol.listen); err != nil {
			return err
		}
	}
	s.pol.Store(pol)
	if ln != nil {
		s.closeListener()
		s.setListener(ln, pol.listen)
	}
	s.log.Info("SMTP integration applied", "listen", s.ln.Addr().String(), "tls", pol.tls != nil, "require_tls", pol.requireTLS,
		"max_message_size", pol.maxSize, "unlimited", pol.unlimited, "clients", pol.clients.String(), "destination_domains", pol.domains.String(),
		"acceptance_any", pol.acceptAny, "acceptance_entries", pol.accept.Len(), "outbound_entries", lists.Outbound.Len())
	return nil
}

// bind listens on addr. When addr overlaps the address held now on the
// same port, it releases that one first, and takes it back if addr cannot
// be bound either.
func (s *Server) bind(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err == nil || s.ln == nil || !errors.Is(err, syscall.EADDRINUSE) || !samePort(s.ln.Addr(), addr) {
		return ln, err
	}
	prev := s.listen
	s.closeListener()
	ln, err = lc.Listen(ctx, "tcp", addr)
	if err == nil {
		return ln, nil
	}
	back, berr := lc.Listen(ctx, "tcp", prev)
	if berr != nil {
		return nil, errors.Join(err, fmt.Errorf("listen again on %s: %w", prev, berr))
	}
	s.setListener(back, prev)
	return nil, err
}

func samePort(a net.Addr, addr string) bool {
	ta, ok := a.(*net.TCPAddr)
	_, port, err := net.SplitHostPort(addr)
	return ok && err == nil && port == strconv.Itoa(ta.Port) && ta.Port != 0
}

// setListener hands ln to Run, which accepts on it from its next wake-up.
// s.mu is held.
func (s *Server) setListener(ln net.Listener, addr string) {
	s.ln, s.listen = ln, addr
	select {
	case s.wake <- struct{}{}:
	default:
	}
	s.log.Info("SMTP listening", "addr", ln.Addr().String())
}

// closeListener closes the listener; its accept loop in Run, if any, ends
// by itself. Open sessions go on. s.mu is held.
func (s *Server) closeListener() {
	if s.ln == nil {
		return
	}
	if err := s.ln.Close(); err != nil {
		s.log.Warn("close SMTP listener", "err", err)
	}
	s.log.Info("SMTP listener closed", "addr", s.ln.Addr().String())
	s.ln = nil
}

// listener returns the listener Apply bound last; nil when none.
func (s *Server) listener() net.Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln
}

// Run serves the configurations that Apply hands over until ctx is done.
// Then it closes the listener, lets the open sessions finish for
// Options.StopGrace, closes the connections still open, and returns nil
// once every goroutine it started, and every session, has ended. It may be
// called once.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.ran = true
	s.mu.Unlock()

	// Sessions outlive ctx by the grace period: their contexts carry ctx's
	// values, and are cancelled when the connections left are closed.
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()

	// One go-smtp server serves every connection of the Run: its settings
	// do not depend on the configuration, which each connection carries.
	srv := s.newSMTP()
	cl := newConnListener()
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(cl)
	}()

	var loops sync.WaitGroup // the accept loops, and the admissions they wait a client's name for
	s.accept(ctx, base, cl, &loops)

	s.mu.Lock()
	s.closed = true
	s.closeListener()
	s.pol.Store(nil)
	s.mu.Unlock()
	loops.Wait()
	s.lookups.Wait()
	// Serve must have returned before Shutdown, or go-smtp could add a
	// connection to the wait group Shutdown waits on.
	_ = cl.Close()
	<-served
	s.drain(srv, cancel)
	return nil
}

// accept runs an accept loop on each listener that Apply hands over, until
// ctx is done. A loop ends when Apply closes its listener.
func (s *Server) accept(ctx, base context.Context, cl *connListener, loops *sync.WaitGroup) {
	var serving net.Listener // the listener of the newest loop
	for {
		if ln := s.listener(); ln != nil && ln != serving {
			serving = ln
			loops.Go(func() { s.acceptLoop(ctx, base, ln, cl) })
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return
		}
	}
}

// drain waits for the sessions of srv, which serves no new connection, to
// end. When Options.StopGrace runs out first, it cancels their context
// (cancel), closes the connections left and waits for them.
func (s *Server) drain(srv *smtp.Server, cancel context.CancelFunc) {
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_ = srv.Shutdown(context.Background()) // returns when go-smtp's connections have ended
		s.sessions.Wait()                      // and the BDAT Data calls it does not wait for
	}()
	t := time.NewTimer(s.opts.StopGrace)
	defer t.Stop()
	select {
	case <-drained:
		return
	case <-t.C:
	}
	cancel()
	n := s.closeConns()
	s.mu.Lock()
	s.cut = n
	s.mu.Unlock()
	if n > 0 {
		s.log.Warn("SMTP connections closed: still open at the end of the stop grace", "connections", n, "grace", s.opts.StopGrace)
	}
	<-drained
}

// closeConns closes every open connection at once, and returns how many
// there were.
func (s *Server) closeConns() int {
	s.connMu.Lock()
	open := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c)
	}
	s.connMu.Unlock()
	for _, c := range open {
		c.linger.Store(false)
		_ = c.Close()
	}
	return len(open)
}

// acceptLoop admits the connections of ln until ln is closed or ctx is
// done. base is the context of their sessions; cl takes them to go-smtp.
func (s *Server) acceptLoop(ctx, base context.Context, ln net.Listener, cl *connListener) {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("SMTP accept failed", "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		s.admit(ctx, base, nc, cl)
	}
}

// admit decides at connect: the clients rule or the acceptance list (554),
// the connection limits and the spool's health (421), then hands the
// connection to go-smtp under the current configuration. A client that an
// acceptance list may match by its name takes a connection slot and has
// its name looked up on a goroutine of its own (tracked by s.lookups, and
// ended by ctx), so that the accept loop never waits on DNS.
func (s *Server) admit(ctx, base context.Context, nc net.Conn, cl *connListener) {
	var ip netip.Addr
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr().Unmap()
	}
	log := s.log.With("client", ip.String())
	pol := s.pol.Load()
	if pol == nil {
		turnAway(nc, "421 4.3.2 "+s.hostname+" Service not available, closing connection\r\n")
		return
	}
	c := peer{ip: ip}
	adm := pol.admit(c, false)
	if adm == refusedByList {
		s.refuseClient(nc, pol, ip, "")
		return
	}
	if r, reply, detail := s.admitRate(ip, pol); reply != "" {
		s.refused(r, ip, "", "", detail)
		log.Info("refused connection", "reason", r, "detail", detail)
		turnAway(nc, reply)
		return
	}
	if adm == needsNames {
		if !s.take(nc, pol, ip, log) {
			return
		}
		s.lookups.Go(func() {
			names, err := s.lookupNames(ctx, pol, ip)
			c.names = names
			if pol.admit(c, true) != admitted {
				s.releaseSlot(ip)
				detail := ""
				if err != nil {
					detail = "name lookup failed: " + err.Error()
				}
				s.refuseClient(nc, pol, ip, detail)
				return
			}
			s.hand(base, nc, cl, pol, c, log)
		})
		return
	}
	if !s.take(nc, pol, ip, log) {
		return
	}
	s.hand(base, nc, cl, pol, c, log)
}

// refuseClient turns away a client that the listener's clients rule or
// acceptance list does not take.
func (s *Server) refuseClient(nc net.Conn, pol *policy, ip netip.Addr, detail string) {
	r := reasonClientRefused
	if pol.direction != ospreyv1.MailDirection_MAIL_DIRECTION_UNSPECIFIED {
		r = reasonNotInAcceptanceList
	}
	s.refused(r, ip, "", "", detail)
	s.log.Info("refused connection", "client", ip.String(), "reason", r, "detail", detail)
	turnAway(nc, "554 5.7.1 "+s.hostname+" Access denied: this client may not send mail here\r\n")
}

// take takes a connection slot for the client at ip, or turns it away
// (421) when a limit is reached.
func (s *Server) take(nc net.Conn, pol *policy, ip netip.Addr, log *slog.Logger) bool {
	if r, ok := s.acquire(ip, pol); !ok {
		s.refused(r, ip, "", "", "")
		log.Info("refused connection", "reason", r)
		msg := "421 4.4.5 " + s.hostname + " Too many connections, try again later\r\n"
		if r == reasonClientConnectionLimit {
			msg = "421 4.7.0 " + s.hostname + " Too many connections from your address, try again later\r\n"
		}
		turnAway(nc, msg)
		return false
	}
	return true
}

// hand checks the spool (421 when it cannot take mail) and hands the
// connection of an admitted client, holding its slot, to go-smtp.
func (s *Server) hand(base context.Context, nc net.Conn, cl *connListener, pol *policy, c peer, log *slog.Logger) {
	ip := c.ip
	if err := s.opts.Spool.Check(); err != nil {
		s.releaseSlot(ip)
		s.refused(reasonSpoolUnavailable, ip, "", "", err.Error())
		log.Warn("refused connection", "reason", reasonSpoolUnavailable, "err", err)
		// RFC 5321 §3.8: 421 in place of the greeting; the sending MTA
		// tries the next address of the cluster's name.
		turnAway(nc, "421 4.3.2 "+s.hostname+" System not accepting network messages, try another server\r\n")
		return
	}
	conn := newConn(base, s, nc, ip, pol)
	conn.trusted = pol.trusted(c)
	s.register(conn)
	// Counted before go-smtp has it: once it has, the client may be
	// answered, and done, before this goroutine runs again. A connection
	// handed over as Run stops (it gets a 421) is counted too.
	s.stats.connections.Add(1)
	select {
	case cl.conns <- conn:
	case <-cl.done:
		// Run is stopping. (It ends its accept loops and lookups before
		// go-smtp, so this is a safeguard.)
		s.unregister(conn)
		conn.cancel()
		turnAway(nc, "421 4.3.2 "+s.hostname+" Service not available, closing connection\r\n")
	}
}

// turnAway writes a reply to a connection that gets no session, and closes
// it. The client has sent nothing yet, so the write cannot block on a full
// socket buffer; the deadline is there all the same.
func turnAway(nc net.Conn, reply string) {
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(nc, reply)
	_ = nc.Close()
}

// acquire takes a connection slot for ip, or says which limit is reached.
func (s *Server) acquire(ip netip.Addr, pol *policy) (reason, bool) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	switch {
	case s.total >= pol.maxConns:
		return reasonConnectionLimit, false
	case s.perIP[ip] >= pol.maxPerClient:
		return reasonClientConnectionLimit, false
	}
	s.perIP[ip]++
	s.total++
	return 0, true
}

func (s *Server) releaseSlot(ip netip.Addr) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.total--
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

func (s *Server) register(c *conn) {
	s.connMu.Lock()
	s.conns[c] = struct{}{}
	s.connMu.Unlock()
	s.stats.active.Add(1)
}

// unregister forgets a connection and frees its slot.
func (s *Server) unregister(c *conn) {
	s.connMu.Lock()
	_, ok := s.conns[c]
	delete(s.conns, c)
	s.connMu.Unlock()
	if ok {
		s.stats.active.Add(-1)
		s.releaseSlot(c.ip)
	}
}

// release is called by a connection when it closes.
func (s *Server) release(c *conn) { s.unregister(c) }

// newSMTP returns the go-smtp server of a Run.
func (s *Server) newSMTP() *smtp.Server {
	srv := smtp.NewServer(backend{srv: s})
	srv.Domain = s.hostname
	srv.EnableSMTPUTF8 = true
	// The limits below are enforced by this package, which knows the
	// reason of each refusal and replies with the right code; go-smtp's
	// own line limit is a backstop that the connection never lets it
	// reach.
	srv.MaxRecipients = 0
	srv.MaxMessageBytes = 0
	srv.MaxLineLength = MaxTextLine + 16
	srv.ReadTimeout, srv.WriteTimeout = 0, 0
	srv.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	return srv
}

// selfSigned returns the certificate the server makes for itself, once.
// s.mu is held.
func (s *Server) selfSigned() (tls.Certificate, error) {
	if s.cert != nil {
		return *s.cert, nil
	}
	certPEM, keyPEM, err := pki.SelfSigned(s.hostname, []string{s.hostname}, selfSignedValidity)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, err
	}
	s.cert = &cert
	s.log.Info("made a self-signed TLS certificate for STARTTLS", "fingerprint", pki.Fingerprint(cert.Certificate[0]))
	return cert, nil
}

// connListener is the listener that a Run's go-smtp server serves: the
// accept loops hand it the connections they admit.
type connListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newConnListener() *connListener {
	return &connListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the zero address: the connections come from every listener Apply
// binds during a Run, and go-smtp does not ask.
func (l *connListener) Addr() net.Addr { return &net.TCPAddr{} }
