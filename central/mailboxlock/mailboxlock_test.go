package mailboxlock

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/ospreysec/osprey/central/etcdembed"
	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/internal/testwait"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	testMailbox = "journal@mail.example.com:995"
	// testTTL is the shortest lease an embedded etcd with default timing
	// grants.
	testTTL   = 2 * time.Second
	testRetry = 50 * time.Millisecond
)

// newClient returns a client of srv, closed when t ends (closing twice is
// harmless).
func newClient(t *testing.T, srv *etcdembed.Server) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// newLocker returns a Locker of node over its own client of srv, as each
// central node has; closed when t ends. waiting, when not nil, receives a
// value each time the Locker starts waiting for a lock another node holds.
func newLocker(t *testing.T, srv *etcdembed.Server, node string, waiting chan<- struct{}) (*Locker, *clientv3.Client) {
	t.Helper()
	cli := newClient(t, srv)
	opts := Options{Client: cli, Node: node, TTL: testTTL, RetryInterval: testRetry}
	if waiting != nil {
		opts.Logger = slog.New(waitingLog(waiting))
	}
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, cli
}

// waitingLog is a slog handler that signals the line a Locker logs when it
// finds the lock held by another node and starts waiting: the sign that
// Acquire passed the point where it could have taken the lock.
type waitingLog chan<- struct{}

func (w waitingLog) Enabled(context.Context, slog.Level) bool { return true }
func (w waitingLog) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w waitingLog) WithGroup(string) slog.Handler            { return w }

func (w waitingLog) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "another node polls the mailbox") {
		select {
		case w <- struct{}{}:
		default: // signalled already
		}
	}
	return nil
}

// waitWaiting waits until waiting receives a value.
func waitWaiting(t *testing.T, waiting <-chan struct{}, who string) {
	t.Helper()
	select {
	case <-waiting:
	case <-time.After(testwait.Timeout):
		t.Fatalf("%s did not find the lock held within %v", who, testwait.Timeout)
	}
}

// acquireAsync runs Acquire in the background; the result arrives on the
// returned channel.
type acquired struct {
	lost    <-chan struct{}
	release func()
	err     error
	at      time.Time
}

func acquireAsync(ctx context.Context, l *Locker, mailbox string) <-chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		lost, release, err := l.Acquire(ctx, mailbox)
		ch <- acquired{lost, release, err, time.Now()}
	}()
	return ch
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestMutualExclusion(t *testing.T) {
	srv := etcdtest.Start(t)
	a, cli := newLocker(t, srv, "a", nil)
	bWaits := make(chan struct{}, 1)
	b, _ := newLocker(t, srv, "b", bWaits)

	lostA, releaseA, err := a.Acquire(t.Context(), testMailbox)
	if err != nil {
		t.Fatalf("a: acquire: %v", err)
	}
	// The lock is one key under the mailbox's prefix, bound to a's lease.
	resp, err := cli.Get(t.Context(), Key(testMailbox)+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("got keys %v under %s, want one key with a lease", resp.Kvs, Key(testMailbox))
	}

	// b keeps trying while a holds the lock, and gets it once a releases.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	bc := acquireAsync(ctx, b, testMailbox)
	waitWaiting(t, bWaits, "b")
	select {
	case r := <-bc:
		t.Fatalf("b acquired while a holds the lock (err %v)", r.err)
	default:
	}
	// Another mailbox is another lock.
	_, releaseOther, err := b.Acquire(t.Context(), "other@mail.example.com:995")
	if err != nil {
		t.Fatalf("b: acquire another mailbox: %v", err)
	}
	releaseOther()

	released := time.Now()
	releaseA()
	releaseA() // twice is harmless
	r := <-bc
	if r.err != nil {
		t.Fatalf("b: acquire after a released: %v", r.err)
	}
	if d := r.at.Sub(released); d < 0 || d > testTTL {
		t.Errorf("b took the lock %v after a released it, want after it and within the retry interval", d)
	}
	if isClosed(lostA) {
		t.Error("a's lost channel closed on release; want it closed only when the session is lost")
	}
	// a now waits, until its context ends.
	actx, acancel := context.WithTimeout(t.Context(), 5*testRetry)
	defer acancel()
	if _, _, err := a.Acquire(actx, testMailbox); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a: acquire while b holds: got %v, want %v", err, context.DeadlineExceeded)
	}
	r.release()
}

func TestHandoverAfterCrash(t *testing.T) {
	srv := etcdtest.Start(t)
	a, cliA := newLocker(t, srv, "a", nil)
	bWaits := make(chan struct{}, 1)
	b, _ := newLocker(t, srv, "b", bWaits)

	lostA, _, err := a.Acquire(t.Context(), testMailbox)
	if err != nil {
		t.Fatalf("a: acquire: %v", err)
	}
	bc := acquireAsync(t.Context(), b, testMailbox)
	waitWaiting(t, bWaits, "b")
	select {
	case r := <-bc:
		t.Fatalf("b acquired while a holds the lock (err %v)", r.err)
	default:
	}

	// a crashes: its client goes away without unlocking or revoking.
	crashed := time.Now()
	cliA.Close()
	r := <-bc
	if r.err != nil {
		t.Fatalf("b: acquire after a crashed: %v", r.err)
	}
	defer r.release()
	d := r.at.Sub(crashed)
	t.Logf("b took over %v after a crashed (TTL %v)", d, testTTL)
	// The lease was refreshed at most TTL/3 before the crash, so b cannot
	// have it sooner than 2/3 TTL after: the key expired with a's lease.
	if d < testTTL/2 {
		t.Errorf("b took over %v after the crash, before a's lease could expire (TTL %v)", d, testTTL)
	}
	if d > 2*testTTL+time.Second {
		t.Errorf("b took over %v after the crash, want about the TTL %v", d, testTTL)
	}
	select {
	case <-lostA:
	case <-time.After(testTTL):
		t.Error("a's lost channel did not close when its session ended")
	}
}

func TestLostSession(t *testing.T) {
	srv := etcdtest.Start(t)
	a, cli := newLocker(t, srv, "a", nil)

	lost, release, err := a.Acquire(t.Context(), testMailbox)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	// The lease goes away behind the holder's back.
	resp, err := cli.Get(t.Context(), Key(testMailbox)+"/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("lock key: %v %v", resp, err)
	}
	if _, err := cli.Revoke(t.Context(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(2 * testTTL):
		t.Fatal("lost did not close after the lease was revoked")
	}
	release() // after the loss: nothing to delete

	// The next Acquire opens a new session.
	lost2, release2, err := a.Acquire(t.Context(), testMailbox)
	if err != nil {
		t.Fatalf("acquire after the loss: %v", err)
	}
	defer release2()
	if isClosed(lost2) {
		t.Fatal("the new lock is lost at once")
	}
}

func TestOneHolderPerLocker(t *testing.T) {
	srv := etcdtest.Start(t)
	a, _ := newLocker(t, srv, "a", nil)
	_, release, err := a.Acquire(t.Context(), testMailbox)
	if err != nil {
		t.Fatal(err)
	}
	// A second caller in the same process waits too, though the etcd key
	// (the session's) would let it through.
	second := acquireAsync(t.Context(), a, testMailbox)
	testwait.For(t, "the second caller to wait for the first", func() bool { return a.waiting.Load() == 1 })
	select {
	case r := <-second:
		t.Fatalf("second caller acquired while the first holds (err %v)", r.err)
	default:
	}
	release()
	r := <-second
	if r.err != nil {
		t.Fatalf("second caller: %v", r.err)
	}
	r.release()
}

func TestClose(t *testing.T) {
	srv := etcdtest.Start(t)
	a, cli := newLocker(t, srv, "a", nil)
	lost, _, err := a.Acquire(t.Context(), testMailbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if !isClosed(lost) {
		t.Error("lost is open after Close")
	}
	// Close revoked the lease: the lock is free at once.
	resp, err := cli.Get(t.Context(), Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Errorf("got %d lock keys after Close, want 0", resp.Count)
	}
	if _, _, err := a.Acquire(t.Context(), testMailbox); !errors.Is(err, ErrClosed) {
		t.Errorf("acquire after Close: got %v, want %v", err, ErrClosed)
	}
}

func TestEtcdUnreachable(t *testing.T) {
	// An endpoint where nothing listens any more.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ln.Addr().String()}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	l, err := New(Options{Client: cli, TTL: testTTL, RetryInterval: testRetry})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	_, _, err = l.Acquire(t.Context(), testMailbox)
	if err == nil || !strings.Contains(err.Error(), "lock mailbox "+testMailbox) {
		t.Fatalf("got %v, want an error that names the mailbox", err)
	}
	if d := time.Since(start); d > 2*testTTL {
		t.Errorf("acquire took %v with etcd down, want about the TTL %v at most", d, testTTL)
	}
}

func TestKey(t *testing.T) {
	k := Key("Journal@Mail.Example.COM:995")
	if !strings.HasPrefix(k, Prefix) || len(k) != len(Prefix)+64 {
		t.Errorf("got %q, want %s<64 hex digits>", k, Prefix)
	}
	if got, want := k, Key("Journal@mail.example.com:995"); got != want {
		t.Errorf("the server name's case changes the key: got %q, want %q", got, want)
	}
	if Key("journal@mail.example.com:995") == k {
		t.Error("the user name's case does not change the key; it may matter to the server")
	}
	if Key("journal@mail.example.com:110") == Key("journal@mail.example.com:995") {
		t.Error("two ports, one key")
	}
}

func TestValidate(t *testing.T) {
	err := Options{TTL: 1500 * time.Millisecond, RetryInterval: -1}.Validate()
	for _, want := range []string{"client: nil", "ttl:", "retry_interval:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to contain %q", err, want)
		}
	}
}
