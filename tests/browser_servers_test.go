package tests

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ospreysec/osprey/api"
)

// TestBrowserServersAccept joins an SCN (a second osprey process) to a PCN
// through the SCN's web UI (fetch the fingerprint, compare it, send the
// request) and accepts it on the PCN's Servers page, choosing the tenant:
// the SCN then shows online there, with its counts.
func TestBrowserServersAccept(t *testing.T) {
	ctx := newBrowser(t)
	dir := t.TempDir()
	pcn := startDev(t, filepath.Join(dir, "pcn"), "OSPREY_PCN=true", "OSPREY_HIERARCHY_HEARTBEAT="+testHeartbeat,
		"OSPREY_HTTP_ADDR=127.0.0.2:0", "OSPREY_GRPC_ADDR=127.0.0.2:0")
	pcnGRPC := grpcLine.FindStringSubmatch(pcn.stdout.String())[1]
	scn := startDev(t, filepath.Join(dir, "scn"), "OSPREY_HTTP_ADDR=127.0.0.3:0", "OSPREY_GRPC_ADDR=127.0.0.3:0")
	const scnUser, scnPassword = "branch-ui", "the branch account's long password"
	if _, err := pcn.api.CreateUser(t.Context(), api.User{Name: scnUser, Role: api.RoleAdministrator, AllTenants: true, Password: scnPassword}); err != nil {
		t.Fatal(err)
	}
	if _, err := pcn.api.CreateTenant(t.Context(), api.Tenant{ID: "branches", Name: "Branches"}); err != nil {
		t.Fatal(err)
	}

	// On the SCN: the PCN's address, its fingerprint shown, the request.
	uiSignIn(t, ctx, scn.base, "admin", adminPassword)
	uiDo(t, ctx, "the SCN's Servers page",
		chromedp.Navigate(scn.base+"/servers"),
		chromedp.WaitVisible(chromedp.ID("pcn-address")),
		chromedp.SendKeys(chromedp.ID("pcn-address"), pcnGRPC),
	)
	uiSubmit(t, ctx, "fetch the fingerprint", `#pcn-fetch button[type="submit"]`)
	shown := uiRun(t, ctx, "the fetched fingerprint", chromedp.Text(chromedp.ID("fetched-fingerprint")))
	own, err := pcn.api.Hierarchy(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if shown != own.OwnFingerprint {
		t.Fatalf("the SCN's page shows fingerprint %q, the PCN's is %q", shown, own.OwnFingerprint)
	}
	uiDo(t, ctx, "fill in the request",
		chromedp.Clear(chromedp.ID("join-name")),
		chromedp.SendKeys(chromedp.ID("join-name"), "branch-ui"),
		chromedp.SendKeys(chromedp.ID("join-username"), scnUser),
		chromedp.SendKeys(chromedp.ID("join-password"), scnPassword),
	)
	uiSubmit(t, ctx, "send the request", `#pcn-join button[type="submit"]`)
	if state := uiRun(t, ctx, "the SCN's state", chromedp.Text(chromedp.ID("pcn-state"))); !strings.Contains(state, "pending") {
		t.Fatalf("the SCN's page after the request shows %q, want pending", state)
	}

	// On the PCN: the pending request, accepted into tenant branches.
	uiSignIn(t, ctx, pcn.base, "admin", adminPassword)
	uiDo(t, ctx, "the PCN's Servers page",
		chromedp.Navigate(pcn.base+"/servers"),
		chromedp.WaitVisible(chromedp.CSS(`#pending-servers tr[data-server="branch-ui"]`)),
		chromedp.SetValue(chromedp.ID("tenant-branch-ui"), "branches"),
	)
	uiSubmit(t, ctx, "accept", `#pending-servers tr[data-server="branch-ui"] button[aria-label="Accept server branch-ui"]`)
	waitServer(t, pcn, "branch-ui", "online in tenant branches, its NACK of the PCN's admin recorded", func(s api.Server) bool {
		// Both nodes have an "admin": the SCN keeps its own and NACKs the PCN's.
		return s.Online && s.Tenant == "branches" && s.Down != nil && s.Down.NackReason != ""
	})
	uiDo(t, ctx, "the SCN online on the Servers page, with its NACK",
		chromedp.Navigate(pcn.base+"/servers"),
		chromedp.WaitVisible(chromedp.CSS(`#servers tr[data-server="branch-ui"] .conn-online`)),
		chromedp.WaitVisible(chromedp.CSS(`#servers tr[data-server="branch-ui"] .nack`)),
	)
	uiScreenshot(t, ctx, "servers")
}
