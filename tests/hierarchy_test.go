package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ospreysec/osprey/api"
)

// The PCN's hierarchy settings in TestHierarchyJoinAndLink: a heartbeat
// short enough that an SCN that stops shows offline in seconds, a token
// lifetime the test can wait out.
const (
	testHeartbeat     = "2s"
	testTokenLifetime = 20 * time.Second
)

var pcnFingerprintLine = regexp.MustCompile(`PCN fingerprint:\s+([0-9a-f]{64})`)

// TestHierarchyJoinAndLink runs a PCN and an SCN as two osprey processes on
// 127.0.0.2 and 127.0.0.3: the SCN's administrator fetches the PCN's
// fingerprint (a wrong one is refused before anything is sent), joins with
// the account made on the PCN for it, the PCN accepts it into a tenant, the
// link comes up; the SCN stopped (SIGSTOP) shows offline on the PCN and
// online again once it runs; stopped past the token's lifetime it is refused
// until it logs in again; disconnected, it is standalone again.
func TestHierarchyJoinAndLink(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two central nodes")
	}
	dir := t.TempDir()
	pcn := startDev(t, filepath.Join(dir, "pcn"), "OSPREY_PCN=true", "OSPREY_HIERARCHY_HEARTBEAT="+testHeartbeat,
		"OSPREY_HIERARCHY_TOKEN_LIFETIME="+testTokenLifetime.String(),
		"OSPREY_HTTP_ADDR=127.0.0.2:0", "OSPREY_GRPC_ADDR=127.0.0.2:0")
	pcnGRPC := grpcLine.FindStringSubmatch(pcn.stdout.String())[1]
	banner := pcnFingerprintLine.FindStringSubmatch(pcn.stdout.String())
	if banner == nil {
		t.Fatalf("the PCN's banner shows no fingerprint:\n%s", pcn.stdout.String())
	}
	scn := startDev(t, filepath.Join(dir, "scn"), "OSPREY_HTTP_ADDR=127.0.0.3:0", "OSPREY_GRPC_ADDR=127.0.0.3:0")
	ctx := t.Context()

	// The account the PCN's administrator makes for the SCN.
	const scnUser, scnPassword = "branch-1", "the branch account's long password"
	if _, err := pcn.api.CreateUser(ctx, api.User{Name: scnUser, Role: api.RoleAdministrator, AllTenants: true, Password: scnPassword}); err != nil {
		t.Fatal(err)
	}

	h, err := pcn.api.Hierarchy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Role != api.HierarchyPrimary || h.OwnFingerprint != banner[1] {
		t.Fatalf("PCN: role %q, own fingerprint %q; want pcn and the banner's %q", h.Role, h.OwnFingerprint, banner[1])
	}
	fp, err := scn.api.PCNFingerprint(ctx, pcnGRPC)
	if err != nil {
		t.Fatal(err)
	}
	if fp.Fingerprint != h.OwnFingerprint {
		t.Fatalf("the SCN fetched fingerprint %q, the PCN shows %q", fp.Fingerprint, h.OwnFingerprint)
	}

	// A fingerprint the administrator did not see on the PCN: refused, and
	// the PCN got nothing.
	wrong := strings.Repeat("0", 64)
	_, err = scn.api.JoinPCN(ctx, api.JoinPCN{Address: pcnGRPC, Fingerprint: wrong, Name: "branch-1", Username: scnUser, Password: scnPassword})
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 502 || !strings.Contains(apiErr.Message, "confirmed fingerprint") {
		t.Fatalf("join with a wrong fingerprint: %v; want 502 naming the fingerprint", err)
	}
	if list := servers(t, pcn); len(list) != 0 {
		t.Fatalf("after a refused join the PCN lists %+v, want nothing", list)
	}
	// Wrong credentials of the PCN account: refused by the PCN.
	_, err = scn.api.JoinPCN(ctx, api.JoinPCN{Address: pcnGRPC, Fingerprint: fp.Fingerprint, Name: "branch-1", Username: scnUser, Password: "not it"})
	if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, "user name or password is wrong") {
		t.Fatalf("join with a wrong password: %v; want the PCN's refusal", err)
	}

	// The join, through ctl as an administrator would.
	pwFile := filepath.Join(dir, "pcn-password")
	if err := os.WriteFile(pwFile, []byte(scnPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	scnCtl := []string{"OSPREY_ADDRESS=" + scn.base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword}
	if out, err := run(t, scnCtl, "", "ctl", "pcn", "join", pcnGRPC, "--fingerprint", fp.Fingerprint, "--name", "branch-1",
		"--pcn-username", scnUser, "--pcn-password-file", pwFile); err != nil || !strings.Contains(out, `"state": "pending"`) {
		t.Fatalf("ctl pcn join: %v\n%s", err, out)
	}
	pending := servers(t, pcn)
	if len(pending) != 1 || pending[0].ID != "branch-1" || pending[0].State != api.ServerPending || len(pending[0].Fingerprint) != 64 {
		t.Fatalf("the PCN lists %+v, want branch-1 pending with its key's fingerprint", pending)
	}
	pcnCtl := []string{"OSPREY_ADDRESS=" + pcn.base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword}
	if out, err := run(t, pcnCtl, "", "ctl", "servers", "list"); err != nil || !regexp.MustCompile(`(?m)^branch-1\s+pending`).MatchString(out) {
		t.Fatalf("ctl servers list: %v\n%s", err, out)
	}

	if out, err := run(t, pcnCtl, "", "ctl", "servers", "accept", "branch-1", "--tenant", "default"); err != nil {
		t.Fatalf("ctl servers accept: %v\n%s", err, out)
	}
	waitSCN(t, scn, "linked and online", func(h *api.Hierarchy) bool {
		return h.Role == api.HierarchySecondary && h.State == api.PrimaryLinked && h.Online && h.Tenant == "default"
	})
	s := waitServer(t, pcn, "branch-1", "online with the SCN's counts", func(s api.Server) bool {
		return s.Online && s.State == api.ServerAccepted && s.Sensors == 1 && !s.NoData && s.TokenExpiresAt != nil
	})
	if s.Tenant != "default" || s.Version == "" || s.CertExpiresAt == nil {
		t.Errorf("PCN's view of the SCN: %+v; want tenant default, a version and the certificate's expiry", s)
	}

	// The SCN stops answering: offline on the PCN after the missed
	// heartbeats, online again once it runs.
	stopProc(t, scn.proc)
	waitServer(t, pcn, "branch-1", "offline", func(s api.Server) bool { return !s.Online })
	contProc(t, scn.proc)
	waitServer(t, pcn, "branch-1", "online again", func(s api.Server) bool { return s.Online })

	// Stopped past the token's lifetime: refused until it logs in again.
	stopProc(t, scn.proc)
	off := waitServer(t, pcn, "branch-1", "offline", func(s api.Server) bool { return !s.Online })
	wait(t, "the token to expire", 2*testTokenLifetime, func() bool { return time.Now().After(off.TokenExpiresAt.Add(time.Second)) })
	contProc(t, scn.proc)
	h = waitSCN(t, scn, "token expired", func(h *api.Hierarchy) bool { return h.State == api.PrimaryTokenExpired })
	if !strings.Contains(h.Error, "log in again") || h.Online {
		t.Errorf("SCN after its token expired: %+v; want offline, the error saying to log in again", h)
	}
	if s := server(t, pcn, "branch-1"); s.Online {
		t.Errorf("the PCN shows the SCN online with an expired token")
	}
	if _, err := scn.api.LoginPCN(ctx, api.PCNLogin{Username: scnUser, Password: "not it"}); err == nil {
		t.Error("log in with a wrong password: accepted")
	}
	if out, err := run(t, scnCtl, "", "ctl", "pcn", "login", "--pcn-username", scnUser, "--pcn-password-file", pwFile); err != nil {
		t.Fatalf("ctl pcn login: %v\n%s", err, out)
	}
	waitSCN(t, scn, "linked again", func(h *api.Hierarchy) bool { return h.State == api.PrimaryLinked && h.Online })
	waitServer(t, pcn, "branch-1", "online after the login", func(s api.Server) bool { return s.Online })

	// Disconnected by the PCN's administrator: the link is refused and the
	// SCN is standalone again.
	if _, err := pcn.api.DisconnectServer(ctx, "branch-1"); err != nil {
		t.Fatal(err)
	}
	waitSCN(t, scn, "disconnected", func(h *api.Hierarchy) bool {
		return h.State == api.PrimaryDisconnected && h.Role == api.HierarchyStandalone && !h.Online
	})
	waitServer(t, pcn, "branch-1", "disconnected and offline", func(s api.Server) bool {
		return s.State == api.ServerDisconnected && !s.Online
	})
}

func servers(t *testing.T, n *devNode) []api.Server {
	t.Helper()
	list, err := n.api.Servers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return list.Servers
}

func server(t *testing.T, n *devNode, id string) api.Server {
	t.Helper()
	s, err := findServer(t.Context(), n, id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func findServer(ctx context.Context, n *devNode, id string) (api.Server, error) {
	list, err := n.api.Servers(ctx)
	if err != nil {
		return api.Server{}, err
	}
	for _, s := range list.Servers {
		if s.ID == id {
			return s, nil
		}
	}
	return api.Server{}, fmt.Errorf("the PCN does not list %s", id)
}

// hierarchyWait bounds each wait of the hierarchy test: a few heartbeats
// and reconnections on a busy machine.
const hierarchyWait = 60 * time.Second

func waitServer(t *testing.T, pcn *devNode, id, what string, ok func(api.Server) bool) api.Server {
	t.Helper()
	var last api.Server
	wait(t, "the PCN to show "+id+" "+what, hierarchyWait, func() bool {
		s, err := findServer(t.Context(), pcn, id)
		if err != nil {
			t.Logf("PCN: %v", err) // a busy node may answer 503 for a while
			return false
		}
		last = s
		return ok(last)
	})
	return last
}

func waitSCN(t *testing.T, scn *devNode, what string, ok func(*api.Hierarchy) bool) *api.Hierarchy {
	t.Helper()
	var last *api.Hierarchy
	wait(t, "the SCN to be "+what, hierarchyWait, func() bool {
		h, err := scn.api.Hierarchy(t.Context())
		if err != nil {
			t.Logf("SCN: %v", err) // a busy node may answer 503 for a while
			return false
		}
		last = h
		return ok(h)
	})
	return last
}

// wait polls cond until it holds, failing the test after timeout.
func wait(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waited %v for %s", timeout, what)
		case <-tick.C:
		}
	}
}

// stopProc and contProc freeze and thaw a process (SIGSTOP, SIGCONT), as a
// cut link or a hung machine would look to its peers.
func stopProc(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Signal(syscall.SIGCONT) })
}

func contProc(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}
