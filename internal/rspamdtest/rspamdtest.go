// Package rspamdtest runs a private Rspamd daemon (Debian's rspamd package)
// for the tests and benchmarks of the spam engine: the packaged rules, with
// its own configuration, database, pid file and temporary files in a
// directory of its own, its log there too. No Redis: the modules that need
// one turn themselves off.
//
// Its normal worker (the one that answers /checkv2) serves a loopback
// listener that this process binds on 127.0.0.1:0 and hands over the way
// systemd's socket activation does (the socket as descriptor 3,
// LISTEN_FDS=1, bind_socket "systemd:0"), so no port is ever picked. Run
// as root, rspamd's workers drop to the package's _rspamd user; run as
// anyone else, they run as that user.
package rspamdtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrNoRspamd says rspamd is not installed.
var ErrNoRspamd = errors.New("rspamd not found (Debian package rspamd)")

// RequirePeersEnv, set to 1, turns a missing rspamd from a skipped test
// into a failed one.
const RequirePeersEnv = "OSPREY_REQUIRE_PEERS"

// Options shape the daemon.
type Options struct {
	// Workers is the number of normal workers (default 1).
	Workers int
	// WaitCompiled has Start return only once rspamd matches its rules'
	// regular expressions with Hyperscan, as a production rspamd does,
	// rather than with PCRE meanwhile. rspamd compiles them in the
	// background, about a minute of CPU, and keeps them in a cache
	// directory that every rspamd this package starts shares (in the
	// system's temporary directory, one per user), so only the first
	// start on a machine waits for long.
	WaitCompiled bool
	// StartTimeout bounds the start (default 2 minutes; 10 with
	// WaitCompiled).
	StartTimeout time.Duration
	// Nameserver, when set (host:port), is the only DNS server rspamd
	// asks, instead of those of /etc/resolv.conf.
	Nameserver string
}

// Server is a running rspamd.
type Server struct {
	// URL is the base URL of the normal worker: "http://127.0.0.1:port".
	URL string

	dir  string
	ln   *net.TCPListener
	cmd  *exec.Cmd
	done chan struct{} // closed when the daemon exited
	err  error         // why, once done is closed

	stopOnce sync.Once
}

// binary finds rspamd.
func binary() (string, error) {
	if p, err := exec.LookPath("rspamd"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/rspamd", "/usr/sbin/rspamd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNoRspamd
}

// Require returns rspamd's path, or skips t (fails it with
// OSPREY_REQUIRE_PEERS=1) when it is not installed or the tests run with
// -short.
func Require(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs rspamd; skipped with -short")
	}
	bin, err := binary()
	if err != nil {
		if os.Getenv(RequirePeersEnv) == "1" {
			t.Fatalf("%v and %s=1", err, RequirePeersEnv)
		}
		t.Skipf("%v; install it, or run make peers", err)
	}
	return bin
}

// New starts an rspamd for t, skipping t as Require does without one, and
// stops it when t ends. A test that failed logs what rspamd said.
func New(t testing.TB, o Options) *Server {
	t.Helper()
	Require(t)
	s, err := Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rspamd's log:\n%s", s.Log())
		}
		if err := s.Stop(); err != nil {
			t.Errorf("stop rspamd: %v", err)
		}
	})
	return s
}

// config is the daemon's configuration: the packaged rules and options
// ($CONFDIR is /etc/rspamd) with ours over them ($LOCAL_CONFDIR is the
// daemon's directory, not /etc/rspamd), and normal workers on the socket
// handed over. The verbs are the log level and the worker count.
const config = `.include "$CONFDIR/common.conf"

options {
  pidfile = "$RUNDIR/rspamd.pid";
  .include "$CONFDIR/options.inc"
  .include(priority=10) "$LOCAL_CONFDIR/override.d/options.inc"
}

logging {
  type = "file";
  filename = "$LOGDIR/rspamd.log";
  level = "%s";
}

worker "normal" {
  bind_socket = "systemd:0";
  .include "$CONFDIR/worker-normal.inc"
  count = %d;
}
`

// Start runs an rspamd in a new temporary directory until Stop, and
// returns once it answers /ping (and, with Options.WaitCompiled, once its
// compiled rules are loaded).
func Start(ctx context.Context, o Options) (*Server, error) {
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	timeout := o.StartTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
		if o.WaitCompiled {
			timeout = 10 * time.Minute
		}
	}
	// Not under the test's own temporary directory: rspamd's workers may
	// run as another user, who must reach this one.
	dir, err := os.MkdirTemp("", "rspamdtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()
	if err := s.prepare(o); err != nil {
		return nil, err
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	s.ln = ln
	s.URL = "http://" + ln.Addr().String()
	lnFile, err := ln.File()
	if err != nil {
		return nil, err
	}
	defer lnFile.Close() // the daemon holds its own copy

	args := []string{"-f", "-c", filepath.Join(dir, "rspamd.conf"),
		"--var=DBDIR=" + filepath.Join(dir, "db"), "--var=RUNDIR=" + dir,
		"--var=LOGDIR=" + filepath.Join(dir, "log"), "--var=LOCAL_CONFDIR=" + filepath.Join(dir, "local")}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("_rspamd"); err == nil {
			args = append(args, "-u", "_rspamd", "-g", "_rspamd")
		} else {
			args = append(args, "-i") // no user to drop to: run the workers as root
		}
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), "LISTEN_FDS=1")
	s.cmd.ExtraFiles = []*os.File{lnFile} // descriptor 3
	// What rspamd says before its log is open goes to a file beside it.
	console, err := os.Create(filepath.Join(dir, "log", "console.log"))
	if err != nil {
		return nil, err
	}
	defer console.Close() // the daemon holds its own copy
	s.cmd.Stdout, s.cmd.Stderr = console, console
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start rspamd: %w", err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(ctx, timeout, o.WaitCompiled); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// prepare writes the configuration and makes the directories the daemon
// writes to, owned by the user its workers run as.
func (s *Server) prepare(o Options) error {
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"db", "log", "local", "local/override.d", "tmp"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o755); err != nil {
			return err
		}
	}
	opts := fmt.Sprintf("tempdir = %q;\n", filepath.Join(s.dir, "tmp"))
	if cache, err := hyperscanCache(); err == nil {
		opts += fmt.Sprintf("hs_cache_dir = %q;\n", cache)
	}
	if o.Nameserver != "" {
		// The whole of options.inc's dns section, with the server.
		opts += fmt.Sprintf("dns {\n  nameserver = [%q];\n  timeout = 1s;\n  sockets = 16;\n  retransmits = 5;\n}\n", o.Nameserver)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "local", "override.d", "options.inc"), []byte(opts), 0o644); err != nil {
		return err
	}
	// notice has a line per message checked; info adds the loading of the
	// compiled rules, which Start may wait for.
	level := "notice"
	if o.WaitCompiled {
		level = "info"
	}
	if err := os.WriteFile(filepath.Join(s.dir, "rspamd.conf"), fmt.Appendf(nil, config, level, o.Workers), 0o644); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("_rspamd")
	if err != nil {
		return nil // the workers run as root
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range []string{"db", "log", "tmp"} {
		if err := os.Chown(filepath.Join(s.dir, d), uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// hyperscanLoaded is what rspamd logs once it uses the compiled rules: the
// main process at its start when the cache holds them, a worker once they
// are compiled otherwise.
const hyperscanLoaded = "full hyperscan database of"

// hyperscanCache returns the directory of compiled regular expressions
// that the daemons share: rspamd names each file by what it compiled and
// writes it whole (a temporary file renamed), so they may. It is
// this user's (or, for root, the _rspamd user's, who compiles them);
// a directory of that name that someone else owns is not used.
func hyperscanCache() (string, error) {
	uid, gid := os.Geteuid(), os.Getegid()
	if uid == 0 {
		if u, err := user.Lookup("_rspamd"); err == nil {
			uid, _ = strconv.Atoi(u.Uid)
			gid, _ = strconv.Atoi(u.Gid)
		}
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("osprey-rspamd-hs-%d", os.Geteuid()))
	if err := os.Mkdir(dir, 0o755); err == nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", err
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || !st.IsDir() || int(sys.Uid) != uid || st.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("%s is not a directory of uid %d that only it writes", dir, uid)
	}
	return dir, nil
}

// waitReady polls /ping until rspamd answers, it exits, or the time is up.
func (s *Server) waitReady(ctx context.Context, timeout time.Duration, hyperscan bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	for poll := 10 * time.Millisecond; ; poll = min(2*poll, 250*time.Millisecond) {
		if s.ping(ctx, client) && (!hyperscan || strings.Contains(s.Log(), hyperscanLoaded)) {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("rspamd exited (%v) before it answered:\n%s", s.err, s.Log())
		case <-ctx.Done():
			return fmt.Errorf("rspamd not ready after %v:\n%s", timeout, s.Log())
		case <-time.After(poll):
		}
	}
}

func (s *Server) ping(ctx context.Context, client *http.Client) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/ping", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	return err == nil && resp.StatusCode == http.StatusOK && strings.TrimSpace(string(b)) == "pong"
}

// Stop stops the daemon and its workers, closes the listener (so the
// address refuses connections from then on) and removes the directory.
// It may be called more than once.
func (s *Server) Stop() error {
	var err error
	s.stopOnce.Do(func() {
		if s.cmd != nil && s.cmd.Process != nil {
			// The main process stops its workers on SIGTERM; whatever is
			// left after a while is killed.
			s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(15 * time.Second):
				syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
				<-s.done
			}
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) // a worker that outlived its parent
		}
		if s.ln != nil {
			s.ln.Close()
		}
		err = os.RemoveAll(s.dir)
	})
	return err
}

// Stall stops rspamd's processes (SIGSTOP) until resume is called or t
// ends: its listener still takes connections (the kernel queues them) but
// nothing answers, as with a hung daemon.
func (s *Server) Stall(t testing.TB) (resume func()) {
	t.Helper()
	if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("stall rspamd: %v", err)
	}
	var once sync.Once
	resume = func() {
		once.Do(func() { syscall.Kill(-s.cmd.Process.Pid, syscall.SIGCONT) })
	}
	t.Cleanup(resume)
	return resume
}

// Log returns what rspamd logged (notices and worse, infos too with
// Options.WaitCompiled), at most maxLog bytes of each of its two files;
// nothing once it is stopped.
func (s *Server) Log() string {
	var b strings.Builder
	for _, name := range []string{"console.log", "rspamd.log"} {
		f, err := os.Open(filepath.Join(s.dir, "log", name))
		if err != nil {
			continue
		}
		io.Copy(&b, io.LimitReader(f, maxLog))
		f.Close()
	}
	return b.String()
}

// maxLog bounds what Log reads of a file: a benchmark has rspamd log a
// line per message.
const maxLog = 4 << 20
