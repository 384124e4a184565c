package deploytest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ospreysec/osprey/internal/testwait"
)

// clientEvent is a line the mail client prints (deploy/mailclient).
type clientEvent struct {
	Event     string    `json:"event"`
	MessageID string    `json:"message_id"`
	From      string    `json:"from"`
	Addr      string    `json:"addr"`
	At        time.Time `json:"at"`
	Error     string    `json:"error"`
	Accepted  int       `json:"accepted"`
	Failed    int       `json:"failed"`
	Pending   int       `json:"pending"`
}

// sender is a mail client container sending until stopped.
type sender struct {
	name, run string
	cmd       *exec.Cmd
	exited    chan error

	mu       sync.Mutex
	accepted map[string]time.Time // envelope sender of each try answered 250 → when
	failed   map[string]string    // envelope sender of each try that was not → why
	byAddr   map[string]int
	lastAddr string
	done     *clientEvent
	stderr   strings.Builder
}

// startSender runs the mail client image in a container with dockerArgs
// (its network), sending with clientArgs until stop; run prefixes its
// senders and Message-IDs.
func startSender(t *testing.T, p *project, run string, dockerArgs, clientArgs []string) *sender {
	t.Helper()
	s := &sender{name: p.name + "-" + run, run: run, exited: make(chan error, 1),
		accepted: map[string]time.Time{}, failed: map[string]string{}, byAddr: map[string]int{}}
	args := append([]string{"run", "--rm", "--name", s.name, "--label", "osprey.deploytest=" + p.name,
		"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true", "--memory", "64m"}, dockerArgs...)
	args = append(args, p.images.client, "--count", "0", "--run", run)
	s.cmd = exec.Command("docker", append(args, clientArgs...)...)
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = &lockedWriter{mu: &s.mu, w: &s.stderr}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.read(stdout)
		s.exited <- s.cmd.Wait()
	}()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			// t.Context() is already done when cleanups run.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			docker(ctx, "rm", "-f", s.name)
			cancel()
			s.cmd.Process.Kill()
		}
		if t.Failed() {
			accepted, failed := s.counts()
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Logf("sender %s: %d tries accepted, %d failed; stderr %s", s.run, accepted, failed, s.stderr.String())
		}
	})
	return s
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (s *sender) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var e clientEvent
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		s.mu.Lock()
		switch e.Event {
		case "accepted":
			s.accepted[e.From] = e.At
			s.byAddr[strings.Split(e.Addr, ":")[0]]++
			s.lastAddr = strings.Split(e.Addr, ":")[0]
		case "failed":
			s.failed[e.From] = e.Error
		case "done":
			s.done = &e
		}
		s.mu.Unlock()
	}
}

// counts returns how many tries were answered 250 and how many were not.
func (s *sender) counts() (accepted, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted), len(s.failed)
}

func (s *sender) last() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAddr
}

// waitAccepted waits until n more tries than now were answered 250.
func (s *sender) waitAccepted(t *testing.T, n int) {
	t.Helper()
	base, _ := s.counts()
	testwait.For(t, fmt.Sprintf("sender %s: %d more messages accepted", s.run, n), func() bool {
		got, _ := s.counts()
		return got >= base+n
	})
}

// stop asks the client to stop (SIGTERM: it finishes the try in progress)
// and waits for its summary.
func (s *sender) stop(t *testing.T) {
	t.Helper()
	if _, err := docker(t.Context(), "kill", "--signal", "TERM", s.name); err != nil {
		t.Errorf("stop sender %s: %v", s.run, err)
	}
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("sender %s still running 60s after SIGTERM", s.run)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		t.Fatalf("sender %s ended without its summary; stderr: %s", s.run, s.stderr.String())
	}
	if s.done.Accepted != len(s.accepted) {
		t.Errorf("sender %s: summary says %d accepted, %d lines read", s.run, s.done.Accepted, len(s.accepted))
	}
}

// hqSender sends to smtp.<zone>, resolved through the three centrals' DNS
// responders (as a resolver with a stub zone for the cluster's zone does),
// from a container on the HQ network.
func hqSender(t *testing.T, p *project, run string) *sender {
	t.Helper()
	dnsServers := p.hqIP("central1") + ":53," + p.hqIP("central2") + ":53," + p.hqIP("central3") + ":53"
	return startSender(t, p, run, []string{"--network", p.network("hq"), "--ip", p.hq + ".31"},
		[]string{"--server", smtpName, "--dns", dnsServers, "--conns", "2", "--interval", "20ms"})
}

// branchSender sends to the branch sensor from inside its network
// namespace (127.0.0.1:25), as the branch office's mail server next to it
// would: it keeps reaching the sensor while the sensor is cut from the
// centrals.
func branchSender(t *testing.T, p *project, run, branch string) *sender {
	t.Helper()
	return startSender(t, p, run, []string{"--network", "container:" + p.container(branch)},
		[]string{"--server", "127.0.0.1", "--port", strconv.Itoa(25), "--interval", "40ms"})
}
