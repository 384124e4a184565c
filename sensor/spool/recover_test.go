package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// liveBytes reads the files in dir on its own, much as Open does, and sums
// the records that are not removed: what Stats.Bytes should say.
func liveBytes(t *testing.T, dir string) int64 {
	t.Helper()
	removed := make(map[string]bool)
	sizes := make(map[string]int64) // by id; a later copy replaces an earlier one
	names := files(t, dir)
	slices.Sort(names) // segments in the order of their numbers
	for _, name := range names {
		if _, ok := parseRlogName(name); ok {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			rs, _ := parseRemovals(b)
			for _, r := range rs {
				removed[r.ID] = removed[r.ID] || r.Op == opRemove
			}
		}
	}
	for _, name := range names {
		path := filepath.Join(dir, name)
		if _, ok := parseSegName(name); ok {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			info, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(f)
			for off := int64(0); off < info.Size(); {
				rec, _, err := scanRecord(br, info.Size()-off)
				if err != nil {
					t.Errorf("%s at %d: %v", name, off, err)
					break
				}
				sizes[rec.id] = rec.len
				off += rec.len
			}
			f.Close()
		} else if id, ok := strings.CutSuffix(name, extMsg); ok {
			rec, err := readFile(path)
			if err != nil {
				t.Fatal(err)
			}
			sizes[id] = rec.len
		}
	}
	var n int64
	for id, size := range sizes {
		if !removed[id] {
			n += size
		}
	}
	return n
}

func TestRecover(t *testing.T) {
	s := open(t, Options{})
	var ids []string
	for i := range 4 {
		ids = append(ids, put(t, s, smtpMeta(), fmt.Sprintf("message %d", i)))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dir := s.dir
	seg := filepath.Join(dir, segName(1))
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// A bit flipped in the body of the second message: the framing
	// holds, the checksum does not.
	b[bytes.Index(b, []byte("message 1"))] ^= 0x20
	// The tail that a crash cuts: a record without the end of its footer.
	var g idGen
	hdr, err := encodeHeader(g.next(t0), smtpMeta())
	if err != nil {
		t.Fatal(err)
	}
	intact := len(b)
	torn := appendRecord(nil, hdr, []byte("torn"), crc32.Checksum([]byte("torn"), castagnoli))
	b = append(b, torn[:len(torn)-3]...)
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}

	// A message in a file of its own (spilled, or from the earlier
	// design), and what a crash while spilling leaves: temporary files,
	// and, were the fsync ordering broken, a file without its end.
	file := func(id, body string) []byte {
		hdr, err := encodeHeader(id, smtpMeta())
		if err != nil {
			t.Fatal(err)
		}
		return appendFooter(append(hdr, body...), int64(len(body)), crc32.Checksum([]byte(body), castagnoli))
	}
	own, cut, garbage := g.next(t0), g.next(t0), g.next(t0)
	leftovers := map[string][]byte{
		g.next(t0) + extTmp: nil,
		g.next(t0) + extTmp: file(g.next(t0), "half")[:20],
		own + extMsg:        file(own, "a message of its own"),
		cut + extMsg:        file(cut, "cut")[:40],
		garbage + extMsg:    []byte("not a spool file at all"),
	}
	for name, b := range leftovers {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	s = open(t, Options{Dir: dir})
	// The cleaner's first pass writes the removal of the damaged record
	// (Open writes nothing that needs disk space).
	clean(t, s)
	wantIDs := []string{ids[0], ids[2], ids[3], own}
	slices.Sort(wantIDs)
	if diff := cmp.Diff(wantIDs, s.List()); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	// The damaged record is quarantined and removed, so that the next
	// Open does not find it again.
	wantFiles := []string{segName(1), rlogName(1), own + extMsg, ids[1] + extCorrupt, cut + extCorrupt, garbage + extCorrupt}
	sortNames := cmpopts.SortSlices(func(a, b string) bool { return a < b })
	if diff := cmp.Diff(wantFiles, files(t, dir), sortNames); diff != "" {
		t.Errorf("files after Open (-want +got):\n%s", diff)
	}
	if info, err := os.Stat(seg); err != nil || info.Size() != int64(intact) {
		t.Errorf("segment after Open: %v, %v; want %d bytes, the torn tail cut", info.Size(), err, intact)
	}
	if q, err := os.ReadFile(filepath.Join(dir, ids[1]+extCorrupt)); err != nil || !bytes.HasPrefix(q, []byte(magic)) || !bytes.HasSuffix(q, []byte(footerMagic)) {
		t.Errorf("quarantined record: %q, %v; want the record", q, err)
	}
	st := s.Stats()
	if st.Messages != 4 || st.Bytes != liveBytes(t, dir) || st.Corrupt != 3 {
		t.Errorf("Stats: got %+v, want 4 messages of %d bytes, 3 corrupt", st, liveBytes(t, dir))
	}
	for i, id := range ids {
		if i != 1 {
			if got, want := content(t, s, id), fmt.Sprintf("message %d", i); got != want {
				t.Errorf("content of %s: got %q, want %q", id, got, want)
			}
		}
	}
	if got, want := content(t, s, own), "a message of its own"; got != want {
		t.Errorf("content of %s: got %q, want %q", own, got, want)
	}
	select {
	case <-s.Ready():
	default:
		t.Errorf("Ready has no token after opening a spool with messages")
	}

	s = reopen(t, s, Options{})
	if diff := cmp.Diff(wantIDs, s.List()); diff != "" {
		t.Errorf("List after a second Open (-want +got):\n%s", diff)
	}
	if st := s.Stats(); st.Corrupt != 0 || st.Bytes != liveBytes(t, dir) {
		t.Errorf("Stats after a second Open: got %+v, want no corrupt record, %d bytes", st, liveBytes(t, dir))
	}
}

func TestCorruptBody(t *testing.T) {
	s := open(t, Options{})
	id := put(t, s, smtpMeta(), "an innocent message")
	path := filepath.Join(s.dir, segName(1))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("innocent"))
	b[i] = 'I'
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := s.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := m.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, ErrCorrupt) {
		t.Errorf("reading a flipped byte: got %v, want ErrCorrupt", err)
	}
}
