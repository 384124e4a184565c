package spool

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashDirEnv makes TestCrashChild the child of TestCrash, spooling into
// the directory it names.
const crashDirEnv = "OSPREY_SPOOL_CRASH_DIR"

// TestCrash runs TestCrashChild in a child process, three times on one
// spool. Each child Puts messages from several goroutines and prints each
// id with the SHA-256 of its bytes once Put returned, and Removes most of
// them from another goroutine, printing each id before Remove and once it
// returned. TestCrash kills the child with SIGKILL in the middle of the
// stream, opens the spool, and checks that every printed message whose
// removal did not begin is there, intact, that no removed one is, that
// every POP3 message keeps its UIDL known, and that no temporary file is
// left. The child's segments are small, so that the kills land in
// rotations, deletions, compactions and rewrites of the removal log too.
//
// A SIGKILL loses the process, not the page cache, so this proves the
// protocol (nothing is visible before it is complete, recovery cuts torn
// tails, accounting is rebuilt) rather than the fsyncs, which only a power
// cut, or a file system that drops unsynced writes, could test.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	printed := make(map[string]printedPut) // by id
	// removing holds the ids whose Remove began, true once it returned.
	removing := make(map[string]bool)
	// Three lives of the spool, each killed at a different point.
	for round := range 3 {
		crashChild(t, dir, 200+round*500, printed, removing)

		var tmp int
		for _, name := range files(t, dir) {
			if strings.HasSuffix(name, extTmp) {
				tmp++
			}
		}
		t.Logf("killed child %d; %d puts and %d removes printed in all; %d temporary files, %d files in all",
			round, len(printed), len(removing), tmp, len(files(t, dir)))

		s := open(t, Options{Dir: dir})
		listed := s.List()
		for id, p := range printed {
			if p.uidl != "-" && !s.HasUIDL(crashMailbox, p.uidl) {
				t.Errorf("message %s lost its UIDL %s", id, p.uidl)
			}
			removed, ok := removing[id]
			if removed && slices.Contains(listed, id) {
				t.Errorf("message %s was removed but is listed", id)
			}
			if ok {
				// Removed, or killed while it was being removed.
				if slices.Contains(listed, id) {
					sum(t, s, id)
				}
				continue
			}
			if !slices.Contains(listed, id) {
				t.Errorf("message %s was acknowledged but is not listed", id)
				continue
			}
			if got := sum(t, s, id); got != p.sum {
				t.Errorf("message %s: SHA-256 %s, want %s", id, got, p.sum)
			}
		}
		// Messages spooled but not printed before the kill are fine, if
		// intact.
		for _, id := range listed {
			if _, ok := printed[id]; !ok {
				sum(t, s, id)
			}
		}
		for _, name := range files(t, dir) {
			_, seg := parseSegName(name)
			_, rlog := parseRlogName(name)
			if !seg && !rlog && !strings.HasSuffix(name, extMsg) {
				t.Errorf("file %s after Open", name)
			}
		}
		if st := s.Stats(); st.Messages != len(listed) || st.Bytes != liveBytes(t, dir) || st.Corrupt != 0 {
			t.Errorf("Stats: got %+v, want %d messages of %d bytes, none corrupt", st, len(listed), liveBytes(t, dir))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			return
		}
	}
}

// printedPut is what the child printed of a message it spooled.
type printedPut struct{ sum, uidl string }

// crashChild runs TestCrashChild on dir, adds what it prints to printed
// and removing, and kills it once it printed killAfter Puts.
func crashChild(t *testing.T, dir string, killAfter int, printed map[string]printedPut, removing map[string]bool) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	puts := 0
	// read adds the complete lines that the child printed; a line that the
	// kill cut has no newline and is not a promise.
	read := func() error {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		switch f := strings.Fields(line); {
		case len(f) == 4 && f[0] == "put" && validID(f[1]) && len(f[2]) == 64:
			printed[f[1]] = printedPut{sum: f[2], uidl: f[3]}
			puts++
		case len(f) == 2 && f[0] == "removing" && validID(f[1]):
			removing[f[1]] = false
		case len(f) == 2 && f[0] == "removed" && validID(f[1]):
			removing[f[1]] = true
		default:
			return fmt.Errorf("child printed %q", line)
		}
		return nil
	}
	for puts < killAfter {
		if err := read(); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child stopped after %d messages: %v\n%s", puts, err, stderr.Bytes())
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for read() == nil {
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("the child exited by itself")
	}
}

// sum reads message id through its checksummed reader and returns its
// SHA-256 in hex.
func sum(t *testing.T, s *Spool, id string) string {
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
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// crashMailbox is the POP3 mailbox of the child's polled messages.
const crashMailbox = "journal@pop.example.com"

// TestCrashChild is the child of TestCrash. It spools messages of random
// sizes (mostly small, some of several chunks, a few spilled), one in four
// a POP3 message, from 4 goroutines, and removes three in four of them
// from a fifth, until it is killed, or for at most a minute should its
// parent be gone.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child of TestCrash")
	}
	s, err := Open(Options{Dir: dir, SegmentSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	s.rlogSlack = 64 // rewrite the removal log often
	deadline := time.Now().Add(time.Minute)
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		toRemove = make(chan string, 64)
	)
	// println prints a line in one write, so that it is printed whole or
	// not at all.
	println := func(format string, args ...any) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := fmt.Fprintf(os.Stdout, format+"\n", args...)
		return err
	}
	var putters sync.WaitGroup
	for g := range 4 {
		putters.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			for i := 0; time.Now().Before(deadline); i++ {
				n := rng.IntN(8 << 10)
				switch rng.IntN(64) {
				case 0:
					n = spillSize + rng.IntN(spillSize)
				case 1, 2, 3, 4, 5, 6, 7:
					n = rng.IntN(4 * chunkSize)
				}
				body := make([]byte, n)
				for i := range body {
					body[i] = byte(rng.Uint32())
				}
				meta, uidl := smtpMeta(), "-"
				if rng.IntN(4) == 0 {
					uidl = fmt.Sprintf("u%d-%d-%d", g, i, rng.Uint64())
					meta = pop3Meta(crashMailbox, uidl)
				}
				id, err := s.Put(t.Context(), meta, bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				if err := println("put %s %x %s", id, sha256.Sum256(body), uidl); err != nil {
					t.Error(err)
					return
				}
				if rng.IntN(4) != 0 {
					toRemove <- id
				}
			}
		})
	}
	wg.Go(func() {
		for id := range toRemove {
			if err := println("removing %s", id); err != nil {
				t.Error(err)
				return
			}
			if err := s.Remove(id); err != nil {
				t.Error(err)
				return
			}
			if err := println("removed %s", id); err != nil {
				t.Error(err)
				return
			}
		}
	})
	putters.Wait()
	close(toRemove)
	wg.Wait()
	if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
		t.Error(err)
	}
}
