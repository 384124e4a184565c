package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the tests' clock when they need a fixed one.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for Options.Now.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// open opens a spool in opts.Dir (a fresh temp dir when empty) and closes
// it at the end of the test.
func open(t *testing.T, opts Options) *Spool {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// reopen closes s and opens its directory again with opts.
func reopen(t *testing.T, s *Spool, opts Options) *Spool {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	opts.Dir = s.dir
	return open(t, opts)
}

func smtpMeta() Meta {
	return Meta{
		Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP,
		Envelope: &ospreyv1.Envelope{
			MailFrom:   "alice@example.com",
			RcptTo:     []string{"bob@example.org", "carol@example.org"},
			ClientAddr: "192.0.2.7:41234",
			Helo:       "mx.example.com",
			Tls:        true,
			ReceivedAt: timestamppb.New(t0),
		},
	}
}

func pop3Meta(mailbox, uidl string) Meta {
	return Meta{
		Source: ospreyv1.MailSource_MAIL_SOURCE_POP3,
		Envelope: &ospreyv1.Envelope{
			Mailbox:    mailbox,
			ReceivedAt: timestamppb.New(t0),
		},
		UIDL: uidl,
	}
}

func put(t *testing.T, s *Spool, m Meta, body string) string {
	t.Helper()
	id, err := s.Put(t.Context(), m, strings.NewReader(body))
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return id
}

// content reads the bytes of message id.
func content(t *testing.T, s *Spool, id string) string {
	t.Helper()
	m, err := s.Get(id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	rc, err := m.Open()
	if err != nil {
		t.Fatalf("Open(%s): %v", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	if int64(len(b)) != m.Size {
		t.Errorf("read %d bytes of %s, Size says %d", len(b), id, m.Size)
	}
	return string(b)
}

// files lists the names in dir other than LOCK and RESERVE.
func files(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		if de.Name() != lockName && de.Name() != reserveName {
			names = append(names, de.Name())
		}
	}
	return names
}

// clean runs a pass of the cleaner and fails the test on an error.
func clean(t *testing.T, s *Spool) {
	t.Helper()
	if err := s.clean(); err != nil {
		t.Fatalf("clean: %v", err)
	}
}

var cmpMeta = cmp.Options{protocmp.Transform()}

func TestPutGetRemove(t *testing.T) {
	tests := []struct {
		name string
		meta Meta
		body string
	}{
		{"smtp", smtpMeta(), "From: alice@example.com\r\nSubject: hi\r\n\r\nhello\r\n"},
		{"pop3", pop3Meta("journal@mail.example.com", "UID-1"), "Subject: polled\r\n\r\nbody\r\n"},
		{"empty body", smtpMeta(), ""},
		{"no envelope", Meta{Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP}, "x"},
		{"several chunks", smtpMeta(), strings.Repeat("0123456789abcdef", 3*chunkSize/16+7)},
		{"spilled", smtpMeta(), strings.Repeat("0123456789abcdef", spillSize/16+chunkSize/16+3)},
		{"spilled pop3", pop3Meta("journal@mail.example.com", "UID-2"), strings.Repeat("fedcba9876543210", 2*spillSize/16+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, Options{Now: newClock(t0).Now})
			id := put(t, s, tt.meta, tt.body)
			if !validID(id) {
				t.Errorf("id %q is not a valid id", id)
			}
			m, err := s.Get(id)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			want := tt.meta
			if want.Envelope == nil {
				want.Envelope = &ospreyv1.Envelope{ReceivedAt: timestamppb.New(t0)}
			}
			if diff := cmp.Diff(want, m.Meta, cmpMeta); diff != "" {
				t.Errorf("Meta (-want +got):\n%s", diff)
			}
			if got := content(t, s, id); got != tt.body {
				t.Errorf("content: got %d bytes, want %d", len(got), len(tt.body))
			}
			if diff := cmp.Diff([]string{id}, s.List()); diff != "" {
				t.Errorf("List (-want +got):\n%s", diff)
			}
			st := s.Stats()
			if st.Messages != 1 || st.Bytes != liveBytes(t, s.dir) || st.Puts != 1 {
				t.Errorf("Stats: got %+v, want 1 message of %d bytes, 1 put", st, liveBytes(t, s.dir))
			}

			if err := s.Remove(id); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after Remove: got %v, want ErrNotFound", err)
			}
			if _, err := m.Open(); !errors.Is(err, ErrNotFound) {
				t.Errorf("Open after Remove: got %v, want ErrNotFound", err)
			}
			if err := s.Remove(id); !errors.Is(err, ErrNotFound) {
				t.Errorf("second Remove: got %v, want ErrNotFound", err)
			}
			if got := s.List(); len(got) != 0 {
				t.Errorf("List after Remove: got %v, want none", got)
			}
			if st := s.Stats(); st.Messages != 0 || st.Bytes != 0 || st.Removes != 1 {
				t.Errorf("Stats after Remove: got %+v, want 0 messages, 0 bytes, 1 remove", st)
			}
			// Open deletes the segment, and the cleaner's first pass
			// rewrites the removal log: only a tombstone stays.
			s = reopen(t, s, Options{Now: newClock(t0).Now})
			clean(t, s)
			var wantFiles []string
			if tt.meta.UIDL != "" {
				wantFiles = []string{rlogName(2)}
			}
			if diff := cmp.Diff(wantFiles, files(t, s.dir)); diff != "" {
				t.Errorf("files after Remove and reopen (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPutSetsReceivedAt(t *testing.T) {
	s := open(t, Options{Now: newClock(t0).Now})
	env := &ospreyv1.Envelope{MailFrom: "a@example.com"}
	id := put(t, s, Meta{Envelope: env}, "x")
	if env.ReceivedAt != nil {
		t.Errorf("Put changed the caller's envelope")
	}
	m, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Meta.Envelope.GetReceivedAt().AsTime(); !got.Equal(t0) {
		t.Errorf("ReceivedAt: got %v, want %v", got, t0)
	}
}

func TestGetBadID(t *testing.T) {
	s := open(t, Options{})
	for _, id := range []string{"", "../../etc/passwd", strings.Repeat("0", idLen), "LOCK"} {
		if _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q): got %v, want ErrNotFound", id, err)
		}
		if err := s.Remove(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Remove(%q): got %v, want ErrNotFound", id, err)
		}
	}
}

// errBody is the failure of a body reader.
var errBody = errors.New("client went away")

func TestPutBodyFails(t *testing.T) {
	tests := []struct {
		name string
		body io.Reader
	}{
		{"at once", iotest.ErrReader(errBody)},
		{"after some bytes", io.MultiReader(strings.NewReader("Subject: x\r\n"), iotest.ErrReader(errBody))},
		{"after chunks", io.MultiReader(strings.NewReader(strings.Repeat("y", 2*chunkSize+5)), iotest.ErrReader(errBody))},
		{"with data", iotest.DataErrReader(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(errBody)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, Options{})
			id, err := s.Put(t.Context(), smtpMeta(), tt.body)
			if !errors.Is(err, errBody) {
				t.Fatalf("Put: got %q, %v, want errBody", id, err)
			}
			if got := files(t, s.dir); len(got) != 0 {
				t.Errorf("files left: %v", got)
			}
			want := Stats{Aborted: 1}
			if diff := cmp.Diff(want, s.Stats()); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
			if err := s.Check(); err != nil {
				t.Errorf("Check after a failed body: %v", err)
			}
		})
	}
}

// cancelReader cancels a context on its first Read and then reads r.
type cancelReader struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	c.cancel()
	return c.r.Read(p)
}

func TestPutContextCanceled(t *testing.T) {
	s := open(t, Options{})
	ctx, cancel := context.WithCancel(t.Context())
	body := &cancelReader{strings.NewReader(strings.Repeat("z", 3*chunkSize)), cancel}
	if _, err := s.Put(ctx, smtpMeta(), body); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put: got %v, want context.Canceled", err)
	}
	if got := files(t, s.dir); len(got) != 0 {
		t.Errorf("files left: %v", got)
	}
	if _, err := s.Put(ctx, smtpMeta(), strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a done context: got %v, want context.Canceled", err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	const n = 50
	s := open(t, Options{})
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ids[i], errs[i] = s.Put(t.Context(), smtpMeta(), strings.NewReader(fmt.Sprintf("message %d\r\n", i)))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Put: %v", err)
	}
	st := s.Stats()
	t.Logf("%d puts in %d commits", st.Puts, st.Commits)
	if st.Puts != n || st.Messages != n || st.Commits == 0 || st.Commits > n {
		t.Errorf("Stats: got %+v, want %d puts and messages, 1 to %d commits", st, n, n)
	}

	want := slices.Sorted(slices.Values(ids))
	if diff := cmp.Diff(want, s.List()); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	s = reopen(t, s, Options{})
	if diff := cmp.Diff(want, s.List()); diff != "" {
		t.Errorf("List after reopen (-want +got):\n%s", diff)
	}
	for i, id := range ids {
		if got, want := content(t, s, id), fmt.Sprintf("message %d\r\n", i); got != want {
			t.Errorf("content of %s: got %q, want %q", id, got, want)
		}
	}
	if got, want := s.Stats().Bytes, liveBytes(t, s.dir); got != want {
		t.Errorf("Bytes after reopen: got %d, want %d", got, want)
	}
}

func TestIDsSortInArrivalOrder(t *testing.T) {
	c := newClock(t0)
	s := open(t, Options{Now: c.Now})
	var ids []string
	for i := range 5 {
		if i == 3 {
			c.Advance(-time.Hour) // the clock steps back
		}
		ids = append(ids, put(t, s, smtpMeta(), "x"))
	}
	if !slices.IsSorted(ids) {
		t.Errorf("ids of a frozen and then stepped-back clock are not sorted: %v", ids)
	}
	// After a restart with a clock that went back, new ids still sort last.
	s = reopen(t, s, Options{Now: c.Now})
	ids = append(ids, put(t, s, smtpMeta(), "x"))
	if diff := cmp.Diff(ids, s.List()); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func TestLimits(t *testing.T) {
	// size is the record size of a message of body with smtpMeta.
	hdr, err := encodeHeader(strings.Repeat("0", idLen), smtpMeta())
	if err != nil {
		t.Fatal(err)
	}
	size := func(body string) int64 { return int64(len(appendRecord(nil, hdr, []byte(body), 0))) }
	first := strings.Repeat("a", 8<<10)
	tests := []struct {
		name  string
		opts  Options
		first []string // bodies put before, successfully
		body  string
		want  error
	}{
		{
			name:  "message count",
			opts:  Options{MaxMessages: 2},
			first: []string{"a", "b"},
			body:  "c",
			want:  ErrFull,
		},
		{
			name:  "bytes before the body",
			opts:  Options{MaxBytes: size(first) + size("") - 1},
			first: []string{first},
			body:  "b",
			want:  ErrFull,
		},
		{
			name: "body grows past the budget",
			opts: Options{MaxBytes: 3 * chunkSize},
			body: strings.Repeat("x", 3*chunkSize),
			want: ErrFull,
		},
		{
			name: "low disk",
			opts: Options{MinFreeBytes: 1 << 62},
			body: "x",
			want: ErrLowDisk,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t, tt.opts)
			var ids []string
			for _, b := range tt.first {
				ids = append(ids, put(t, s, smtpMeta(), b))
			}
			before := s.Stats()
			_, err := s.Put(t.Context(), smtpMeta(), strings.NewReader(tt.body))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Put: got %v, want %v", err, tt.want)
			}
			after := s.Stats()
			if after.Messages != before.Messages || after.Bytes != before.Bytes || after.DiskBytes != before.DiskBytes || after.Rejected != 1 {
				t.Errorf("Stats: got %+v, want %+v with 1 rejected", after, before)
			}
			if len(ids) > 0 {
				if err := s.Check(); !errors.Is(err, tt.want) {
					t.Errorf("Check: got %v, want %v", err, tt.want)
				}
				if err := s.Remove(ids[0]); err != nil {
					t.Fatal(err)
				}
				if err := s.Check(); err != nil {
					t.Errorf("Check after Remove: %v", err)
				}
				if _, err := s.Put(t.Context(), smtpMeta(), strings.NewReader(tt.body)); err != nil {
					t.Errorf("Put after Remove: %v", err)
				}
			} else if tt.want == ErrLowDisk {
				if err := s.Check(); !errors.Is(err, tt.want) {
					t.Errorf("Check: got %v, want %v", err, tt.want)
				}
			}
		})
	}
}

// failingSync makes the spool's syncs of the files that match fail with
// EIO while fail is set.
type failingSync struct {
	fail  atomic.Bool
	match func(os.FileInfo) bool
}

func (f *failingSync) sync(file *os.File) error {
	if f.fail.Load() {
		info, err := file.Stat()
		if err != nil {
			return err
		}
		if f.match(info) {
			return &os.PathError{Op: "fsync", Path: file.Name(), Err: syscall.EIO}
		}
	}
	return file.Sync()
}

func TestIOError(t *testing.T) {
	tests := []struct {
		name  string
		match func(os.FileInfo) bool
		// files is what a failed Put leaves: a segment whose sync failed
		// is deleted, its removal record stays.
		files []string
	}{
		{"every file", func(os.FileInfo) bool { return true }, nil},
		{"directory", os.FileInfo.IsDir, nil},
		{"segment", func(fi os.FileInfo) bool { return strings.HasPrefix(fi.Name(), "seg-") }, []string{rlogName(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock(t0)
			s := open(t, Options{Now: c.Now})
			fs := &failingSync{match: tt.match}
			s.sync, s.syncData = fs.sync, fs.sync
			fs.fail.Store(true)

			if _, err := s.Put(t.Context(), smtpMeta(), strings.NewReader("x")); !errors.Is(err, syscall.EIO) {
				t.Fatalf("Put: got %v, want EIO", err)
			}
			if st := s.Stats(); st.Messages != 0 || st.Failures != 1 {
				t.Errorf("Stats: got %+v, want no message and 1 failure", st)
			}
			if got := s.List(); len(got) != 0 {
				t.Errorf("List: got %v, want none", got)
			}
			if err := s.Check(); !errors.Is(err, syscall.EIO) {
				t.Errorf("Check: got %v, want EIO", err)
			}
			// The disk heals; Check probes it again only after a while.
			fs.fail.Store(false)
			if err := s.Check(); !errors.Is(err, syscall.EIO) {
				t.Errorf("Check right after: got %v, want EIO", err)
			}
			c.Advance(probeInterval)
			if err := s.Check(); err != nil {
				t.Errorf("Check after the probe interval: %v", err)
			}
			clean(t, s)
			if diff := cmp.Diff(tt.files, files(t, s.dir)); diff != "" {
				t.Errorf("files after the failure and the probe (-want +got):\n%s", diff)
			}

			// A successful Put clears the error too.
			fs.fail.Store(true)
			if _, err := s.Put(t.Context(), smtpMeta(), strings.NewReader("y")); err == nil {
				t.Fatal("Put succeeded with a failing disk")
			}
			fs.fail.Store(false)
			id := put(t, s, smtpMeta(), "z")
			if err := s.Check(); err != nil {
				t.Errorf("Check after a successful Put: %v", err)
			}
			// The failed Puts do not come back.
			s = reopen(t, s, Options{Now: c.Now})
			if diff := cmp.Diff([]string{id}, s.List()); diff != "" {
				t.Errorf("List after reopen (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReady(t *testing.T) {
	s := open(t, Options{})
	select {
	case <-s.Ready():
		t.Fatal("Ready fired on an empty spool")
	default:
	}
	put(t, s, smtpMeta(), "a")
	put(t, s, smtpMeta(), "b")
	select {
	case <-s.Ready():
	default:
		t.Fatal("Ready did not fire after Put")
	}
	select {
	case <-s.Ready():
		t.Fatal("Ready holds more than one token")
	default:
	}
}

func TestAdded(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Options{Dir: dir})
	if got := s.Added(); len(got) != 0 {
		t.Errorf("Added on an empty spool = %v, want none", got)
	}
	a := put(t, s, smtpMeta(), "a")
	b := put(t, s, smtpMeta(), "b")
	if diff := cmp.Diff([]string{a, b}, s.Added()); diff != "" {
		t.Errorf("Added after two Puts (-want +got):\n%s", diff)
	}
	if got := s.Added(); len(got) != 0 {
		t.Errorf("Added again = %v, want none: each id is told once", got)
	}
	c := put(t, s, smtpMeta(), "c")
	if err := s.Remove(a); err != nil {
		t.Fatal(err)
	}
	// A message removed before its consumer looked is told anyway; the
	// consumer's Get finds it gone.
	if diff := cmp.Diff([]string{c}, s.Added()); diff != "" {
		t.Errorf("Added after a third Put (-want +got):\n%s", diff)
	}
	// After a restart, every message the spool holds.
	s = reopen(t, s, Options{Dir: dir})
	if diff := cmp.Diff([]string{b, c}, s.Added()); diff != "" {
		t.Errorf("Added after Open (-want +got):\n%s", diff)
	}
}

// blockingReader returns one byte, tells started, and then blocks until
// release is closed, when it returns EOF.
type blockingReader struct {
	started chan struct{}
	release chan struct{}
	n       int
}

func (b *blockingReader) Read(p []byte) (int, error) {
	b.n++
	switch b.n {
	case 1:
		close(b.started)
		p[0] = 'x'
		return 1, nil
	default:
		<-b.release
		return 0, io.EOF
	}
}

func TestClose(t *testing.T) {
	s := open(t, Options{})
	if _, err := Open(Options{Dir: s.dir}); err == nil {
		t.Errorf("a second Open of an open spool succeeded")
	}
	id := put(t, s, smtpMeta(), "kept")

	// A Put still reading its body does not hold Close up, and fails.
	body := &blockingReader{started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error)
	go func() {
		_, err := s.Put(t.Context(), smtpMeta(), body)
		done <- err
	}()
	<-body.started
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	close(body.release)
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("Put across Close: got %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Put(t.Context(), smtpMeta(), strings.NewReader("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close: got %v, want ErrClosed", err)
	}
	if err := s.Remove(id); !errors.Is(err, ErrClosed) {
		t.Errorf("Remove after Close: got %v, want ErrClosed", err)
	}
	if err := s.Check(); !errors.Is(err, ErrClosed) {
		t.Errorf("Check after Close: got %v, want ErrClosed", err)
	}
	if diff := cmp.Diff([]string{segName(1)}, files(t, s.dir)); diff != "" {
		t.Errorf("files after Close (-want +got):\n%s", diff)
	}
}

func TestOptionsValidate(t *testing.T) {
	err := Options{MaxBytes: -1, MaxMessages: -1, MinFreeBytes: -1, UIDLRetention: -1}.Validate()
	for _, field := range []string{"dir", "max_bytes", "max_messages", "min_free_bytes", "uidl_retention"} {
		if err == nil || !strings.Contains(err.Error(), field+":") {
			t.Errorf("Validate: got %v, want a problem with %s", err, field)
		}
	}
}

func TestLowDiskError(t *testing.T) {
	tests := []struct {
		free, floor int64
		want        string
	}{
		{0, 256 << 20, "low disk space: 0 B free, below the 256 MiB floor"},
		{12 << 20, 256 << 20, "low disk space: 12 MiB free, below the 256 MiB floor"},
		{12<<20 + 300<<10, 1 << 30, "low disk space: 12.3 MiB free, below the 1 GiB floor"},
		{1000, 1536, "low disk space: 1000 B free, below the 1.5 KiB floor"},
	}
	for _, tt := range tests {
		err := error(&LowDiskError{Free: tt.free, Floor: tt.floor})
		if got := err.Error(); got != tt.want {
			t.Errorf("LowDiskError{%d, %d}: got %q, want %q", tt.free, tt.floor, got, tt.want)
		}
		if !errors.Is(fmt.Errorf("wrapped: %w", err), ErrLowDisk) {
			t.Errorf("LowDiskError{%d, %d} does not match ErrLowDisk", tt.free, tt.floor)
		}
	}
	// Check and Put say how much is free, and the floor.
	s := open(t, Options{MinFreeBytes: 1 << 62})
	var low *LowDiskError
	if err := s.Check(); !errors.As(err, &low) || low.Floor != 1<<62 || low.Free <= 0 {
		t.Errorf("Check: got %v, want a LowDiskError with the floor of 4 EiB and the free bytes", err)
	}
	if _, err := s.Put(t.Context(), smtpMeta(), strings.NewReader("x")); !errors.As(err, &low) {
		t.Errorf("Put: got %v, want a LowDiskError", err)
	}
}
