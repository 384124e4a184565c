package tests

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/testwait"
)

// The gateway's faults end to end: its next hop (smtp-sink) deferring,
// refusing, or down, with a real Postfix holding the senders' mailboxes
// and, outbound, as the internal server that relays through the gateway.

// sinkRun is an smtp-sink the test stops and starts again on one address:
// a next hop that changes its mind.
type sinkRun struct {
	*smtpSink
	cmd *exec.Cmd
}

// runSink runs smtp-sink on addr with the extra options (such as "-r",
// "RCPT": a 4xx for every RCPT), dumping each message it takes into a
// file of its own in dir; with dir empty it dumps nothing.
func runSink(t *testing.T, addr, dir string, extra ...string) *sinkRun {
	t.Helper()
	bin := requirePeer(t, "smtp-sink")
	args := extra
	if dir != "" {
		args = append(args, "-d", filepath.Join(dir, "%H%M%S."))
	}
	if os.Geteuid() == 0 {
		// As startSMTPSink: a user to become, who may write the dumps.
		args = append(args, "-u", "postfix")
		if dir != "" {
			for _, d := range []string{filepath.Dir(dir), dir} {
				if err := os.Chmod(d, 0o777); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	s := &sinkRun{smtpSink: &smtpSink{addr: addr, dir: dir}}
	s.cmd = exec.Command(bin, append(args, addr, "100")...)
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	testwait.For(t, "smtp-sink "+strings.Join(extra, " ")+" listening on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return s
}

// stop kills the sink; its address is free once stop returns.
func (s *sinkRun) stop() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// hop is the next hop at addr (host:port).
func hop(t *testing.T, addr string) api.NextHop {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return api.NextHop{Host: host, Port: uint32(port)}
}

// inboundGateway is an inbound gateway on listen for the local domains,
// each delivered to the next hop beside it ("example.com", "127.0.0.1:2525",
// ...), retrying after 10 to 20 s.
func inboundGateway(t *testing.T, listen string, domainHops ...string) *api.SMTPIntegration {
	t.Helper()
	var domains []api.LocalDomain
	for i := 0; i+1 < len(domainHops); i += 2 {
		domains = append(domains, api.LocalDomain{Domain: domainHops[i], Hosts: []api.NextHop{hop(t, domainHops[i+1])}})
	}
	return &api.SMTPIntegration{
		Enabled:        true,
		Mode:           api.SMTPInbound,
		MaxMessageSize: &api.SizeLimit{Value: 1, Unit: api.MB},
		Gateway: &api.SMTPGateway{
			Inbound:      &api.GatewayListener{Listen: listen},
			LocalDomains: domains,
			HeloName:     "gw.example.com",
			Queue:        &api.DeliveryQueueSettings{MinBackoffSeconds: 10, MaxBackoffSeconds: 20},
		},
	}
}

// sendSubject sends a message with subject to bob@example.com from
// alice@partner.test through the gateway's listener.
func sendSubject(t *testing.T, listen, subject string) {
	t.Helper()
	msg := "From: alice@partner.test\r\nTo: bob@example.com\r\nSubject: " + subject + "\r\n\r\nhello\r\n"
	if err := smtpSend(listen, "partner.test", "alice@partner.test", "bob@example.com", false, msg); err != nil {
		t.Fatalf("send %q: %v", subject, err)
	}
}

// subjects returns the Subject of each message the sink took, in the
// order of its dump files' modification times (the order of arrival).
func (s *smtpSink) subjects(t *testing.T) []string {
	t.Helper()
	files, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	type dump struct {
		at      time.Time
		subject string
	}
	var dumps []dump
	for _, f := range files {
		info, err := f.Info()
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(s.dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(b), "\nSubject: ")
		subject, _, _ := strings.Cut(rest, "\n")
		dumps = append(dumps, dump{info.ModTime(), strings.TrimRight(subject, "\r")})
	}
	slices.SortStableFunc(dumps, func(a, b dump) int { return a.at.Compare(b.at) })
	out := make([]string, len(dumps))
	for i, d := range dumps {
		out[i] = d.subject
	}
	return out
}

// wantSubjects checks that got holds each of want exactly once.
func wantSubjects(t *testing.T, got []string, want []string) {
	t.Helper()
	a, b := slices.Clone(got), slices.Clone(want)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Errorf("the next hop took %q, want each of %q once", got, want)
	}
}

// TestGatewayNextHopDefersThenAccepts: the internal server answers 4xx to
// every RCPT; the gateway's messages wait in its queue as deferred; once
// the server takes mail again (restarted on its address without the
// rejection) each is delivered once, at its retry.
func TestGatewayNextHopDefersThenAccepts(t *testing.T) {
	next := loopbackPort(t)
	soft := runSink(t, next, "", "-r", "RCPT")
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	listen := loopbackPort(t)
	d.enableSMTP(t, inboundGateway(t, listen, "example.com", next))

	const n = 5
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("deferred %d", i))
		sendSubject(t, listen, want[i])
	}
	waitSensor(t, d.api, "dev", fmt.Sprintf("%d recipients deferred after a 4xx", n), func(s *api.Sensor) bool {
		return s.Counters["queue_deferred"] == n
	})

	soft.stop()
	sink := runSink(t, next, t.TempDir())
	testwait.For(t, fmt.Sprintf("%d messages delivered after their retry", n), func() bool {
		return len(sink.messages(t)) >= n
	})
	waitSensor(t, d.api, "dev", "an empty queue", func(s *api.Sensor) bool { return s.Counters["queue_messages"] == 0 })
	wantSubjects(t, sink.subjects(t), want)
	for _, m := range sink.messages(t) {
		if !strings.Contains(m, "X-Osprey-Verdict: clean\n") {
			t.Errorf("delivered without its verdict:\n%s", m)
		}
	}
}

// TestGatewayNextHopDownThenBack: nothing listens on the internal server's
// address; the gateway takes every message (250) and keeps it; once a
// server listens there, each is delivered once.
func TestGatewayNextHopDownThenBack(t *testing.T) {
	next := loopbackPort(t)
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	listen := loopbackPort(t)
	cfg := inboundGateway(t, listen, "example.com", next)
	// One delivery at a time, so that the order of arrival shows the
	// order in which the queue tried them.
	cfg.Gateway.Queue.DestinationConcurrency = 1
	d.enableSMTP(t, cfg)

	const n = 10
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("while down %02d", i))
		sendSubject(t, listen, want[i])
	}
	// Deferred: tried and refused at connect (or held with its
	// destination after the first such failure).
	waitSensor(t, d.api, "dev", fmt.Sprintf("%d recipients deferred while the next hop is down", n), func(s *api.Sensor) bool {
		return s.Counters["queue_deferred"] == n
	})

	sink := runSink(t, next, t.TempDir())
	testwait.For(t, fmt.Sprintf("%d messages delivered once the next hop is up", n), func() bool {
		return len(sink.messages(t)) >= n
	})
	waitSensor(t, d.api, "dev", "an empty queue", func(s *api.Sensor) bool { return s.Counters["queue_messages"] == 0 })
	got := sink.subjects(t)
	wantSubjects(t, got, want)
	t.Logf("order of arrival at the next hop: %q", got)
}
