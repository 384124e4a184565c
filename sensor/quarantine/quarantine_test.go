package quarantine_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/sensor/quarantine"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second) // every message later than the one before
	return c.t
}

func open(t *testing.T, dir string, evicted *[]string) *quarantine.Quarantine {
	t.Helper()
	c := &clock{t: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
	q, err := quarantine.Open(quarantine.Options{Dir: dir, Now: c.now, OnEvict: func(e quarantine.Entry) {
		if evicted != nil {
			*evicted = append(*evicted, e.ID)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func ids(q *quarantine.Quarantine) []string {
	var out []string
	for _, e := range q.List() {
		out = append(out, e.ID)
	}
	return out
}

func TestPutGetBodySurviveReopen(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, nil)
	body := []byte("From: a@example.org\r\nSubject: invoice\r\n\r\nhello\r\n")
	in := quarantine.Entry{ID: "m/1", From: "a@example.org", Rcpts: []string{"b@example.com"}, Direction: "inbound",
		Verdict: "detected", Reason: "eicar", Subject: "invoice"}
	added, err := q.Put(in, body)
	if err != nil || !added {
		t.Fatalf("Put: %v, %v; want added", added, err)
	}
	if added, err := q.Put(in, body); err != nil || added {
		t.Errorf("Put again: %v, %v; want nothing added", added, err)
	}
	q = open(t, dir, nil) // as after a restart
	got, err := q.Get("m/1")
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.At, want.Size = got.At, int64(len(body))
	if d := cmp.Diff(want, got); d != "" || got.At.IsZero() {
		t.Errorf("entry after reopen (-want +got):\n%s", d)
	}
	b, err := q.Body("m/1")
	if err != nil || string(b) != string(body) {
		t.Errorf("Body: %q, %v; want %q", b, err, body)
	}
	if st := q.Stats(); st.Messages != 1 || st.Bytes != int64(len(body)) {
		t.Errorf("Stats %+v, want 1 message of %d bytes", st, len(body))
	}
	if err := q.Remove("m/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Body("m/1"); !errors.Is(err, quarantine.ErrNotFound) {
		t.Errorf("Body after Remove: %v, want ErrNotFound", err)
	}
	if err := q.Remove("m/1"); !errors.Is(err, quarantine.ErrNotFound) {
		t.Errorf("Remove twice: %v, want ErrNotFound", err)
	}
	if q = open(t, dir, nil); len(q.List()) != 0 {
		t.Errorf("after Remove and a restart: %v, want empty", ids(q))
	}
}

func TestBoundsRemoveTheOldestFirst(t *testing.T) {
	var evicted []string
	q := open(t, t.TempDir(), &evicted)
	body := []byte(strings.Repeat("x", 100))
	for _, id := range []string{"a", "b", "c"} {
		if _, err := q.Put(quarantine.Entry{ID: id, Rcpts: []string{"r@example.com"}}, body); err != nil {
			t.Fatal(err)
		}
	}
	q.Apply(2, 0)
	if d := cmp.Diff([]string{"c", "b"}, ids(q)); d != "" {
		t.Errorf("after a bound of 2 messages (-want +got):\n%s", d)
	}
	q.Apply(10, 250) // bytes: two messages of 100 fit, three do not
	if _, err := q.Put(quarantine.Entry{ID: "d"}, body); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"d", "c"}, ids(q)); d != "" {
		t.Errorf("after a bound of 250 bytes (-want +got):\n%s", d)
	}
	// A message larger than the bound is kept: the newest is never evicted.
	if _, err := q.Put(quarantine.Entry{ID: "big"}, []byte(strings.Repeat("y", 300))); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"big"}, ids(q)); d != "" {
		t.Errorf("after a message past the bound (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"a", "b", "c", "d"}, evicted); d != "" {
		t.Errorf("evicted (-want +got):\n%s", d)
	}
}

func TestOpenCleansUpAfterACrash(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, nil)
	if _, err := q.Put(quarantine.Entry{ID: "ok"}, []byte("body\r\n")); err != nil {
		t.Fatal(err)
	}
	// A write a crash cut short, and a file that is not ours to read.
	if err := os.WriteFile(filepath.Join(dir, "6161.msg.tmp"), []byte("osprey-quarantine 1 9\n{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "6262.msg"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	q = open(t, dir, nil)
	if d := cmp.Diff([]string{"ok"}, ids(q)); d != "" {
		t.Errorf("after the crash (-want +got):\n%s", d)
	}
	if _, err := os.Stat(filepath.Join(dir, "6161.msg.tmp")); !os.IsNotExist(err) {
		t.Errorf("the half-written file is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "6262.msg")); err != nil {
		t.Errorf("the unreadable file was removed: %v; want it left for a person", err)
	}
	if got := q.Stats().Unreadable; len(got) != 1 || got[0] != "6262.msg" {
		t.Errorf("unreadable files %q, want 6262.msg named for the status", got)
	}
}

func TestReleasedIsRemembered(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, nil)
	if q.Released("m1") {
		t.Fatal("m1 released before anything happened")
	}
	if err := q.MarkReleased("m1"); err != nil {
		t.Fatal(err)
	}
	if q = open(t, dir, nil); !q.Released("m1") || q.Released("m2") {
		t.Errorf("after a restart: m1 released %v, m2 released %v; want true, false", q.Released("m1"), q.Released("m2"))
	}
}
