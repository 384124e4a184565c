package tests

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// postfixMaster lists the services a relaying Postfix needs, none chrooted;
// %s is the smtpd listener.
const postfixMaster = `%s inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`

// startPostfix runs a private Postfix instance in the foreground that takes
// mail for example.com on its own loopback port and relays it to relayhost,
// as a company's mail server pointed at a sensor does.
func startPostfix(t *testing.T, relayhost string) (listen string) {
	t.Helper()
	postfix := requirePeer(t, "postfix")
	if os.Geteuid() != 0 {
		t.Skip("a private Postfix instance needs root here (its daemons drop to the postfix user)")
	}
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("postfix user: %v", err)
	}
	uid, _ := strconv.Atoi(pfUser.Uid)
	dir := t.TempDir()
	// Postfix's daemons run as the postfix user and must reach their queue.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	etc, data := filepath.Join(dir, "etc"), filepath.Join(dir, "data")
	for _, d := range []string{etc, data, filepath.Join(dir, "queue")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(data, uid, -1); err != nil {
		t.Fatal(err)
	}
	listen = loopbackPort(t)
	mainCF := strings.Join([]string{
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(dir, "queue"),
		"data_directory = " + data,
		"mail_owner = postfix",
		"setgid_group = postdrop",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"myhostname = relay.test",
		"mydestination =",
		"mynetworks = 127.0.0.0/8",
		"relay_domains = example.com",
		"relayhost = [" + strings.Replace(relayhost, ":", "]:", 1),
		"smtp_tls_security_level = none",
		"maillog_file = /dev/stdout",
		"queue_run_delay = 1s",
		"minimal_backoff_time = 1s",
		"maximal_backoff_time = 2s",
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(etc, "main.cf"), []byte(mainCF), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "master.cf"), []byte(fmt.Sprintf(postfixMaster, listen)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(postfix, "-c", etc, "start-fg")
	log := &lineBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command(postfix, "-c", etc, "stop").Run()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("postfix log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			return listen
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix not listening on %s after 30s:\n%s", listen, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPostfixRelaysToSensor: Postfix with the sensor as its relayhost;
// mail submitted to Postfix reaches the sensor's spool and is uploaded.
func TestPostfixRelaysToSensor(t *testing.T) {
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	sensorAddr := loopbackPort(t)
	cfg := smtpConfig(sensorAddr)
	d.enableSMTP(t, cfg)
	postfixAddr := startPostfix(t, sensorAddr)

	const n = 20
	for i := range n {
		if err := sendOne(postfixAddr, fmt.Sprintf("relayed-%d@example.org", i)); err != nil {
			t.Fatalf("submit to postfix: %v", err)
		}
	}
	recs := d.waitRecords(t, fmt.Sprintf("%d relayed messages", n), func(r []*ospreyv1.MessageRecord) bool { return len(r) >= n })
	for _, r := range recs {
		env := r.GetEnvelope()
		if !strings.HasPrefix(env.GetMailFrom(), "relayed-") || env.GetHelo() != "relay.test" {
			t.Errorf("record %v: want a message relayed by relay.test", env)
		}
	}
	if len(recs) != n {
		t.Errorf("got %d records, want %d", len(recs), n)
	}
}
