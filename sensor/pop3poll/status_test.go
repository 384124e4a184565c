package pop3poll

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pop3/pop3test"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestStatusReportsIntegration: Status says the integration's state, the
// error of the current failures with its time, the last successful session,
// the messages taken and those left on the server, and Notify is called
// when the state, the error or the problems change, not at every session.
func TestStatusReportsIntegration(t *testing.T) {
	srv := pop3test.StartServer(t, pop3test.ServerOptions{User: testUser, Password: testPass})
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var notified atomic.Int32
	p := newPoller(t, Options{
		Spool:          openSpool(t, t.TempDir()),
		Now:            func() time.Time { return now },
		MaxMessageSize: 1000,
		Notify:         func() { notified.Add(1) },
	})
	state := func() *ospreyv1.IntegrationStatus {
		t.Helper()
		st := p.Status()
		in := st.GetPop3()
		if in == nil {
			t.Fatal("Status has no Pop3")
		}
		if diff := cmp.Diff(in.GetProblems(), st.GetProblems()); diff != "" {
			t.Errorf("flat problems differ from the integration's (-integration +flat):\n%s", diff)
		}
		return in
	}
	if got := state().GetState(); got != ospreyv1.IntegrationState_INTEGRATION_STATE_DISABLED {
		t.Errorf("before any configuration: state %v, want disabled", got)
	}

	wrong := plainIntegration(srv.Addr())
	wrong.Pop3.Password = "wrong"
	mb := testUser + "@" + srv.Addr()
	for range 2 {
		if _, err := pollOnce(t, p, wrong); err == nil {
			t.Fatal("a wrong password logged in")
		}
		now = now.Add(time.Minute)
	}
	in := state()
	if in.GetState() != ospreyv1.IntegrationState_INTEGRATION_STATE_FAILING || in.GetTarget() != mb ||
		!strings.HasPrefix(in.GetLastError(), "login: ") || in.GetFailures() != 2 ||
		!in.GetLastErrorAt().AsTime().Equal(now.Add(-time.Minute)) || !in.GetFailingSince().AsTime().Equal(now.Add(-2*time.Minute)) {
		t.Errorf("after two failed logins: %v", in)
	}
	if n := notified.Load(); n != 1 {
		t.Errorf("Notify called %d times for one failure repeated, want once", n)
	}
	if ps := in.GetProblems(); len(ps) != 2 || !strings.Contains(ps[0], in.GetLastError()) || !strings.HasPrefix(ps[1], "RISK: ") {
		t.Errorf("problems %q, want the failure and the RISK of TLS off", ps)
	}

	srv.Add(message(1))
	srv.Add([]byte("Subject: big\r\n\r\n" + strings.Repeat("x", 2000) + "\r\n"))
	if _, err := pollOnce(t, p, plainIntegration(srv.Addr())); err != nil {
		t.Fatal(err)
	}
	in = state()
	if in.GetState() != ospreyv1.IntegrationState_INTEGRATION_STATE_POLLING || in.GetLastError() != "" || in.GetLastErrorAt() != nil ||
		in.GetFailures() != 0 || !in.GetLastSuccessAt().AsTime().Equal(now) || in.GetMessages() != 1 || in.GetBytes() != uint64(len(message(1))) ||
		in.GetRefusals()["too_large"] != 1 {
		t.Errorf("after a session that worked: %v", in)
	}
	if n := notified.Load(); n != 2 {
		t.Errorf("Notify called %d times after the recovery, want twice in all", n)
	}

	if err := p.Apply(t.Context(), &ospreyv1.SensorConfig{Pop3: &ospreyv1.Pop3Integration{}}); err != nil {
		t.Fatal(err)
	}
	if got := state().GetState(); got != ospreyv1.IntegrationState_INTEGRATION_STATE_DISABLED {
		t.Errorf("disabled: state %v", got)
	}
}

// TestWaitingForTheLockIsReported: while another node holds the mailbox's
// lock, the state says so and Notify was called.
func TestWaitingForTheLockIsReported(t *testing.T) {
	lock := newTestLock()
	srv := pop3test.StartServer(t, pop3test.ServerOptions{User: testUser, Password: testPass})
	cfg := plainIntegration(srv.Addr())
	release := lock.hold(Mailbox(cfg.GetPop3()))
	var notified atomic.Int32
	p := newPoller(t, Options{Spool: openSpool(t, t.TempDir()), Lock: lock, Notify: func() { notified.Add(1) }})
	if err := p.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel(t)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	testwait.For(t, "the state waiting_lock, notified", func() bool {
		return p.Status().GetPop3().GetState() == ospreyv1.IntegrationState_INTEGRATION_STATE_WAITING_LOCK && notified.Load() >= 1
	})
	release()
	testwait.For(t, "a session and the state polling", func() bool {
		return p.Status().GetPop3().GetState() == ospreyv1.IntegrationState_INTEGRATION_STATE_POLLING && srv.Sessions() > 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
