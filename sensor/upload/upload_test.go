package upload

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ospreysec/osprey/internal/testwait"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/internal/centraltest"
	"github.com/ospreysec/osprey/sensor/schedule"
	"github.com/ospreysec/osprey/sensor/spool"
)

// short backoffs keep the retries of these tests within milliseconds.
var short = schedule.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}

type fixture struct {
	central *centraltest.Server
	dir     string
	spool   *spool.Spool
	up      *Uploader
	stop    func()
}

// start opens a spool, and runs an uploader with opts (Spool and Client
// filled in) against a test central until the test ends or stop.
func start(t *testing.T, opts Options) *fixture {
	t.Helper()
	f := &fixture{central: centraltest.NewServer(t, centraltest.Options{Approve: true}), dir: t.TempDir()}
	sp, err := spool.Open(spool.Options{Dir: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	f.spool = sp
	client := f.central.Client(t, "sensor-1")
	if opts.Spool == nil {
		opts.Spool = sp
	}
	opts.Client = func(context.Context) (ospreyv1.SensorServiceClient, error) { return client, nil }
	f.up = New(opts)
	f.stop = f.run(t)
	return f
}

// run runs f.up until the returned stop, or the end of the test.
func (f *fixture) run(t *testing.T) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.up.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (f *fixture) put(t *testing.T, body string) string {
	t.Helper()
	id, err := f.spool.Put(t.Context(), spool.Meta{
		Source:   ospreyv1.MailSource_MAIL_SOURCE_SMTP,
		Envelope: &ospreyv1.Envelope{MailFrom: "a@example.com", RcptTo: []string{"b@example.org"}},
	}, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// refuse refuses the uploads of message id with err.
func refuse(id string, err error) func(string) error {
	return func(got string) error {
		if got == id {
			return err
		}
		return nil
	}
}

// waitEmpty waits until the spool holds no message.
func (f *fixture) waitEmpty(t *testing.T) {
	t.Helper()
	f.waitSpooled(t, 0)
}

// waitSpooled waits until the spool holds n messages.
func (f *fixture) waitSpooled(t *testing.T, n int) {
	t.Helper()
	testwait.For(t, fmt.Sprintf("the spool to hold %d messages", n), func() bool { return f.spool.Stats().Messages == n })
}

// waitStuck waits until Stuck reports n messages, and returns them.
func (f *fixture) waitStuck(t *testing.T, n int) []Stuck {
	t.Helper()
	testwait.For(t, fmt.Sprintf("%d messages reported stuck", n), func() bool { return len(f.up.Stuck()) == n })
	return f.up.Stuck()
}

func TestUploadsEachMessageOnce(t *testing.T) {
	// Messages spooled before the uploader starts, and while it runs.
	f := start(t, Options{Workers: 4, Unreachable: short, Refused: short})
	f.stop()
	want := map[string]string{}
	for i := range 30 {
		body := fmt.Sprintf("Subject: %d\r\n\r\nbefore\r\n", i)
		want[f.put(t, body)] = body
	}
	f.run(t)
	for i := range 30 {
		body := fmt.Sprintf("Subject: %d\r\n\r\nwhile running\r\n", i)
		want[f.put(t, body)] = body
	}
	got := f.central.WaitUploads(t, len(want))
	f.waitEmpty(t)
	// A message leaves the spool before its upload is counted.
	testwait.For(t, "every upload counted", func() bool { return f.up.Counters()["uploaded"] >= uint64(len(want)) })
	for id, body := range want {
		if string(got[id]) != body {
			t.Errorf("%s: the central got %q, want %q", id, got[id], body)
		}
		if n := f.central.Attempts(id); n != 1 {
			t.Errorf("%s: uploaded %d times, want once", id, n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("the central got %d messages, want %d", len(got), len(want))
	}
	c := f.up.Counters()
	if c["uploaded"] != uint64(len(want)) || c["upload_failures"] != 0 {
		t.Errorf("counters %v, want %d uploaded and no failures", c, len(want))
	}
}

func TestRefusedMessageWaitsAlone(t *testing.T) {
	// The refused message's backoff is an hour: within this test it is
	// tried once, and the others all go.
	f := start(t, Options{Workers: 2, Unreachable: short, Refused: schedule.Backoff{Min: time.Hour, Max: time.Hour}})
	f.stop()
	bad := f.put(t, "refused\r\n")
	f.central.RefuseUploads(refuse(bad, status.Error(codes.InvalidArgument, "the header declares 9 bytes")))
	var good []string
	for i := range 20 {
		good = append(good, f.put(t, fmt.Sprintf("message %d\r\n", i)))
	}
	f.run(t)
	f.central.WaitUploads(t, len(good))
	stuck := f.waitStuck(t, 1) // the refused message's one try, whenever it ended
	for _, id := range good {
		if n := f.central.Attempts(id); n != 1 {
			t.Errorf("%s: uploaded %d times, want once", id, n)
		}
	}
	if n := f.central.Attempts(bad); n != 1 {
		t.Errorf("the refused message was tried %d times, want once within its hour", n)
	}
	if _, err := f.spool.Get(bad); err != nil {
		t.Errorf("the refused message left the spool: %v", err)
	}
	if len(stuck) != 1 || stuck[0].ID != bad || stuck[0].Failures != 1 || status.Code(stuck[0].Err) != codes.InvalidArgument {
		t.Fatalf("Stuck() = %+v, want %s with 1 failure and InvalidArgument", stuck, bad)
	}
	if d := time.Until(stuck[0].Next); d < 29*time.Minute || d > time.Hour {
		t.Errorf("next try in %v, want within the hour's backoff", d)
	}
	if c := f.up.Counters(); c["upload_failures"] != 1 {
		t.Errorf("upload_failures = %d, want 1", c["upload_failures"])
	}
}

func TestRefusedMessageIsRetriedUntilItGoes(t *testing.T) {
	f := start(t, Options{Workers: 2, Unreachable: short, Refused: short})
	f.stop()
	bad := f.put(t, "refused for a while\r\n")
	f.central.RefuseUploads(refuse(bad, status.Error(codes.InvalidArgument, "refused")))
	f.run(t)
	f.central.WaitAttempts(t, bad, 3)
	// The third try followed the second failure, which Stuck reports once
	// the worker that saw it has recorded it.
	testwait.For(t, "2 failures or more of the refused message reported", func() bool {
		stuck := f.up.Stuck()
		return len(stuck) == 1 && stuck[0].ID == bad && stuck[0].Failures >= 2
	})
	f.central.RefuseUploads(nil)
	if got := f.central.WaitUploads(t, 1); string(got[bad]) != "refused for a while\r\n" {
		t.Errorf("the central got %q", got[bad])
	}
	f.waitEmpty(t)
	f.waitStuck(t, 0) // cleared once the upload went
}

func TestCentralOutageHoldsEveryUpload(t *testing.T) {
	f := start(t, Options{Workers: 4, Unreachable: short, Refused: schedule.Backoff{Min: time.Hour, Max: time.Hour}})
	f.central.Stop()
	var ids []string
	for i := range 10 {
		ids = append(ids, f.put(t, fmt.Sprintf("during the outage %d\r\n", i)))
	}
	// The uploads fail while the central is down...
	testwait.For(t, "3 uploads to fail while the central is down", func() bool { return f.up.Counters()["upload_failures"] >= 3 })
	// ...which is no message's fault: none is marked or left behind for
	// the hour of a refused message.
	if stuck := f.up.Stuck(); len(stuck) != 0 {
		t.Errorf("Stuck() = %+v during an outage, want none", stuck)
	}
	f.central.Start()
	got := f.central.WaitUploads(t, len(ids))
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			t.Errorf("%s not uploaded", id)
		}
	}
	f.waitEmpty(t)
}

// unreadable is a spool whose Get fails for one message, as a message whose
// checksum no longer matches.
type unreadable struct {
	*spool.Spool
	id string
}

func (u unreadable) Get(id string) (*spool.Message, error) {
	if id == u.id {
		return nil, fmt.Errorf("get %s: checksum mismatch", id)
	}
	return u.Spool.Get(id)
}

func TestUnreadableMessageIsKept(t *testing.T) {
	f := &fixture{central: centraltest.NewServer(t, centraltest.Options{Approve: true})}
	sp, err := spool.Open(spool.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	f.spool = sp
	bad := f.put(t, "unreadable\r\n")
	ok := f.put(t, "readable\r\n")
	client := f.central.Client(t, "sensor-1")
	f.up = New(Options{
		Spool:   unreadable{Spool: sp, id: bad},
		Client:  func(context.Context) (ospreyv1.SensorServiceClient, error) { return client, nil },
		Refused: schedule.Backoff{Min: time.Hour, Max: time.Hour}, Unreachable: short,
	})
	f.run(t)
	f.central.WaitUploads(t, 1)
	f.waitSpooled(t, 1)
	stuck := f.waitStuck(t, 1)
	if len(stuck) != 1 || stuck[0].ID != bad || !errors.Is(stuck[0].Err, errUnreadable) {
		t.Errorf("Stuck() = %+v, want %s unreadable", stuck, bad)
	}
	if _, err := sp.Get(bad); err != nil {
		t.Errorf("the unreadable message left the spool: %v", err)
	}
	if _, err := sp.Get(ok); !errors.Is(err, spool.ErrNotFound) {
		t.Errorf("the readable message is still spooled: %v", err)
	}
}

// An uploader stopped while the central holds its uploads leaves them in
// the spool; the next one sends them again, and the central records each
// once.
func TestStopLeavesUnansweredMessages(t *testing.T) {
	f := start(t, Options{Workers: 2, Unreachable: short, Refused: short})
	f.central.PauseUploads()
	a, b := f.put(t, "a\r\n"), f.put(t, "b\r\n")
	f.central.WaitAttempts(t, a, 1)
	f.central.WaitAttempts(t, b, 1)
	f.stop()
	for _, id := range []string{a, b} {
		if _, err := f.spool.Get(id); err != nil {
			t.Errorf("%s left the spool unanswered: %v", id, err)
		}
	}
	f.central.ResumeUploads()
	// A new uploader, as after a restart, learns of them from the spool.
	f.restart(t, Options{Workers: 2, Unreachable: short, Refused: short})
	f.central.WaitUploads(t, 2)
	f.waitEmpty(t)
}

// restart closes the spool of a stopped uploader, opens it again, and runs
// a new uploader with opts (Spool and Client filled in) over it, as a new
// process of the sensor would.
func (f *fixture) restart(t *testing.T, opts Options) {
	t.Helper()
	if err := f.spool.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := spool.Open(spool.Options{Dir: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reopened.Close() })
	f.spool = reopened
	client := f.central.Client(t, "sensor-1")
	opts.Spool = reopened
	opts.Client = func(context.Context) (ospreyv1.SensorServiceClient, error) { return client, nil }
	f.up = New(opts)
	f.stop = f.run(t)
}

// TestUploadSaysWhenItMayBeARetry: an upload says that the central may
// have had the message before (so that the central looks for its record
// first) on every try after the first, and on the first try of a message
// that was in the spool when the uploader started; a new message's first
// try does not.
func TestUploadSaysWhenItMayBeARetry(t *testing.T) {
	opts := Options{Workers: 2, Unreachable: short, Refused: short}
	f := start(t, opts)
	f.stop()
	old := f.put(t, "spooled before a restart\r\n")
	f.restart(t, opts)
	f.central.WaitUploads(t, 1)

	// The first try of this one fails as if its answer were lost.
	var mu sync.Mutex
	failed := map[string]bool{}
	f.central.RefuseUploads(func(id string) error {
		mu.Lock()
		defer mu.Unlock()
		if failed[id] {
			return nil
		}
		failed[id] = true
		return status.Error(codes.Unavailable, "the answer was lost")
	})
	retried := f.put(t, "tried twice\r\n")
	f.central.WaitUploads(t, 2)
	f.central.RefuseUploads(nil)
	fresh := f.put(t, "new\r\n")
	f.central.WaitUploads(t, 3)
	f.waitEmpty(t)

	for _, c := range []struct {
		name, id string
		want     []bool
	}{
		{"spooled before the start", old, []bool{true}},
		{"retried after a failure", retried, []bool{false, true}},
		{"new", fresh, []bool{false}},
	} {
		if got := f.central.MayBeRetry(c.id); !slices.Equal(got, c.want) {
			t.Errorf("%s: may_be_retry of each try %v, want %v", c.name, got, c.want)
		}
	}
}
