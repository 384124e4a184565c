package pop3poll

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"

	"github.com/ospreysec/osprey/internal/clocktest"
	"github.com/ospreysec/osprey/internal/testwait"
)

// TestPollDovecot drains a mailbox over each kind of connection.
func TestPollDovecot(t *testing.T) {
	d := startDovecot(t)
	self := ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_SELF_SIGNED
	tests := []struct {
		name string
		cfg  *ospreyv1.SensorConfig
	}{
		{"plain", plainIntegration(d.PlainAddr)},
		{"stls", integration(d.PlainAddr, ospreyv1.Pop3TlsMode_POP3_TLS_MODE_STARTTLS, self)},
		{"implicit", integration(d.TLSAddr, ospreyv1.Pop3TlsMode_POP3_TLS_MODE_IMPLICIT, self)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := map[string]bool{}
			for j := range 5 {
				m := message(100*i + j)
				d.AddMessage(testUser, m)
				want[string(m)] = true
			}
			sp := openSpool(t, t.TempDir())
			p := newPoller(t, Options{Spool: sp})
			res, err := pollOnce(t, p, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.spooled != 5 || res.deleted != 5 || res.more {
				t.Errorf("session %+v, want 5 spooled and deleted", res)
			}
			if n := d.Messages(testUser); n != 0 {
				t.Errorf("%d messages left on the server", n)
			}
			mb := Mailbox(tt.cfg.GetPop3())
			got := spooled(t, sp, mb)
			checkAll(t, got, want)
			for uidl := range got {
				if !sp.HasUIDL(mb, uidl) {
					t.Errorf("HasUIDL(%q, %q) = false", mb, uidl)
				}
			}
			st := p.Status()
			if st.Counters["pop3_spooled"] != 5 || st.Counters["pop3_deleted"] != 5 || st.Counters["pop3_polled"] != 1 || !st.Healthy {
				t.Errorf("status %v", st)
			}
		})
	}
}

// TestBatches drains 1,000 messages in sessions of 100, one after the
// other without waiting for the interval (an hour here).
func TestBatches(t *testing.T) {
	d := startDovecot(t)
	want := map[string]bool{}
	for i := range 1000 {
		m := message(i)
		d.AddMessage(testUser, m)
		want[string(m)] = true
	}
	sp := openSpool(t, t.TempDir())
	p := newPoller(t, Options{Spool: sp})
	cfg := plainIntegration(d.PlainAddr)
	if err := p.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	ctx, cancel := contextWithCancel(t)
	go func() { done <- p.Run(ctx) }()
	testwait.For(t, "1000 messages spooled and deleted", func() bool {
		return p.Status().Counters["pop3_deleted"] == 1000
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := p.Status()
	if got := st.Counters["pop3_polled"]; got != 10 {
		t.Errorf("%d sessions, want 10 batches of 100", got)
	}
	if n := d.Messages(testUser); n != 0 {
		t.Errorf("%d messages left on the server", n)
	}
	checkAll(t, spooled(t, sp, Mailbox(cfg.GetPop3())), want)
}

// TestBatchBytes checks the byte bound of a batch.
func TestBatchBytes(t *testing.T) {
	d := startDovecot(t)
	big := strings.Repeat("x", 10000) + "\r\n"
	for i := range 5 {
		d.AddMessage(testUser, append(message(i), big...))
	}
	sp := openSpool(t, t.TempDir())
	p := newPoller(t, Options{Spool: sp, BatchBytes: 25000})
	cfg := plainIntegration(d.PlainAddr)
	res, err := pollOnce(t, p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.retrieved != 2 || !res.more {
		t.Fatalf("first session %+v, want 2 retrieved and more", res)
	}
	drain(t, p, cfg)
	if n := d.Messages(testUser); n != 0 {
		t.Errorf("%d messages left on the server", n)
	}
	if got := len(spooled(t, sp, Mailbox(cfg.GetPop3()))); got != 5 {
		t.Errorf("%d spooled, want 5", got)
	}
}

// TestServerKilledMidRetr kills Dovecot while a large message is being
// retrieved: nothing is deleted, the partial message is not kept, and the
// next sessions spool every message exactly once.
func TestServerKilledMidRetr(t *testing.T) {
	d := startDovecot(t)
	want := map[string]bool{}
	for i := range 6 {
		m := message(i)
		if i == 3 {
			m = append(m, strings.Repeat(strings.Repeat("z", 998)+"\r\n", 16<<10)...) // 16 MiB
		}
		d.AddMessage(testUser, m)
		want[string(m)] = true
	}
	sp := openSpool(t, t.TempDir())
	var killed atomic.Bool
	hs := &hookSpool{Spool: sp, body: func(_ int, r io.Reader) io.Reader {
		var n int
		return readerFunc(func(b []byte) (int, error) {
			k, err := r.Read(b)
			n += k
			if n > 1<<20 && !killed.Load() {
				killed.Store(true)
				d.Kill()
			}
			return k, err
		})
	}}
	p := newPoller(t, Options{Spool: hs})
	cfg := plainIntegration(d.PlainAddr)
	mb := Mailbox(cfg.GetPop3())
	res, err := pollOnce(t, p, cfg)
	if !killed.Load() {
		t.Fatalf("the server was not killed; session %+v, %v", res, err)
	}
	if err == nil {
		t.Fatalf("session %+v succeeded with the server killed", res)
	}
	t.Logf("session error: %v", err)
	if n := d.Messages(testUser); n != 6 {
		t.Errorf("%d messages on the server after the kill, want all 6", n)
	}
	before := spooled(t, sp, mb)
	for _, b := range before {
		if len(b) > 1<<20 {
			t.Errorf("the cut message was spooled")
		}
	}
	if !strings.Contains(p.Status().Problems[0], mb) {
		t.Errorf("status problems %q do not show the failure", p.Status().Problems)
	}

	d.Start()
	drain(t, p, cfg)
	if n := d.Messages(testUser); n != 0 {
		t.Errorf("%d messages left on the server", n)
	}
	checkAll(t, spooled(t, sp, mb), want)
}

const crashEnv = "OSPREY_POP3POLL_CRASH_CHILD"

// TestCrashBeforeQuit kills the polling process with SIGKILL right after
// the 5th message is spooled, before QUIT: a child process (this test
// binary again) polls into a spool and dies; the parent reopens the spool,
// polls cleanly, and finds every message spooled exactly once and the
// mailbox empty.
func TestCrashBeforeQuit(t *testing.T) {
	if os.Getenv(crashEnv) == "1" {
		crashChild(t)
		return
	}
	d := startDovecot(t)
	want := map[string]bool{}
	for i := range 12 {
		m := message(i)
		d.AddMessage(testUser, m)
		want[string(m)] = true
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashBeforeQuit$", "-test.v")
	cmd.Env = append(os.Environ(), crashEnv+"=1", "SPOOL_DIR="+dir, "POP3_ADDR="+d.PlainAddr)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL:\n%s", err, out)
	}
	if n := d.Messages(testUser); n != 12 {
		t.Errorf("%d messages on the server after the crash, want 12 (no QUIT)", n)
	}

	sp := openSpool(t, dir)
	cfg := plainIntegration(d.PlainAddr)
	mb := Mailbox(cfg.GetPop3())
	if got := len(spooled(t, sp, mb)); got != 5 {
		t.Fatalf("%d messages spooled by the child, want 5", got)
	}
	p := newPoller(t, Options{Spool: sp})
	drain(t, p, cfg)
	if n := d.Messages(testUser); n != 0 {
		t.Errorf("%d messages left on the server", n)
	}
	checkAll(t, spooled(t, sp, mb), want)
	if got := p.Status().Counters["pop3_spooled"]; got != 7 {
		t.Errorf("the clean poll spooled %d messages, want the 7 the child had not", got)
	}
}

// crashChild is the child of TestCrashBeforeQuit.
func crashChild(t *testing.T) {
	sp := openSpool(t, os.Getenv("SPOOL_DIR"))
	hs := &hookSpool{Spool: sp, after: func(n int) {
		if n == 5 {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // SIGKILL is on its way
		}
	}}
	p := newPoller(t, Options{Spool: hs})
	res, err := pollOnce(t, p, plainIntegration(os.Getenv("POP3_ADDR")))
	t.Fatalf("child survived its session: %+v, %v", res, err)
}

// TestStatusErrors checks that failures show in the status with their
// reason, and raise an alert once they last.
func TestStatusErrors(t *testing.T) {
	d := startDovecot(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()
	wrongPass := plainIntegration(d.PlainAddr)
	wrongPass.Pop3.Password = "hunter2-wrong"
	tests := []struct {
		name string
		cfg  *ospreyv1.SensorConfig
		want string
	}{
		{"wrong password", wrongPass, "[AUTH] Authentication failed"},
		{"untrusted certificate", integration(d.TLSAddr, ospreyv1.Pop3TlsMode_POP3_TLS_MODE_IMPLICIT, ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY), "certificate signed by unknown authority"},
		{"connection refused", plainIntegration(refused), "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := clocktest.New(time.Now())
			p := newPoller(t, Options{Spool: openSpool(t, t.TempDir()), Now: clock.Now})
			if _, err := pollOnce(t, p, tt.cfg); err == nil {
				t.Fatal("session succeeded")
			}
			st := p.Status()
			if st.Healthy || st.Counters["pop3_errors"] != 1 || len(st.Problems) == 0 || !strings.Contains(st.Problems[0], tt.want) {
				t.Fatalf("status %v, want unhealthy with a problem about %q", st, tt.want)
			}
			if strings.Contains(strings.Join(st.Problems, "\n"), "hunter2") {
				t.Errorf("status shows the password: %q", st.Problems)
			}
			if strings.HasPrefix(st.Problems[0], AlertPrefix) {
				t.Fatalf("alert after one failure: %q", st.Problems[0])
			}
			clock.Advance(61 * time.Minute)
			pollOnce(t, p, tt.cfg)
			st = p.Status()
			if !strings.HasPrefix(st.Problems[0], AlertPrefix) || !strings.Contains(st.Problems[0], tt.want) {
				t.Fatalf("problems after an hour of failures: %q, want an alert first", st.Problems)
			}
		})
	}
	t.Run("success clears the alert", func(t *testing.T) {
		clock := clocktest.New(time.Now())
		p := newPoller(t, Options{Spool: openSpool(t, t.TempDir()), Now: clock.Now})
		pollOnce(t, p, wrongPass)
		clock.Advance(2 * time.Hour)
		pollOnce(t, p, wrongPass)
		if _, err := pollOnce(t, p, plainIntegration(d.PlainAddr)); err != nil {
			t.Fatal(err)
		}
		st := p.Status()
		if !st.Healthy || st.Counters["pop3_errors"] != 2 {
			t.Errorf("status %v, want healthy after 2 errors", st)
		}
		for _, pr := range st.Problems {
			if !strings.HasPrefix(pr, "RISK:") {
				t.Errorf("problem %q left after a success", pr)
			}
		}
	})
}

// TestCertificateRisks checks that accept_any and plaintext are shown as
// risks, and that a changed self-signed certificate is warned about.
func TestCertificateRisks(t *testing.T) {
	d := startDovecot(t)
	p := newPoller(t, Options{Spool: openSpool(t, t.TempDir())})
	anyCfg := integration(d.TLSAddr, ospreyv1.Pop3TlsMode_POP3_TLS_MODE_IMPLICIT, ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_ANY)
	if _, err := pollOnce(t, p, anyCfg); err != nil {
		t.Fatal(err)
	}
	if pr := p.Status().Problems; len(pr) != 1 || !strings.HasPrefix(pr[0], "RISK:") || !strings.Contains(pr[0], "accept_any") {
		t.Errorf("problems %q, want the accept_any risk", pr)
	}
	if _, err := pollOnce(t, p, plainIntegration(d.PlainAddr)); err != nil {
		t.Fatal(err)
	}
	if pr := p.Status().Problems; len(pr) != 1 || !strings.HasPrefix(pr[0], "RISK:") || !strings.Contains(pr[0], "TLS is off") {
		t.Errorf("problems %q, want the plaintext risk", pr)
	}

	selfCfg := integration(d.TLSAddr, ospreyv1.Pop3TlsMode_POP3_TLS_MODE_IMPLICIT, ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_SELF_SIGNED)
	for range 2 {
		if _, err := pollOnce(t, p, selfCfg); err != nil {
			t.Fatal(err)
		}
	}
	if pr := p.Status().Problems; len(pr) != 0 {
		t.Errorf("problems %q with the pinned certificate", pr)
	}
	d.Kill()
	d.SetCertificate(selfSigned(t))
	d.Start()
	if _, err := pollOnce(t, p, selfCfg); err != nil {
		t.Fatal(err)
	}
	if pr := p.Status().Problems; len(pr) != 1 || !strings.HasPrefix(pr[0], "WARNING:") || !strings.Contains(pr[0], "changed") {
		t.Errorf("problems %q, want a warning about the changed certificate", pr)
	}
}

// TestDisableStopsAfterCurrentMessage disables the integration while a
// message is being spooled: Apply returns at once, the message is spooled
// and deleted, and nothing after it is retrieved.
func TestDisableStopsAfterCurrentMessage(t *testing.T) {
	d := startDovecot(t)
	for i := range 5 {
		d.AddMessage(testUser, message(i))
	}
	inPut := make(chan struct{})
	release := make(chan struct{})
	sp := openSpool(t, t.TempDir())
	hs := &hookSpool{Spool: sp, body: func(n int, r io.Reader) io.Reader {
		if n == 1 {
			close(inPut)
			<-release
		}
		return r
	}}
	p := newPoller(t, Options{Spool: hs})
	cfg := plainIntegration(d.PlainAddr)
	if err := p.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel(t)
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	<-inPut
	// Apply returns while the message is still being spooled: the session
	// cannot end before release is closed, after Apply returned.
	off := &ospreyv1.SensorConfig{Revision: 2, Pop3: &ospreyv1.Pop3Integration{}}
	applied := make(chan error, 1)
	go func() { applied <- p.Apply(t.Context(), off) }()
	select {
	case err := <-applied:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testwait.Timeout):
		close(release)
		t.Fatalf("Apply did not return within %v while a message was being spooled", testwait.Timeout)
	}
	close(release)
	testwait.For(t, "the session to end", func() bool {
		return p.Status().Counters["pop3_polled"] == 1
	})
	if got := d.Messages(testUser); got != 4 {
		t.Errorf("%d messages on the server, want 4 (the one in progress deleted)", got)
	}
	if got := hs.count(); got != 1 {
		t.Errorf("%d messages retrieved, want 1", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestLock checks that a poller waits for the mailbox lock and polls once
// it has it.
func TestLock(t *testing.T) {
	d := startDovecot(t)
	d.AddMessage(testUser, message(1))
	lock := newTestLock()
	cfg := plainIntegration(d.PlainAddr)
	mb := Mailbox(cfg.GetPop3())
	unlock := lock.hold(mb) // another node polls
	p := newPoller(t, Options{Spool: openSpool(t, t.TempDir()), Lock: lock})
	if err := p.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel(t)
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	testwait.For(t, "the poller to wait for the lock", func() bool {
		pr := p.Status().Problems
		return len(pr) > 0 && strings.Contains(pr[0], "waiting for the mailbox lock")
	})
	if got := d.Messages(testUser); got != 1 {
		t.Fatalf("the mailbox was polled without the lock")
	}
	unlock()
	testwait.For(t, "the message to be polled", func() bool {
		return p.Status().Counters["pop3_deleted"] == 1
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if lock.held(mb) {
		t.Error("the lock is still held after Run returned")
	}
}

// TestUIDLMemory follows a UIDL through its life: spooled by a session
// that crashes before QUIT, uploaded and removed from the spool (a
// tombstone remains), deleted on the server without a second copy by the
// next session, and forgotten once the server no longer lists it.
func TestUIDLMemory(t *testing.T) {
	d := startDovecot(t)
	d.AddMessage(testUser, message(1))
	d.AddMessage(testUser, message(2))
	sp := openSpool(t, t.TempDir())
	cfg := plainIntegration(d.PlainAddr)
	hs := &hookSpool{Spool: sp, after: func(n int) {
		if n == 2 {
			panic("crash")
		}
	}}
	func() {
		defer func() { recover() }()
		pollOnce(t, newPoller(t, Options{Spool: hs}), cfg)
	}()
	if n := d.Messages(testUser); n != 2 {
		t.Fatalf("%d messages on the server after the crash, want 2", n)
	}
	for _, id := range sp.List() { // the uploader's work
		if err := sp.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	if st := sp.Stats(); st.Messages != 0 || st.Tombstones != 2 {
		t.Fatalf("spool %+v, want 2 tombstones", st)
	}
	p := newPoller(t, Options{Spool: sp})
	res, err := pollOnce(t, p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.spooled != 0 || res.deleted != 2 || d.Messages(testUser) != 0 {
		t.Fatalf("session %+v, want 2 deleted and none spooled again", res)
	}
	if st := sp.Stats(); st.Messages != 0 || st.Tombstones != 2 {
		t.Fatalf("spool %+v, want the 2 tombstones kept while the server listed them", st)
	}
	if _, err := pollOnce(t, p, cfg); err != nil {
		t.Fatal(err)
	}
	if st := sp.Stats(); st.Tombstones != 0 {
		t.Fatalf("spool %+v, want the tombstones forgotten", st)
	}
}

// TestTooLarge checks that a message over MaxMessageSize stays on the
// server and shows in the status, and does not hold the others back.
func TestTooLarge(t *testing.T) {
	d := startDovecot(t)
	d.AddMessage(testUser, message(1))
	d.AddMessage(testUser, append(message(2), strings.Repeat("x", 2000)...))
	d.AddMessage(testUser, message(3))
	sp := openSpool(t, t.TempDir())
	p := newPoller(t, Options{Spool: sp, MaxMessageSize: 1000})
	cfg := plainIntegration(d.PlainAddr)
	res, err := pollOnce(t, p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.spooled != 2 || d.Messages(testUser) != 1 {
		t.Fatalf("session %+v with %d messages left, want 2 spooled and 1 left", res, d.Messages(testUser))
	}
	found := false
	for _, pr := range p.Status().Problems {
		found = found || strings.Contains(pr, "1 messages larger than 1000 bytes are left on the server")
	}
	if !found {
		t.Errorf("problems %q do not report the large message", p.Status().Problems)
	}
}
