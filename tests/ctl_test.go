package tests

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/api"
)

// ctlResult is what one run of the binary printed and how it exited.
type ctlResult struct {
	stdout, stderr string
	code           int
}

// runOsprey runs the binary with args and env (over the test's
// environment, with every OSPREY_ variable of it removed), and returns its
// output and exit status.
func runOsprey(t *testing.T, env []string, args ...string) ctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, osprey(t), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OSPREY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("osprey %v: %v", args, err)
	}
	return ctlResult{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

// TestCtlUsageErrors: every command line ctl cannot run prints what is
// wrong and the usage on stderr, and exits with status 2.
func TestCtlUsageErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     []string
		args    []string
		wantMsg string
	}{
		{"unknown command", nil, []string{"ctl", "sensorz", "list"}, `unknown command "sensorz list"`},
		{"missing --file", nil, []string{"ctl", "sensor", "smtp", "set", "dev"}, "sensor smtp set: --file FILE is required"},
		{"missing subcommand", nil, []string{"ctl", "alerts"}, `incomplete command "alerts"`},
		{"missing tenant", nil, []string{"ctl", "rules", "list"}, "rules list: missing TENANT"},
		{"tokens without a file", nil, []string{"ctl", "tokens", "create"}, "tokens create: --file FILE is required"},
		{"no command", nil, []string{"ctl"}, "no command"},
		{"unknown acceptance list", nil, []string{"ctl", "acceptance", "list", "dev", "trusted"}, `acceptance list: KIND "trusted": want inbound, outbound or auth`},
		{"acceptance import without a file", nil, []string{"ctl", "acceptance", "import", "dev", "inbound"}, "acceptance import: --file FILE is required"},
		{"unknown flag", nil, []string{"ctl", "--bogus", "sensors", "list"}, "flag provided but not defined: -bogus"},
		{"address without a scheme", nil, []string{"ctl", "--address", "127.0.0.1:8080", "sensors", "list"},
			`--address "127.0.0.1:8080" has no scheme: write http://127.0.0.1:8080`},
		{"address without a scheme, from the environment", []string{"OSPREY_ADDRESS=127.0.0.1:8080"}, []string{"ctl", "sensors", "list"},
			`OSPREY_ADDRESS "127.0.0.1:8080" has no scheme: write http://127.0.0.1:8080`},
		{"malformed fingerprint", []string{"OSPREY_TLS_FINGERPRINT=12:34"}, []string{"ctl", "sensors", "list"},
			`OSPREY_TLS_FINGERPRINT: fingerprint "12:34": want the 64 hex digits of a SHA-256`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runOsprey(t, tt.env, tt.args...)
			if r.code != 2 {
				t.Errorf("exit status %d, want 2", r.code)
			}
			if !strings.Contains(r.stderr, tt.wantMsg) || !strings.Contains(r.stderr, "Usage: osprey ctl") {
				t.Errorf("stderr:\n%s\nwant %q and the usage", r.stderr, tt.wantMsg)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
}

// TestCtlExplainsFailures runs ctl against `osprey dev`: a refused password
// or token is explained with where it came from (and never shown), an https
// address of the plain-HTTP node with the address to use; the sensor list
// shows the certificate fingerprint to compare before approving, and the
// alert list the header From of a message without an envelope sender.
func TestCtlExplainsFailures(t *testing.T) {
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	base := apiLine.FindStringSubmatch(d.stdout.String())[1]
	const wrong = "not-the-password-42"
	dir := t.TempDir()
	wrongFile, rightFile := filepath.Join(dir, "wrong"), filepath.Join(dir, "right")
	if err := os.WriteFile(wrongFile, []byte(wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rightFile, []byte(adminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	token := "osp_0123456789abcdef_" + strings.Repeat("A", 43)
	addr := "OSPREY_ADDRESS=" + base
	tests := []struct {
		name    string
		env     []string
		args    []string
		wantErr string
	}{
		{"password flag", []string{addr}, []string{"--username", "admin", "--password", wrong},
			`the server refused user "admin" (from --username) with the password from --password`},
		{"password environment", []string{addr, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + wrong}, nil,
			`the server refused user "admin" (from OSPREY_USERNAME) with the password from OSPREY_PASSWORD`},
		{"password file", []string{addr, "OSPREY_USERNAME=admin"}, []string{"--password-file", wrongFile},
			`the server refused user "admin" (from OSPREY_USERNAME) with the password in ` + wrongFile + ` (--password-file)`},
		{"token environment", []string{addr, "OSPREY_TOKEN=" + token}, nil,
			"the server refused the token osp_0123456789abcdef_…, from OSPREY_TOKEN"},
		{"no credentials", []string{addr}, nil, "no credentials were given"},
		{"https to plain HTTP", []string{"OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword},
			[]string{"--address", strings.Replace(base, "http://", "https://", 1)},
			"answers in plain HTTP, not HTTPS: use the address " + base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runOsprey(t, tt.env, append(append([]string{"ctl"}, tt.args...), "sensors", "list")...)
			if r.code != 1 || !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("exit status %d, stderr %q; want 1 and %q", r.code, r.stderr, tt.wantErr)
			}
			for _, secret := range []string{wrong, adminPassword, strings.Repeat("A", 43)} {
				if strings.Contains(r.stderr, secret) {
					t.Errorf("stderr %q shows a secret", r.stderr)
				}
			}
		})
	}

	// The sensor list: the fingerprint's start, to compare with the one
	// the sensor printed at enrollment.
	s := waitSensor(t, d.api, "dev", "enrolled", func(s *api.Sensor) bool { return s.CertFingerprint != "" })
	r := runOsprey(t, []string{addr, "OSPREY_USERNAME=admin"}, "ctl", "--password-file", rightFile, "sensors", "list")
	if r.code != 0 {
		t.Fatalf("ctl sensors list: exit status %d, stderr %q", r.code, r.stderr)
	}
	if !regexp.MustCompile(`(?m)^ID\s.*\sFINGERPRINT\s`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^dev\s.*\s`+s.CertFingerprint[:16]+`…`).MatchString(r.stdout) {
		t.Errorf("ctl sensors list:\n%s\nwant a FINGERPRINT column with %s…", r.stdout, s.CertFingerprint[:16])
	}

	// An alert of a message with the null sender shows its header From.
	swaks := requirePeer(t, "swaks")
	listen := loopbackPort(t)
	d.enableSMTP(t, smtpConfig(listen))
	host, port, _ := net.SplitHostPort(listen)
	out, err := exec.CommandContext(t.Context(), swaks, "--server", host, "--port", port, "--timeout", "20",
		"--from", "<>", "--to", "bob@example.com", "--header", "From: Mallory <mallory@evil.example>",
		"--header", "Subject: bounce with a virus", "--body", eicarTestFile).CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	a := waitAlert(t, d.api, api.AlertQuery{Tenant: "default", Q: "bounce with a virus"}, 1)[0]
	if a.Envelope == nil || a.Envelope.MailFrom != "" {
		t.Fatalf("alert envelope %+v: want the null sender", a.Envelope)
	}
	r = runOsprey(t, []string{addr, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword}, "ctl", "alerts", "list")
	if r.code != 0 || !regexp.MustCompile(`(?m)^.*\s`+a.ID+`\s.*Mallory <mallory@evil\.example>`).MatchString(r.stdout) {
		t.Errorf("ctl alerts list: exit status %d\n%s\n%s\nwant the alert %s FROM Mallory <mallory@evil.example>", r.code, r.stdout, r.stderr, a.ID)
	}
}

var centralAPICertLine = regexp.MustCompile(`API certificate:\s+SHA-256 ([0-9a-f]{64})`)

// TestCtlVerifiesANodeCertificate runs `osprey central` bound to 127.0.0.2,
// not 127.0.0.1, with its self-signed API certificate: ctl verifies it with
// the certificate as its CA (it names the address), or pins the fingerprint
// the node printed (from the flag or the environment); a wrong fingerprint
// and an unknown CA fail with what to do.
func TestCtlVerifiesANodeCertificate(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "n1")
	p := start(t, nil, "central",
		"--node-name", "n1",
		"--data-dir", dataDir,
		"--http-addr", "127.0.0.2:0",
		"--grpc-addr", "127.0.0.2:0",
		"--etcd-client-addr", "127.0.0.1:0",
		"--etcd-peer-addr", "127.0.0.1:0",
		"--gossip-addr", "127.0.0.2:0",
		"--dns-addr", "127.0.0.2:0",
		"--gossip-key", testGossipKey,
		"--bootstrap-admin-password", adminPassword,
		"--log-format", "text")
	base := p.waitLine(t, centralAPILine)[1]
	if !strings.HasPrefix(base, "https://127.0.0.2:") {
		t.Fatalf("the node serves %s, want https://127.0.0.2:PORT", base)
	}
	fp := p.waitLine(t, centralAPICertLine)[1]
	if !strings.Contains(p.stderr.String(), fp) {
		t.Errorf("the log does not carry the certificate's fingerprint %s", fp)
	}
	creds := []string{"OSPREY_ADDRESS=" + base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword}
	colons := strings.ToUpper(fp[:2])
	for i := 2; i < len(fp); i += 2 {
		colons += ":" + strings.ToUpper(fp[i:i+2])
	}
	other := strings.Repeat("0", 64)
	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		wantErr  []string
	}{
		{name: "the node's certificate as the CA", args: []string{"--tls-ca", filepath.Join(dataDir, "http-tls", "cert.pem")}},
		{name: "pinned", args: []string{"--tls-fingerprint", fp}},
		{name: "pinned as openssl prints it", args: []string{"--tls-fingerprint", colons}},
		{name: "pinned from the environment", env: []string{"OSPREY_TLS_FINGERPRINT=" + fp}},
		{name: "one of several pins", args: []string{"--tls-fingerprint", other + "," + fp}},
		{name: "another fingerprint", args: []string{"--tls-fingerprint", other}, wantCode: 1,
			wantErr: []string{"the server's certificate has SHA-256 fingerprint " + fp + ", which is not the pinned " + other}},
		{name: "no way to verify", wantCode: 1,
			wantErr: []string{"certificate signed by unknown authority", "pin it with --tls-fingerprint", "--tls-ca"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runOsprey(t, append(creds, tt.env...), append(append([]string{"ctl"}, tt.args...), "sensors", "list")...)
			if r.code != tt.wantCode {
				t.Errorf("exit status %d, want %d; stderr %q", r.code, tt.wantCode, r.stderr)
			}
			if tt.wantCode == 0 && !strings.HasPrefix(r.stdout, "ID") {
				t.Errorf("stdout %q, want the sensor list", r.stdout)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q, want %q", r.stderr, w)
				}
			}
		})
	}
}

// TestCtlUsersWithRoles: `users create` makes users of the product's roles
// and their tenants, refuses a bad one with the field named, and a user
// whose role does not manage users cannot make one.
func TestCtlUsersWithRoles(t *testing.T) {
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	base := apiLine.FindStringSubmatch(d.stdout.String())[1]
	dir := t.TempDir()
	const socPassword = "a long password for soc"
	pwFile := filepath.Join(dir, "soc")
	if err := os.WriteFile(pwFile, []byte(socPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := []string{"OSPREY_ADDRESS=" + base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword}

	r := runOsprey(t, admin, "ctl", "users", "create", "soc", "--role", "senior-officer", "--tenants", "default", "--new-password-file", pwFile)
	if r.code != 0 || !strings.Contains(r.stdout, `"role": "senior-security-officer"`) || !strings.Contains(r.stdout, `"default"`) {
		t.Fatalf("create soc: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runOsprey(t, admin, "ctl", "users", "create", "audit", "--role", "security-auditor", "--all-tenants", "--new-password-file", pwFile)
	if r.code != 0 {
		t.Fatalf("create audit: exit %d, stderr %q", r.code, r.stderr)
	}
	r = runOsprey(t, admin, "ctl", "users", "list")
	for _, want := range []string{"soc", "senior-security-officer", "default", "audit", "(all)", "administrator"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("users list %q lacks %q", r.stdout, want)
		}
	}
	r = runOsprey(t, admin, "ctl", "users", "create", "lost", "--role", "officer", "--new-password-file", pwFile)
	if r.code != 1 || !strings.Contains(r.stderr, "tenants: required") {
		t.Errorf("a user of no tenant: exit %d, stderr %q; want 1 and the field tenants", r.code, r.stderr)
	}
	soc := []string{"OSPREY_ADDRESS=" + base, "OSPREY_USERNAME=soc", "OSPREY_PASSWORD=" + socPassword}
	r = runOsprey(t, soc, "ctl", "users", "create", "eve", "--role", "administrator", "--all-tenants", "--new-password-file", pwFile)
	if r.code != 1 || !strings.Contains(r.stderr, "403") && !strings.Contains(strings.ToLower(r.stderr), "forbidden") {
		t.Errorf("a senior security officer creates a user: exit %d, stderr %q; want 1 and forbidden", r.code, r.stderr)
	}
	if r := runOsprey(t, soc, "ctl", "alerts", "list"); r.code != 0 {
		t.Errorf("a senior security officer lists alerts: exit %d, stderr %q", r.code, r.stderr)
	}
}
