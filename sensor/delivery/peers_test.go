package delivery

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// requirePeer fails the test when a peer is missing and OSPREY_REQUIRE_PEERS
// is 1 (as in CI, where scripts/install-peers.sh installs them), and skips
// it otherwise.
func requirePeer(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("OSPREY_REQUIRE_PEERS") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// sink is a running Postfix smtp-sink: a fast next hop that throws mail
// away, counts sessions and messages (-c) and logs the commands it gets
// (-v).
type sink struct {
	addr string
	cmd  *exec.Cmd
	out  *os.File // the counters
	log  *os.File // the commands
}

// startSink runs smtp-sink on host:port with extra options (such as "-r",
// "RCPT" to answer RCPT with 4xx).
func startSink(t *testing.T, host string, port int, args ...string) *sink {
	t.Helper()
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/smtp-sink"); serr != nil {
			requirePeer(t, "smtp-sink is not installed (apt package postfix): %v", err)
		}
		bin = "/usr/sbin/smtp-sink"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	args = append([]string{"-c", "-v"}, args...)
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	// Files, not pipes: smtp-sink writes a command to the log before it
	// replies, so once a reply is read the log has the command.
	dir := t.TempDir()
	s := &sink{addr: addr}
	if s.out, err = os.Create(filepath.Join(dir, "counters")); err != nil {
		t.Fatal(err)
	}
	if s.log, err = os.Create(filepath.Join(dir, "log")); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, append(args, addr, "64")...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.log
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	testwait.For(t, "smtp-sink to listen on "+addr, func() bool {
		if log := readFile(s.log); strings.Contains(log, "fatal") {
			t.Fatalf("smtp-sink on %s: %s", addr, log)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	// The probe above was a session of its own.
	testwait.For(t, "smtp-sink to count the probe", func() bool { sess, _, _ := s.counters(); return sess == 1 })
	return s
}

func (s *sink) stop() {
	if s.cmd.ProcessState == nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		s.cmd.Wait()
		s.out.Close()
		s.log.Close()
	}
}

func readFile(f *os.File) string {
	b, _ := os.ReadFile(f.Name())
	return string(b)
}

var countersRE = regexp.MustCompile(`sess=(\d+) quit=(\d+) mesg=(\d+)`)

// counters returns the latest counters smtp-sink printed: sessions ended,
// QUIT commands and messages received.
func (s *sink) counters() (sess, quit, mesg int) {
	m := countersRE.FindAllStringSubmatch(readFile(s.out), -1)
	if len(m) == 0 {
		return 0, 0, 0
	}
	last := m[len(m)-1]
	sess, _ = strconv.Atoi(last[1])
	quit, _ = strconv.Atoi(last[2])
	mesg, _ = strconv.Atoi(last[3])
	return sess, quit, mesg
}

// commands returns the SMTP commands smtp-sink got whose verb is one of
// verbs ("MAIL", "DATA", ...), in order.
func (s *sink) commands(verbs ...string) []string {
	var out []string
	for line := range strings.SplitSeq(readFile(s.log), "\n") {
		// "/usr/sbin/smtp-sink: EHLO gw.osprey.test"
		_, c, ok := strings.Cut(line, "smtp-sink: ")
		if !ok {
			continue
		}
		verb, _, _ := strings.Cut(c, " ")
		for _, v := range verbs {
			if strings.EqualFold(verb, v) {
				out = append(out, c)
			}
		}
	}
	return out
}

// freePort picks a loopback port that the test's peers then listen on, on
// several loopback addresses (127.0.0.2, 127.0.0.3, ...): MX delivery uses
// one port for all hosts (Config.Port), so the hosts of a test share one.
// The listener that picked it stays open on 127.0.0.1 until the test ends,
// so nothing else takes that port meanwhile; it accepts connections and
// never answers (a next hop that hangs).
func freePort(t *testing.T) (int, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port, ln
}

// dnsServer is an authoritative server for the test's zone on 127.0.0.1:
// it answers the records it has, NXDOMAIN for a name it does not know,
// NODATA for a known name without records of the type asked, and SERVFAIL
// for the names in servfail.
type dnsServer struct {
	records  []dns.RR
	servfail map[string]bool
}

func (d *dnsServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) == 1 {
		q := r.Question[0]
		name := strings.ToLower(q.Name)
		known := false
		for _, rr := range d.records {
			if strings.ToLower(rr.Header().Name) != name {
				continue
			}
			known = true
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
			}
		}
		switch {
		case d.servfail[name]:
			m.Rcode = dns.RcodeServerFailure
		case !known:
			m.Rcode = dns.RcodeNameError
		}
	}
	w.WriteMsg(m)
}

// startDNS serves records (zone-file lines: "pref.test. 60 IN MX 10
// mx1.pref.test.") and returns a resolver that asks only this server.
func startDNS(t *testing.T, servfail []string, records ...string) *net.Resolver {
	t.Helper()
	d := &dnsServer{servfail: map[string]bool{}}
	for _, s := range servfail {
		d.servfail[dns.Fqdn(s)] = true
	}
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatalf("record %q: %v", r, err)
		}
		d.records = append(d.records, rr)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: d, NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		srv.Shutdown()
		<-done
	})
	addr := pc.LocalAddr().String()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, network, addr)
		},
	}
}

// runClient returns a client with cfg applied whose connection cache runs
// until the test ends.
func runClient(t *testing.T, opts Options, cfg Config) *Client {
	t.Helper()
	c := New(opts)
	if err := c.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

// msg is a small test message.
func msg(id string) []byte {
	return fmt.Appendf(nil, "From: sender@origin.test\r\nTo: rcpt@dest.test\r\nSubject: %s\r\nMessage-ID: <%s@origin.test>\r\n\r\nHello.\r\n.leading dot\r\n", id, id)
}

// request is a Request for msg(id) to rcpts.
func request(id string, rcpts ...string) Request {
	b := msg(id)
	return Request{ID: id, From: "sender@origin.test", Rcpts: rcpts, Body: bytes.NewReader(b), Size: int64(len(b))}
}

// serverCert returns a test CA and a server certificate it signed for
// name, with its key.
func serverCert(t *testing.T, name string) (*pki.CA, tls.Certificate) {
	t.Helper()
	ca, err := pki.NewCA("delivery test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.SignServer(key.Public(), []string{name}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
