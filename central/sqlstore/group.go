package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"
)

// groupCommit makes one SQLite transaction of the RecordScan calls that
// wait at the same time. SQLite has one writer at a time, and each commit
// waits for its fsync (synchronous=FULL: a record must be durable before
// the sensor deletes its copy); a transaction for every upload would cap a
// node at one upload per fsync. With one for all those waiting, a commit's
// fsync serves them all, as etcd's and PostgreSQL's own group commits do.
// A batch fails as a whole (only when the database does): every caller in
// it gets the error, and its sensor retries.
type groupCommit struct {
	s    *Store
	reqs chan *groupReq
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

type groupReq struct {
	w   *recordWrite
	err chan error
}

// maxGroup bounds the writes of one transaction.
const maxGroup = 256

// groupTimeout bounds one batch's transaction: it serves many callers, so
// no one caller's context governs it.
const groupTimeout = 30 * time.Second

// errClosed is the error of a write submitted after Close.
var errClosed = errors.New("the message store is closed")

func newGroupCommit(s *Store) *groupCommit {
	g := &groupCommit{s: s, reqs: make(chan *groupReq), quit: make(chan struct{}), done: make(chan struct{})}
	go g.run()
	return g
}

// do runs w in the next batch and waits for its commit. A caller whose ctx
// ends first gets ctx's error, though w may still be committed (an upload
// retried then is answered as a duplicate).
func (g *groupCommit) do(ctx context.Context, w *recordWrite) error {
	r := &groupReq{w: w, err: make(chan error, 1)}
	select {
	case g.reqs <- r:
	case <-g.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.err:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *groupCommit) run() {
	defer close(g.done)
	for {
		var batch []*groupReq
		select {
		case r := <-g.reqs:
			batch = append(batch, r)
		case <-g.quit:
			return
		}
	collect:
		for len(batch) < maxGroup {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
			default:
				break collect
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
		err := g.s.inTx(ctx, func(tx *sql.Tx) error {
			for _, r := range batch {
				// A batch is one transaction: a write that failed, and
				// the batch with it, starts afresh.
				r.w.prev, r.w.seq = nil, 0
				if err := g.s.record(ctx, tx, r.w); err != nil {
					return err
				}
			}
			return nil
		})
		cancel()
		for _, r := range batch {
			r.err <- err
		}
	}
}

// close stops taking writes and waits for the batch under way.
func (g *groupCommit) close() {
	g.once.Do(func() { close(g.quit) })
	<-g.done
}
