package main

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"io"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/ospreysec/osprey/internal/testwait"
)

// TestMain runs main instead of the tests when PGIMAGE_TEST_MAIN=1: the
// tests start the entry point as a process of its own with a copy of this
// binary.
func TestMain(m *testing.M) {
	if os.Getenv("PGIMAGE_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func addrs(a ...string) func() ([]netip.Addr, error) {
	return func() ([]netip.Addr, error) {
		var out []netip.Addr
		for _, s := range a {
			out = append(out, netip.MustParseAddr(s))
		}
		return out, nil
	}
}

func TestConfigFromEnv(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("from-the-file-0123\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"OSPREY_PG_PASSWORD": "a-good-password-1", "OSPREY_PG_ALLOW": "172.30.10.0/24"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    *config
		wantErr []string // each in the error
	}{
		{
			name: "defaults",
			env:  base,
			want: &config{dataDir: "/var/lib/postgresql/data", password: "a-good-password-1", user: "osprey", db: "osprey",
				allow:     []netip.Prefix{netip.MustParsePrefix("172.30.10.0/24")},
				listen:    []netip.Addr{netip.MustParseAddr("172.30.10.5")},
				socketDir: "/var/run/postgresql"},
		},
		{
			name: "everything set",
			env: with("PGDATA", "/data/pg", "OSPREY_PG_PASSWORD", "", "OSPREY_PG_PASSWORD_FILE", pwFile,
				"OSPREY_PG_USER", "mail_sec", "OSPREY_PG_DB", "osprey2", "OSPREY_PG_ALLOW", "10.0.0.0/8, fd00::/8",
				"OSPREY_PG_LISTEN", "10.1.2.3,fd00::5", "OSPREY_PG_SOCKET_DIR", "/tmp"),
			want: &config{dataDir: "/data/pg", password: "from-the-file-0123", user: "mail_sec", db: "osprey2",
				allow:     []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")},
				listen:    []netip.Addr{netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("fd00::5")},
				socketDir: "/tmp"},
		},
		{
			name: "no password: a later start",
			env:  with("OSPREY_PG_PASSWORD", ""),
			want: &config{dataDir: "/var/lib/postgresql/data", user: "osprey", db: "osprey",
				allow:     []netip.Prefix{netip.MustParsePrefix("172.30.10.0/24")},
				listen:    []netip.Addr{netip.MustParseAddr("172.30.10.5")},
				socketDir: "/var/run/postgresql"},
		},
		{
			name:    "no networks allowed",
			env:     with("OSPREY_PG_ALLOW", ""),
			wantErr: []string{"OSPREY_PG_ALLOW: required"},
		},
		{
			name:    "bad networks",
			env:     with("OSPREY_PG_ALLOW", "172.30.10.1/24,10.0.0.1,nonsense/8"),
			wantErr: []string{"OSPREY_PG_ALLOW[0]", "did you mean 172.30.10.0/24", "OSPREY_PG_ALLOW[1]", "OSPREY_PG_ALLOW[2]"},
		},
		{
			name:    "every problem at once",
			env:     with("PGDATA", "data", "OSPREY_PG_USER", "Osprey", "OSPREY_PG_DB", "pg_x", "OSPREY_PG_PASSWORD", "short", "OSPREY_PG_LISTEN", "eth0", "OSPREY_PG_SOCKET_DIR", "run"),
			wantErr: []string{"PGDATA", "OSPREY_PG_USER", "OSPREY_PG_DB: \"pg_x\" is reserved", "OSPREY_PG_PASSWORD: 5 characters", "OSPREY_PG_LISTEN[0]", "OSPREY_PG_SOCKET_DIR"},
		},
		{
			name:    "the superuser's name",
			env:     with("OSPREY_PG_USER", "postgres"),
			wantErr: []string{"OSPREY_PG_USER: \"postgres\" is reserved"},
		},
		{
			name:    "a password with a space",
			env:     with("OSPREY_PG_PASSWORD", "correct horse battery"),
			wantErr: []string{"OSPREY_PG_PASSWORD: character 8"},
		},
		{
			name:    "both password settings",
			env:     with("OSPREY_PG_PASSWORD_FILE", pwFile),
			wantErr: []string{"give one, not both"},
		},
		{
			name:    "a missing password file",
			env:     with("OSPREY_PG_PASSWORD", "", "OSPREY_PG_PASSWORD_FILE", pwFile+".missing"),
			wantErr: []string{"OSPREY_PG_PASSWORD_FILE: open"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := configFromEnv(env(tc.env), addrs("172.30.10.5"))
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("got %+v, want an error naming %q", got, tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("got error %q, want it to contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(config{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHBAConf(t *testing.T) {
	c := &config{user: "osprey", db: "osprey", allow: []netip.Prefix{netip.MustParsePrefix("172.30.10.0/24"), netip.MustParsePrefix("fd00::/64")}}
	var got []string
	for _, l := range strings.Split(hbaConf(c), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			got = append(got, strings.Join(strings.Fields(l), " "))
		}
	}
	want := []string{
		"local all postgres peer",
		"local osprey osprey scram-sha-256",
		"host osprey osprey 172.30.10.0/24 scram-sha-256",
		"host osprey osprey fd00::/64 scram-sha-256",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pg_hba.conf (-want +got):\n%s", diff)
	}
}

// TestScramVerifier checks the verifier against one PostgreSQL 15 stored
// for the password "correct horse battery" (CREATE ROLE ... PASSWORD,
// then SELECT rolpassword FROM pg_authid).
func TestScramVerifier(t *testing.T) {
	const fromPostgres = "SCRAM-SHA-256$4096:YUVumrf4xWd0kV7BrTCUEg==$t0xik6UXBF/JerF5vxsbk61C86rDHLOmqi/AjYO/4G8=:+lsC0HlkeC2Inpnfa15yL9Ex0CbCXm6z+XaGQnh/Ego="
	salt, _ := base64.StdEncoding.DecodeString("YUVumrf4xWd0kV7BrTCUEg==")
	if got := scramVerifier("correct horse battery", salt, 4096); got != fromPostgres {
		t.Errorf("got %s, want %s", got, fromPostgres)
	}
}

// server is the entry point started as a process, on a unix socket only.
type server struct {
	cmd     *exec.Cmd
	done    chan error
	sockDir string
	log     *logBuf
}

// startEntryPoint runs a copy of the test binary as the entry point with
// env, as the user nobody when the tests run as root (PostgreSQL refuses
// root), listening on a unix socket in root/run only.
func startEntryPoint(t *testing.T, root string, env ...string) *server {
	t.Helper()
	exe := filepath.Join(root, "pgimage")
	s := &server{sockDir: filepath.Join(root, "run"), done: make(chan error, 1), log: &logBuf{}}
	cmd := exec.Command(exe, "-c", "listen_addresses=", "-c", "fsync=off")
	cmd.Env = append([]string{"PGIMAGE_TEST_MAIN=1", "PGDATA=" + filepath.Join(root, "pg", "data"),
		"OSPREY_PG_SOCKET_DIR=" + s.sockDir, "OSPREY_PG_LISTEN=127.0.0.1", "PATH=/usr/bin:/bin"}, env...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: credential(), Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("the entry point's log:\n%s", s.log)
		}
	})
	return s
}

// stop stops postgres fast (SIGINT, the image's stop signal) and waits.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		t.Errorf("postgres did not stop in 30 s on SIGINT")
	}
}

// url is the URL of db for user over the unix socket.
func (s *server) url(user, password, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Path: "/" + db,
		RawQuery: url.Values{"host": {s.sockDir}, "sslmode": {"disable"}}.Encode()}
	return u.String()
}

// connect waits until the server answers, and opens db as user; the error
// is the server's answer, when it refused.
func (s *server) connect(t *testing.T, user, password, db string) (*sql.DB, error) {
	t.Helper()
	var conn *sql.DB
	var err error
	testwait.For(t, "an answer from postgres", func() bool {
		if conn, err = sql.Open("pgx", s.url(user, password, db)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		err = conn.PingContext(ctx)
		cancel()
		var pgErr *pgconn.PgError
		if err == nil || errors.As(err, &pgErr) && pgErr.Code != "57P03" { // 57P03: starting up
			return true
		}
		conn.Close()
		select {
		case werr := <-s.done:
			s.done <- werr
			t.Fatalf("the entry point exited: %v", werr)
		default:
		}
		return false
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	return conn, nil
}

// pgCode is the SQLSTATE of err, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// TestEntryPoint starts the entry point on the host's PostgreSQL twice on
// one data directory: the first start makes the cluster (over what an
// interrupted first start left), the role and its database; the second
// keeps them, and rewrites pg_hba.conf.
func TestEntryPoint(t *testing.T) {
	needPostgres(t)
	root := ownedTempDir(t)
	copyExecutable(t, filepath.Join(root, "pgimage"))
	for _, d := range []string{"pg", "run", "pg/data.init", "pg/data.init/base"} {
		mkdirOwned(t, filepath.Join(root, d))
	}
	const password = "first-start-password-7"

	s := startEntryPoint(t, root, "OSPREY_PG_PASSWORD="+password, "OSPREY_PG_ALLOW=10.99.0.0/16")
	db, err := s.connect(t, "osprey", password, "osprey")
	if err != nil {
		t.Fatalf("log in as osprey: %v\n%s", err, s.log)
	}
	var super bool
	var encoding, collate, enc string
	if err := db.QueryRowContext(t.Context(), `SELECT r.rolsuper, current_setting('server_encoding'), d.datcollate, current_setting('password_encryption')
		FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = current_database()`).Scan(&super, &encoding, &collate, &enc); err != nil {
		t.Fatal(err)
	}
	if super || encoding != "UTF8" || collate != "C" || enc != "scram-sha-256" {
		t.Errorf("got superuser %v, encoding %s, collation %s, password_encryption %s; want false, UTF8, C, scram-sha-256", super, encoding, collate, enc)
	}
	// The role owns its database: it makes tables in it (as the
	// migrations do).
	if _, err := db.ExecContext(t.Context(), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before the restart')"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, user, password, db, code string }{
		{"a wrong password", "osprey", "not-the-password", "osprey", "28P01"},
		{"another database", "osprey", password, "postgres", "28000"},
		{"the superuser with the password", "postgres", password, "postgres", "28000"},
	} {
		if _, err := s.connect(t, tc.user, tc.password, tc.db); pgCode(err) != tc.code {
			t.Errorf("%s: got %v, want SQLSTATE %s", tc.name, err, tc.code)
		}
	}
	// The server's environment holds no password.
	environ, err := os.ReadFile("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(environ), password) || strings.Contains(string(environ), "OSPREY_PG_PASSWORD") {
		t.Errorf("the server's environment holds the password: %q", environ)
	}
	if strings.Contains(s.log.String(), password) {
		t.Errorf("the password is in the log:\n%s", s.log)
	}
	if _, err := os.Stat(filepath.Join(root, "pg", "data.init")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data.init after the first start: %v, want it gone", err)
	}
	s.stop(t)

	// A later start needs no password; it takes new networks.
	s = startEntryPoint(t, root, "OSPREY_PG_ALLOW=10.98.0.0/16")
	db, err = s.connect(t, "osprey", password, "osprey")
	if err != nil {
		t.Fatalf("log in after the restart: %v\n%s", err, s.log)
	}
	var v string
	if err := db.QueryRowContext(t.Context(), "SELECT v FROM kept").Scan(&v); err != nil || v != "before the restart" {
		t.Errorf("after the restart: got %q, %v; want the row written before", v, err)
	}
	hba, err := os.ReadFile(filepath.Join(root, "pg", "data", "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(hba), "10.98.0.0/16") || strings.Contains(string(hba), "10.99.0.0/16") {
		t.Errorf("pg_hba.conf after the restart names the old networks, or not the new:\n%s", hba)
	}
}

// TestEntryPointRefuses checks what the entry point refuses before it runs
// anything: a data directory with files but no cluster, and a first start
// without a password.
func TestEntryPointRefuses(t *testing.T) {
	needPostgres(t)
	for _, tc := range []struct {
		name    string
		prepare func(dataDir string)
		env     []string
		want    string
	}{
		{"files but no cluster", func(d string) { mkdirOwned(t, d); os.WriteFile(filepath.Join(d, "stray"), nil, 0o600) },
			[]string{"OSPREY_PG_PASSWORD=a-good-password-1"}, "holds files but no PG_VERSION"},
		{"no password on the first start", func(string) {}, nil, "no password for a new one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := ownedTempDir(t)
			copyExecutable(t, filepath.Join(root, "pgimage"))
			mkdirOwned(t, filepath.Join(root, "pg"))
			tc.prepare(filepath.Join(root, "pg", "data"))
			s := startEntryPoint(t, root, append(tc.env, "OSPREY_PG_ALLOW=10.0.0.0/8")...)
			select {
			case err := <-s.done:
				s.done <- err
				if err == nil || !strings.Contains(s.log.String(), tc.want) {
					t.Errorf("got exit %v, log %q; want a failure saying %q", err, s.log, tc.want)
				}
			case <-time.After(time.Minute):
				t.Fatalf("the entry point still runs after a minute; log %q", s.log)
			}
		})
	}
}

// needPostgres skips the test without the host's PostgreSQL server, or
// fails it when OSPREY_REQUIRE_PEERS=1.
func needPostgres(t *testing.T) {
	t.Helper()
	if _, err := binDir(); err != nil {
		if os.Getenv("OSPREY_REQUIRE_PEERS") == "1" {
			t.Fatalf("%v and OSPREY_REQUIRE_PEERS=1", err)
		}
		t.Skipf("%v; install it, or run make peers", err)
	}
}

// credential is the user the entry point runs as: nobody when the tests
// run as root, else the tests' own.
func credential() *syscall.Credential {
	if os.Geteuid() == 0 {
		return &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	return nil
}

// ownedTempDir is a temporary directory that the entry point's user owns,
// with a path short enough for a unix socket in it.
func ownedTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgimage")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	chown(t, dir)
	return dir
}

func mkdirOwned(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	chown(t, dir)
}

func chown(t *testing.T, path string) {
	t.Helper()
	if c := credential(); c != nil {
		if err := os.Chown(path, int(c.Uid), int(c.Gid)); err != nil {
			t.Fatal(err)
		}
	}
}

// copyExecutable copies the test binary to path, where the entry point's
// user may run it.
func copyExecutable(t *testing.T, path string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// logBuf is the server's stdout and stderr, read while it writes.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
