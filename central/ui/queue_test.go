package ui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// gatewaySensor makes s1 an approved gateway whose last status, sent
// before it went offline, says it was sending and receiving with 4
// recipients deferred; s2 stays a pending monitor. No sensor is
// connected: the UI's requests find none (the browser test,
// tests/browser_queue_test.go, has one).
func gatewaySensor(t *testing.T, e *env) {
	t.Helper()
	ctx, all := t.Context(), store.AllTenants()
	sn, v, err := e.store.GetSensor(ctx, all, "s1")
	if err != nil {
		t.Fatal(err)
	}
	sn.State = ospreyv1.SensorState_SENSOR_STATE_APPROVED
	if _, err := e.store.UpdateSensor(ctx, all, sn, v); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.PutSMTP(ctx, all, "s1", &ospreyv1.SmtpIntegration{
		Enabled: true, Mode: ospreyv1.SmtpMode_SMTP_MODE_INBOUND, MaxMessageSize: &ospreyv1.SizeLimit{Unlimited: true},
		Gateway: &ospreyv1.SmtpGateway{
			Inbound:      &ospreyv1.GatewayListener{Listen: "192.0.2.1:25"},
			LocalDomains: []*ospreyv1.LocalDomain{{Domain: "example.com", Hosts: []*ospreyv1.NextHop{{Host: "10.0.0.10"}}}},
		},
	}, store.AnyVersion); err != nil {
		t.Fatal(err)
	}
	lease, err := e.store.Lease(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutStatuses(ctx, lease, []store.StatusWrite{{Status: &ospreyv1.SensorRuntime{
		SensorId: "s1", Tenant: "default", Node: "node-1", Healthy: true,
		LastSeen: timestamppb.New(e.clock.Now()), StatusAt: timestamppb.New(e.clock.Now()),
		Gateway: &ospreyv1.GatewayState{Sending: true, Receiving: true, Messages: 3, Deferred: 4},
	}}}); err != nil {
		t.Fatal(err)
	}
}

// TestQueuePageLinks: a gateway's Queue page is linked from the server
// list and from its tabs; a monitor's is not.
func TestQueuePageLinks(t *testing.T) {
	e := newEnv(t)
	gatewaySensor(t, e)
	b := e.signedIn("root")
	list := b.get("/sensors")
	if row := rowOf(t, list.body, "s1"); !strings.Contains(row, `href="/sensors/s1/queue"`) {
		t.Errorf("the gateway's row does not link its queue:\n%s", row)
	}
	if row := rowOf(t, list.body, "s2"); strings.Contains(row, "/queue") {
		t.Errorf("the monitor's row links a queue:\n%s", row)
	}
	if p := b.get("/sensors/s1/status"); !strings.Contains(p.body, `<a href="/sensors/s1/queue" id="tab-queue">Queue</a>`) {
		t.Error("the gateway's status page has no Queue tab")
	}
	if p := b.get("/sensors/s2/status"); strings.Contains(p.body, "tab-queue") {
		t.Error("the monitor's status page has a Queue tab")
	}
}

// TestQueuePageSensorOffline: the page of a gateway that is not connected
// says so in place of its messages, shows the state it last reported,
// and offers the controls to writers only.
func TestQueuePageSensorOffline(t *testing.T) {
	e := newEnv(t)
	gatewaySensor(t, e)
	for _, c := range []struct {
		user     string
		controls bool
	}{{"root", true}, {"alice", true}, {"audrey", false}} {
		t.Run(c.user, func(t *testing.T) {
			p := e.signedIn(c.user).get("/sensors/s1/queue?state=deferred")
			if p.status != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", p.status)
			}
			doc := p.doc(t)
			if got, want := text(byID(doc, "queue-problem")), "Sensor s1 is not connected: its queue shows when it is back."; got != want {
				t.Errorf("problem %q, want %q", got, want)
			}
			if byID(doc, "queue-table") != nil || byID(doc, "queue-empty") != nil {
				t.Error("the page lists messages, or says there are none, of a sensor it could not ask")
			}
			if got := text(byID(doc, "gw-sending")) + ", " + text(byID(doc, "gw-depth")); got != "sending, 0 active · 4 deferred · 0 held · 0 quarantined" {
				t.Errorf("gateway state %q, want the one reported", got)
			}
			for _, id := range []string{"gw-stop-sending", "gw-stop-receiving", "gw-flush"} {
				if (byID(doc, id) != nil) != c.controls {
					t.Errorf("button #%s shown: %v, want %v", id, byID(doc, id) != nil, c.controls)
				}
			}
			if byID(doc, "gw-resume-sending") != nil {
				t.Error("resume sending offered while the gateway sends")
			}
			if sel := byID(doc, "q-state"); sel == nil || !strings.Contains(p.body, `<option value="deferred" selected>`) {
				t.Error("the filter does not show the state asked for")
			}
		})
	}
}

// TestQueuePageFilterRefused: a filter that cannot be used names its
// fields beside them, and the sensor is not asked.
func TestQueuePageFilterRefused(t *testing.T) {
	e := newEnv(t)
	gatewaySensor(t, e)
	p := e.signedIn("alice").get("/sensors/s1/queue?state=stuck&min_age=soon&sender=" + strings.Repeat("a", 300))
	if p.status != http.StatusBadRequest {
		t.Errorf("status %d, want 400", p.status)
	}
	for id, want := range map[string]string{
		"q-state":   "unknown state",
		"q-min-age": `must be a duration such as "90s", "15m" or "4h"`,
		"q-sender":  "must be at most 256 bytes long",
	} {
		if got := fieldError(t, p, id); !strings.Contains(got, want) {
			t.Errorf("beside #%s: %q, want %q", id, got, want)
		}
	}
	if byID(p.doc(t), "queue-problem") != nil {
		t.Error("the sensor was asked with a filter that could not be used")
	}
	p = e.signedIn("alice").get("/sensors/s1/queue?min_age=4h&max_age=15m")
	if got := fieldError(t, p, "q-max-age"); got != "must not be less than min_age" {
		t.Errorf("max_age below min_age: %q", got)
	}
}

// TestQueueActionsRefused: actions go back to the page they came from,
// filter kept, saying why the sensor did nothing; an auditor's are
// refused, another tenant's sensor is not found, and a return address
// elsewhere leads to the queue's page.
func TestQueueActionsRefused(t *testing.T) {
	e := newEnv(t)
	gatewaySensor(t, e)
	alice := e.signedIn("alice")
	alice.get("/sensors/s1/queue")
	back := "/sensors/s1/queue?sender=alice&state=deferred"
	for _, path := range []string{"/sensors/s1/queue/0123abcd/hold", "/sensors/s1/queue/0123abcd/delete-dsn", "/sensors/s1/gateway/stop-sending"} {
		p := alice.post(path, url.Values{"return": {back}})
		if p.status != http.StatusSeeOther || p.location != back {
			t.Errorf("POST %s: %d to %q, want 303 back to %s", path, p.status, p.location, back)
		}
		const flash = `<div class="flash flash-error" role="status">Sensor s1 is not connected: its queue shows when it is back.</div>`
		if got := alice.get(back); !strings.Contains(got.body, flash) {
			t.Errorf("after POST %s the page does not say that the sensor is not connected", path)
		}
	}
	for _, elsewhere := range []string{"//evil.example/", "/sensors/s2/queue", "/sensors/s1/queueing", "https://evil.example/sensors/s1/queue"} {
		if p := alice.post("/sensors/s1/gateway/flush", url.Values{"return": {elsewhere}}); p.location != "/sensors/s1/queue" {
			t.Errorf("return %q: redirected to %q, want /sensors/s1/queue", elsewhere, p.location)
		}
	}
	for _, path := range []string{"/sensors/s1/queue/0123abcd/bounce", "/sensors/s1/gateway/explode"} {
		if p := alice.post(path, nil); p.status != http.StatusNotFound {
			t.Errorf("POST %s: %d, want 404", path, p.status)
		}
	}

	audrey := e.signedIn("audrey")
	audrey.get("/sensors/s1/queue")
	for _, path := range []string{"/sensors/s1/queue/0123abcd/hold", "/sensors/s1/gateway/stop-sending"} {
		if p := audrey.post(path, nil); p.status != http.StatusForbidden {
			t.Errorf("auditor's POST %s: %d, want 403", path, p.status)
		}
	}

	bob := e.signedIn("bob") // acme's
	if p := bob.get("/sensors/s1/queue"); p.status != http.StatusNotFound {
		t.Errorf("another tenant's queue page: %d, want 404", p.status)
	}
	for _, path := range []string{"/sensors/s1/queue/0123abcd/hold", "/sensors/s1/gateway/stop-sending"} {
		if p := bob.post(path, nil); p.status != http.StatusNotFound {
			t.Errorf("another tenant's POST %s: %d, want 404", path, p.status)
		}
	}
}
