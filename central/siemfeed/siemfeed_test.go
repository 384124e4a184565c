package siemfeed

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ospreysec/osprey/central/etcdembed"
	"github.com/ospreysec/osprey/central/siem"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/internal/syslogtest"
	"github.com/ospreysec/osprey/internal/testwait"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// waitOnce waits until every alert in ids reached r, and fails unless each
// did exactly once: why the test expects no resend.
func waitOnce(t *testing.T, r *syslogtest.Receiver, ids []string, why string) {
	t.Helper()
	r.WaitIDs(t, 30*time.Second, ids...)
	for _, id := range ids {
		if n := r.Count(id); n != 1 {
			t.Errorf("alert %s arrived %d times, want once (%s)", id, n, why)
		}
	}
}

// cluster is an etcd and a SQL store that the nodes share, and what the
// test does to them as an operator would.
type cluster struct {
	t         *testing.T
	etcd      *etcdembed.Server
	endpoints []string
	dbPath    string
	st        *store.Store
	alertDB   *sqlstore.Store // where the test records alerts, as some node would
	n         int
}

func newCluster(t *testing.T) *cluster {
	srv := etcdtest.Start(t)
	c := &cluster{t: t, etcd: srv, endpoints: srv.Endpoints(), dbPath: filepath.Join(t.TempDir(), "osprey.db")}
	c.st = store.New(c.client())
	c.alertDB = c.sqlStore()
	if _, err := c.st.CreateTenant(t.Context(), store.AllTenants(), &ospreyv1.Tenant{Id: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) client() *clientv3.Client {
	// The node whose client a test closes retries until it is stopped:
	// the client's own log of that would fill the output.
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// sqlStore opens the shared SQL store, as a node does.
func (c *cluster) sqlStore() *sqlstore.Store {
	c.t.Helper()
	db, err := sqlstore.Open(c.t.Context(), sqlstore.Options{URL: c.dbPath})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { db.Close() })
	return db
}

func (c *cluster) export(addr string) {
	c.t.Helper()
	if _, err := c.st.PutExport(c.t.Context(), store.AllTenants(), "acme", &ospreyv1.SyslogExport{Enabled: addr != "", Address: addr}, store.AnyVersion); err != nil {
		c.t.Fatal(err)
	}
}

// alerts records n messages with an alert each and returns the alerts' ids.
func (c *cluster) alerts(n int) []string {
	c.t.Helper()
	var ids []string
	for range n {
		c.n++
		rec := &ospreyv1.MessageRecord{MessageId: fmt.Sprintf("m%d", c.n), SensorId: "s1", Tenant: "acme", Verdict: "detected",
			Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP}
		alert := &ospreyv1.Alert{Severity: ospreyv1.Severity_SEVERITY_HIGH, Verdict: "detected",
			Headers: &ospreyv1.HeaderSummary{Subject: fmt.Sprint("alert ", c.n)}}
		stored, _, err := c.alertDB.RecordScan(c.t.Context(), store.AllTenants(), rec, alert, time.Now())
		if err != nil {
			c.t.Fatal(err)
		}
		ids = append(ids, stored.GetAlertId())
	}
	return ids
}

// started waits until the leader started the tenant's feed: its cursor is
// recorded. An export turned on starts with the alerts made from then on,
// so a test that records alerts before then would see the first skipped.
func (c *cluster) started() {
	c.t.Helper()
	testwait.For(c.t, "the export's cursor", func() bool {
		_, ok, err := c.st.ExportCursor(c.t.Context(), "acme")
		return err == nil && ok
	})
}

// node is one central node's export: its own etcd client, SQL store,
// export cache, exporter and feeder.
type node struct {
	cli    *clientv3.Client
	ex     *siem.Exporter
	f      *Feeder
	cancel context.CancelFunc
	done   chan struct{}
}

// node starts a node whose election session lasts ttl seconds: long where
// a test counts copies (a session that ran out on a starved machine would
// hand over, and a handover sends the last moments again), short where it
// waits for a dead node's session to run out.
func (c *cluster) node(name string, ttl int) *node { return c.nodeQueue(name, ttl, 0) }

// nodeQueue is node with an exporter queue of queue alerts (0: the default).
func (c *cluster) nodeQueue(name string, ttl, queue int) *node {
	c.t.Helper()
	cli := c.client()
	st := store.New(cli)
	cache := store.NewExportCache(st, store.CacheOptions{})
	ex, err := siem.New(siem.Options{QueueSize: queue, ResendWindow: 300 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		c.t.Fatal(err)
	}
	f, err := New(Options{Client: cli, Store: st, Alerts: c.sqlStore(), Exports: cache, Exporter: ex, NodeName: name, SessionTTL: ttl, Interval: 100 * time.Millisecond})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{cli: cli, ex: ex, f: f, cancel: cancel, done: make(chan struct{})}
	// As in central.Run, the exporter outlives its feeder.
	exportCtx, stopExport := context.WithCancel(context.Background())
	exported := make(chan struct{})
	go func() { defer close(exported); _ = ex.Run(exportCtx) }()
	var wg sync.WaitGroup
	wg.Go(func() { _ = cache.Run(ctx) })
	wg.Go(func() { _ = f.Run(ctx) })
	go func() {
		wg.Wait()
		stopExport()
		<-exported
		close(n.done)
	}()
	c.t.Cleanup(n.stop)
	return n
}

// stop stops the node as a clean shutdown does.
func (n *node) stop() {
	n.cancel()
	<-n.done
}

func (n *node) leads() bool { return testutil.ToFloat64(n.f.leader) == 1 }

// unreachable returns a loopback address where nothing listens.
func unreachable(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestOneNodeExportsEachAlertOnce runs two nodes: one leads, every alert
// arrives once; after a clean stop of the leader the other takes over at
// once, and the alerts made meanwhile arrive too.
func TestOneNodeExportsEachAlertOnce(t *testing.T) {
	c := newCluster(t)
	r := syslogtest.Listen(t)
	c.export(r.Addr())
	a, b := c.node("a", 10), c.node("b", 10)
	testwait.For(t, "a node to lead", func() bool { return a.leads() || b.leads() })
	first, second := a, b
	if b.leads() {
		first, second = b, a
	}
	c.started()
	ids := c.alerts(50)
	waitOnce(t, r, ids, "one node leads")
	if second.leads() {
		t.Fatal("both nodes lead")
	}

	first.stop()
	testwait.For(t, "the other node to lead", second.leads)
	more := c.alerts(50)
	r.WaitIDs(t, 30*time.Second, append(ids, more...)...)
}

// TestCrashedLeaderLosesNothing: alerts queued on a leader while the
// receiver is unreachable, when that node dies without a word (its etcd
// client closed: no resignation, its session runs out), reach the
// receiver through the node that takes over.
func TestCrashedLeaderLosesNothing(t *testing.T) {
	c := newCluster(t)
	c.export(unreachable(t))
	a := c.node("a", 2)
	testwait.For(t, "a to lead", a.leads)
	c.started()
	b := c.node("b", 10)
	ids := c.alerts(30)
	testwait.For(t, "a to queue the alerts", func() bool { return a.ex.Room("acme") == siem.DefaultQueueSize-len(ids) })

	a.cli.Close() // the crash: a's session is never revoked
	testwait.For(t, "b to lead", b.leads)
	r := syslogtest.Listen(t)
	c.export(r.Addr())
	waitOnce(t, r, ids, "it never reached a receiver before")
	// b records its progress: a third node would not send them again.
	testwait.For(t, "the cursor to pass the alerts", func() bool {
		cur, ok, err := c.st.ExportCursor(t.Context(), "acme")
		last, _ := b.ex.Delivered("acme")
		return err == nil && ok && cur == last
	})
}

// TestStopsWithoutQuorum: a node that waits to lead stops when it is told
// to though etcd no longer answers (etcd's Campaign cleans up after itself
// with no deadline, and held the node's stop until the quorum was back).
func TestStopsWithoutQuorum(t *testing.T) {
	c := newCluster(t)
	a := c.node("a", 10)
	testwait.For(t, "a to lead", a.leads)
	b := c.node("b", 10)
	testwait.For(t, "b to campaign", func() bool {
		resp, err := c.client().Get(t.Context(), store.ExportLeaderPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 2
	})
	c.etcd.Close()
	b.cancel()
	testwait.For(t, "b to stop", func() bool {
		select {
		case <-b.done:
			return true
		default:
			return false
		}
	})
}

// TestTurnedOffForgetsTheCursor: an export turned off and on again starts
// with the alerts made from then on.
func TestTurnedOffForgetsTheCursor(t *testing.T) {
	c := newCluster(t)
	r := syslogtest.Listen(t)
	c.export(r.Addr())
	a := c.node("a", 10)
	testwait.For(t, "a to lead", a.leads)
	c.started()
	r.WaitIDs(t, 30*time.Second, c.alerts(3)...)
	c.export("")
	testwait.For(t, "the cursor to be gone", func() bool {
		_, ok, err := c.st.ExportCursor(t.Context(), "acme")
		return err == nil && !ok
	})
	off := c.alerts(3)
	c.export(r.Addr())
	c.started()
	on := c.alerts(3)
	r.WaitIDs(t, 30*time.Second, on...)
	// Alerts go out in the order they were made: had the ones made while
	// the export was off been sent, they would have come first.
	for _, id := range off {
		if r.Count(id) != 0 {
			t.Errorf("alert %s, made while the export was off, was exported", id)
		}
	}
}

// TestFullQueue: with a queue of 5 and the receiver down, the feed stops
// at 5 alerts of 20, and reads the rest once there is room. All 20 arrive,
// each once.
func TestFullQueue(t *testing.T) {
	c := newCluster(t)
	c.export(unreachable(t))
	a := c.nodeQueue("a", 10, 5)
	testwait.For(t, "a to lead", a.leads)
	testwait.For(t, "the export to be applied", func() bool { return a.ex.Room("acme") == 5 })
	c.started()
	ids := c.alerts(20)
	testwait.For(t, "the queue to be full", func() bool { return a.ex.Room("acme") == 0 })
	r := syslogtest.Listen(t)
	c.export(r.Addr())
	waitOnce(t, r, ids, "each was read once")
}
