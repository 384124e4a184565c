package quarantine

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/sensorrpc"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// env is a central's side of the quarantine on a real etcd and SQLite,
// with one gateway sensor s1 whose stream the test plays: it answers the
// requests with the replies the test scripts.
type env struct {
	t      *testing.T
	st     *store.Store
	db     *sqlstore.Store
	router *sensorrpc.Router
	svc    *Service
	lease  clientv3.LeaseID

	mu      sync.Mutex
	asked   []*ospreyv1.SensorRequest
	answer  func(*ospreyv1.SensorRequest) *ospreyv1.SensorReply
	detach  func()
	stopped chan struct{}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	etcd := etcdtest.Start(t)
	e := &env{t: t, st: store.New(etcd.Client())}
	ctx := t.Context()
	if _, err := e.st.CreateTenant(ctx, store.AllTenants(), &ospreyv1.Tenant{Id: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.CreateSensor(ctx, store.AllTenants(), &ospreyv1.Sensor{Id: "s1", Tenant: "acme", Name: "gw",
		State: ospreyv1.SensorState_SENSOR_STATE_APPROVED}); err != nil {
		t.Fatal(err)
	}
	db, err := sqlstore.Open(ctx, sqlstore.Options{URL: filepath.Join(t.TempDir(), "osprey.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	e.router = sensorrpc.New(etcd.Client(), nil)
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.router.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.svc = New(Options{Store: e.st, DB: db, Requests: e.router})
	lease, err := etcd.Client().Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	e.lease = lease.ID
	// A message the central told s1 to quarantine.
	rec := &ospreyv1.MessageRecord{MessageId: "m1", SensorId: "s1", Tenant: "acme", Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP,
		Envelope: &ospreyv1.Envelope{MailFrom: "mallory@evil.example", RcptTo: []string{"bob@example.com"},
			Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND},
		Verdict: "detected", Disposition: &ospreyv1.Disposition{Action: ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE, Reason: "eicar"}}
	if _, _, err := db.RecordScan(ctx, store.AllTenants(), rec, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	return e
}

// online connects s1 to the router, answering with e.answer, and marks it
// online in its status; offline undoes both.
func (e *env) online() {
	e.t.Helper()
	if err := e.st.PutStatuses(e.t.Context(), e.lease, []store.StatusWrite{{Status: &ospreyv1.SensorRuntime{
		SensorId: "s1", Tenant: "acme", Online: true, LastSeen: timestamppb.Now()}}}); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	requests, detach := e.router.Attach(ctx, "s1")
	e.stopped = make(chan struct{})
	go func() {
		defer close(e.stopped)
		for {
			select {
			case <-ctx.Done():
				return
			case req := <-requests:
				e.mu.Lock()
				e.asked = append(e.asked, req)
				rep := e.answer(req)
				e.mu.Unlock()
				rep.Id = req.GetId()
				e.router.Reply(ctx, rep)
			}
		}
	}()
	e.detach = func() { cancel(); <-e.stopped; detach() }
	e.t.Cleanup(e.detach)
}

func (e *env) offline() {
	e.t.Helper()
	if e.detach != nil {
		e.detach()
	}
	if err := e.st.PutStatuses(e.t.Context(), e.lease, []store.StatusWrite{{Offline: true, Status: &ospreyv1.SensorRuntime{
		SensorId: "s1", Tenant: "acme", LastSeen: timestamppb.Now()}}}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) state() string {
	e.t.Helper()
	q, _, err := e.db.GetQuarantined(e.t.Context(), store.AllTenants(), "acme", "s1", "m1")
	if err != nil {
		e.t.Fatal(err)
	}
	return q.State + "/" + q.Pending
}

func released(queueID string) func(*ospreyv1.SensorRequest) *ospreyv1.SensorReply {
	return func(*ospreyv1.SensorRequest) *ospreyv1.SensorReply {
		return &ospreyv1.SensorReply{Result: &ospreyv1.SensorReply_QuarantineEntry{QuarantineEntry: &ospreyv1.QuarantineEntry{MessageId: "m1", QueueId: queueID}}}
	}
}

// TestActOnlineAndPending: an action on a connected sensor is done at
// once; on an offline one it waits, and Run's pass carries it out once
// the sensor is back on this node.
func TestActOnlineAndPending(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.answer = released("m1.released.1")
	e.online()
	out, err := e.svc.Act(ctx, store.AllTenants(), "alice", "s1", "m1", ActionReleaseTo, []string{"admin@example.com"})
	if err != nil || !out.Done || out.QueueID != "m1.released.1" {
		t.Fatalf("release to: %+v, %v", out, err)
	}
	if got := e.state(); got != "quarantined/" {
		t.Errorf("after a release to another address: %s, want still quarantined", got)
	}
	if _, err := e.svc.Act(ctx, store.AllTenants(), "alice", "s1", "m1", ActionReleaseTo, []string{"Admin <admin@example.com>"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("release to a display name: %v, want ErrInvalid", err)
	}

	e.offline()
	out, err = e.svc.Act(ctx, store.AllTenants(), "bob", "s1", "m1", ActionRelease, nil)
	if err != nil || out.Done {
		t.Fatalf("release while offline: %+v, %v; want it waiting", out, err)
	}
	if got := e.state(); got != "quarantined/release" {
		t.Errorf("waiting: %s", got)
	}
	// Nothing is done while no node holds the sensor.
	if err := e.svc.runPending(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.state(); got != "quarantined/release" {
		t.Errorf("with the sensor away: %s", got)
	}
	e.online()
	if err := e.svc.runPending(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.state(); got != "released/" {
		t.Errorf("once the sensor is back: %s, want released", got)
	}
	_, history, err := e.db.GetQuarantined(ctx, store.AllTenants(), "acme", "s1", "m1")
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, h := range history {
		steps = append(steps, h.Action+" by "+h.Actor)
	}
	want := []string{"quarantined by central", "released_to by alice", "release by bob", "released by bob"}
	if len(steps) != len(want) {
		t.Fatalf("history %q, want %q", steps, want)
	}
	for i := range want {
		if steps[i] != want[i] {
			t.Errorf("history %q, want %q", steps, want)
			break
		}
	}
	if _, err := e.svc.Act(ctx, store.AllTenants(), "bob", "s1", "m1", ActionDelete, nil); !errors.Is(err, ErrNotHeld) {
		t.Errorf("an action on a released message: %v, want ErrNotHeld", err)
	}
}

// TestPendingRefusedIsNotRetried: a waiting action the sensor refuses is
// recorded as failed and not tried again; a message the sensor no longer
// holds is marked so.
func TestPendingRefusedIsNotRetried(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.offline()
	if _, err := e.svc.Act(ctx, store.AllTenants(), "bob", "s1", "m1", ActionDelete, nil); err != nil {
		t.Fatal(err)
	}
	e.answer = func(*ospreyv1.SensorRequest) *ospreyv1.SensorReply {
		return &ospreyv1.SensorReply{Error: &ospreyv1.SensorError{Code: ospreyv1.SensorError_CODE_INVALID, Message: "no"}}
	}
	e.online()
	if err := e.svc.runPending(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.state(); got != "quarantined/" {
		t.Errorf("after the refusal: %s, want held with nothing pending", got)
	}
	e.mu.Lock()
	e.answer = func(*ospreyv1.SensorRequest) *ospreyv1.SensorReply {
		return &ospreyv1.SensorReply{Error: &ospreyv1.SensorError{Code: ospreyv1.SensorError_CODE_NOT_FOUND}}
	}
	e.mu.Unlock()
	if _, err := e.svc.Act(ctx, store.AllTenants(), "bob", "s1", "m1", ActionRelease, nil); !errors.Is(err, ErrNotHeld) {
		t.Errorf("release of what the sensor does not hold: %v, want ErrNotHeld", err)
	}
	if got := e.state(); got != "not_held/" {
		t.Errorf("then: %s, want not_held", got)
	}
}

// TestDownloadInPieces: a download asks the sensor piece by piece and
// writes the message whole.
func TestDownloadInPieces(t *testing.T) {
	e := newEnv(t)
	msg := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640,000 bytes: three pieces
	e.answer = func(req *ospreyv1.SensorRequest) *ospreyv1.SensorReply {
		r := req.GetQuarantineRead()
		start := min(r.GetOffset(), int64(len(msg)))
		end := min(start+int64(r.GetLength()), int64(len(msg)))
		return &ospreyv1.SensorReply{Result: &ospreyv1.SensorReply_QuarantineChunk{QuarantineChunk: &ospreyv1.QuarantineChunk{
			Data: msg[start:end], Size: int64(len(msg))}}}
	}
	e.online()
	var got bytes.Buffer
	var size int64
	if err := e.svc.Download(e.t.Context(), store.TenantScope("acme"), "s1", "m1", func(n int64) { size = n }, &got); err != nil {
		t.Fatal(err)
	}
	if size != int64(len(msg)) || !bytes.Equal(got.Bytes(), msg) {
		t.Errorf("downloaded %d bytes (size %d), want the %d of the message", got.Len(), size, len(msg))
	}
	e.mu.Lock()
	n := len(e.asked)
	e.mu.Unlock()
	if n != 3 {
		t.Errorf("%d requests, want 3 pieces of 256 KB", n)
	}
	if err := e.svc.Download(e.t.Context(), store.TenantScope("other"), "s1", "m1", nil, &got); err == nil {
		t.Error("another tenant downloaded the message")
	}
}
