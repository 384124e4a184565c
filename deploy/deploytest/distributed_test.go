package deploytest

import (
	"context"
	"crypto/tls"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/api"
)

// TestComposeDistributed brings deploy/compose-distributed up with its own
// up.sh, as its README says to: the PCN, two SCNs joined to it with the
// fingerprint compared, each with a branch sensor taking mail. It checks
// what the PCN shows of each SCN and that each SCN recorded its branch's
// mail, then that running up.sh again changes nothing.
func TestComposeDistributed(t *testing.T) {
	compose := needDocker(t)
	imgs := images(t)
	nets := freeSubnets(t, 3)
	dir := filepath.Join(repoRoot(t), "deploy", "compose-distributed")
	project := fmt.Sprintf("ospreydd%06x", mrand.IntN(1<<24))
	envFile := filepath.Join(t.TempDir(), "env")
	env := append(os.Environ(),
		"COMPOSE="+strings.Join(compose, " "),
		"COMPOSE_PROJECT_NAME="+project,
		"OSPREY_ENV_FILE="+envFile,
		"OSPREY_IMAGE="+imgs.osprey,
		"OSPREY_CLIENT_IMAGE="+imgs.client,
		"OSPREY_WAN_NET="+nets[0],
		"OSPREY_BRANCH_A_NET="+nets[1],
		"OSPREY_BRANCH_B_NET="+nets[2],
		"OSPREY_PCN_PUBLISH=127.0.0.1:", // a port the engine picks
		"OSPREY_RESTART=no",
	)
	upSh := func(ctx context.Context, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(dir, "up.sh"), args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if t.Failed() {
			cmd := exec.CommandContext(ctx, compose[0], append(compose[1:], "--env-file", envFile, "-f", filepath.Join(dir, "docker-compose.yml"), "-p", project, "logs", "--no-color", "--tail", "60")...)
			cmd.Env = env
			out, _ := cmd.CombinedOutput()
			t.Logf("logs of %s:\n%s", project, out)
		}
		if out, err := upSh(ctx, "destroy"); err != nil {
			t.Errorf("up.sh destroy: %v\n%s", err, out)
		}
		for _, kind := range []string{"ps -aq", "network ls -q", "volume ls -q"} {
			args := append(strings.Fields(kind), "--filter", "label=com.docker.compose.project="+project)
			if out, err := docker(ctx, args...); err != nil || strings.TrimSpace(out) != "" {
				t.Errorf("after up.sh destroy, %s of %s left: %q %v", kind, project, out, err)
			}
		}
	})

	start := time.Now()
	out, err := upSh(t.Context())
	if err != nil {
		t.Fatalf("up.sh: %v\n%s", err, out)
	}
	t.Logf("up.sh took %v", time.Since(start).Round(time.Second))
	for _, want := range []string{"accepted scn-a on the PCN for tenant branch-a", "accepted scn-b on the PCN for tenant branch-b",
		"sensor-a enrolled on scn-a", "sensor-b enrolled on scn-b", "distributed mode is up"} {
		if !strings.Contains(out, want) {
			t.Errorf("up.sh says nothing of %q:\n%s", want, out)
		}
	}
	envText, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	var password string
	for _, line := range strings.Split(string(envText), "\n") {
		if v, ok := strings.CutPrefix(line, "OSPREY_ADMIN_PASSWORD="); ok {
			password = v
		}
	}
	client := func(host string) *api.Client {
		c, err := api.NewClient(api.Config{Address: "https://" + nets[0] + "." + host + ":8443", Username: "admin", Password: password,
			TLSConfig: &tls.Config{InsecureSkipVerify: true}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	pcn, scns := client("11"), map[string]*api.Client{"scn-a": client("12"), "scn-b": client("13")}
	ctx := t.Context()

	// The PCN shows both SCNs linked, each with its tenant and its sensor.
	eventually(t, "both SCNs online on the PCN with their sensor", func() error {
		list, err := pcn.Servers(ctx)
		if err != nil {
			return err
		}
		seen := map[string]api.Server{}
		for _, s := range list.Servers {
			seen[s.ID] = s
		}
		for id, tenant := range map[string]string{"scn-a": "branch-a", "scn-b": "branch-b"} {
			s, ok := seen[id]
			if !ok || !s.Online || s.State != api.ServerAccepted || s.Tenant != tenant || s.Sensors != 1 || len(s.Fingerprint) != 64 {
				return fmt.Errorf("PCN's view of %s: %+v; want accepted, online, tenant %s, one sensor", id, s, tenant)
			}
		}
		return nil
	})
	// Each SCN is linked and recorded the five messages its branch's mail
	// server sent to its sensor.
	for name, c := range scns {
		h, err := c.Hierarchy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if h.Role != api.HierarchySecondary || h.State != api.PrimaryLinked || h.ServerID != name {
			t.Errorf("%s: %+v; want linked as %s", name, h, name)
		}
		eventually(t, name+" recorded its branch's mail", func() error {
			list, err := c.Messages(ctx, api.MessageQuery{Limit: 500})
			if err != nil {
				return err
			}
			if len(list.Messages) < 5 {
				return fmt.Errorf("%d message records, want 5", len(list.Messages))
			}
			return nil
		})
	}

	// up.sh again: everything is there, so it only checks and sends mail.
	out, err = upSh(ctx)
	if err != nil {
		t.Fatalf("up.sh again: %v\n%s", err, out)
	}
	if strings.Contains(out, "asked to join") || strings.Contains(out, "enrolled") {
		t.Errorf("up.sh run again joined or enrolled again:\n%s", out)
	}
}
