package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// osprey builds the binary once per test run.
func osprey(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "osprey-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "osprey")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/osprey").CombinedOutput()
		if err != nil {
			buildErr = &buildError{err: err, out: out}
		}
	})
	if buildErr != nil {
		t.Fatalf("build osprey: %v", buildErr)
	}
	return binPath
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

// proc is a running osprey process.
type proc struct {
	cmd    *exec.Cmd
	stdout *lineBuffer
	stderr *lineBuffer
	done   chan error
}

type lineBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	lines chan string
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(osprey(t), args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, stderr: &lineBuffer{}, done: make(chan error, 1)}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.stdout = &lineBuffer{lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.stdout.Write([]byte(sc.Text() + "\n"))
			select {
			case p.stdout.lines <- sc.Text():
			default:
			}
		}
		close(p.stdout.lines)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

// waitLine returns the first submatch of re in the process's stdout.
func (p *proc) waitLine(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-p.stdout.lines:
			if !ok {
				t.Fatalf("process ended without printing %s", re)
			}
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-timeout:
			t.Fatalf("no line matching %s after 60s", re)
		}
	}
}

// interrupt sends SIGINT (Ctrl-C) and waits for a clean exit.
func (p *proc) interrupt(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after Ctrl-C: %v, want status 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20s after Ctrl-C")
	}
}

func run(t *testing.T, env []string, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, osprey(t), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var (
	apiLine      = regexp.MustCompile(`API:\s+(http\S+)/api/v1`)
	passwordLine = regexp.MustCompile(`Admin:\s+user "admin", password "([^"]+)"`)
)

// TestDevCommand runs `osprey dev` as a user would: it prints where to look,
// answers /readyz, takes configuration through `osprey ctl`, stops cleanly on
// Ctrl-C, and keeps everything across a restart on the same data dir.
func TestDevCommand(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	env := []string{
		"OSPREY_DATA_DIR=" + dataDir, // flags from the environment
		"OSPREY_HTTP_ADDR=127.0.0.1:0",
		"OSPREY_GRPC_ADDR=127.0.0.1:0",
		"OSPREY_ETCD_CLIENT_ADDR=127.0.0.1:0",
		"OSPREY_ETCD_PEER_ADDR=127.0.0.1:0",
		"OSPREY_GOSSIP_ADDR=127.0.0.1:0",
		"OSPREY_DNS_ADDR=127.0.0.1:0",
	}
	p := start(t, env, "dev")
	base := p.waitLine(t, apiLine)[1]
	password := p.waitLine(t, passwordLine)[1]

	stored, err := os.ReadFile(filepath.Join(dataDir, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(stored)) != password {
		t.Errorf("initial-admin-password holds %q, want the printed password", stored)
	}
	if st, err := os.Stat(filepath.Join(dataDir, "initial-admin-password")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("initial-admin-password mode: %v (%v), want 0600", st.Mode().Perm(), err)
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz: got %d, want 200", resp.StatusCode)
	}

	ctl := []string{"OSPREY_ADDRESS=" + base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + password}
	out, err := run(t, ctl, "", "ctl", "sensors", "list")
	if err != nil || !strings.Contains(out, "dev") || !strings.Contains(out, "approved") {
		t.Fatalf("ctl sensors list: %v\n%s", err, out)
	}
	smtp := `{"enabled":true,"listen":"127.0.0.1:2525","destination_domains":["example.com","!hr.example.com"],
		"clients":["10.0.0.0/8","!10.0.0.5","2001:db8::/32"],"max_message_size":{"unlimited":false,"value":25,"unit":"MB"}}`
	if out, err := run(t, ctl, smtp, "ctl", "sensor", "smtp", "set", "dev", "--file", "-"); err != nil {
		t.Fatalf("ctl sensor smtp set: %v\n%s", err, out)
	}
	bad := `{"enabled":true,"listen":"127.0.0.1:2525","clients":["10.0.0.1/8"],"max_message_size":{"value":1,"unit":"MB"}}`
	out, err = run(t, ctl, bad, "ctl", "sensor", "smtp", "set", "dev", "--file", "-")
	if err == nil || !strings.Contains(out, "clients[0]") {
		t.Errorf("ctl with an invalid CIDR: err %v, output %q; want a failure naming clients[0]", err, out)
	}
	rule := `{"kind":"sender_domain","value":"Evil.Example","severity":"high","description":"known phisher"}`
	if out, err := run(t, ctl, rule, "ctl", "rules", "create", "default", "--file", "-"); err != nil {
		t.Fatalf("ctl rules create: %v\n%s", err, out)
	}
	out, err = run(t, ctl, "", "ctl", "rules", "list", "default")
	if err != nil || !strings.Contains(out, "sender_domain") || !strings.Contains(out, "evil.example") {
		t.Errorf("ctl rules list: %v\n%s; want the rule, its value canonical", err, out)
	}
	if out, err := run(t, ctl, "", "ctl", "alerts", "list", "default", "high"); err != nil || !strings.HasPrefix(out, "TIME") {
		t.Errorf("ctl alerts list: %v\n%s", err, out)
	}
	p.interrupt(t)

	// The same data dir after a restart: same password, same configuration.
	p2 := start(t, env, "dev")
	base = p2.waitLine(t, apiLine)[1]
	if got := p2.waitLine(t, passwordLine)[1]; got != password {
		t.Errorf("second start printed password %q, want %q", got, password)
	}
	ctl[0] = "OSPREY_ADDRESS=" + base
	out, err = run(t, ctl, "", "ctl", "sensor", "smtp", "get", "dev")
	if err != nil {
		t.Fatalf("ctl sensor smtp get: %v\n%s", err, out)
	}
	var got struct {
		Version int64 `json:"version"`
		Value   struct {
			Clients []string `json:"clients"`
		} `json:"value"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if got.Version == 0 || len(got.Value.Clients) != 3 {
		t.Errorf("after restart: %+v, want the stored configuration", got)
	}
	p2.interrupt(t)
}

func TestVersionCommand(t *testing.T) {
	out, err := run(t, nil, "", "version")
	if err != nil || !regexp.MustCompile(`^osprey \S+ \(commit \S+, go1\.\d+`).MatchString(out) {
		t.Errorf("osprey version: %v, %q", err, out)
	}
}
