package tests

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestHierarchyAlertsUp runs a PCN and an SCN as processes: the SCN's
// alerts, those from before the join included, reach the PCN once, under
// the tenant the SCN was accepted for, across a kill and restart of the
// PCN; the PCN lists them by SCN (API and ctl), counts them on its servers
// list, scopes them to their tenant, and deletes them once it disconnects
// the SCN.
func TestHierarchyAlertsUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two central nodes")
	}
	dir := t.TempDir()
	pcnDir := filepath.Join(dir, "pcn")
	pcnEnv := []string{"OSPREY_PCN=true", "OSPREY_HIERARCHY_HEARTBEAT=" + testHeartbeat, "OSPREY_HTTP_ADDR=127.0.0.2:0"}
	pcn := startDev(t, pcnDir, append(pcnEnv, "OSPREY_GRPC_ADDR=127.0.0.2:0")...)
	pcnGRPC := grpcLine.FindStringSubmatch(pcn.stdout.String())[1]
	scn := startDev(t, filepath.Join(dir, "scn"), "OSPREY_HTTP_ADDR=127.0.0.3:0", "OSPREY_GRPC_ADDR=127.0.0.3:0")
	ctx := t.Context()

	// Alerts as the SCN's scanner stores them.
	n := 0
	raise := func(k int) {
		t.Helper()
		for range k {
			rec := &ospreyv1.MessageRecord{Tenant: "default", SensorId: "dev", MessageId: fmt.Sprintf("up-%03d", n), Verdict: "detected"}
			alert := &ospreyv1.Alert{Severity: ospreyv1.Severity_SEVERITY_HIGH, Verdict: "detected",
				Headers: &ospreyv1.HeaderSummary{Subject: fmt.Sprintf("uplink %03d", n)}}
			if _, _, err := scn.db.RecordScan(ctx, store.AllTenants(), rec, alert, time.Now()); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	raise(3) // before the join

	const scnUser, scnPassword = "branch-1", "the branch account's long password"
	for _, u := range []api.User{
		{Name: scnUser, Role: api.RoleAdministrator, AllTenants: true, Password: scnPassword},
		{Name: "acme-officer", Role: api.RoleSecurityOfficer, Tenant: "acme", Password: scnPassword},
		{Name: "other-officer", Role: api.RoleSecurityOfficer, Tenant: "other", Password: scnPassword},
	} {
		if u.Tenant != "" {
			if _, err := pcn.api.CreateTenant(ctx, api.Tenant{ID: u.Tenant, Name: u.Tenant}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := pcn.api.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	fp, err := scn.api.PCNFingerprint(ctx, pcnGRPC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := scn.api.JoinPCN(ctx, api.JoinPCN{Address: pcnGRPC, Fingerprint: fp.Fingerprint, Name: "branch-1", Username: scnUser, Password: scnPassword}); err != nil {
		t.Fatal(err)
	}
	waitServer(t, pcn, "branch-1", "pending", func(s api.Server) bool { return s.State == api.ServerPending })
	if _, err := pcn.api.AcceptServer(ctx, "branch-1", "acme"); err != nil {
		t.Fatal(err)
	}
	raise(2)
	upAlerts := func(c *api.Client, want int) {
		t.Helper()
		got := waitAlert(t, c, api.AlertQuery{Server: "branch-1", Limit: 500}, want)
		seen := map[string]bool{}
		for _, a := range got {
			if seen[a.MessageID] || a.Tenant != "acme" || a.ServerID != "branch-1" {
				t.Errorf("alert on the PCN: %s tenant %q server %q (seen before: %v); want each once, acme, branch-1", a.MessageID, a.Tenant, a.ServerID, seen[a.MessageID])
			}
			seen[a.MessageID] = true
		}
	}
	upAlerts(pcn.api, 5)
	s := waitServer(t, pcn, "branch-1", "with its 5 alerts on the PCN", func(s api.Server) bool { return s.PCNAlerts == 5 })
	if s.UplinkAt == nil || s.NoData {
		t.Errorf("the PCN's view of the SCN: uplink_at %v, no_data %v; want a time and data", s.UplinkAt, s.NoData)
	}
	pcnCtl := []string{"OSPREY_ADDRESS=" + pcn.base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword}
	out, err := run(t, pcnCtl, "", "ctl", "alerts", "list", "acme", "--server", "branch-1")
	if err != nil || strings.Count(out, "branch-1") != 5 {
		t.Errorf("ctl alerts list acme --server branch-1: %v\n%s\nwant the 5 alerts", err, out)
	}
	if out, err := run(t, pcnCtl, "", "ctl", "servers", "list"); err != nil || !regexp.MustCompile(`(?m)^branch-1\s+accepted\s+acme\s+yes\s.*\s5\s`).MatchString(out) {
		t.Errorf("ctl servers list: %v\n%s\nwant branch-1 with 5 alerts on the PCN", err, out)
	}
	officer := func(name string) *api.Client {
		c, err := api.NewClient(api.Config{Address: pcn.base, Username: name, Password: scnPassword})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	upAlerts(officer("acme-officer"), 5)
	if list, err := officer("other-officer").Alerts(ctx, api.AlertQuery{Server: "branch-1"}); err != nil || len(list.Alerts) != 0 {
		t.Errorf("another tenant's officer: %v, %v; want no alerts", list, err)
	}
	// The SCNs too: an officer sees those of its tenant, with their state,
	// and no other; it may not disconnect one.
	if list, err := officer("acme-officer").Servers(ctx); err != nil || len(list.Servers) != 1 || list.Servers[0].ID != "branch-1" || list.Servers[0].PCNAlerts != 5 {
		t.Errorf("acme's officer lists the SCNs: %+v, %v; want branch-1 with its 5 alerts", list, err)
	}
	if list, err := officer("other-officer").Servers(ctx); err != nil || len(list.Servers) != 0 {
		t.Errorf("another tenant's officer lists the SCNs: %+v, %v; want none", list, err)
	}
	if _, err := officer("acme-officer").DisconnectServer(ctx, "branch-1"); err == nil {
		t.Error("acme's officer disconnected the SCN")
	}

	// The PCN is killed while alerts keep coming, and restarts.
	pcn.kill(t)
	raise(4)
	pcn = startDev(t, pcnDir, append(pcnEnv, "OSPREY_GRPC_ADDR="+pcnGRPC)...)
	raise(2)
	upAlerts(pcn.api, 11)

	// Disconnected: the PCN deletes the SCN's alerts; the SCN keeps its own.
	if _, err := pcn.api.DisconnectServer(ctx, "branch-1"); err != nil {
		t.Fatal(err)
	}
	waitServer(t, pcn, "branch-1", "without alerts on the PCN", func(s api.Server) bool { return s.PCNAlerts == 0 })
	waitAlert(t, pcn.api, api.AlertQuery{Server: "branch-1"}, 0)
	waitAlert(t, scn.api, api.AlertQuery{Tenant: "default"}, 11)
}
