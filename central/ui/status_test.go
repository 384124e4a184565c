package ui_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestSensorTroubleShown: what a sensor reports of its parts is on the
// server list (type, fingerprint, SMTP and POP3 state, what fails now,
// ALERT and RISK problems each styled as such), in its live update, and on
// its status page (every problem by level, each part's error with its
// time, the spool's disk); once the sensor reports all is well, none of the
// trouble is left.
func TestSensorTroubleShown(t *testing.T) {
	e := newEnv(t)
	lease, err := e.store.Lease(t.Context(), 60)
	if err != nil {
		t.Fatal(err)
	}
	put := func(rt *ospreyv1.SensorRuntime) {
		t.Helper()
		rt.SensorId, rt.Tenant, rt.Online, rt.Node = "s1", "default", true, "node-1"
		rt.LastSeen, rt.StatusAt = timestamppb.New(e.clock.Now()), timestamppb.New(e.clock.Now())
		if err := e.store.PutStatuses(t.Context(), lease, []store.StatusWrite{{Status: rt}}); err != nil {
			t.Fatal(err)
		}
	}
	sn, v, err := e.store.GetSensor(t.Context(), store.AllTenants(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	sn.CertFingerprint = strings.Repeat("ab", 32)
	if _, err := e.store.UpdateSensor(t.Context(), store.AllTenants(), sn, v); err != nil {
		t.Fatal(err)
	}

	const (
		mb      = "journal@mail.example.com:110"
		pop3Err = "login: -ERR [AUTH] Authentication failed."
		alert   = "ALERT: pop3 " + mb + ": polling has failed for 1h0m0s (since 2026-03-01T11:00:00Z): " + pop3Err
		risk    = "RISK: pop3 " + mb + ": TLS is off: the password and the mail cross the network in the clear"
		failure = "pop3 " + mb + ": " + pop3Err + " (12 failures in a row)"
		lowDisk = "ALERT: spool /var/lib/osprey/spool: low disk space: 100 MiB free, below the 256 MiB floor; SMTP answers 421 and POP3 mail stays on its server until space is freed"
	)
	failedAt := e.clock.Now().Add(-30 * time.Second)
	put(&ospreyv1.SensorRuntime{
		Problems: []string{lowDisk, alert, failure, risk},
		Smtp: &ospreyv1.IntegrationStatus{State: ospreyv1.IntegrationState_INTEGRATION_STATE_FAILING, Target: "0.0.0.0:25",
			LastError: "spool: low disk space", LastErrorAt: timestamppb.New(failedAt), Refusals: map[string]uint64{"spool_unavailable": 7, "timeout": 0}},
		Pop3: &ospreyv1.IntegrationStatus{State: ospreyv1.IntegrationState_INTEGRATION_STATE_FAILING, Target: mb,
			LastError: pop3Err, LastErrorAt: timestamppb.New(failedAt), FailingSince: timestamppb.New(failedAt.Add(-time.Hour)), Failures: 12,
			Problems: []string{alert, failure, risk}},
		Spool: &ospreyv1.SpoolStatus{State: ospreyv1.SpoolState_SPOOL_STATE_LOW_DISK, Error: "low disk space: 100 MiB free, below the 256 MiB floor",
			Messages: 3, Bytes: 4096, FreeBytes: 100 << 20, MinFreeBytes: 256 << 20, Problems: []string{lowDisk}},
	})

	b := e.signedIn("root")
	list := b.get("/sensors")
	row := rowOf(t, list.body, "s1")
	for _, want := range []string{
		"Remote sensor", "abababababab…", `title="` + strings.Repeat("ab", 32) + `"`,
		`<td data-live="smtp"><span class="badge part-failing"`, `<td data-live="pop3"><span class="badge part-failing"`,
		"smtp: spool: low disk space", `<li class="problem problem-alert"`, `<li class="problem problem-risk"`,
	} {
		if !strings.Contains(row, want) {
			t.Errorf("server list row: no %s in\n%s", want, row)
		}
	}
	if strings.Contains(row, failure) {
		t.Errorf("server list row: the error problem is listed with the ALERT and RISK ones:\n%s", row)
	}

	live := b.get("/sensors.json?id=s1")
	var got struct {
		Sensors []struct {
			LastError string `json:"last_error"`
			POP3      struct{ State, Title string }
			Problems  []struct{ Level, Text string }
		} `json:"sensors"`
	}
	if err := json.Unmarshal([]byte(live.body), &got); err != nil || len(got.Sensors) != 1 {
		t.Fatalf("sensors.json: %v\n%s", err, live.body)
	}
	s := got.Sensors[0]
	var levels []string
	for _, p := range s.Problems {
		levels = append(levels, p.Level)
	}
	if s.POP3.State != "failing" || !strings.Contains(s.POP3.Title, pop3Err) || s.LastError != "smtp: spool: low disk space" ||
		!cmp.Equal(levels, []string{"alert", "alert", "risk", "error"}) {
		t.Errorf("sensors.json: got POP3 %+v, last error %q, levels %v; want failing with its error, the SMTP error, alert, alert, risk, error", s.POP3, s.LastError, levels)
	}

	st := b.get("/sensors/s1/status")
	if st.status != http.StatusOK {
		t.Fatalf("status page: got %d", st.status)
	}
	for _, want := range []string{
		`<span class="problem-level">alert</span> ` + "ALERT: pop3", `<li class="problem problem-risk"><span class="problem-level">risk</span>`,
		`<li class="problem problem-error"><span class="problem-level">error</span>`,
		pop3Err, "2026-03-01 11:59:30 UTC", "12 in a row since 2026-03-01 10:59:30 UTC",
		`class="badge spool-low_disk"`, "100.0 MiB (the sensor takes no mail below 256.0 MiB)", "3 messages · 4.0 KiB",
		"<code>spool_unavailable</code> 7", "unhealthy",
	} {
		if !strings.Contains(st.body, want) {
			t.Errorf("status page: no %s", want)
		}
	}
	if strings.Contains(st.body, "<code>timeout</code>") {
		t.Error("status page: lists a refusal reason that never happened")
	}
	if b.get("/sensors/s1").location != "/sensors/s1/status" {
		t.Error("/sensors/s1 does not lead to the status page")
	}

	// All is well again.
	put(&ospreyv1.SensorRuntime{
		Healthy: true,
		Smtp:    &ospreyv1.IntegrationStatus{State: ospreyv1.IntegrationState_INTEGRATION_STATE_LISTENING, Target: "0.0.0.0:25"},
		Pop3: &ospreyv1.IntegrationStatus{State: ospreyv1.IntegrationState_INTEGRATION_STATE_POLLING, Target: mb,
			LastSuccessAt: timestamppb.New(e.clock.Now())},
		Spool: &ospreyv1.SpoolStatus{State: ospreyv1.SpoolState_SPOOL_STATE_OK, FreeBytes: 10 << 30, MinFreeBytes: 256 << 20},
	})
	row = rowOf(t, b.get("/sensors").body, "s1")
	if strings.Contains(row, "part-failing") || strings.Contains(row, "problem-") || strings.Contains(row, "low disk") ||
		!strings.Contains(row, "part-polling") || !strings.Contains(row, "part-listening") {
		t.Errorf("server list row once all is well:\n%s", row)
	}
	st = b.get("/sensors/s1/status")
	if strings.Contains(st.body, "problem-") || strings.Contains(st.body, pop3Err) || !strings.Contains(st.body, `id="health">healthy<`) {
		t.Errorf("status page once all is well still shows trouble")
	}
}

// rowOf is the server list's row of sensor id.
func rowOf(t *testing.T, body, id string) string {
	t.Helper()
	i := strings.Index(body, `<tr data-sensor="`+id+`">`)
	if i < 0 {
		t.Fatalf("no row of %s", id)
	}
	row := body[i:]
	if j := strings.Index(row, "</tr>"); j >= 0 {
		row = row[:j]
	}
	return row
}
