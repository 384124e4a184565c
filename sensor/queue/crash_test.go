package queue

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ospreysec/osprey/internal/testwait"
)

// The environment of TestCrashChild: the queue's directory, the next
// hop's address, and the round (a prefix of the ids).
const (
	crashDirEnv   = "OSPREY_QUEUE_CRASH_DIR"
	crashAddrEnv  = "OSPREY_QUEUE_CRASH_ADDR"
	crashRoundEnv = "OSPREY_QUEUE_CRASH_ROUND"
)

// TestCrash runs TestCrashChild in a child process, several times on one
// queue, each killed with SIGKILL while it enqueues from several
// goroutines and delivers to a real SMTP server that this test runs (and
// that defers one recipient in ten, so retries are under way too). The
// child prints each id once Enqueue returned. Then the test opens the
// queue itself, delivers what is left, and checks that every printed
// message reached the server at least once, for each of its recipients.
//
// A SIGKILL loses the process, not the page cache, so this proves the
// protocol (an acknowledged message is committed; a delivered mark is
// written only after the 2xx) rather than the fsyncs.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	srv := startCountingServer(t, 10)
	dir := t.TempDir()
	printed := map[string]bool{}
	const rounds = 6
	for round := range rounds {
		crashChild(t, dir, srv.addr, round, 200+round*150, printed)
		t.Logf("killed child %d: %d messages acknowledged in all, %d delivered", round, len(printed), len(srv.counts())/len(crashRcpts))
	}

	q, err := Open(t.Context(), Options{Dir: dir, Deliverer: smtpDeliverer{srv.addr}})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Apply(Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	testwait.For(t, "the queue to be empty", func() bool { return q.Stats().Messages == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
	if err := q.Close(); err != nil {
		t.Error(err)
	}
	// The body files of the kills' half-done Enqueues went at the Open,
	// those of the delivered messages with them.
	if left, err := os.ReadDir(filepath.Join(dir, bodiesDir)); err != nil || len(left) != 0 {
		t.Errorf("%d body files left in the drained queue (%v)", len(left), err)
	}

	counts := srv.counts()
	var twice int
	for id := range printed {
		again := false
		for _, rcpt := range crashRcpts {
			switch n := counts[id+" "+rcpt]; {
			case n == 0:
				t.Errorf("message %s was not delivered to %s", id, rcpt)
			case n > 1:
				again = true
			}
		}
		if again {
			twice++
		}
	}
	t.Logf("%d messages acknowledged over %d kills; %d delivered more than once to a recipient", len(printed), rounds, twice)
}

// crashRcpts are the recipients of each of the child's messages: two
// destinations, one with two recipients.
var crashRcpts = []string{"a@one.test", "b@one.test", "c@two.test"}

// crashChild runs TestCrashChild and kills it once it printed killAfter
// ids, adding what it printed to printed.
func crashChild(t *testing.T, dir, addr string, round, killAfter int, printed map[string]bool) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashAddrEnv+"="+addr, fmt.Sprintf("%s=%d", crashRoundEnv, round))
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
	n := 0
	// read adds a complete line; a line the kill cut is no promise.
	read := func() error {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		f := strings.Fields(line)
		if len(f) != 2 || f[0] != "enq" {
			return fmt.Errorf("child printed %q", line)
		}
		printed[f[1]] = true
		n++
		return nil
	}
	for n < killAfter {
		if err := read(); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child stopped after %d messages: %v\n%s", n, err, stderr.Bytes())
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

// TestCrashChild is the child of TestCrash: it runs the queue against
// the parent's SMTP server and enqueues from 4 goroutines until it is
// killed, or for a minute at most should its parent be gone.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child of TestCrash")
	}
	q, err := Open(t.Context(), Options{Dir: dir, Deliverer: smtpDeliverer{os.Getenv(crashAddrEnv)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Apply(Config{MinBackoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	go q.Run(t.Context())
	deadline := time.Now().Add(time.Minute)
	round := os.Getenv(crashRoundEnv)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				id := fmt.Sprintf("r%s-%d-%06d", round, g, i)
				// Two of the four send bodies kept in files of their own.
				lines := 28
				if g >= 2 {
					lines = FileBodySize/72 + 28
				}
				body := fmt.Sprintf("Subject: crash\r\nMessage-ID: <%s@crash.test>\r\n\r\n%s", id, strings.Repeat(strings.Repeat("x", 70)+"\r\n", lines))
				_, err := q.Enqueue(t.Context(), Message{ID: id, From: "s@src.test", Rcpts: crashRcpts,
					Direction: Inbound, Verdict: "clean", Body: []byte(body)})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				_, err = fmt.Fprintf(os.Stdout, "enq %s\n", id)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
}
