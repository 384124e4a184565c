// Package pop3test runs a real POP3 server, Dovecot, for tests of the POP3
// client and of the sensor's poller: started on loopback ports with a
// configuration generated in a temporary directory (never the system's),
// a passwd-file user database and a Maildir per user that the test fills.
// For what Dovecot will not do on demand (refuse UIDL, list ids that are
// not unique, acknowledge DELE and keep the message), [Server] is a small
// POP3 server of this package that misbehaves as told.
//
// Tests that need it call [StartDovecot], which skips the test when
// Dovecot is not installed, or fails it when OSPREY_REQUIRE_PEERS=1 is set
// (CI sets it, so that a missing peer cannot pass for a green run), and
// skips it with -short.
//
// Dovecot refuses to run its login processes as root and to give mail
// access to uid 0, so as root the server runs its internal processes as
// the "dovecot" user, its login processes as "dovenull", and the mail
// processes as "dovecot", which owns the Maildirs. As any other user
// everything runs as that user.
package pop3test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Binary is where Debian's dovecot-core installs the server.
const Binary = "/usr/sbin/dovecot"

// RequirePeersEnv is the variable that turns a missing peer into a failure.
const RequirePeersEnv = "OSPREY_REQUIRE_PEERS"

// DovecotOptions configure a Dovecot.
type DovecotOptions struct {
	// Users maps user names to passwords.
	Users map[string]string
	// CertPEM and KeyPEM are the serving certificate (chain) and key for
	// STLS and implicit TLS. Required.
	CertPEM, KeyPEM []byte
	// SASL serves Dovecot's authentication to other programs on
	// AuthSocket: Postfix's smtpd_sasl_type = dovecot checks the users'
	// passwords there.
	SASL bool
}

// Dovecot is a running Dovecot.
type Dovecot struct {
	// PlainAddr serves POP3 in plaintext, with STLS; TLSAddr serves it
	// with implicit TLS.
	PlainAddr, TLSAddr string
	// Dir holds the configuration, the log and the Maildirs.
	Dir string
	// AuthSocket is the Unix socket of Dovecot's authentication, with
	// DovecotOptions.SASL; anyone may connect to it.
	AuthSocket string

	tb       testing.TB
	conf     string
	runDir   string
	uid, gid int
	cmd      *exec.Cmd
	waitErr  chan error
	seq      atomic.Uint64
}

// Require skips tb, or fails it when OSPREY_REQUIRE_PEERS=1, unless Dovecot
// is installed. With -short it skips tb in any case: it needs a peer.
func Require(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs dovecot; skipped with -short")
	}
	if _, err := os.Stat(Binary); err != nil {
		if os.Getenv(RequirePeersEnv) == "1" {
			tb.Fatalf("dovecot is required (%s=1) but missing: %v", RequirePeersEnv, err)
		}
		tb.Skipf("dovecot not installed (%v); install dovecot-pop3d", err)
	}
}

// StartDovecot starts a Dovecot for tb and stops it when tb ends.
func StartDovecot(tb testing.TB, opts DovecotOptions) *Dovecot {
	tb.Helper()
	Require(tb)
	if len(opts.CertPEM) == 0 || len(opts.KeyPEM) == 0 {
		tb.Fatal("pop3test: DovecotOptions needs CertPEM and KeyPEM")
	}
	d := &Dovecot{tb: tb, Dir: tb.TempDir()}
	internal, login := "", ""
	if os.Getuid() == 0 {
		internal, login = "dovecot", "dovenull"
		u, err := user.Lookup(internal)
		if err != nil {
			tb.Fatalf("dovecot runs as root here and needs the system user %q: %v", internal, err)
		}
		if _, err := user.Lookup(login); err != nil {
			tb.Fatalf("dovecot runs as root here and needs the system user %q: %v", login, err)
		}
		d.uid, _ = strconv.Atoi(u.Uid)
		d.gid, _ = strconv.Atoi(u.Gid)
		// The mail processes run as that user: let it through the test's
		// directories (t.TempDir makes them 0700).
		for _, dir := range []string{d.Dir, filepath.Dir(d.Dir)} {
			if err := os.Chmod(dir, 0o711); err != nil {
				tb.Fatal(err)
			}
		}
	} else {
		u, err := user.Current()
		if err != nil {
			tb.Fatal(err)
		}
		internal, login = u.Username, u.Username
		d.uid, d.gid = os.Getuid(), os.Getgid()
	}
	// Unix socket paths must stay under 108 bytes: keep base_dir short.
	run, err := os.MkdirTemp("", "dovecot")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(run) })
	d.runDir = run
	sasl := ""
	if opts.SASL {
		// Postfix's smtpd, running as the postfix user, connects to it.
		if err := os.Chmod(run, 0o755); err != nil {
			tb.Fatal(err)
		}
		d.AuthSocket = filepath.Join(run, "auth-sasl")
		// Dovecot delays the attempts of a client address after its
		// failures (its auth penalty, up to 15 s), and every check comes
		// from 127.0.0.1 here: longer than Postfix waits for its answer
		// (10 s). The penalty is off when its anvil listener is.
		sasl = "service auth {\n  unix_listener auth-sasl {\n    mode = 0666\n  }\n}\n" +
			"service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
	}

	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(d.Dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			tb.Fatal(err)
		}
		return p
	}
	cert := write("cert.pem", opts.CertPEM, 0o644)
	key := write("key.pem", opts.KeyPEM, 0o600)
	var pw strings.Builder
	for u, p := range opts.Users {
		fmt.Fprintf(&pw, "%s:{PLAIN}%s\n", u, p)
		for _, sub := range []string{"new", "cur", "tmp"} {
			d.mkdirOwned(filepath.Join(d.Dir, "home", u, "Maildir", sub))
		}
	}
	passwd := write("passwd", []byte(pw.String()), 0o644)

	d.PlainAddr, d.TLSAddr = freeAddr(tb), freeAddr(tb)
	g, err := user.LookupGroupId(strconv.Itoa(d.gid))
	if err != nil {
		tb.Fatalf("group of the mail user: %v", err)
	}
	group := g.Name
	_, plainPort, _ := net.SplitHostPort(d.PlainAddr)
	_, tlsPort, _ := net.SplitHostPort(d.TLSAddr)
	conf := fmt.Sprintf(`# Generated by pop3test for one test.
base_dir = %[1]s
state_dir = %[2]s/state
log_path = %[2]s/dovecot.log
protocols = pop3
listen = 127.0.0.1
default_internal_user = %[3]s
default_internal_group = %[12]s
default_login_user = %[4]s
first_valid_uid = %[5]d
first_valid_gid = %[6]d
ssl = yes
ssl_cert = <%[7]s
ssl_key = <%[8]s
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[9]s
}
userdb {
  driver = static
  args = uid=%[5]d gid=%[6]d home=%[2]s/home/%%u
}
mail_location = maildir:~/Maildir
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = %[10]s
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = %[11]s
    ssl = yes
  }
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
}
`+sasl, run, d.Dir, internal, login, d.uid, d.gid, cert, key, passwd, plainPort, tlsPort, group)
	d.conf = write("dovecot.conf", []byte(conf), 0o644)
	d.Start()
	tb.Cleanup(func() {
		d.Kill()
		if tb.Failed() {
			if log, err := os.ReadFile(filepath.Join(d.Dir, "dovecot.log")); err == nil {
				tb.Logf("dovecot.log:\n%s", log)
			}
		}
	})
	return d
}

// mkdirOwned makes dir, owned by the mail user.
func (d *Dovecot) mkdirOwned(dir string) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		d.tb.Fatal(err)
	}
	for p := dir; p != d.Dir && len(p) > len(d.Dir); p = filepath.Dir(p) {
		if err := os.Chown(p, d.uid, d.gid); err != nil {
			d.tb.Fatal(err)
		}
	}
}

// Config returns the generated configuration.
func (d *Dovecot) Config() string {
	b, err := os.ReadFile(d.conf)
	if err != nil {
		d.tb.Fatal(err)
	}
	return string(b)
}

// Start starts the server (again, after Kill) and waits until it greets.
func (d *Dovecot) Start() {
	d.tb.Helper()
	if d.cmd != nil {
		d.tb.Fatal("pop3test: dovecot already running")
	}
	cmd := exec.Command(Binary, "-F", "-c", d.conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		d.tb.Fatalf("start dovecot: %v", err)
	}
	d.cmd = cmd
	d.waitErr = make(chan error, 1)
	go func() { d.waitErr <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := greets(d.PlainAddr)
		if err == nil {
			return
		}
		select {
		case werr := <-d.waitErr:
			d.cmd = nil
			log, _ := os.ReadFile(filepath.Join(d.Dir, "dovecot.log"))
			d.tb.Fatalf("dovecot exited: %v\n%s\n%s", werr, out.String(), log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.tb.Fatalf("dovecot does not greet on %s: %v", d.PlainAddr, err)
		}
	}
}

// greets reports whether a POP3 server greets on addr.
func greets(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+OK") {
		return fmt.Errorf("greeting %q", line)
	}
	return nil
}

// Kill kills the server and all its processes with SIGKILL, as a crash
// would, and waits for the master to exit.
func (d *Dovecot) Kill() {
	if d.cmd == nil {
		return
	}
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.waitErr
	d.cmd = nil
}

// SetCertificate replaces the serving certificate and key; the server
// uses them from its next Start.
func (d *Dovecot) SetCertificate(certPEM, keyPEM []byte) {
	d.tb.Helper()
	if err := os.WriteFile(filepath.Join(d.Dir, "cert.pem"), certPEM, 0o644); err != nil {
		d.tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "key.pem"), keyPEM, 0o600); err != nil {
		d.tb.Fatal(err)
	}
}

// Maildir returns the Maildir of user.
func (d *Dovecot) Maildir(user string) string {
	return filepath.Join(d.Dir, "home", user, "Maildir")
}

// AddMessage delivers msg to user's Maildir (into new/, as a local
// delivery agent would) and returns its file name.
func (d *Dovecot) AddMessage(user string, msg []byte) string {
	d.tb.Helper()
	dir := d.Maildir(user)
	name := fmt.Sprintf("%d.M%dP%d.pop3test", time.Now().Unix(), d.seq.Add(1), os.Getpid())
	tmp := filepath.Join(dir, "tmp", name)
	if err := os.WriteFile(tmp, msg, 0o600); err != nil {
		d.tb.Fatal(err)
	}
	if err := os.Chown(tmp, d.uid, d.gid); err != nil {
		d.tb.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
		d.tb.Fatal(err)
	}
	return name
}

// Messages returns the number of messages in user's Maildir.
func (d *Dovecot) Messages(user string) int {
	d.tb.Helper()
	n := 0
	for _, sub := range []string{"new", "cur"} {
		des, err := os.ReadDir(filepath.Join(d.Maildir(user), sub))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			d.tb.Fatal(err)
		}
		n += len(des)
	}
	return n
}

// freeAddr returns a loopback address with a port that was free a moment
// ago. Dovecot is a peer process that must be told its ports, the one case
// where a test picks them.
func freeAddr(tb testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
