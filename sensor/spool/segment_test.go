package spool

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestGroupCommit holds the committer's first fdatasync until every Put
// has appended its record, and checks that one more commit covers all
// the others.
func TestGroupCommit(t *testing.T) {
	const n = 64
	s := open(t, Options{})
	var appended sync.WaitGroup
	appended.Add(n)
	s.appended = appended.Done
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var syncs atomic.Int32
	s.syncData = func(f *os.File) error {
		once.Do(func() {
			close(started)
			<-release
		})
		syncs.Add(1)
		return fdatasync(f)
	}

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.Put(t.Context(), smtpMeta(), strings.NewReader(fmt.Sprintf("message %d", i)))
		})
	}
	<-started
	appended.Wait()
	close(release)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	st := s.Stats()
	if st.Puts != n || st.Commits > 2 || syncs.Load() > 2 {
		t.Errorf("%d puts in %d commits with %d fdatasyncs, want %d puts in at most 2: the one held, and one for all the others",
			st.Puts, st.Commits, syncs.Load(), n)
	}
}

// recordSize is the size of the record of body with smtpMeta.
func recordSize(t *testing.T, body string) int64 {
	t.Helper()
	hdr, err := encodeHeader(strings.Repeat("0", idLen), smtpMeta())
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(appendRecord(nil, hdr, []byte(body), 0)))
}

func TestSegments(t *testing.T) {
	body := strings.Repeat("x", 1500)
	size := recordSize(t, body)
	// Two records per segment.
	s := open(t, Options{SegmentSize: 2*size + 10})
	var ids []string
	for range 12 {
		ids = append(ids, put(t, s, smtpMeta(), body))
	}
	segs := func() []string {
		var names []string
		for _, name := range files(t, s.dir) {
			if _, ok := parseSegName(name); ok {
				names = append(names, name)
			}
		}
		return names
	}
	if st := s.Stats(); st.Segments != 6 || st.DiskBytes != st.Bytes || st.Bytes != 12*size {
		t.Errorf("Stats: got %+v, want 6 segments, 12 records of %d bytes, on disk", st, size)
	}

	// A sealed segment goes once its records are all removed, not before.
	for _, id := range ids[:3] {
		if err := s.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	clean(t, s)
	want := []string{segName(2), segName(3), segName(4), segName(5), segName(6)}
	if diff := cmp.Diff(want, segs()); diff != "" {
		t.Errorf("segments (-want +got):\n%s", diff)
	}
	// So does the active one, once it is half full; the next Put starts
	// a new segment.
	for _, id := range ids[10:] {
		if err := s.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	clean(t, s)
	want = want[:len(want)-1]
	if diff := cmp.Diff(want, segs()); diff != "" {
		t.Errorf("segments after the active one emptied (-want +got):\n%s", diff)
	}
	ids = append(ids[3:10], put(t, s, smtpMeta(), body))
	want = append(want, segName(7))
	if diff := cmp.Diff(want, segs()); diff != "" {
		t.Errorf("segments after a Put (-want +got):\n%s", diff)
	}
	st := s.Stats()
	if st.Messages != 8 || st.Bytes != liveBytes(t, s.dir) || st.DiskBytes != 9*size {
		t.Errorf("Stats: got %+v, want 8 messages of %d bytes, %d on disk", st, liveBytes(t, s.dir), 9*size)
	}

	s = reopen(t, s, Options{SegmentSize: 2*size + 10})
	if diff := cmp.Diff(ids, s.List()); diff != "" {
		t.Errorf("List after reopen (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, segs()); diff != "" {
		t.Errorf("segments after reopen (-want +got):\n%s", diff)
	}
	for _, id := range ids {
		if got := content(t, s, id); got != body {
			t.Errorf("content of %s: %d bytes, want %d", id, len(got), len(body))
		}
	}
}

func TestCompaction(t *testing.T) {
	body := strings.Repeat("y", 1000)
	size := recordSize(t, body)
	// Three records per segment; compaction is due from 12 segments'
	// worth of removed records.
	opts := Options{SegmentSize: 3*size + 10}
	s := open(t, opts)
	var ids, kept []string
	for i := range 60 {
		id := put(t, s, smtpMeta(), fmt.Sprintf("%s %d", body, i))
		ids = append(ids, id)
		if i%3 == 0 && i < 57 {
			kept = append(kept, id)
		}
	}
	for _, id := range ids {
		if !slices.Contains(kept, id) {
			if err := s.Remove(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	clean(t, s)
	st := s.Stats()
	t.Logf("after compaction: %+v", st)
	// Sealed segments hold at most twice the live bytes, or the live
	// bytes and compactMin; the active one at most a segment.
	if limit := 2*st.Bytes + s.compactMin + s.segmentSize; st.Compactions == 0 || st.DiskBytes > limit {
		t.Errorf("Stats: got %+v, want compactions and at most %d bytes on disk", st, limit)
	}
	if diff := cmp.Diff(kept, s.List()); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	check := func() {
		t.Helper()
		for i, id := range ids {
			if slices.Contains(kept, id) {
				if got, want := content(t, s, id), fmt.Sprintf("%s %d", body, i); got != want {
					t.Errorf("content of %s: got %q, want %q", id, got, want)
				}
			}
		}
		if got, want := s.Stats().Bytes, liveBytes(t, s.dir); got != want {
			t.Errorf("Bytes: got %d, want %d", got, want)
		}
	}
	check()

	s = reopen(t, s, opts)
	if diff := cmp.Diff(kept, s.List()); diff != "" {
		t.Errorf("List after reopen (-want +got):\n%s", diff)
	}
	check()
	// A compacted message removed stays removed.
	if err := s.Remove(kept[0]); err != nil {
		t.Fatal(err)
	}
	kept = kept[1:]
	s = reopen(t, s, opts)
	if diff := cmp.Diff(kept, s.List()); diff != "" {
		t.Errorf("List after Remove and reopen (-want +got):\n%s", diff)
	}
	check()
}

// TestCopyOfARecord opens a spool in which a compaction copied a record to
// a later segment and a crash kept it from deleting the first: the later
// copy is the message, counted once, and a Remove covers both copies.
func TestCopyOfARecord(t *testing.T) {
	s := open(t, Options{})
	a := put(t, s, smtpMeta(), "copied")
	b := put(t, s, smtpMeta(), "not copied")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg, err := os.ReadFile(filepath.Join(s.dir, segName(1)))
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := scanRecord(bufio.NewReader(strings.NewReader(string(seg))), int64(len(seg)))
	if err != nil || rec.id != a {
		t.Fatalf("first record: %s, %v; want %s", rec.id, err, a)
	}
	if err := os.WriteFile(filepath.Join(s.dir, segName(2)), seg[:rec.len], 0o600); err != nil {
		t.Fatal(err)
	}

	s = open(t, Options{Dir: s.dir})
	if diff := cmp.Diff([]string{a, b}, s.List()); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if st := s.Stats(); st.Messages != 2 || st.Bytes != liveBytes(t, s.dir) || st.DiskBytes != int64(len(seg))+rec.len {
		t.Errorf("Stats: got %+v, want 2 messages of %d bytes", st, liveBytes(t, s.dir))
	}
	if got := content(t, s, a); got != "copied" {
		t.Errorf("content of %s: got %q, want %q", a, got, "copied")
	}
	if err := s.Remove(a); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, Options{})
	if diff := cmp.Diff([]string{b}, s.List()); diff != "" {
		t.Errorf("List after Remove and reopen (-want +got):\n%s", diff)
	}
	clean(t, s)
	// The segment of the copy holds nothing live, and is gone; the
	// cleaner's first pass rewrote the removal log.
	if diff := cmp.Diff([]string{rlogName(2), segName(1)}, files(t, s.dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestRemovalLogRewrite(t *testing.T) {
	const mailbox = "journal@pop.example.com"
	c := newClock(t0)
	opts := Options{Now: c.Now}
	s := open(t, opts)
	s.rlogSlack = 8
	var ids []string
	for i := range 30 {
		ids = append(ids, put(t, s, pop3Meta(mailbox, fmt.Sprintf("u%d", i)), "polled"))
	}
	for _, id := range ids {
		if err := s.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	clean(t, s)
	logs := func() []string {
		var names []string
		for _, name := range files(t, s.dir) {
			if _, ok := parseRlogName(name); ok {
				names = append(names, name)
			}
		}
		return names
	}
	// The first log was rewritten after 8 lines (by this pass or an
	// earlier one of the cleaner), and the older logs deleted.
	if got := logs(); len(got) != 1 || got[0] == rlogName(1) {
		t.Errorf("removal logs: got %v, want one later than %s", got, rlogName(1))
	}
	// The poller forgets the even UIDLs.
	if err := s.ForgetUIDLs(mailbox, func(uidl string) bool {
		var i int
		fmt.Sscanf(uidl, "u%d", &i)
		return i%2 == 1
	}); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		for i := range 30 {
			if got, want := s.HasUIDL(mailbox, fmt.Sprintf("u%d", i)), i%2 == 1; got != want {
				t.Errorf("HasUIDL(u%d): got %v, want %v", i, got, want)
			}
		}
		if st := s.Stats(); st.Messages != 0 || st.Tombstones != 15 {
			t.Errorf("Stats: got %+v, want no message, 15 tombstones", st)
		}
	}
	check()
	s = reopen(t, s, opts)
	check()
	// Open deleted the segment, and the cleaner's first pass keeps the
	// tombstones only.
	clean(t, s)
	got := files(t, s.dir)
	if len(got) != 1 || len(logs()) != 1 {
		t.Fatalf("files after reopen: got %v, want one removal log", got)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, got[0]))
	if err != nil {
		t.Fatal(err)
	}
	if rs, bad := parseRemovals(b); len(rs) != 15 || bad != 0 {
		t.Errorf("removal log: %d lines and %d bad ones, want 15 tombstones", len(rs), bad)
	}
	// Once the poller forgets them all, the log goes.
	if err := s.ForgetUIDLs(mailbox, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, opts)
	clean(t, s)
	if got := files(t, s.dir); len(got) != 0 {
		t.Errorf("files after forgetting every UIDL, reopen and a pass of the cleaner: %v, want none", got)
	}
}
