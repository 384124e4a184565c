package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/spool"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeSpool keeps messages in memory. It reads the body to the end, as the
// real spool does, and keeps nothing when that fails.
type fakeSpool struct {
	mu       sync.Mutex
	msgs     []storedMessage
	putErr   error // returned by Put after reading the body
	checkErr error
	n        int
}

// errPanic given to setPut makes Put panic.
var errPanic = errors.New("panic")

type storedMessage struct {
	id   string
	meta spool.Meta
	body string
}

func (f *fakeSpool) Put(ctx context.Context, meta spool.Meta, body io.Reader) (string, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return "", fmt.Errorf("read message body: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.putErr == errPanic {
		panic("spool bug")
	}
	if f.putErr != nil {
		return "", f.putErr
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if meta.Seal != nil {
		meta.Seal(meta.Envelope)
	}
	f.n++
	id := fmt.Sprintf("msg%d", f.n)
	f.msgs = append(f.msgs, storedMessage{id: id, meta: meta, body: string(b)})
	return id, nil
}

func (f *fakeSpool) Check() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checkErr
}

func (f *fakeSpool) setCheck(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkErr = err
}

func (f *fakeSpool) setPut(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.putErr = err
}

func (f *fakeSpool) messages() []storedMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]storedMessage(nil), f.msgs...)
}

// bodyOf returns the stored message without the Received header we add.
func bodyOf(t *testing.T, m storedMessage) string {
	t.Helper()
	if !strings.HasPrefix(m.body, "Received: ") {
		t.Fatalf("stored message does not start with Received: %q", m.body)
	}
	i := strings.Index(m.body, "\r\n\t"+testNow.Format(time.RFC1123Z)+"\r\n")
	if i < 0 {
		t.Fatalf("no date line in the Received header: %q", m.body)
	}
	return m.body[i+len("\r\n\t"+testNow.Format(time.RFC1123Z)+"\r\n"):]
}

var testNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// testConfig is an enabled integration on loopback for example.com, with
// a 1 MB limit and TLS off.
func testConfig() *ospreyv1.SmtpIntegration {
	return &ospreyv1.SmtpIntegration{
		Enabled:            true,
		Listen:             "127.0.0.1:0",
		DestinationDomains: []string{"example.com"},
		MaxMessageSize:     &ospreyv1.SizeLimit{Value: 1, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB},
	}
}

// shortLimits shrinks the timeouts for tests that wait for them (the
// configuration allows 10 s at least).
func shortLimits(command, data, session time.Duration) func(*policy) {
	return func(p *policy) {
		p.commandTimeout, p.dataTimeout, p.sessionTimeout = command, data, session
	}
}

type testServer struct {
	*Server
	spool *fakeSpool
}

type serverOption func(*Server)

func withTune(f func(*policy)) serverOption { return func(s *Server) { s.tune = f } }

func withLocalSubnets(prefixes ...string) serverOption {
	return func(s *Server) {
		s.opts.LocalSubnets = func() ([]netip.Prefix, error) {
			var out []netip.Prefix
			for _, p := range prefixes {
				out = append(out, netip.MustParsePrefix(p))
			}
			return out, nil
		}
	}
}

// testLogger writes the server's log into the test's log with -v.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startServer starts a server with a fake spool and applies cfg; it stops
// the server at the end of the test.
func startServer(t *testing.T, cfg *ospreyv1.SmtpIntegration, opts ...serverOption) *testServer {
	t.Helper()
	return startServerLists(t, cfg, nil, opts...)
}

// startServerLists is startServer with a sensor's acceptance lists.
func startServerLists(t *testing.T, cfg *ospreyv1.SmtpIntegration, lists []*ospreyv1.AcceptanceList, opts ...serverOption) *testServer {
	t.Helper()
	sp := &fakeSpool{}
	s := New(Options{
		Spool:        sp,
		Hostname:     "sensor.test",
		SensorID:     "s-1",
		Logger:       testLogger(t),
		Now:          func() time.Time { return testNow },
		LocalSubnets: func() ([]netip.Prefix, error) { return nil, nil },
	})
	for _, o := range opts {
		o(s)
	}
	runServer(t, s)
	compiled, err := CompileLists(cfg, lists)
	if err != nil {
		t.Fatalf("CompileLists: %v", err)
	}
	if err := s.ApplyLists(t.Context(), cfg, compiled); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return &testServer{Server: s, spool: sp}
}

// runServer runs s until the end of the test, and then fails the test if
// a connection was still open at the end of the stop grace (the clients'
// connections close before, in their own cleanups).
func runServer(t *testing.T, s *Server) {
	t.Helper()
	cancel, done := goRun(s)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if n := s.closedAtStop(); n != 0 {
			t.Errorf("Run closed %d connections still open at the end of its stop grace, want none", n)
		}
	})
}

// goRun runs s on a goroutine until cancel is called; done receives what
// Run returns. (Its context is not a test's, which ends before the test's
// cleanups: the server stops when its caller says.)
func goRun(s *Server) (cancel context.CancelFunc, done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan error, 1)
	go func() { ch <- s.Run(ctx) }()
	return cancel, ch
}

// expectNotListening fails unless s has no address and addr, where it
// listened, takes no connection.
func expectNotListening(t *testing.T, s *Server, addr net.Addr) {
	t.Helper()
	if s.Addr() != nil {
		t.Errorf("Addr %v, want nil", s.Addr())
	}
	if nc, err := net.Dial("tcp", addr.String()); err == nil {
		nc.Close()
		t.Errorf("connected to %v, want no listener", addr)
	}
}

// closedAtStop returns how many connections Run closed when its stop grace
// ran out.
func (s *Server) closedAtStop() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cut
}

// client is a raw SMTP client: it writes what it is told and reads replies.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr net.Addr) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial %v: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{t: t, conn: nc, r: bufio.NewReader(nc)}
}

// send writes s as it is.
func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// reply reads one reply, all its lines, and returns it with the lines
// joined by "\n" and without CRLF.
func (c *client) reply() string {
	c.t.Helper()
	s, err := c.readReply()
	if err != nil {
		c.t.Fatalf("read reply: %v (got %q)", err, s)
	}
	return s
}

func (c *client) readReply() (string, error) {
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return strings.Join(append(lines, line), "\n"), err
		}
		line = strings.TrimSuffix(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(lines, "\n"), nil
		}
	}
}

// expect reads a reply and fails unless it starts with want.
func (c *client) expect(want string) string {
	c.t.Helper()
	got := c.reply()
	if !strings.HasPrefix(got, want) {
		c.t.Fatalf("got reply %q, want %q...", got, want)
	}
	return got
}

// cmd sends a command line and expects a reply starting with want.
func (c *client) cmd(line, want string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.expect(want)
}

// expectClosed fails unless the server closes the connection without
// saying more.
func (c *client) expectClosed() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := c.r.ReadString('\n')
	if err == nil {
		c.t.Fatalf("got %q, want the connection closed", b)
	}
	if !errors.Is(err, io.EOF) && !isReset(err) {
		c.t.Fatalf("got %v, want the connection closed", err)
	}
}

func isReset(err error) bool {
	return errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection reset")
}

// hello connects and greets with EHLO.
func hello(t *testing.T, addr net.Addr) *client {
	t.Helper()
	c := dial(t, addr)
	c.expect("220 ")
	c.cmd("EHLO client.test", "250")
	return c
}

// startTLS runs STARTTLS on c and returns the client over TLS.
func (c *client) startTLS(cfg *tls.Config) *client {
	c.t.Helper()
	c.send("STARTTLS\r\n")
	return c.startTLSAfterReply(cfg)
}

// startTLSAfterReply reads the 220 to a STARTTLS already sent and makes
// the TLS handshake.
func (c *client) startTLSAfterReply(cfg *tls.Config) *client {
	c.t.Helper()
	c.expect("220 ")
	tc, err := c.handshake(cfg)
	if err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	return tc
}

func (c *client) handshake(cfg *tls.Config) (*client, error) {
	if c.r.Buffered() > 0 {
		c.t.Fatalf("%d bytes after the 220 to STARTTLS", c.r.Buffered())
	}
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	return &client{t: c.t, conn: tc, r: bufio.NewReader(tc)}, nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
