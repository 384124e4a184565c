package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/api"
)

// docCommand is one command of a fenced shell block of a document, as
// written: a line continued with a backslash takes the next one, a
// here-document its body.
type docCommand struct {
	where string // file:line
	text  string
}

var (
	fenceOpen  = regexp.MustCompile("^(\\s*)```(?:sh|bash|shell)\\s*$")
	fenceClose = regexp.MustCompile("^\\s*```\\s*$")
	hereDoc    = regexp.MustCompile(`<<-?\s*['"]?(\w+)['"]?`)
	devDNSLine = regexp.MustCompile(`DNS:\s+127\.0\.0\.1:(\d+),`)
	ctlCommand = regexp.MustCompile(`^(?:osprey|go run \./cmd/osprey) ctl\s`)
	// backupCommand is the backup of a node alone with the defaults of
	// osprey dev, which the test's node is (a cluster's names its hosts).
	backupCommand = regexp.MustCompile(`^osprey admin backup --out `)
)

// shellBlocks returns the commands of each fenced sh, bash or shell block
// of the document at path, relative to root (the repository's, "..").
func shellBlocks(t *testing.T, root, path string) [][]docCommand {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]docCommand
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		m := fenceOpen.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		indent := m[1]
		var block []docCommand
		for i++; i < len(lines) && !fenceClose.MatchString(lines[i]); i++ {
			line := strings.TrimPrefix(lines[i], indent)
			if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			c := docCommand{where: fmt.Sprintf("%s:%d", path, i+1), text: line}
			for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
				i++
				line = strings.TrimPrefix(lines[i], indent)
				c.text += "\n" + line
			}
			if h := hereDoc.FindStringSubmatch(c.text); h != nil {
				for i+1 < len(lines) {
					i++
					line = strings.TrimPrefix(lines[i], indent)
					c.text += "\n" + line
					if strings.TrimSpace(line) == h[1] {
						break
					}
				}
			}
			block = append(block, c)
		}
		blocks = append(blocks, block)
	}
	return blocks
}

// notRun are the documented commands this test does not run, by how they
// start, and why.
var notRun = map[string]string{
	"go run ./cmd/osprey dev": "the test runs the node itself, with its own data dir and ports",
	"make test":               "runs every test, this one included",
}

func skipReason(c docCommand) string {
	for prefix, reason := range notRun {
		if strings.HasPrefix(c.text, prefix) {
			return reason
		}
	}
	return ""
}

// TestDocumentedCommands runs the README's tour, block after block, as a
// user would (swaks, dig and curl included), against an `osprey dev` of its
// own, then every `osprey ctl` command shown in the README and docs/: each
// must work as written. The only changes are where the test's node listens
// (ports the kernel picks) and the binary (built once, on PATH as osprey,
// for `go run ./cmd/osprey`).
func TestDocumentedCommands(t *testing.T) {
	for _, peer := range []string{"curl", "swaks", "dig"} {
		requirePeer(t, peer)
	}
	bin := osprey(t)
	work := t.TempDir()
	// As in the README: the data in ./osprey-data, the admin password
	// generated and kept there.
	p := start(t, []string{
		"OSPREY_DATA_DIR=" + filepath.Join(work, "osprey-data"),
		"OSPREY_HTTP_ADDR=127.0.0.1:0", "OSPREY_GRPC_ADDR=127.0.0.1:0",
		"OSPREY_ETCD_CLIENT_ADDR=127.0.0.1:0", "OSPREY_ETCD_PEER_ADDR=127.0.0.1:0",
		"OSPREY_GOSSIP_ADDR=127.0.0.1:0", "OSPREY_DNS_ADDR=127.0.0.1:0",
	}, "dev")
	base := p.waitLine(t, apiLine)[1]
	etcd := p.waitLine(t, etcdLine)[1]
	dnsPort := p.waitLine(t, devDNSLine)[1]
	password, err := os.ReadFile(filepath.Join(work, "osprey-data", "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := api.NewClient(api.Config{Address: base, Username: "admin", Password: strings.TrimSpace(string(password))})
	if err != nil {
		t.Fatal(err)
	}
	replace := strings.NewReplacer(
		"go run ./cmd/osprey", "osprey",
		"http://127.0.0.1:8080", base,
		"127.0.0.1:2525", loopbackPort(t), // the sensor's SMTP listener
		"-p 8053", "-p "+dnsPort,
	)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OSPREY_") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		// Where the node's etcd listens, for osprey admin backup.
		"OSPREY_ETCD_CLIENT_ADDR="+strings.TrimPrefix(etcd, "http://"))

	// exports are the README's export lines run so far: each block runs in
	// a shell of its own that starts with them, as a user's terminal has
	// them set.
	var exports []string
	shell := func(t *testing.T, commands []docCommand) {
		t.Helper()
		var script strings.Builder
		script.WriteString("set -eu\ntrap 'echo \"FAILED: $where\" >&2' ERR\n")
		for _, e := range exports {
			script.WriteString(e + "\n")
		}
		for _, c := range commands {
			fmt.Fprintf(&script, "where=%q\n%s\n", c.where, replace.Replace(c.text))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
		cmd.Dir, cmd.Env = work, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			var texts []string
			for _, c := range commands {
				texts = append(texts, c.where+": "+c.text)
			}
			t.Errorf("%v\n%s\nof the documented commands:\n%s", err, out, strings.Join(texts, "\n"))
		}
	}

	for _, block := range shellBlocks(t, "..", "README.md") {
		var run []docCommand
		for _, c := range block {
			if reason := skipReason(c); reason != "" {
				t.Logf("%s: not run (%s): %s", c.where, reason, c.text)
				continue
			}
			run = append(run, c)
		}
		if len(run) == 0 {
			continue
		}
		shell(t, run)
		for _, c := range run {
			if strings.HasPrefix(c.text, "export ") {
				exports = append(exports, replace.Replace(c.text))
			}
			// A reader takes longer to type the next block than the
			// sensor to apply its new configuration; the test waits.
			if strings.Contains(c.text, " sensor smtp set ") {
				waitSensor(t, client, "dev", "configuration applied", func(s *api.Sensor) bool {
					return s.ConfigVersion > 0 && s.AppliedVersion == s.ConfigVersion
				})
			}
		}
	}
	// The tour sent the EICAR file: it raised its alert.
	a := waitAlert(t, client, api.AlertQuery{Tenant: "default"}, 1)[0]
	if a.Severity != api.SeverityHigh {
		t.Errorf("the tour's alert: severity %s, want high", a.Severity)
	}

	// Every `osprey ctl` command of the README and docs/, and every backup
	// of a node alone, on its own.
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"README.md"}
	for _, d := range docs {
		files = append(files, strings.TrimPrefix(d, "../"))
	}
	ran, backups := 0, 0
	for _, f := range files {
		for _, block := range shellBlocks(t, "..", f) {
			for _, c := range block {
				if !ctlCommand.MatchString(c.text) && !backupCommand.MatchString(c.text) {
					continue
				}
				if backupCommand.MatchString(c.text) {
					backups++
				}
				ran++
				t.Run(c.where, func(t *testing.T) { shell(t, []docCommand{c}) })
			}
		}
	}
	if ran == 0 {
		t.Error("found no documented osprey ctl command")
	}
	// Each documented backup made one, in a directory of its own.
	made, err := filepath.Glob(filepath.Join(work, "backups", "*", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if backups == 0 || len(made) != backups {
		t.Errorf("%d documented backups of a node alone made %d backups (%v), want one each and at least one", backups, len(made), made)
	}
}

// TestShellBlocks checks the parsing of documents' shell blocks on a
// document of its own.
func TestShellBlocks(t *testing.T) {
	doc := "text\n\n```sh\nosprey ctl a   # comment\n# a comment line\n\nosprey ctl b \\\n  --flag\ncat > f <<'JSON'\n{\"a\": 1}\nJSON\n```\n\n```\nnot a shell block\n```\n\n1. step\n\n   ```sh\n   osprey ctl c\n   ```\n"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "doc.md"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	got := shellBlocks(t, dir, "doc.md")
	var texts [][]string
	for _, b := range got {
		var bt []string
		for _, c := range b {
			bt = append(bt, c.text)
		}
		texts = append(texts, bt)
	}
	want := [][]string{
		{"osprey ctl a   # comment", "osprey ctl b \\\n  --flag", "cat > f <<'JSON'\n{\"a\": 1}\nJSON"},
		{"osprey ctl c"},
	}
	if diff := cmp.Diff(want, texts); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if w := got[0][1].where; !strings.HasSuffix(w, "doc.md:7") {
		t.Errorf("second command at %s, want doc.md:7", w)
	}
}
