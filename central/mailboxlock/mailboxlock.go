// Package mailboxlock keeps a POP3 mailbox to one poller across the central
// nodes that run a Sensor component and share one POP3 configuration. It is
// the etcd side of pop3poll.Lock: the sensor packages must not import etcd,
// so cmd/osprey hands a [Locker] to the sensor through
// sensor.Options.MailboxLock.
//
// # Design
//
// A Locker holds one etcd session (a lease with a short TTL, default 10 s,
// kept alive by the client) and takes a concurrency.Mutex per mailbox under
// /osprey/v1/cluster/pop3-locks/<sha256 of "user@server:port">/ (the
// server name in lower case). Acquire never queues in etcd: it tries the
// mutex (TryLock), and while another node holds it, it logs so once and
// tries again every RetryInterval; the poller's status says meanwhile that
// another node polls the mailbox. An etcd error ends Acquire with it, so
// the poller shows it and backs off.
//
// The holder keeps the lock while it polls the mailbox, and gives it up
// (release) when it stops: shutdown, or a configuration that disables the
// integration or points it to another mailbox; the mutex key is deleted
// then and a standby node takes over within RetryInterval. When the holder
// dies, its lease expires after the TTL and the key with it; a standby node
// takes over within TTL + RetryInterval.
//
// When the session is lost behind the holder's back (etcd unreachable for
// the TTL, or the lease revoked), the channel that Acquire returned is
// closed: the poller cuts its POP3 connection at once, without QUIT, so the
// server deletes nothing of that session and no further DELE is sent. The
// next Acquire opens a new session. The client closes the channel when its
// own view of the lease deadline passes, which trails the server's by the
// network round trip of the last keep-alive: for that instant both nodes may
// poll, and a message may then be spooled by both. A holder that dies
// between spooling a batch and QUIT leaves that batch to be retrieved
// again by the next holder. Neither raises a second alert: the central
// records a POP3 message under its mailbox and UIDL too (store.RecordScan),
// so its second upload, from whichever sensor, is a duplicate of the first.
// Nothing is lost, since deletions need QUIT.
package mailboxlock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Prefix is where the mailbox locks live in etcd (see central/store's key
// layout).
const Prefix = "/osprey/v1/cluster/pop3-locks/"

// Defaults of the zero Options fields.
const (
	DefaultTTL           = 10 * time.Second
	DefaultRetryInterval = 5 * time.Second
)

// unlockTimeout bounds a release.
const unlockTimeout = 3 * time.Second

// Options configure a Locker.
type Options struct {
	// Client reaches etcd. Required.
	Client *clientv3.Client
	// Node names this node in the log lines.
	Node string
	// TTL is the session's lease time to live, in whole seconds; 0 means
	// DefaultTTL. A dead holder's lock is free after it.
	TTL time.Duration
	// RetryInterval is how often a node that does not hold a lock tries
	// to take it; 0 means DefaultRetryInterval.
	RetryInterval time.Duration
	// Logger receives the log lines; nil discards them.
	Logger *slog.Logger
}

// Validate reports every problem of o.
func (o Options) Validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("client: nil"))
	}
	if o.TTL < 0 || o.TTL%time.Second != 0 {
		errs = append(errs, fmt.Errorf("ttl: %v is not a positive number of whole seconds", o.TTL))
	}
	if o.RetryInterval < 0 {
		errs = append(errs, fmt.Errorf("retry_interval: %v is negative", o.RetryInterval))
	}
	return errors.Join(errs...)
}

// Locker takes mailbox locks in etcd: a pop3poll.Lock.
type Locker struct {
	opts Options
	log  *slog.Logger
	// ctx ends the sessions; cancelled by Close.
	ctx    context.Context
	cancel context.CancelFunc

	// waiting counts the callers waiting for another holder in this
	// process (tests read it).
	waiting atomic.Int32

	mu     sync.Mutex
	sess   *concurrency.Session // nil until needed, replaced once Done
	held   map[string]chan struct{}
	closed bool
}

// New returns a Locker; it opens its etcd session when first needed.
func New(opts Options) (*Locker, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("mailbox lock options: %w", err)
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.RetryInterval == 0 {
		opts.RetryInterval = DefaultRetryInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Locker{
		opts:   opts,
		log:    log,
		ctx:    ctx,
		cancel: cancel,
		held:   map[string]chan struct{}{},
	}, nil
}

// Key returns the prefix of the lock of mailbox ("user@server:port"): the
// SHA-256 of the mailbox with the server name in lower case, so that no
// user or host name reaches a key.
func Key(mailbox string) string {
	if i := strings.LastIndexByte(mailbox, '@'); i >= 0 {
		mailbox = mailbox[:i] + strings.ToLower(mailbox[i:])
	}
	sum := sha256.Sum256([]byte(mailbox))
	return Prefix + hex.EncodeToString(sum[:])
}

// ErrClosed is returned by Acquire after Close.
var ErrClosed = errors.New("mailbox lock: closed")

// Acquire takes the lock of mailbox, trying every RetryInterval while
// another node holds it, until ctx is done. lost is closed when the etcd
// session ends behind the holder's back; release gives the lock up (it may
// be called more than once).
func (l *Locker) Acquire(ctx context.Context, mailbox string) (lost <-chan struct{}, release func(), err error) {
	key := Key(mailbox)
	// One holder per mailbox in this process too: the mutex key is the
	// session's, so etcd cannot tell two holders of one Locker apart.
	local, err := l.holdLocal(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			l.releaseLocal(key, local)
		}
	}()
	waiting := false
	for {
		s, err := l.session(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("lock mailbox %s: %w", mailbox, err)
		}
		m := concurrency.NewMutex(s, key)
		tctx, cancel := context.WithTimeout(ctx, l.opts.TTL)
		err = m.TryLock(tctx)
		cancel()
		switch {
		case err == nil:
			if waiting {
				l.log.Info("took over the mailbox lock", "mailbox", mailbox, "node", l.opts.Node)
			} else {
				l.log.Debug("took the mailbox lock", "mailbox", mailbox, "node", l.opts.Node)
			}
			return s.Done(), sync.OnceFunc(func() { l.unlock(s, m, mailbox, key, local) }), nil
		case ctx.Err() != nil:
			return nil, nil, ctx.Err()
		case !errors.Is(err, concurrency.ErrLocked):
			return nil, nil, fmt.Errorf("lock mailbox %s: %w", mailbox, err)
		}
		if !waiting {
			waiting = true
			l.log.Info("another node polls the mailbox; this node skips it while that lasts", "mailbox", mailbox, "node", l.opts.Node)
		}
		t := time.NewTimer(l.opts.RetryInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		case <-l.ctx.Done():
			t.Stop()
			return nil, nil, ErrClosed
		case <-t.C:
		}
	}
}

// unlock gives up the lock of a holder.
func (l *Locker) unlock(s *concurrency.Session, m *concurrency.Mutex, mailbox, key string, local chan struct{}) {
	defer l.releaseLocal(key, local)
	select {
	case <-s.Done():
		return // the key went with the lease
	default:
	}
	// Bounded, as shutdown is: should it fail, the key goes with the lease.
	ctx, cancel := context.WithTimeout(context.Background(), min(l.opts.TTL, unlockTimeout))
	defer cancel()
	if err := m.Unlock(ctx); err != nil {
		// The key expires with the session's lease at the latest.
		l.log.Warn("cannot release the mailbox lock; it expires with the session", "mailbox", mailbox, "err", err)
		return
	}
	l.log.Debug("released the mailbox lock", "mailbox", mailbox)
}

// holdLocal waits until no other caller of this Locker holds key.
func (l *Locker) holdLocal(ctx context.Context, key string) (chan struct{}, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, ErrClosed
		}
		busy, ok := l.held[key]
		if !ok {
			ch := make(chan struct{})
			l.held[key] = ch
			l.mu.Unlock()
			return ch, nil
		}
		l.waiting.Add(1)
		l.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			l.waiting.Add(-1)
			return nil, ctx.Err()
		}
		l.waiting.Add(-1)
	}
}

func (l *Locker) releaseLocal(key string, ch chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[key] == ch {
		delete(l.held, key)
		close(ch)
	}
}

// session returns the live session, opening a new one when there is none
// or the last one ended.
func (l *Locker) session(ctx context.Context) (*concurrency.Session, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if s := l.sess; s != nil {
		select {
		case <-s.Done():
			l.log.Warn("etcd session of the mailbox locks ended; opening a new one", "node", l.opts.Node, "lease", fmt.Sprintf("%x", s.Lease()))
		default:
			return s, nil
		}
	}
	// Grant under ctx (and the TTL), so that an unreachable etcd makes an
	// error rather than a hang; the session then lives until Close.
	gctx, cancel := context.WithTimeout(ctx, l.opts.TTL)
	defer cancel()
	ttl := int64(l.opts.TTL / time.Second)
	lease, err := l.opts.Client.Grant(gctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("etcd session: %w", err)
	}
	s, err := concurrency.NewSession(l.opts.Client, concurrency.WithLease(lease.ID), concurrency.WithTTL(int(ttl)), concurrency.WithContext(l.ctx))
	if err != nil {
		return nil, fmt.Errorf("etcd session: %w", err)
	}
	l.sess = s
	return s, nil
}

// Close ends the session, revoking its lease: every lock of this Locker is
// released, and Acquire returns ErrClosed from then on.
func (l *Locker) Close() error {
	l.mu.Lock()
	s := l.sess
	l.sess, l.closed = nil, true
	l.mu.Unlock()
	var err error
	if s != nil {
		select {
		case <-s.Done():
			// The lease expired, or the client is gone: nothing to revoke.
		default:
			if err = s.Close(); err != nil {
				err = fmt.Errorf("close etcd session: %w", err)
			}
		}
	}
	l.cancel()
	return err
}
