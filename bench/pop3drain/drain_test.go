package pop3drain

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
	"github.com/ospreysec/osprey/pkg/pop3/pop3test"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/pop3poll"
	"github.com/ospreysec/osprey/sensor/spool"
)

var (
	rounds     = flag.Int("rounds", 0, "rounds per client (0: skip the benchmark)")
	count      = flag.Int("messages", 1000, "messages in the mailbox")
	size       = flag.Int("size", 20<<10, "size of each message in bytes")
	workDir    = flag.String("dir", "", "directory of the spool and of fetchmail's deliveries (default: a temporary directory, on disk)")
	cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of osprey's rounds to this file")
)

const (
	user     = "bench"
	password = "bench password"
)

func TestDrain(t *testing.T) {
	if *rounds == 0 {
		t.Skip("a benchmark: give -args -rounds N")
	}
	pop3test.Require(t)
	fetchmail, err := exec.LookPath("fetchmail")
	if err != nil {
		t.Fatalf("fetchmail: %v (apt-get install fetchmail)", err)
	}
	sink, err := exec.LookPath("smtp-sink")
	if err != nil {
		sink = "/usr/sbin/smtp-sink"
		if _, err := os.Stat(sink); err != nil {
			t.Fatalf("smtp-sink: %v (apt-get install postfix)", err)
		}
	}

	caPEM, certPEM, keyPEM := testCA(t)
	d := pop3test.StartDovecot(t, pop3test.DovecotOptions{Users: map[string]string{user: password}, CertPEM: certPEM, KeyPEM: keyPEM})
	work := *workDir
	if work == "" {
		// Not /tmp, which may be a tmpfs where fsync costs nothing.
		var err error
		if work, err = os.MkdirTemp("/var/tmp", "pop3drain"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(work) })
	}
	caFile := filepath.Join(work, "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	msgs := make([][]byte, *count)
	for i := range msgs {
		msgs[i] = message(i, *size)
	}
	fill := func() {
		t.Helper()
		for _, m := range msgs {
			d.AddMessage(user, m)
		}
		if n := d.Messages(user); n != len(msgs) {
			t.Fatalf("%d messages in the mailbox, want %d", n, len(msgs))
		}
	}
	sinkAddr := startSink(t, sink)

	var prof *os.File
	if *cpuProfile != "" {
		if prof, err = os.Create(*cpuProfile); err != nil {
			t.Fatal(err)
		}
		defer prof.Close()
	}
	clients := []struct {
		name string
		run  func(t *testing.T, dir string) time.Duration
	}{
		{"osprey (pop3poll → spool, fsync per message)", func(t *testing.T, dir string) time.Duration {
			if prof != nil {
				pprof.StartCPUProfile(prof)
				defer pprof.StopCPUProfile()
				prof = nil
			}
			return drainOsprey(t, d, dir, caPEM)
		}},
		{"fetchmail (mda: dd conv=fsync per message)", func(t *testing.T, dir string) time.Duration {
			mda := fmt.Sprintf(`/bin/sh -c 'exec dd of=%s/m$$ conv=fsync status=none'`, dir)
			return drainFetchmail(t, fetchmail, d, work, caFile, "mda \""+strings.ReplaceAll(mda, `"`, `\"`)+"\"", dir)
		}},
		{"fetchmail (smtp → smtp-sink, keeps nothing)", func(t *testing.T, dir string) time.Duration {
			return drainFetchmail(t, fetchmail, d, work, caFile, "smtphost "+sinkHostPort(sinkAddr), "")
		}},
	}
	results := make([][]time.Duration, len(clients))
	for r := range *rounds {
		for i, c := range clients {
			fill()
			dir := filepath.Join(work, fmt.Sprintf("round%d-%d", r, i))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			el := c.run(t, dir)
			if n := d.Messages(user); n != 0 {
				t.Fatalf("%s: %d messages left on the server", c.name, n)
			}
			os.RemoveAll(dir)
			results[i] = append(results[i], el)
			t.Logf("round %d: %-46s %6.2f s  %7.1f msg/s", r+1, c.name, el.Seconds(), rate(el))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d messages of %d bytes, implicit TLS (TLS 1.3) on loopback, %d rounds, median:\n\n", *count, *size, *rounds)
	fmt.Fprintf(&b, "| client | seconds | messages/s | Osprey ÷ this |\n|---|---:|---:|---:|\n")
	med := make([]time.Duration, len(clients))
	for i := range clients {
		med[i] = median(results[i])
	}
	for i, c := range clients {
		fmt.Fprintf(&b, "| %s | %.2f | %.0f | %.2f× |\n", c.name, med[i].Seconds(), rate(med[i]), rate(med[0])/rate(med[i]))
	}
	t.Log(b.String())
}

func rate(d time.Duration) float64 { return float64(*count) / d.Seconds() }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// drainOsprey drains the mailbox with the sensor's poller into a spool in
// dir, and returns how long it took: from the start of Run to the QUIT of
// the session that deleted the last message.
func drainOsprey(t *testing.T, d *pop3test.Dovecot, dir string, caPEM []byte) time.Duration {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: dir, MinFreeBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	p, err := pop3poll.New(pop3poll.Options{Spool: sp})
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(d.TLSAddr)
	pn, _ := strconv.Atoi(port)
	cfg := &ospreyv1.SensorConfig{Revision: 1, Pop3: &ospreyv1.Pop3Integration{
		Enabled: true, Server: host, Port: uint32(pn), IntervalSeconds: 3600,
		Tls: true, TlsMode: ospreyv1.Pop3TlsMode_POP3_TLS_MODE_IMPLICIT,
		TlsCertificate: ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY,
		CaPem:          string(caPEM),
		Username:       user, Password: password,
	}}
	if err := p.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(ctx) }()
	want := uint64(*count)
	testwait.For(t, fmt.Sprintf("osprey to delete the %d messages", want), func() bool {
		st := p.Status()
		if st.Counters["pop3_deleted"] >= want {
			return true
		}
		if st.Counters["pop3_errors"] > 0 {
			cancel()
			<-done
			t.Fatalf("osprey: %v", st.Problems)
		}
		return false
	})
	el := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := sp.Stats().Messages; n != *count {
		t.Fatalf("osprey: %d messages in the spool, want %d", n, *count)
	}
	return el
}

// drainFetchmail drains the mailbox with fetchmail, delivering as deliver
// says (an mda or smtphost clause); with dir set, it checks that dir holds
// every message afterwards.
func drainFetchmail(t *testing.T, bin string, d *pop3test.Dovecot, work, caFile, deliver, dir string) time.Duration {
	t.Helper()
	home := filepath.Join(work, "fetchmailhome")
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(d.TLSAddr)
	rc := fmt.Sprintf(`set no syslog
set no bouncemail
poll localhost service %s protocol pop3 timeout 60
  user "%s" password "%s" is "root" here
  ssl sslcertck sslcertfile "%s"
  fetchall nokeep
  %s
`, port, user, password, caFile, deliver)
	rcFile := filepath.Join(home, "fetchmailrc")
	if err := os.WriteFile(rcFile, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, "-f", rcFile, "--nodetach", "-s")
	cmd.Env = append(os.Environ(), "FETCHMAILHOME="+home, "HOME="+home)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	el := time.Since(start)
	if err != nil {
		t.Fatalf("fetchmail: %v\n%s", err, out)
	}
	if dir != "" {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != *count {
			t.Fatalf("fetchmail: %d messages delivered, want %d\n%s", len(ents), *count, out)
		}
	}
	return el
}

// startSink runs Postfix's smtp-sink on a loopback port.
func startSink(t *testing.T, bin string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // smtp-sink is a peer process that must be told its port
	args := []string{"-c", "-p", addr, "256"}
	if os.Getuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	testwait.For(t, "smtp-sink to listen on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return addr
}

// sinkHostPort is addr as fetchmail's smtphost wants it: host/port.
func sinkHostPort(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	return host + "/" + port
}

// testCA returns a CA and a serving certificate and key for localhost and
// 127.0.0.1 issued by it.
func testCA(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	ca, err := pki.NewCA("pop3drain test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.SignServer(key.Public(), []string{"localhost", "127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return ca.CertPEM(),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// message is test message i, of size bytes: headers and lines of 76
// characters, as a base64 attachment would have.
func message(i, size int) []byte {
	b := fmt.Appendf(nil, "From: sender%d@example.com\r\nTo: journal@example.com\r\nSubject: pop3drain message %d\r\nMessage-ID: <%d.pop3drain@example.com>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n", i, i, i)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for j := 0; len(b) < size; j++ {
		n := min(76, size-len(b)-2) // the last line fills up to size
		for k := range max(n, 0) {
			b = append(b, alphabet[(i*7+j*13+k)%len(alphabet)])
		}
		b = append(b, '\r', '\n')
	}
	return b
}
