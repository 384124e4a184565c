// Package postfix runs a private Postfix instance in the foreground, with its
// own configuration, queue and loopback listener, for the end-to-end tests
// (Postfix relaying to a sensor) and the ingest benchmark (Postfix's own
// durable queue as the reference). It never touches the system's Postfix.
package postfix

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// master lists the services Postfix needs, none chrooted; %s is the smtpd
// listener.
const master = `%s inet n - n - - smtpd
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

// Instance is a running private Postfix.
type Instance struct {
	// Addr is the smtpd listener (host:port).
	Addr string
	etc  string
	cmd  *exec.Cmd
	log  *syncBuffer
}

// Start runs Postfix from dir (which must be reachable by the postfix user:
// the caller's temporary directory is opened up to 0755 along its path)
// with smtpd on listen and the main.cf settings in conf added to a relaying
// base configuration. It needs root: Postfix's daemons drop to the postfix user.
func Start(dir, listen string, conf map[string]string) (*Instance, error) {
	return StartWith(dir, listen, conf)
}

// TLSManager is the master.cf line of tlsmgr(8), which smtpd needs to offer
// STARTTLS: pass it to StartWith for an instance with TLS settings.
const TLSManager = "tlsmgr    unix  - - n 1000? 1 tlsmgr"

// StartWith is Start with extra master.cf service lines (such as
// TLSManager).
func StartWith(dir, listen string, conf map[string]string, services ...string) (*Instance, error) {
	bin, err := exec.LookPath("postfix")
	if err != nil {
		return nil, fmt.Errorf("postfix is not installed: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("a private Postfix instance needs root")
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		return nil, fmt.Errorf("postfix user: %w", err)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o005 != 0o005 {
			os.Chmod(d, st.Mode().Perm()|0o755)
		}
	}
	etc, data, queue := filepath.Join(dir, "etc"), filepath.Join(dir, "data"), filepath.Join(dir, "queue")
	for _, d := range []string{etc, data, queue} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.Chown(data, uid, -1); err != nil {
		return nil, err
	}
	settings := map[string]string{
		"compatibility_level":     "3.6",
		"queue_directory":         queue,
		"data_directory":          data,
		"mail_owner":              "postfix",
		"setgid_group":            "postdrop",
		"inet_interfaces":         "127.0.0.1",
		"inet_protocols":          "ipv4",
		"myhostname":              "relay.test",
		"mydestination":           "",
		"mynetworks":              "127.0.0.0/8",
		"smtp_tls_security_level": "none",
		"maillog_file":            "/dev/stdout",
	}
	for k, v := range conf {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var mainCF strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&mainCF, "%s = %s\n", k, settings[k])
	}
	if err := os.WriteFile(filepath.Join(etc, "main.cf"), []byte(mainCF.String()), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(etc, "master.cf"), []byte(fmt.Sprintf(master, listen)+strings.Join(append(services, ""), "\n")), 0o644); err != nil {
		return nil, err
	}
	in := &Instance{Addr: listen, etc: etc, log: &syncBuffer{}}
	in.cmd = exec.Command(bin, "-c", etc, "start-fg")
	in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := in.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			return in, nil
		}
		if time.Now().After(deadline) {
			in.Stop()
			return nil, fmt.Errorf("postfix not listening on %s after 30s:\n%s", listen, in.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the instance and every process it started.
func (in *Instance) Stop() {
	exec.Command("postfix", "-c", in.etc, "stop").Run()
	syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL)
	in.cmd.Wait()
}

// Log returns what Postfix logged.
func (in *Instance) Log() string { return in.log.String() }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// SASLSettings are the main.cf settings of an smtpd that takes AUTH as a
// submission server does: only after STARTTLS (with the certificate chain
// and key in certFile and keyFile), checked by Dovecot's SASL on
// authSocket (a Dovecot of package pop3test started with SASL), and
// relaying for whoever authenticated.
func SASLSettings(authSocket, certFile, keyFile string) map[string]string {
	return map[string]string{
		"smtpd_sasl_auth_enable":   "yes",
		"smtpd_sasl_type":          "dovecot",
		"smtpd_sasl_path":          authSocket,
		"smtpd_tls_security_level": "may",
		"smtpd_tls_auth_only":      "yes",
		"smtpd_tls_cert_file":      certFile,
		"smtpd_tls_key_file":       keyFile,
		"smtpd_relay_restrictions": "permit_sasl_authenticated, reject_unauth_destination",
		"default_transport":        "discard:delivered",
		"relay_transport":          "discard:delivered",
	}
}

// Service is a master.cf line of one more smtpd on listen, with -o
// settings that override main.cf's (such as smtpd_tls_wrappermode=yes for
// implicit TLS): pass it to StartWith.
func Service(listen string, settings ...string) string {
	line := listen + " inet n - n - - smtpd"
	for _, s := range settings {
		line += " -o " + s
	}
	return line
}

// RecipientMap writes a texthash table of recipients in dir and returns
// the main.cf settings that make an instance the mail server of domains
// with only those users: it relays the domains (relay_domains), refuses
// any other recipient of theirs at RCPT with "550 5.1.1 ... User unknown
// in relay recipient table" (relay_recipient_maps, which
// smtpd_reject_unlisted_recipient checks for every client), and discards
// what it takes. Its inflow control is off (in_flow_delay 0): recipient
// verification's probes open transactions and abandon them, which yields
// no delivery, so once its tokens ran out Postfix would pause each new
// transaction for a second. Merge them into the conf of Start.
func RecipientMap(dir string, domains, recipients []string) (map[string]string, error) {
	var b strings.Builder
	for _, r := range recipients {
		fmt.Fprintf(&b, "%s OK\n", r)
	}
	path := filepath.Join(dir, "recipients")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return map[string]string{
		"relay_domains":        strings.Join(domains, " "),
		"relay_recipient_maps": "texthash:" + path,
		"relay_transport":      "discard:delivered",
		"in_flow_delay":        "0",
	}, nil
}

// StartRecipients runs an instance from dir that is the mail server of
// domains with only the users known (see RecipientMap), on a loopback port
// that the kernel picks.
func StartRecipients(dir string, domains, known []string) (*Instance, error) {
	conf, err := RecipientMap(dir, domains, known)
	if err != nil {
		return nil, err
	}
	// Postfix binds the address itself: the port the kernel gave is
	// handed over at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	return Start(filepath.Join(dir, "postfix"), addr, conf)
}
