package siem

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ospreysec/osprey/internal/testwait"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// rsyslogd is where Debian's rsyslog installs the daemon.
const rsyslogd = "/usr/sbin/rsyslogd"

// requireRsyslog skips t, or fails it when OSPREY_REQUIRE_PEERS=1, unless
// rsyslogd is installed; -short skips it.
func requireRsyslog(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs rsyslogd; skipped with -short")
	}
	if _, err := os.Stat(rsyslogd); err != nil {
		if os.Getenv("OSPREY_REQUIRE_PEERS") == "1" {
			t.Fatalf("rsyslogd is required (OSPREY_REQUIRE_PEERS=1) but missing: %v", err)
		}
		t.Skipf("rsyslogd not installed (%v); install rsyslog", err)
	}
}

// rsyslog is a private rsyslogd: imtcp on a loopback port, every message
// written to a file, one per line, as "FIELDS|rawmsg".
type rsyslog struct {
	addr, out, dir, conf string
	cmd                  *exec.Cmd
}

// startRsyslog starts rsyslogd listening on addr ("127.0.0.1:port"): the
// test must tell the peer its port, the one case where it picks one.
func startRsyslog(t *testing.T, addr string) *rsyslog {
	t.Helper()
	requireRsyslog(t)
	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(addr)
	r := &rsyslog{addr: addr, dir: dir, out: filepath.Join(dir, "out.log"), conf: filepath.Join(dir, "rsyslog.conf")}
	// No imuxsock or imklog: only the TCP input. The template keeps the
	// parsed RFC 5424 fields, then the message.
	conf := fmt.Sprintf(`global(workDirectory=%[1]q)
module(load="imtcp")
input(type="imtcp" address=%[2]q port=%[3]q ruleset="osprey")
template(name="fields" type="string" string="%%pri%%|%%timereported:::date-rfc3339%%|%%hostname%%|%%app-name%%|%%procid%%|%%msgid%%|%%structured-data%%|%%msg%%\n")
ruleset(name="osprey") {
  action(type="omfile" file=%[4]q template="fields")
}
`, dir, host, port, r.out)
	if err := os.WriteFile(r.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(rsyslogd, "-N1", "-f", r.conf).CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(r.out)
			t.Logf("rsyslog wrote:\n%s", b)
		}
	})
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

func (r *rsyslog) start(t *testing.T) {
	t.Helper()
	var stderr bytes.Buffer
	r.cmd = exec.Command(rsyslogd, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = &stderr, &stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			r.stop() // before reading what it wrote
			t.Logf("rsyslogd output:\n%s", stderr.String())
		}
	})
	testwait.For(t, "rsyslogd to listen on "+r.addr, func() bool {
		c, err := net.Dial("tcp", r.addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

func (r *rsyslog) stop() {
	if r.cmd != nil {
		r.cmd.Process.Signal(syscall.SIGTERM)
		r.cmd.Wait()
		r.cmd = nil
	}
}

// waitLines waits until the output file has n lines, and returns them.
func (r *rsyslog) waitLines(t *testing.T, n int) []string {
	t.Helper()
	var lines []string
	testwait.For(t, fmt.Sprintf("rsyslog to write %d lines", n), func() bool {
		b, _ := os.ReadFile(r.out)
		lines = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(b) == 0 {
			lines = nil
		}
		return len(lines) >= n
	})
	return lines
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRsyslog sends alerts to a real rsyslogd, which parses each as an
// RFC 5424 message with octet-counting framing: every field arrives as
// sent, and the CEF event intact.
func TestRsyslog(t *testing.T) {
	rs := startRsyslog(t, freeAddr(t))
	e, _ := newExporter(t, Options{Version: "v1.0.0"})
	if err := e.Apply("acme", &ospreyv1.SyslogExport{Enabled: true, Address: rs.addr}); err != nil {
		t.Fatal(err)
	}
	alerts := []*ospreyv1.Alert{alert("acme", "r1"), alert("acme", "r2"), alert("acme", "r3")}
	alerts[1].Severity = ospreyv1.Severity_SEVERITY_CRITICAL
	for _, a := range alerts {
		e.Enqueue(a, 0)
	}
	lines := rs.waitLines(t, len(alerts))
	for i, a := range alerts {
		pri := 13*8 + SyslogSeverity(a.GetSeverity())
		want := fmt.Sprintf("%d|2026-03-02T10:04:05.123456Z|central-1|osprey|%d|alert|-|%s", pri, os.Getpid(), CEF(a, "v1.0.0"))
		if lines[i] != want {
			t.Errorf("line %d:\ngot  %q\nwant %q", i, lines[i], want)
		}
	}
}

// TestRsyslogDownThenUp queues alerts while rsyslogd is down (and a first
// one while it was up, before it restarted), and delivers them once it
// runs again.
func TestRsyslogDownThenUp(t *testing.T) {
	addr := freeAddr(t)
	rs := startRsyslog(t, addr)
	e, _ := newExporter(t, Options{})
	if err := e.Apply("acme", &ospreyv1.SyslogExport{Enabled: true, Address: addr}); err != nil {
		t.Fatal(err)
	}
	e.Enqueue(alert("acme", "u0"), 0)
	rs.waitLines(t, 1)
	rs.stop()
	for i := 1; i <= 5; i++ {
		e.Enqueue(alert("acme", fmt.Sprint("u", i)), 0)
	}
	// Five queued, and u0 again once the sender saw the connection close.
	waitQueued(t, e, "acme", 6)
	rs.start(t)
	lines := rs.waitLines(t, 6)
	got := map[string]int{}
	for _, l := range lines {
		for i := range 6 {
			if strings.Contains(l, fmt.Sprintf("externalId=u%d ", i)) {
				got[fmt.Sprint("u", i)]++
			}
		}
	}
	for i := range 6 {
		if got[fmt.Sprint("u", i)] == 0 {
			t.Errorf("alert u%d never arrived; lines:\n%s", i, strings.Join(lines, "\n"))
		}
	}
	if got["u0"] != 2 {
		t.Errorf("u0 arrived %d times, want twice: written just before the restart, and sent again", got["u0"])
	}
}
