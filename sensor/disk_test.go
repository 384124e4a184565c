//go:build linux

package sensor_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/smtp"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor"
	"github.com/ospreysec/osprey/sensor/internal/centraltest"
	"github.com/ospreysec/osprey/sensor/internal/tmpfstest"
)

// TestRunFullDisk is the sensor whose disk filled up while its central
// took nothing: it was stopped with a backlog of acknowledged mail on a
// disk full to the last byte. Started again it must come up, answer SMTP
// with 421 and report an ALERT in its status, upload the backlog once the
// central takes it, and so free the disk, after which it drops the ALERT
// and takes mail again, all by itself. (The spool's own test,
// TestFullDiskRestart, kills a process with SIGKILL on a full disk.)
func TestRunFullDisk(t *testing.T) {
	const (
		before  = 5   // messages uploaded and removed before the backlog
		backlog = 120 // messages the central does not take
		floor   = 2 << 20
	)
	root := tmpfstest.Mount(t, 48<<20)
	srv := centraltest.NewServer(t, centraltest.Options{Approve: true})
	listen := loopbackPort(t)
	cfg := &ospreyv1.SensorConfig{Revision: 1, Smtp: &ospreyv1.SmtpIntegration{
		Enabled:            true,
		Listen:             listen,
		DestinationDomains: []string{"example.com"},
		MaxMessageSize:     &ospreyv1.SizeLimit{Value: 1, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB},
	}}
	opts := sensor.Options{
		Central:           srv.Addr(),
		JoinToken:         srv.Token().String(),
		DataDir:           filepath.Join(root, "data"),
		SpoolMinFreeBytes: floor,
		StatusInterval:    20 * time.Millisecond,
	}

	// First life: configured, some mail uploaded, then a backlog.
	stop := run(t, opts)
	st := srv.NextStream(t)
	st.SendConfig(t, cfg)
	if ack := st.Next(t).GetAck(); ack.GetRevision() != 1 {
		t.Fatalf("first answer: %v, want the Ack of revision 1", ack)
	}
	for i := range before {
		sendMail(t, listen, i)
	}
	srv.WaitUploads(t, before)
	waitStatus(t, st, "uploaded and removed the first messages", func(s *ospreyv1.SensorStatus) bool {
		return s.GetCounters()["uploaded"] == before
	})
	srv.PauseUploads()
	for i := before; i < before+backlog; i++ {
		sendMail(t, listen, i)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	tmpfstest.Fill(t, root)

	// Second life, on the full disk.
	runErr := make(chan error, 1)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { runErr <- sensor.Run(ctx, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case st = <-srv.Streams():
	case err := <-runErr:
		runErr <- err
		t.Fatalf("Run on a full disk returned at once: %v", err)
	case <-time.After(centraltest.Wait):
		t.Fatalf("no Connect stream within %v", centraltest.Wait)
	}
	st.SendConfig(t, cfg) // the central sends its configuration, and statuses flow
	alert := fmt.Sprintf("ALERT: spool %s: low disk space: 0 B free, below the 2 MiB floor; ", filepath.Join(opts.DataDir, "spool"))
	waitStatus(t, st, "an ALERT for the full disk", func(s *ospreyv1.SensorStatus) bool {
		return !s.GetHealthy() && hasProblem(s, alert)
	})
	if reply := greeting(t, listen); !strings.HasPrefix(reply, "421 4.3.2 ") {
		t.Errorf("greeting on a full disk: %q, want 421 4.3.2", reply)
	}

	// The central takes the backlog: nothing is lost, the disk is freed.
	srv.ResumeUploads()
	got := uploaded(srv.WaitUploads(t, before+backlog))
	for i := range before + backlog {
		if !got[i] {
			t.Errorf("message %d was not uploaded whole", i)
		}
	}
	waitStatus(t, st, "healthy without the ALERT", func(s *ospreyv1.SensorStatus) bool {
		return s.GetHealthy() && !hasProblem(s, "ALERT:")
	})
	if free := tmpfstest.Free(t, root); free < floor {
		t.Errorf("%d bytes free after the upload of the backlog, want at least the floor of %d", free, floor)
	}
	sendMail(t, listen, before+backlog)
	if got := uploaded(srv.WaitUploads(t, before+backlog+1)); !got[before+backlog] {
		t.Errorf("the message sent after the disk was freed was not uploaded")
	}
}

// loopbackPort returns a loopback port nobody listens on now, for a
// listener that is configured rather than bound here (the SMTP address).
func loopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// mailBody is message i: about 96 KiB, with a line that names it.
func mailBody(i int) string {
	return fmt.Sprintf("Subject: message %d\r\nX-Test-Message: %d\r\n\r\n", i, i) +
		strings.Repeat(fmt.Sprintf("line of message %06d\r\n", i), 4096)
}

// sendMail sends message i over SMTP, which the sensor acknowledges with
// 250 only once it is in the spool.
func sendMail(t *testing.T, addr string, i int) {
	t.Helper()
	if err := smtp.SendMail(addr, nil, "alice@sender.test", []string{"bob@example.com"}, []byte(mailBody(i))); err != nil {
		t.Fatalf("send message %d: %v", i, err)
	}
}

// uploaded returns the numbers of the messages among the uploads whose
// bytes end with what was sent (the sensor puts a Received header first).
func uploaded(uploads map[string][]byte) map[int]bool {
	out := make(map[int]bool)
	for _, b := range uploads {
		_, rest, ok := strings.Cut(string(b), "X-Test-Message: ")
		if !ok {
			continue
		}
		var i int
		if _, err := fmt.Sscanf(rest, "%d\r\n", &i); err == nil && strings.HasSuffix(string(b), mailBody(i)) {
			out[i] = true
		}
	}
	return out
}

// greeting returns the first reply line of the SMTP server at addr.
func greeting(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, centraltest.Wait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(centraltest.Wait))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read the greeting: %v", err)
	}
	return line
}

// hasProblem reports whether a problem of s starts with prefix.
func hasProblem(s *ospreyv1.SensorStatus, prefix string) bool {
	for _, p := range s.GetProblems() {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

// waitStatus waits for a status of st for which ok holds.
func waitStatus(t *testing.T, st *centraltest.Stream, what string, ok func(*ospreyv1.SensorStatus) bool) {
	t.Helper()
	deadline := time.Now().Add(centraltest.Wait)
	var last *ospreyv1.SensorStatus
	for time.Now().Before(deadline) {
		if last = st.NextStatus(t); ok(last) {
			return
		}
	}
	t.Fatalf("no status %s within %v; the last: healthy %v, problems %q", what, centraltest.Wait, last.GetHealthy(), last.GetProblems())
}
