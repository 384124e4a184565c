// Package pgtest runs a real PostgreSQL server for tests, from the binaries
// of Debian's postgresql package: initdb into a temporary directory, then
// postgres listening on a unix socket only, so tests never pick a port.
//
// PostgreSQL refuses to run as root; when the tests do, the server runs as
// the unprivileged user nobody. A package's tests share one server, started
// on first use, and each test gets its own database (DB); the package's
// TestMain calls Main so the server stops when the tests end.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// Server is a running PostgreSQL server.
type Server struct {
	bin     string // the directory of initdb and postgres
	dataDir string
	sockDir string
	cred    *syscall.Credential // nil: run as ourselves
	durable bool                // fsync on, as in production

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

// ErrNoPostgres says the PostgreSQL server binaries are not installed.
var ErrNoPostgres = errors.New("PostgreSQL server binaries not found (Debian package postgresql)")

// binDir finds the directory of the newest installed server binaries.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoPostgres
}

func versionOf(binDir string) int {
	var v int
	fmt.Sscanf(filepath.Base(filepath.Dir(binDir)), "%d", &v)
	return v
}

// Start initialises a new cluster in a temporary directory and starts it,
// with fsync off: tests need its semantics, not its durability.
func Start(ctx context.Context) (*Server, error) { return start(ctx, false) }

// StartDurable is Start with fsync on, as PostgreSQL runs in production:
// for benchmarks whose figures stand for a real deployment.
func StartDurable(ctx context.Context) (*Server, error) { return start(ctx, true) }

func start(ctx context.Context, durable bool) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	// The socket's path must fit in a sockaddr_un: a short directory.
	root, err := os.MkdirTemp("", "pgtest")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dataDir: filepath.Join(root, "data"), sockDir: root, durable: durable}
	if os.Geteuid() == 0 {
		s.cred = &syscall.Credential{Uid: 65534, Gid: 65534} // nobody
		if err := os.Chown(root, 65534, 65534); err != nil {
			os.RemoveAll(root)
			return nil, err
		}
	}
	if s.log, err = os.Create(filepath.Join(root, "server.log")); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	s.log.Chown(65534, 65534)
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", s.dataDir, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	initdb.Dir = root
	if out, err := initdb.CombinedOutput(); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	if err := s.start(); err != nil {
		s.cleanup()
		return nil, err
	}
	return s, nil
}

// start runs postgres and waits until it accepts connections.
func (s *Server) start() error {
	fsync := "off"
	if s.durable {
		fsync = "on"
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.dataDir, "-k", s.sockDir,
		"-c", "listen_addresses=", "-c", "fsync="+fsync, "-c", "max_connections=200",
		"-c", "log_min_messages=warning")
	cmd.Dir = s.sockDir
	// The server dies with the test binary, should it exit without Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	db, err := sql.Open("pgx", s.URL("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case werr := <-done:
			done <- werr
			return fmt.Errorf("postgres exited: %v\n%s", werr, s.Log())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after 30s: %v\n%s", err, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URL returns the connection URL of database db, over the unix socket.
func (s *Server) URL(db string) string {
	q := url.Values{"host": {s.sockDir}, "sslmode": {"disable"}}
	return "postgres://postgres@/" + url.PathEscape(db) + "?" + q.Encode()
}

// Log returns what the server wrote to its log.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.sockDir, "server.log"))
	return string(b)
}

// CreateDB creates a database with a fresh name and returns its URL.
func (s *Server) CreateDB(ctx context.Context) (name, dbURL string, err error) {
	b := make([]byte, 6)
	rand.Read(b)
	name = "t_" + hex.EncodeToString(b)
	db, err := sql.Open("pgx", s.URL("postgres"))
	if err != nil {
		return "", "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", "", fmt.Errorf("create database: %w", err)
	}
	return name, s.URL(name), nil
}

// Kill stops the server at once with SIGKILL, as a crash would.
func (s *Server) Kill() error { return s.signal(syscall.SIGKILL) }

// Stop stops the server with a fast shutdown (SIGINT) and waits for it.
func (s *Server) Stop() error { return s.signal(syscall.SIGINT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		return errors.New("postgres did not stop within 30s; killed")
	}
}

// Restart starts a stopped or killed server again on the same data.
func (s *Server) Restart() error {
	s.Stop()
	return s.start()
}

// Close stops the server and removes its files.
func (s *Server) Close() error {
	err := s.Stop()
	s.cleanup()
	return err
}

func (s *Server) cleanup() {
	if s.log != nil {
		s.log.Close()
	}
	os.RemoveAll(s.sockDir)
}

var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Main runs a package's tests (from its TestMain), then stops the shared
// server if a test started it, then, when the tests passed, runs the checks
// (a goroutine-leak check, say): os.Exit(pgtest.Main(m, goleak.Find)).
func Main(m *testing.M, checks ...func() error) int {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Close()
	}
	for _, check := range checks {
		if code != 0 {
			break
		}
		if err := check(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	return code
}

// Shared returns the package's shared server, starting it on first use.
// Without PostgreSQL installed the test is skipped, or fails when
// OSPREY_REQUIRE_PEERS=1.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.srv, shared.err = Start(ctx)
	})
	if shared.err != nil {
		if errors.Is(shared.err, ErrNoPostgres) && os.Getenv("OSPREY_REQUIRE_PEERS") != "1" {
			t.Skipf("%v; install it, or run make peers", shared.err)
		}
		t.Fatalf("start PostgreSQL: %v", shared.err)
	}
	return shared.srv
}

// DB creates a fresh database on the shared server for t and returns its
// URL; the database is dropped when the test ends.
func DB(t testing.TB) string {
	t.Helper()
	srv := Shared(t)
	name, dbURL, err := srv.CreateDB(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("pgx", srv.URL("postgres"))
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return dbURL
}
