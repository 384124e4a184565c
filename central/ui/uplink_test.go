package ui_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestPCNShowsItsSCNsAlerts: on a PCN, the alerts of an SCN (accepted for
// tenant acme) are listed with their SCN and filtered by it, the day's
// totals go across tenants and SCNs, and the servers page counts the
// SCN's alerts on the PCN; a user of another tenant sees none of it.
func TestPCNShowsItsSCNsAlerts(t *testing.T) {
	e := newEnv(t, envOptions{primary: true})
	ctx, all := t.Context(), store.AllTenants()
	if _, err := e.store.CreateServer(ctx, &ospreyv1.Server{Id: "branch", Name: "Branch", Tenant: "acme",
		State: ospreyv1.ServerState_SERVER_STATE_ACCEPTED, Fingerprint: strings.Repeat("ab", 32)}); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	e.addAlert("acme", "s2", "own", time.Now(), eicarAlert("the PCN's own alert", ospreyv1.Severity_SEVERITY_HIGH))
	b := &ospreyv1.UplinkAlerts{Tenant: "default", After: 0, Last: 2}
	for _, subject := range []string{"branch invoice", "branch payroll"} {
		a := eicarAlert(subject, ospreyv1.Severity_SEVERITY_CRITICAL)
		a.Id = sqlstore.AlertID(time.Now(), "scn-sensor", subject)
		a.SensorId, a.MessageId, a.Tenant = "scn-sensor", subject, "default"
		b.Alerts = append(b.Alerts, a)
	}
	if n, err := e.db.StoreUplinkAlerts(ctx, all, "branch", "acme", b, now); err != nil || n != 2 {
		t.Fatalf("store the SCN's alerts: %d, %v", n, err)
	}
	if err := e.db.StoreSummaries(ctx, all, "branch", "acme", &ospreyv1.UplinkSummaries{To: timestamppb.New(now), Summaries: []*ospreyv1.MessageSummary{
		{Tenant: "default", SensorId: "scn-sensor", Bucket: timestamppb.New(now.Truncate(time.Minute)), Verdict: "clean", Messages: 40},
		{Tenant: "default", SensorId: "scn-sensor", Bucket: timestamppb.New(now.Truncate(time.Minute)), Verdict: "detected", Messages: 2, Detected: 2},
	}}, now); err != nil {
		t.Fatal(err)
	}

	p := e.signedIn("root").get("/alerts?server=branch")
	if p.status != http.StatusOK {
		t.Fatalf("got %d\n%s", p.status, p.body)
	}
	list := text(byID(p.doc(t), "alert-table"))
	for _, want := range []string{"branch invoice", "branch payroll", "branch"} {
		if !strings.Contains(list, want) {
			t.Errorf("the SCN's alerts lack %q:\n%s", want, list)
		}
	}
	if strings.Contains(list, "the PCN's own alert") {
		t.Errorf("the filter by SCN lists the PCN's own alert")
	}
	totals := text(byID(p.doc(t), "totals"))
	if !strings.Contains(totals, "SCN branch") || !strings.Contains(totals, "42") {
		t.Errorf("the totals lack the SCN's 42 messages:\n%s", totals)
	}
	if p := e.signedIn("root").get("/servers"); !strings.Contains(p.body, `<a href="/alerts?server=branch">2</a>`) {
		t.Errorf("the servers page does not count the SCN's 2 alerts on the PCN:\n%s", text(byID(p.doc(t), "servers")))
	}
	if p := e.signedIn("bob").get("/alerts"); !strings.Contains(p.body, "branch invoice") {
		t.Errorf("acme's user does not see its SCN's alerts")
	}
	p = e.signedIn("alice").get("/alerts?server=branch")
	if strings.Contains(p.body, "branch invoice") || strings.Contains(p.body, "SCN branch") {
		t.Errorf("another tenant's user sees the SCN's alerts or totals")
	}
}
