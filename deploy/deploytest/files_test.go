package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

var (
	flagsOnce sync.Once
	flagsBin  string
	flagsErr  error
)

// ospreyFlags returns the environment variables (OSPREY_<FLAG>) that
// `osprey cmd` reads, from its -h.
func ospreyFlags(t *testing.T, cmd string) map[string]bool {
	t.Helper()
	flagsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "osprey-deploytest")
		if err != nil {
			flagsErr = err
			return
		}
		flagsBin = filepath.Join(dir, "osprey")
		b := exec.Command("go", "build", "-o", flagsBin, "./cmd/osprey")
		b.Dir = repoRoot(t)
		if out, err := b.CombinedOutput(); err != nil {
			flagsErr = &buildError{err, out}
		}
	})
	if flagsErr != nil {
		t.Fatalf("build osprey: %v", flagsErr)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, flagsBin, cmd, "-h").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags["OSPREY_"+strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))] = true
	}
	if len(flags) < 5 {
		t.Fatalf("osprey %s -h: no flags found in %q", cmd, out)
	}
	return flags
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }

// checkEnv fails for every OSPREY_ variable of env that `osprey cmd` does not
// read: a misspelt one would be ignored without a word.
func checkEnv(t *testing.T, where, cmd string, env []string) {
	t.Helper()
	if testing.Short() {
		return // it builds osprey
	}
	flags := ospreyFlags(t, cmd)
	for _, name := range env {
		if strings.HasPrefix(name, "OSPREY_") && !flags[name] {
			t.Errorf("%s: %s is not a flag of osprey %s", where, name, cmd)
		}
	}
}

// TestComposeFileEnv checks that every OSPREY_ variable the compose file
// gives a container is a flag of the command it runs.
func TestComposeFileEnv(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds osprey")
	}
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "compose", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			Command     []string          `json:"command"`
			Entrypoint  []string          `json:"entrypoint"`
			Environment map[string]string `json:"environment"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Services) < 6 {
		t.Fatalf("%d services, want the centrals, the branch sensors and the clients", len(f.Services))
	}
	for name, s := range f.Services {
		cmd := ""
		switch {
		case len(s.Command) > 0 && (s.Command[0] == "central" || s.Command[0] == "sensor"):
			cmd = s.Command[0]
		case len(s.Entrypoint) > 1 && s.Entrypoint[1] == "ctl":
			cmd = "ctl"
		default:
			continue
		}
		var env []string
		for k := range s.Environment {
			env = append(env, k)
		}
		checkEnv(t, "compose service "+name, cmd, env)
	}
}

// TestSystemdUnits checks the units of deploy/systemd: the hardening they
// promise, their environment files, and (when systemd-analyze is installed)
// that systemd accepts them and rates their exposure low.
func TestSystemdUnits(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "deploy", "systemd")
	for _, tc := range []struct{ unit, cmd, envFile, stateDir string }{
		{"osprey-central.service", "central", "central.env", "/var/lib/osprey"},
		{"osprey-sensor.service", "sensor", "sensor.env", "/var/lib/osprey-sensor"},
	} {
		t.Run(tc.unit, func(t *testing.T) {
			u := parseUnit(t, filepath.Join(dir, tc.unit))
			want := map[string]string{
				"ExecStart":               "/usr/local/bin/osprey " + tc.cmd,
				"EnvironmentFile":         "/etc/osprey/" + tc.envFile,
				"User":                    "osprey",
				"NoNewPrivileges":         "yes",
				"ProtectSystem":           "strict",
				"ProtectHome":             "yes",
				"PrivateTmp":              "yes",
				"PrivateDevices":          "yes",
				"ReadWritePaths":          tc.stateDir,
				"StateDirectory":          strings.TrimPrefix(tc.stateDir, "/var/lib/"),
				"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
				"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
				"RestrictSUIDSGID":        "yes",
				"MemoryDenyWriteExecute":  "yes",
				"SystemCallArchitectures": "native",
				"Restart":                 "on-failure",
				"UMask":                   "0077",
			}
			for k, v := range want {
				if got := u["Service"][k]; len(got) == 0 || got[len(got)-1] != v {
					t.Errorf("[Service] %s = %q, want %q", k, got, v)
				}
			}
			if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
				t.Errorf("[Install] WantedBy = %q, want multi-user.target", got)
			}
			var env []string
			envData, err := os.ReadFile(filepath.Join(dir, tc.envFile))
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(bytes.NewReader(envData))
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				// A setting left commented out ("#OSPREY_DB_URL=...") is
				// checked too: it is there to be uncommented.
				if m := commentedSetting.FindStringSubmatch(line); m != nil {
					env = append(env, m[1])
					continue
				}
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				k, _, ok := strings.Cut(line, "=")
				if !ok {
					t.Errorf("%s: %q is not NAME=value", tc.envFile, line)
				}
				env = append(env, k)
			}
			for _, e := range u["Service"]["Environment"] {
				k, _, _ := strings.Cut(e, "=")
				env = append(env, k)
			}
			checkEnv(t, tc.unit, tc.cmd, env)
		})
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("systemd-analyze is not installed: the units were checked by their keys only")
		return
	}
	// systemd-analyze verify wants ExecStart to exist: copies of the units
	// that start this test binary instead.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	var units []string
	for _, unit := range []string{"osprey-central.service", "osprey-sensor.service"} {
		data, err := os.ReadFile(filepath.Join(dir, unit))
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.ReplaceAll(data, []byte("/usr/local/bin/osprey"), []byte(exe))
		path := filepath.Join(tmp, unit)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, path)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, analyze, append([]string{"verify"}, units...)...).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, u := range units {
		// Exposure 0 (locked down) to 10 (unsafe); 2.0 is "OK".
		out, err := exec.CommandContext(ctx, analyze, "security", "--offline=yes", "--threshold=20", u).CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "--offline") && strings.Contains(string(out), "nrecognized") {
				t.Logf("systemd-analyze security --offline is not supported by this systemd")
				return
			}
			t.Errorf("systemd-analyze security %s: %v\n%s", filepath.Base(u), err, out)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Logf("%s", lines[len(lines)-1])
	}
}

// commentedSetting is a commented-out NAME=value line of an environment file.
var commentedSetting = regexp.MustCompile(`^#\s*([A-Z][A-Z0-9_]*)=`)

// parseUnit reads a systemd unit: section → key → values in order.
func parseUnit(t *testing.T, path string) map[string]map[string][]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: %q is not a key=value in a section", path, line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

// composeDefaults replaces each ${NAME:-default} of the compose file by its
// default and each ${NAME:?message} by "<NAME>", as compose would with no
// variables set but the required ones.
func composeDefaults(data []byte) []byte {
	data = regexp.MustCompile(`\$\{(\w+):-([^}]*)\}`).ReplaceAll(data, []byte("$2"))
	return regexp.MustCompile(`\$\{(\w+):\?[^}]*\}`).ReplaceAll(data, []byte("<$1>"))
}

// TestComposePostgres checks how the compose file wires PostgreSQL, with
// the variables' defaults: on the HQ network only, at the address every
// central's OSPREY_DB_URL names, taking logins from the HQ subnet only,
// with the password of OSPREY_DB_PASSWORD, a volume, a health check the
// centrals wait for, and the hardening of every other container.
func TestComposePostgres(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "compose", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	type network struct {
		IPv4Address string `json:"ipv4_address"`
	}
	var f struct {
		Services map[string]struct {
			Command     []string           `json:"command"`
			User        string             `json:"user"`
			ReadOnly    bool               `json:"read_only"`
			CapDrop     []string           `json:"cap_drop"`
			SecurityOpt []string           `json:"security_opt"`
			Environment map[string]string  `json:"environment"`
			Networks    map[string]network `json:"networks"`
			Volumes     []string           `json:"volumes"`
			Tmpfs       []string           `json:"tmpfs"`
			Healthcheck *struct {
				Test []string `json:"test"`
			} `json:"healthcheck"`
			DependsOn map[string]struct {
				Condition string `json:"condition"`
			} `json:"depends_on"`
		} `json:"services"`
		Networks map[string]struct {
			IPAM struct {
				Config []struct {
					Subnet string `json:"subnet"`
				} `json:"config"`
			} `json:"ipam"`
		} `json:"networks"`
	}
	if err := yaml.Unmarshal(composeDefaults(data), &f); err != nil {
		t.Fatal(err)
	}
	pg, ok := f.Services["postgres"]
	if !ok {
		t.Fatal("no service postgres")
	}
	hqSubnet := f.Networks["hq"].IPAM.Config[0].Subnet
	pgIP := pg.Networks["hq"].IPv4Address
	if len(pg.Networks) != 1 || pgIP == "" {
		t.Errorf("postgres on networks %v, want the HQ network only, at a fixed address", pg.Networks)
	}
	want := map[string]string{
		"OSPREY_PG_PASSWORD": "<OSPREY_DB_PASSWORD>",
		"OSPREY_PG_ALLOW":    hqSubnet,
		"OSPREY_PG_LISTEN":   pgIP,
	}
	if diff := cmp.Diff(want, pg.Environment); diff != "" {
		t.Errorf("postgres's environment (-want +got):\n%s", diff)
	}
	if pg.User == "" || strings.HasPrefix(pg.User, "0") || !pg.ReadOnly || !slices.Contains(pg.CapDrop, "ALL") || !slices.Contains(pg.SecurityOpt, "no-new-privileges:true") {
		t.Errorf("postgres: user %q read_only %v cap_drop %v security_opt %v: want a non-root user, a read-only root, no capabilities, no-new-privileges",
			pg.User, pg.ReadOnly, pg.CapDrop, pg.SecurityOpt)
	}
	if !slices.ContainsFunc(pg.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/var/lib/postgresql") }) {
		t.Errorf("postgres: volumes %v, want one on /var/lib/postgresql (PGDATA's parent)", pg.Volumes)
	}
	if !slices.ContainsFunc(pg.Tmpfs, func(v string) bool { return strings.HasPrefix(v, "/var/run/postgresql:") }) {
		t.Errorf("postgres: tmpfs %v, want one on /var/run/postgresql (the socket, on a read-only root)", pg.Tmpfs)
	}
	if pg.Healthcheck == nil || len(pg.Healthcheck.Test) < 2 || pg.Healthcheck.Test[0] != "CMD" {
		t.Errorf("postgres: healthcheck %+v, want one run without a shell (CMD)", pg.Healthcheck)
	}

	wantURL := "postgres://osprey@" + pgIP + ":5432/osprey?sslmode=disable"
	centrals := 0
	for name, s := range f.Services {
		if len(s.Command) == 0 || s.Command[0] != "central" {
			continue
		}
		centrals++
		if got := s.Environment["OSPREY_DB_URL"]; got != wantURL {
			t.Errorf("%s: OSPREY_DB_URL %q, want %q", name, got, wantURL)
		}
		if got := s.Environment["PGPASSWORD"]; got != "<OSPREY_DB_PASSWORD>" {
			t.Errorf("%s: PGPASSWORD %q, want OSPREY_DB_PASSWORD's", name, got)
		}
		if got := s.DependsOn["postgres"].Condition; got != "service_healthy" {
			t.Errorf("%s: depends on postgres with %q, want service_healthy (a central refuses to start while its database does not answer)", name, got)
		}
	}
	if centrals != 3 {
		t.Errorf("%d centrals, want 3", centrals)
	}
}
