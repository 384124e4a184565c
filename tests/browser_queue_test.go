package tests

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ospreysec/osprey/api"
)

// TestBrowserQueue: an administrator manages a gateway sensor's queue in
// the web UI. The sensor is its own process, an inbound gateway whose
// internal server (smtp-sink) answers 4xx, so its mail waits deferred. The
// server list links the sensor's Queue page, which lists the messages
// with their recipients' state and last reply; the filter by state
// selects them or none; a message held says so (the filter kept across
// the action); one deleted with a notice is gone, asked about first, and
// the notice to its sender is queued; sending stopped shows stopped, and
// resumed shows sending. An auditor sees the queue without a button. With
// the sensor gone the page says so.
func TestBrowserQueue(t *testing.T) {
	ctx := newBrowser(t)
	const n = 3
	g := startDeferringGateway(t, n)
	d, s := g.dev, g.sensor
	base := apiLine.FindStringSubmatch(d.stdout.String())[1]

	uiSignIn(t, ctx, base, "admin", adminPassword)
	uiDo(t, ctx, "the server list links the queue",
		chromedp.Click(chromedp.CSS(`tr[data-sensor="`+s.id+`"] a.queue-link`)),
		chromedp.WaitVisible(chromedp.ID("queue-table")),
	)
	ids := func(what string) []string {
		t.Helper()
		list := uiRun(t, ctx, what, chromedp.Evaluate[string](
			`[...document.querySelectorAll("tbody[data-message]")].map(b => b.dataset.message).join(" ")`))
		return strings.Fields(list)
	}
	cell := func(what, sel string) string {
		t.Helper()
		return uiRun(t, ctx, what, chromedp.Text(chromedp.CSS(sel)))
	}
	all := ids("the listed messages")
	if len(all) != n {
		t.Fatalf("%d messages listed, want %d", len(all), n)
	}
	first := `tbody[data-message="` + all[0] + `"]`
	if st, reply := cell("state", first+" .qstate"), cell("last reply", first+" td.reply"); st != "deferred" || !strings.HasPrefix(reply, "4") {
		t.Errorf("the first message's recipient: state %q, last reply %q; want deferred after a 4xx", st, reply)
	}
	if sender := cell("sender", first+" td.addr"); !strings.HasPrefix(sender, "alice@partner.test") {
		t.Errorf("sender %q, want alice@partner.test", sender)
	}
	if sending := cell("sending", "#gw-sending"); sending != "sending" {
		t.Errorf("the gateway shows %q, want sending", sending)
	}
	uiDo(t, ctx, "scroll to the messages", chromedp.Evaluate[chromedp.Void](
		`document.getElementById("gw-title").scrollIntoView({block: "start"}); window.scrollBy(0, 120)`))
	uiScreenshot(t, ctx, "queue")

	// Filtered by state: held selects none, deferred all of them.
	filter := func(what, state, sender string) {
		t.Helper()
		// By script: chromedp's SetValue cannot empty a field.
		uiDo(t, ctx, what, chromedp.Evaluate[chromedp.Void](`document.getElementById("q-state").value = `+jsString(state)+
			`; document.getElementById("q-sender").value = `+jsString(sender)))
		if status := uiSubmit(t, ctx, what, "#q-filter"); status != http.StatusOK {
			t.Fatalf("%s: status %d", what, status)
		}
	}
	filter("filter held", "held", "")
	if empty := cell("no held message", "#queue-empty"); !strings.Contains(empty, "matches the filter") {
		t.Errorf("held messages: the page says %q, want that none matches", empty)
	}
	filter("filter deferred", "deferred", "")
	if got := ids("deferred messages"); len(got) != n {
		t.Errorf("%d deferred messages listed, want %d", len(got), n)
	}

	// Held, with a filter by sender: the page comes back with it.
	filter("filter alice's", "", "ALICE")
	if status := uiSubmit(t, ctx, "hold", first+` button[data-action="hold"]`); status != http.StatusOK {
		t.Fatalf("hold: status %d", status)
	}
	uiDo(t, ctx, "held", chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	if st := cell("held state", first+" .qstate"); st != "held" {
		t.Errorf("the held message's recipient says %q, want held", st)
	}
	if url := uiRun(t, ctx, "location", chromedp.Evaluate[string](`location.pathname + location.search`)); url != "/sensors/"+s.id+"/queue?sender=ALICE" {
		t.Errorf("after holding, the page is %s, want the queue filtered by sender still", url)
	}
	if m, err := d.api.QueuedMessage(t.Context(), s.id, all[0]); err != nil || m.Recipients[0].State != api.QueueHeld {
		t.Errorf("the API shows the held message %+v, %v; want it held", m, err)
	}

	// Deleted with a notice to its sender, after a confirmation.
	// The question is kept for the page the form leads to.
	uiDo(t, ctx, "answer confirmations yes", chromedp.Evaluate[chromedp.Void](
		`window.confirm = question => { sessionStorage.setItem("asked", question); return true; }`))
	deleted := `tbody[data-message="` + all[1] + `"]`
	if status := uiSubmit(t, ctx, "delete with a notice", deleted+` button[data-action="delete-dsn"]`); status != http.StatusOK {
		t.Fatalf("delete with a notice: status %d", status)
	}
	uiDo(t, ctx, "deleted", chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	if flash := cell("flash", ".flash-ok"); !strings.Contains(flash, "failure notice") {
		t.Errorf("after the deletion the page says %q, want that the sender gets a failure notice", flash)
	}
	if asked := uiRun(t, ctx, "the question", chromedp.Evaluate[string](`sessionStorage.getItem("asked") || ""`)); !strings.Contains(asked, "failure notice") {
		t.Errorf("before deleting, the page asked %q, want it to ask about deleting with a failure notice", asked)
	}
	if got := ids("after the deletion"); strings.Contains(strings.Join(got, " "), all[1]) {
		t.Errorf("the deleted message is still listed: %v", got)
	}
	var apiErr *api.Error
	if _, err := d.api.QueuedMessage(t.Context(), s.id, all[1]); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("the deleted message through the API: %v, want 404", err)
	}
	uiDo(t, ctx, "the whole queue", chromedp.Navigate(base+"/sensors/"+s.id+"/queue"), chromedp.WaitVisible(chromedp.ID("queue-table")))
	whole := ids("the whole queue")
	if notices := uiRun(t, ctx, "failure notices", chromedp.Evaluate[int](
		`[...document.querySelectorAll("#queue-table .badge-muted")].filter(b => b.textContent === "failure notice").length`)); notices != 1 {
		t.Errorf("%d failure notices listed, want 1 for the deletion", notices)
	}

	// Sending stopped, then resumed.
	if status := uiSubmit(t, ctx, "stop sending", "#gw-stop-sending"); status != http.StatusOK {
		t.Fatalf("stop sending: status %d", status)
	}
	if sending := cell("sending after the stop", "#gw-sending"); sending != "stopped" {
		t.Errorf("after stop sending the gateway shows %q, want stopped", sending)
	}
	if status := uiSubmit(t, ctx, "resume sending", "#gw-resume-sending"); status != http.StatusOK {
		t.Fatalf("resume sending: status %d", status)
	}
	if sending := cell("sending after the resume", "#gw-sending"); sending != "sending" {
		t.Errorf("after resume sending the gateway shows %q, want sending", sending)
	}

	// An auditor sees the queue, and no button that changes anything.
	const auditorPassword = "a long password for the auditor"
	if _, err := d.api.CreateUser(t.Context(), api.User{Name: "auditor", Role: api.RoleSecurityAuditor, Tenants: []string{"default"}, Password: auditorPassword}); err != nil {
		t.Fatal(err)
	}
	if status := uiSubmit(t, ctx, "sign out", `form[action="/signout"] button`); status != http.StatusOK {
		t.Fatalf("sign out: status %d", status)
	}
	uiSignIn(t, ctx, base, "auditor", auditorPassword)
	uiDo(t, ctx, "the auditor's queue", chromedp.Navigate(base+"/sensors/"+s.id+"/queue"), chromedp.WaitVisible(chromedp.ID("queue-table")))
	if got := ids("the auditor's messages"); strings.Join(got, " ") != strings.Join(whole, " ") {
		t.Errorf("the auditor sees messages %v, want %v", got, whole)
	}
	if buttons := uiRun(t, ctx, "buttons", chromedp.Evaluate[int](
		`document.querySelectorAll("#queue-table form, .gateway-controls form").length`)); buttons != 0 {
		t.Errorf("the auditor is offered %d forms that change the queue, want none", buttons)
	}

	// The sensor gone: the page says so, and lists nothing.
	s.kill(t)
	waitSensor(t, d.api, s.id, "offline", func(s *api.Sensor) bool { return !s.Online })
	uiDo(t, ctx, "the queue of a sensor gone", chromedp.Navigate(base+"/sensors/"+s.id+"/queue"), chromedp.WaitVisible(chromedp.ID("queue-problem")))
	if msg := cell("problem", "#queue-problem"); !strings.Contains(msg, "is not connected: its queue shows when it is back") {
		t.Errorf("with the sensor gone the page says %q", msg)
	}
}
