//go:build linux

package spool

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/sensor/internal/tmpfstest"
)

// The spool of the full-disk tests: a tmpfs of fullDiskSize with a floor of
// fullDiskFloor and small segments, so that the backlog spans several.
const (
	fullDiskSize    = 4 << 20
	fullDiskFloor   = 512 << 10
	fullDiskSegment = 256 << 10
	fullDiskMailbox = "journal@pop.example.com"
)

// fullDirEnv makes TestFullDiskChild the child of TestFullDiskRestart,
// spooling into the directory it names.
const fullDirEnv = "OSPREY_SPOOL_FULL_DIR"

func fullDiskOptions(dir string) Options {
	return Options{Dir: dir, SegmentSize: fullDiskSegment, MinFreeBytes: fullDiskFloor}
}

// TestFullDiskRestart is the sensor killed while its disk is full: a child
// process spools messages (SMTP and POP3) on a small tmpfs until the spool
// refuses them for low disk space, removes the oldest third (as the
// uploader does once the central acknowledged them), and waits. The test
// fills the rest of the tmpfs to the last byte and kills the child with
// SIGKILL. The spool must open again on the full disk, with every
// acknowledged message intact, refuse new mail, let the backlog be
// uploaded and removed, and thereby free the space, after which it takes
// mail again by itself.
func TestFullDiskRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	root := tmpfstest.Mount(t, fullDiskSize)
	dir := filepath.Join(root, "spool")

	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestFullDiskChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fullDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// The child waits for the end of its stdin, which comes when it is
	// killed, or when this process dies.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	printed := make(map[string]printedPut)
	removed := make(map[string]bool)
	r := bufio.NewReader(stdout)
	for ready := false; !ready; {
		line, err := r.ReadString('\n')
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child stopped before it was ready: %v\n%s", err, stderr.Bytes())
		}
		switch f := strings.Fields(line); {
		case len(f) == 4 && f[0] == "put" && validID(f[1]):
			printed[f[1]] = printedPut{sum: f[2], uidl: f[3]}
		case len(f) == 2 && f[0] == "removed" && validID(f[1]):
			removed[f[1]] = true
		case len(f) == 1 && f[0] == "ready":
			ready = true
		default:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child printed %q", line)
		}
	}
	tmpfstest.Fill(t, root)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("the child exited by itself")
	}
	if tmpfstest.Free(t, root) != 0 {
		t.Fatalf("the tmpfs has %d bytes free after the kill, want none", tmpfstest.Free(t, root))
	}
	t.Logf("%d messages spooled, %d removed, the disk full", len(printed), len(removed))

	s, err := Open(fullDiskOptions(dir))
	if err != nil {
		t.Fatalf("Open on a full disk: %v", err)
	}
	t.Cleanup(func() { s.Close() })

	// Nothing is lost, nothing removed comes back.
	var want []string
	for id := range printed {
		if !removed[id] {
			want = append(want, id)
		}
	}
	slices.Sort(want)
	listed := s.List()
	if !slices.Equal(listed, want) {
		t.Fatalf("List on the full disk: %d messages, want the %d not removed", len(listed), len(want))
	}
	for id, p := range printed {
		if p.uidl != "-" && !s.HasUIDL(fullDiskMailbox, p.uidl) {
			t.Errorf("message %s lost its UIDL %s", id, p.uidl)
		}
	}
	// Full: new mail is refused.
	if err := s.Check(); !errors.Is(err, ErrLowDisk) {
		t.Errorf("Check on the full disk: got %v, want ErrLowDisk", err)
	}
	if _, err := s.Put(t.Context(), smtpMeta(), strings.NewReader("more")); !errors.Is(err, ErrLowDisk) {
		t.Errorf("Put on the full disk: got %v, want ErrLowDisk", err)
	}

	// The uploader drains the backlog, oldest first.
	for _, id := range listed {
		if got := sum(t, s, id); got != printed[id].sum {
			t.Errorf("message %s: SHA-256 %s, want %s", id, got, printed[id].sum)
		}
		if err := s.Remove(id); err != nil {
			t.Fatalf("Remove(%s) on the full disk: %v", id, err)
		}
	}
	// A pass of the cleaner (which the Removes also kick) deletes the
	// emptied segments: the space is back, and so is new mail.
	clean(t, s)
	if free := tmpfstest.Free(t, root); free < fullDiskFloor {
		t.Fatalf("%d bytes free after the drain, want at least the floor of %d", free, fullDiskFloor)
	}
	if err := s.Check(); err != nil {
		t.Errorf("Check after the drain: %v", err)
	}
	id := put(t, s, smtpMeta(), "after the drain")

	// And it all holds across a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, fullDiskOptions(dir))
	if got := s.List(); !slices.Equal(got, []string{id}) {
		t.Errorf("List after reopen: got %v, want [%s]", got, id)
	}
	for id, p := range printed {
		if p.uidl != "-" && !s.HasUIDL(fullDiskMailbox, p.uidl) {
			t.Errorf("message %s lost its UIDL %s across the drain and a reopen", id, p.uidl)
		}
	}
}

// TestFullDiskChild is the child of TestFullDiskRestart. It spools
// messages of 2 to 16 KiB, one in three a POP3 message, until the spool
// refuses one for low disk space; then it removes the oldest third, runs a
// pass of the cleaner, prints "ready", and waits to be killed (or for the end of its stdin, should its
// parent be gone).
func TestFullDiskChild(t *testing.T) {
	dir := os.Getenv(fullDirEnv)
	if dir == "" {
		t.Skip("the child of TestFullDiskRestart")
	}
	s, err := Open(fullDiskOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	var ids []string
	for i := 0; ; i++ {
		body := make([]byte, 2<<10+rng.IntN(14<<10))
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		meta, uidl := smtpMeta(), "-"
		if i%3 == 0 {
			uidl = fmt.Sprintf("u%d", i)
			meta = pop3Meta(fullDiskMailbox, uidl)
		}
		id, err := s.Put(t.Context(), meta, bytes.NewReader(body))
		if errors.Is(err, ErrLowDisk) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("put %s %x %s\n", id, sha256.Sum256(body), uidl)
		ids = append(ids, id)
	}
	for _, id := range ids[:len(ids)/3] {
		if err := s.Remove(id); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("removed %s\n", id)
	}
	// The segments emptied are deleted now rather than by the next Open,
	// which would find room on the disk.
	if err := s.clean(); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	s.Close()
}

// TestFullDiskRemovals: on a full disk a removal that is not a tombstone
// drops its line and succeeds; a tombstone takes the space of the reserve,
// then the room left in the log's last page, and fails, keeping its
// message, once there is none. A crash (here a reopen) before the removal
// log is rewritten brings back the messages whose lines were dropped,
// never a tombstone; once the disk has room, the cleaner rewrites the log
// with every removal and makes the reserve again.
func TestFullDiskRemovals(t *testing.T) {
	root := tmpfstest.Mount(t, fullDiskSize)
	dir := filepath.Join(root, "spool")
	s := open(t, fullDiskOptions(dir))
	reserve := func(want bool) {
		t.Helper()
		info, err := os.Stat(filepath.Join(dir, reserveName))
		switch {
		case want && err != nil:
			t.Errorf("no reserve: %v", err)
		case want && info.Size() != minReserve:
			t.Errorf("reserve of %d bytes, want %d", info.Size(), minReserve)
		case !want && err == nil:
			t.Errorf("the reserve is still there")
		}
	}
	reserve(true)
	// All in one segment, which no Remove here empties: nothing frees
	// space but the reserve.
	const npop = 60
	var smtp, pop []string
	for range 2 {
		smtp = append(smtp, put(t, s, smtpMeta(), "sent"))
	}
	for i := range npop {
		pop = append(pop, put(t, s, pop3Meta(fullDiskMailbox, fmt.Sprintf("u%d", i)), "polled"))
	}
	// No pass of the cleaner either, until the disk is full again.
	s.cleanMu.Lock()
	held := s
	t.Cleanup(func() { // before Close, which waits for the cleaner
		if held != nil {
			held.cleanMu.Unlock()
		}
	})
	fillers := []string{tmpfstest.Fill(t, root)}

	// The first line creates the removal log, which has no page yet.
	if err := s.Remove(smtp[0]); err != nil {
		t.Fatalf("Remove of an SMTP message on a full disk: %v", err)
	}
	reserve(true)
	if err := s.Remove(pop[0]); err != nil {
		t.Fatalf("Remove of a POP3 message on a full disk: %v", err)
	}
	reserve(false)
	fillers = append(fillers, tmpfstest.Fill(t, root))
	failed := -1
	for i := 1; i < npop && failed < 0; i++ {
		err := s.Remove(pop[i])
		switch {
		case isNoSpace(err):
			failed = i
		case err != nil:
			t.Fatalf("Remove of POP3 message %d: %v", i, err)
		}
	}
	if failed < 0 {
		t.Fatalf("every tombstone fitted on the full disk without a reserve")
	}
	t.Logf("%d tombstones fitted in the last page of the removal log", failed-1)
	if _, err := s.Get(pop[failed]); err != nil {
		t.Errorf("the message of a failed Remove: %v", err)
	}
	if err := s.Remove(smtp[1]); err != nil {
		t.Errorf("Remove of an SMTP message on a full disk without reserve: %v", err)
	}
	want := slices.Clone(pop[failed:])
	if got := s.List(); !slices.Equal(got, want) {
		t.Errorf("List: got %d messages, want the %d POP3 messages from the one whose Remove failed", len(got), len(want))
	}
	for i := range npop {
		if !s.HasUIDL(fullDiskMailbox, fmt.Sprintf("u%d", i)) {
			t.Errorf("HasUIDL(u%d): false, want true", i)
		}
	}
	held = nil
	s.cleanMu.Unlock()

	// A restart before the rewrite: the dropped lines were lost.
	s = reopen(t, s, fullDiskOptions(dir))
	want = append([]string{smtp[0], smtp[1]}, want...)
	if got := s.List(); !slices.Equal(got, want) {
		t.Errorf("List after a reopen on the full disk: got %d messages, want %d (the SMTP messages whose lines were dropped are back)", len(got), len(want))
	}
	for i := range npop {
		if !s.HasUIDL(fullDiskMailbox, fmt.Sprintf("u%d", i)) {
			t.Errorf("HasUIDL(u%d) after a reopen: false, want true", i)
		}
	}

	// Room again: the removals are written, the reserve made again.
	for _, f := range fillers {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{smtp[0], smtp[1], pop[failed]} {
		if err := s.Remove(id); err != nil {
			t.Fatalf("Remove(%s) with room: %v", id, err)
		}
	}
	clean(t, s)
	reserve(true)
	s = reopen(t, s, fullDiskOptions(dir))
	if got, want := s.List(), pop[failed+1:]; !slices.Equal(got, want) {
		t.Errorf("List after the drain and a reopen: got %d messages, want %d", len(got), len(want))
	}
	for i := range npop {
		if !s.HasUIDL(fullDiskMailbox, fmt.Sprintf("u%d", i)) {
			t.Errorf("HasUIDL(u%d) after the drain and a reopen: false, want true", i)
		}
	}
}

// TestFullDiskQuarantine: a damaged record that Open has no room to
// quarantine stays in its segment, which is kept, and is quarantined by
// the first Open that has room.
func TestFullDiskQuarantine(t *testing.T) {
	root := tmpfstest.Mount(t, fullDiskSize)
	dir := filepath.Join(root, "spool")
	s := open(t, fullDiskOptions(dir))
	a := put(t, s, smtpMeta(), "message a")
	b := put(t, s, smtpMeta(), "message b")
	c := put(t, s, smtpMeta(), "message c")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, segName(1))
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data[bytes.Index(data, []byte("message b"))] ^= 0x20
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	filler := tmpfstest.Fill(t, root)

	s = open(t, fullDiskOptions(dir))
	if got, want := s.List(), []string{a, c}; !slices.Equal(got, want) {
		t.Errorf("List: got %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, b+extCorrupt)); err == nil {
		t.Errorf("a quarantined copy on a full disk")
	}
	for _, id := range []string{a, c} {
		if err := s.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	clean(t, s)
	if _, err := os.Stat(seg); err != nil {
		t.Fatalf("the segment of a record not quarantined was deleted: %v", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	clean(t, s) // writes the removals of a and c
	s = reopen(t, s, fullDiskOptions(dir))
	if got := s.List(); len(got) != 0 {
		t.Errorf("List after reopen with room: got %v, want none", got)
	}
	if st := s.Stats(); st.Corrupt != 1 {
		t.Errorf("Stats.Corrupt after reopen with room: %d, want 1", st.Corrupt)
	}
	q, err := os.ReadFile(filepath.Join(dir, b+extCorrupt))
	if err != nil || !bytes.HasPrefix(q, []byte(magic)) || !bytes.HasSuffix(q, []byte(footerMagic)) {
		t.Errorf("quarantined record: %q, %v; want the record", q, err)
	}
	clean(t, s)
	if got, want := files(t, dir), []string{b + extCorrupt}; !slices.Equal(got, want) {
		t.Errorf("files after a pass of the cleaner: got %v, want %v", got, want)
	}
}
