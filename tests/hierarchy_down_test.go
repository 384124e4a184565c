package tests

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/testwait"
)

// TestHierarchyGlobalRuleEndToEnd runs a PCN and an SCN as two osprey
// processes: a global rule written on the PCN reaches the SCN, read-only
// there, and a message to the SCN's sensor from the rule's sender raises
// an alert naming it; the PCN's "admin", whose name the SCN's own admin
// has, is NACKed and the NACK shown on the PCN (API and ctl); once the
// PCN disconnects the SCN, the accounts it got from the PCN are local.
func TestHierarchyGlobalRuleEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two central nodes")
	}
	dir := t.TempDir()
	pcn := startDev(t, filepath.Join(dir, "pcn"), "OSPREY_PCN=true", "OSPREY_HIERARCHY_HEARTBEAT="+testHeartbeat,
		"OSPREY_HTTP_ADDR=127.0.0.2:0", "OSPREY_GRPC_ADDR=127.0.0.2:0")
	pcnGRPC := grpcLine.FindStringSubmatch(pcn.stdout.String())[1]
	scn := startDev(t, filepath.Join(dir, "scn"), "OSPREY_HTTP_ADDR=127.0.0.3:0", "OSPREY_GRPC_ADDR=127.0.0.3:0")
	ctx := t.Context()

	const scnUser, scnPassword = "branch-1", "the branch account's long password"
	if _, err := pcn.api.CreateUser(ctx, api.User{Name: scnUser, Role: api.RoleAdministrator, AllTenants: true, Password: scnPassword}); err != nil {
		t.Fatal(err)
	}
	fp, err := scn.api.PCNFingerprint(ctx, pcnGRPC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := scn.api.JoinPCN(ctx, api.JoinPCN{Address: pcnGRPC, Fingerprint: fp.Fingerprint, Name: "branch-1", Username: scnUser, Password: scnPassword}); err != nil {
		t.Fatal(err)
	}
	if _, err := pcn.api.AcceptServer(ctx, "branch-1", "default"); err != nil {
		t.Fatal(err)
	}

	rule, err := pcn.api.CreateGlobalRule(ctx, api.Rule{Kind: api.RuleSender, Value: "mallory@evil.example", Severity: api.SeverityHigh, Description: "from the PCN"})
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the PCN's global rule on the SCN", func() bool {
		list, err := scn.api.GlobalRules(ctx)
		return err == nil && len(list) == 1 && list[0].ID == rule.ID && list[0].Origin == "pcn" && list[0].Global
	})
	var apiErr *api.Error
	if err := scn.api.DeleteGlobalRule(ctx, rule.ID, 0); !errors.As(err, &apiErr) || apiErr.StatusCode != 403 {
		t.Errorf("delete the PCN's rule on the SCN: %v, want 403", err)
	}
	users, err := scn.api.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if want := map[string]string{"admin": "", scnUser: "pcn"}; u.Origin != want[u.Name] {
			t.Errorf("the SCN's user %s: origin %q, want %q", u.Name, u.Origin, want[u.Name])
		}
	}

	// Both have an "admin": the SCN keeps its own and NACKs the PCN's.
	s := waitServer(t, pcn, "branch-1", "the NACK of the PCN's admin", func(s api.Server) bool {
		return s.Down != nil && strings.Contains(s.Down.NackReason, `user "admin"`)
	})
	if s.Down.AppliedVersion >= s.Down.SentVersion {
		t.Errorf("after a NACK the PCN shows %+v; want the applied version behind the sent one", s.Down)
	}
	pcnCtl := []string{"OSPREY_ADDRESS=" + pcn.base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword}
	if out, err := run(t, pcnCtl, "", "ctl", "servers", "list"); err != nil || !strings.Contains(out, `NACK`) || !strings.Contains(out, `user "admin"`) {
		t.Errorf("ctl servers list: %v\n%s", err, out)
	}

	// A message to the SCN's sensor from the rule's sender.
	listen := loopbackPort(t)
	scn.enableSMTP(t, smtpConfig(listen))
	if err := sendOne(listen, "mallory@evil.example"); err != nil {
		t.Fatal(err)
	}
	alerts := waitAlert(t, scn.api, api.AlertQuery{Tenant: "default"}, 1)
	var found bool
	for _, m := range alerts[0].Matches {
		found = found || m.RuleID == "global/"+rule.ID
	}
	if !found {
		t.Errorf("the SCN's alert matches %+v, want global/%s", alerts[0].Matches, rule.ID)
	}

	// Disconnected: the PCN's account and rule are the SCN's own.
	if _, err := pcn.api.DisconnectServer(ctx, "branch-1"); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "the PCN's account and rule made local", func() bool {
		users, err := scn.api.Users(ctx)
		rules, rerr := scn.api.GlobalRules(ctx)
		if err != nil || rerr != nil || len(rules) != 1 || rules[0].Origin != "" {
			return false
		}
		for _, u := range users {
			if u.Name == scnUser {
				return u.Origin == ""
			}
		}
		return false
	})
	if err := scn.api.DeleteGlobalRule(ctx, rule.ID, 0); err != nil {
		t.Errorf("delete the rule on the disconnected SCN: %v", err)
	}
}
