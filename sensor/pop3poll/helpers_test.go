package pop3poll

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ospreysec/osprey/pkg/pki"
	"github.com/ospreysec/osprey/pkg/pop3/pop3test"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/spool"
)

const (
	testUser = "alice"
	testPass = "secret"
)

// startDovecot starts a Dovecot with user alice and a self-signed
// certificate.
func startDovecot(t *testing.T) *pop3test.Dovecot {
	t.Helper()
	pop3test.Require(t)
	cert, key := selfSigned(t)
	return pop3test.StartDovecot(t, pop3test.DovecotOptions{
		Users:   map[string]string{testUser: testPass},
		CertPEM: cert, KeyPEM: key,
	})
}

func selfSigned(t *testing.T) (cert, key []byte) {
	t.Helper()
	cert, key, err := pki.SelfSigned("mail.test", []string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// openSpool opens a spool in dir, closed when t ends.
func openSpool(t *testing.T, dir string) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: dir, MinFreeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// integration is an enabled POP3 integration for addr.
func integration(addr string, tlsMode ospreyv1.Pop3TlsMode, policy ospreyv1.TlsCertificatePolicy) *ospreyv1.SensorConfig {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return &ospreyv1.SensorConfig{Revision: 1, Pop3: &ospreyv1.Pop3Integration{
		Enabled:         true,
		Server:          host,
		Port:            uint32(p),
		IntervalSeconds: 3600,
		Tls:             tlsMode != ospreyv1.Pop3TlsMode_POP3_TLS_MODE_UNSPECIFIED,
		TlsMode:         tlsMode,
		TlsCertificate:  policy,
		Username:        testUser,
		Password:        testPass,
	}}
}

func plainIntegration(addr string) *ospreyv1.SensorConfig {
	return integration(addr, ospreyv1.Pop3TlsMode_POP3_TLS_MODE_UNSPECIFIED, ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_UNSPECIFIED)
}

func newPoller(t *testing.T, opts Options) *Poller {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pollOnce applies cfg and runs one session, as Run would.
func pollOnce(t *testing.T, p *Poller, cfg *ospreyv1.SensorConfig) (sessionResult, error) {
	t.Helper()
	if err := p.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	j, stop := p.current()
	p.mu.Lock()
	if p.mbox.name != j.mailbox {
		p.mbox = mailboxState{name: j.mailbox}
	}
	p.mu.Unlock()
	res, err := p.session(t.Context(), j, stop, nil)
	p.record(res, err)
	return res, err
}

// drain polls until a session leaves nothing behind.
func drain(t *testing.T, p *Poller, cfg *ospreyv1.SensorConfig) {
	t.Helper()
	for range 1000 {
		res, err := pollOnce(t, p, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !res.more {
			return
		}
	}
	t.Fatal("mailbox not drained after 1000 sessions")
}

// message is test message i.
func message(i int) []byte {
	return fmt.Appendf(nil, "From: sender@example.com\r\nTo: alice@example.com\r\nSubject: message %d\r\nMessage-ID: <%d@test>\r\n\r\nbody %d\r\n.dotted\r\n", i, i, i)
}

// spooled returns the bodies of the spooled messages of mailbox by UIDL,
// and fails t when a UIDL or a body is there twice.
func spooled(t *testing.T, sp *spool.Spool, mailbox string) map[string]string {
	t.Helper()
	out := map[string]string{}
	bodies := map[string]bool{}
	for _, id := range sp.List() {
		m, err := sp.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if m.Meta.Envelope.GetMailbox() != mailbox || m.Meta.Source != ospreyv1.MailSource_MAIL_SOURCE_POP3 {
			t.Errorf("message %s: mailbox %q source %v, want %q from POP3", id, m.Meta.Envelope.GetMailbox(), m.Meta.Source, mailbox)
		}
		r, err := m.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := out[m.Meta.UIDL]; dup {
			t.Errorf("UIDL %q spooled twice", m.Meta.UIDL)
		}
		if bodies[string(b)] {
			t.Errorf("message %q spooled twice", b)
		}
		out[m.Meta.UIDL] = string(b)
		bodies[string(b)] = true
	}
	return out
}

// checkAll fails t unless the spool holds exactly the messages want.
func checkAll(t *testing.T, got map[string]string, want map[string]bool) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d messages spooled, want %d", len(got), len(want))
	}
	for _, b := range got {
		if !want[b] {
			t.Errorf("unexpected message spooled: %q", b)
		}
	}
}

// hookSpool wraps a Spool to watch or break Put.
type hookSpool struct {
	Spool
	mu    sync.Mutex
	puts  int
	body  func(n int, r io.Reader) io.Reader // wraps the body of Put number n (from 1)
	after func(n int)                        // runs after Put number n returned nil
}

func (h *hookSpool) Put(ctx context.Context, meta spool.Meta, body io.Reader) (string, error) {
	h.mu.Lock()
	h.puts++
	n := h.puts
	h.mu.Unlock()
	if h.body != nil {
		body = h.body(n, body)
	}
	id, err := h.Spool.Put(ctx, meta, body)
	if err == nil && h.after != nil {
		h.after(n)
	}
	return id, err
}

// readerFunc adapts a function to io.Reader.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

func (h *hookSpool) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.puts
}

// contextWithCancel is a context for Run that the test cancels, and that
// is cancelled when the test ends in any case.
func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return ctx, cancel
}

// testLock is an in-memory Lock.
type testLock struct {
	mu    sync.Mutex
	owned map[string]chan struct{} // closed on release
}

func newTestLock() *testLock { return &testLock{owned: map[string]chan struct{}{}} }

func (l *testLock) Acquire(ctx context.Context, mailbox string) (<-chan struct{}, func(), error) {
	for {
		l.mu.Lock()
		ch, busy := l.owned[mailbox]
		if !busy {
			l.mu.Unlock()
			return nil, l.hold(mailbox), nil
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// hold takes mailbox's lock, which must be free, and returns its release.
func (l *testLock) hold(mailbox string) func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan struct{})
	l.owned[mailbox] = ch
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.owned, mailbox)
			l.mu.Unlock()
			close(ch)
		})
	}
}

func (l *testLock) held(mailbox string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.owned[mailbox]
	return ok
}
