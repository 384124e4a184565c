package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/testwait"
)

// TestBrowserQuarantine: an administrator works the quarantine in the web
// UI. The dev node's own sensor is an inbound gateway in front of
// smtp-sink; two messages with the EICAR test file are quarantined, one
// of them written in HTML. The Quarantine page lists both, newest first;
// the HTML one's page shows the sensor's preview, its HTML as text (a
// <b> shows as "<b>", never as bold), the attachment's name, type and
// SHA-256, and downloads the message as it arrived through the session.
// A copy released to another address reaches smtp-sink; the history
// names who did it. The tenant's verdict policy refuses a quarantine
// score below the tag score beside its field, then saves. An auditor sees
// the list and the message without a button, and a POST of theirs is
// refused. The other message, deleted after a confirmation, says so.
func TestBrowserQuarantine(t *testing.T) {
	ctx := newBrowser(t)
	sink := startSMTPSink(t)
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	listen := loopbackPort(t)
	d.enableSMTP(t, inboundGateway(t, listen, "example.com", sink.addr))
	sendEICAR(t, listen, "Quarterly report")
	sendHTMLEICAR(t, listen, "Invoice 2026-03")
	held := map[string]string{} // message id by subject
	var order []string          // newest first, as the API lists them
	testwait.For(t, "two messages quarantined", func() bool {
		l, err := d.api.Quarantine(t.Context(), api.QuarantineQuery{State: api.QuarantineHeld})
		if err != nil || len(l.Messages) != 2 {
			return false
		}
		for _, m := range l.Messages {
			held[m.Subject] = m.MessageID
			order = append(order, m.MessageID)
		}
		return true
	})
	html, plain := held["Invoice 2026-03"], held["Quarterly report"]
	if html == "" || plain == "" {
		t.Fatalf("quarantined %v", held)
	}
	cell := func(what, sel string) string {
		t.Helper()
		return strings.TrimSpace(uiRun(t, ctx, what, chromedp.Text(chromedp.CSS(sel))))
	}

	uiSignIn(t, ctx, d.base, "admin", adminPassword)
	uiDo(t, ctx, "the Quarantine page",
		chromedp.Click(chromedp.CSS(`.mainnav a[href="/quarantine"]`)),
		chromedp.WaitVisible(chromedp.ID("quarantine-table")),
	)
	listed := uiRun(t, ctx, "the listed messages", chromedp.Evaluate[string](
		`[...document.querySelectorAll("#quarantine-table tr[data-message]")].map(r => r.dataset.message).join(" ")`))
	if want := strings.Join(order, " "); listed != want {
		t.Errorf("listed %q, want the two messages newest first, %q", listed, want)
	}
	row := `#quarantine-table tr[data-message="` + html + `"]`
	if st := cell("state", row+" td.q-state"); st != "quarantined" {
		t.Errorf("the message's state reads %q, want quarantined (and not unavailable: its sensor is connected)", st)
	}
	if why := cell("reason", row+" td.reason"); !strings.Contains(why, "EICAR") {
		t.Errorf("the message is listed as quarantined for %q", why)
	}

	// The message's page: the sensor's preview, HTML as text.
	uiDo(t, ctx, "the message's page", chromedp.Click(chromedp.CSS(row+" td.subject a")), chromedp.WaitVisible(chromedp.ID("qm-text")))
	text := cell("the text part", "#qm-text")
	if !strings.Contains(text, "<p>Hello <b>Bob</b>,") || !strings.Contains(text, "<script>") {
		t.Errorf("the text part reads %q, want the HTML source as text", text)
	}
	if n := uiRun(t, ctx, "elements in the text", chromedp.Evaluate[int](`document.querySelectorAll("#qm-text *").length`)); n != 0 {
		t.Errorf("the text part holds %d elements, want none: the HTML was rendered", n)
	}
	sum := sha256.Sum256([]byte(eicarTestFile))
	if att := cell("attachments", "#qm-attachments tbody"); !strings.Contains(att, "eicar.com") ||
		!strings.Contains(att, "application/octet-stream") || !strings.Contains(att, hex.EncodeToString(sum[:])) {
		t.Errorf("the attachments read %q, want eicar.com, its type and its SHA-256", att)
	}
	if headers := cell("headers", "#qm-headers tbody"); !strings.Contains(headers, "Invoice 2026-03") || !strings.Contains(headers, "Mallory <mallory@evil.example>") {
		t.Errorf("the header fields read %q", headers)
	}
	uiDo(t, ctx, "scroll to the preview", chromedp.Evaluate[chromedp.Void](
		`document.querySelector("nav.crumbs").scrollIntoView({block: "start"}); window.scrollBy(0, -12)`))
	uiScreenshot(t, ctx, "quarantine")

	// The .eml, through the session, as the API has it.
	got := uiRun(t, ctx, "download the .eml", chromedp.Evaluate[string](`fetch(document.getElementById("qm-download").href, {credentials: "same-origin"})
		.then(async r => JSON.stringify({status: r.status, type: r.headers.get("Content-Type"), disposition: r.headers.get("Content-Disposition"), body: await r.text()}))`,
		chromedp.EvalAwaitPromise))
	var eml struct {
		Status            int
		Type, Disposition string
		Body              string
	}
	if err := json.Unmarshal([]byte(got), &eml); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := d.api.DownloadQuarantined(t.Context(), "dev", html, &want); err != nil {
		t.Fatal(err)
	}
	if eml.Status != http.StatusOK || eml.Type != "message/rfc822" || eml.Disposition != "attachment; filename=dev-"+html+".eml" || eml.Body != want.String() {
		t.Errorf("the download: %d %q %q, %d bytes (want %d as the API has them)", eml.Status, eml.Type, eml.Disposition, len(eml.Body), want.Len())
	}

	// A copy released to another address reaches the internal server.
	uiDo(t, ctx, "the address", chromedp.SendKeys(chromedp.ID("qm-to"), "analyst@example.com"))
	if status := uiSubmit(t, ctx, "release to", "#qm-release-to"); status != http.StatusOK {
		t.Fatalf("release to: status %d", status)
	}
	if flash := cell("flash", ".flash-ok"); !strings.Contains(flash, "released to analyst@example.com") || !strings.Contains(flash, "stays in the quarantine") {
		t.Errorf("after releasing a copy the page says %q", flash)
	}
	testwait.For(t, "the copy at the internal server", func() bool {
		for _, m := range sink.messages(t) {
			if strings.Contains(m, "analyst@example.com") && strings.Contains(m, "Subject: Invoice 2026-03") {
				return true
			}
		}
		return false
	})
	if history := cell("history", "#qm-history tbody"); !strings.Contains(history, "Copy released to") || !strings.Contains(history, "admin") {
		t.Errorf("the history reads %q, want the copy released by admin", history)
	}

	// The verdict policy: a bad value beside its field, then saved.
	uiDo(t, ctx, "the policy page",
		chromedp.Click(chromedp.CSS(`.mainnav a[href="/rules"]`)),
		chromedp.WaitVisible(chromedp.ID("policy-link")),
		chromedp.Click(chromedp.ID("policy-link")),
		chromedp.WaitVisible(chromedp.ID("policy-form")),
		chromedp.SetValue(chromedp.ID("pol-spam-quarantine-score"), "3"),
		chromedp.SetValue(chromedp.ID("pol-subject-tag"), "[suspect]"),
	)
	if status := uiSubmit(t, ctx, "save a bad policy", "#policy-save"); status != http.StatusUnprocessableEntity {
		t.Fatalf("a quarantine score below the tag score: status %d, want 422", status)
	}
	if msg := cell("the score's error", "#pol-spam-quarantine-score-err"); !strings.Contains(msg, "must be above spam_tag_score") {
		t.Errorf("beside the quarantine score: %q", msg)
	}
	uiDo(t, ctx, "fix the score", chromedp.SetValue(chromedp.ID("pol-spam-quarantine-score"), "20"))
	if status := uiSubmit(t, ctx, "save the policy", "#policy-save"); status != http.StatusOK {
		t.Fatalf("save the policy: status %d", status)
	}
	if flash := cell("flash", ".flash-ok"); !strings.Contains(flash, "Verdict policy of tenant default saved") {
		t.Errorf("after saving the policy the page says %q", flash)
	}
	if p, _, err := d.api.Policy(t.Context(), "default"); err != nil || p.SpamQuarantineScore != 20 || p.SubjectTag != "[suspect]" ||
		p.Detected != api.ActionQuarantine {
		t.Errorf("the stored policy: %+v, %v", p, err)
	}

	// An auditor sees it all, without a button; a POST is refused.
	const auditorPassword = "a long password for the auditor"
	if _, err := d.api.CreateUser(t.Context(), api.User{Name: "auditor", Role: api.RoleSecurityAuditor, Tenants: []string{"default"}, Password: auditorPassword}); err != nil {
		t.Fatal(err)
	}
	if status := uiSubmit(t, ctx, "sign out", `form[action="/signout"] button`); status != http.StatusOK {
		t.Fatalf("sign out: status %d", status)
	}
	uiSignIn(t, ctx, d.base, "auditor", auditorPassword)
	uiDo(t, ctx, "the auditor's message page", chromedp.Navigate(d.base+"/quarantine/dev/"+html), chromedp.WaitVisible(chromedp.ID("qm-text")))
	if forms := uiRun(t, ctx, "forms", chromedp.Evaluate[int](`document.querySelectorAll('form[action^="/quarantine/"]').length`)); forms != 0 {
		t.Errorf("the auditor is offered %d forms that act on the message, want none", forms)
	}
	if uiRun(t, ctx, "download link", chromedp.Evaluate[bool](`document.getElementById("qm-download") !== null`)) != true {
		t.Error("the auditor has no download link")
	}
	status := uiRun(t, ctx, "the auditor's POST", chromedp.Evaluate[int](`fetch("/quarantine/dev/`+html+`/release", {method: "POST",
		body: new URLSearchParams({csrf: document.querySelector('input[name="csrf"]').value})}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if status != http.StatusForbidden {
		t.Errorf("the auditor's release: status %d, want 403", status)
	}
	if m, err := d.api.QuarantinedMessage(t.Context(), "dev", html, false); err != nil || m.State != api.QuarantineHeld || m.Pending != "" {
		t.Errorf("after the auditor's POST: %+v, %v", m, err)
	}
	uiDo(t, ctx, "the auditor's list", chromedp.Navigate(d.base+"/quarantine"), chromedp.WaitVisible(chromedp.ID("quarantine-table")))
	if n := uiRun(t, ctx, "rows", chromedp.Evaluate[int](`document.querySelectorAll("#quarantine-table tr[data-message]").length`)); n != 2 {
		t.Errorf("the auditor sees %d messages, want 2", n)
	}

	// The other message deleted, after a confirmation.
	if status := uiSubmit(t, ctx, "sign out", `form[action="/signout"] button`); status != http.StatusOK {
		t.Fatalf("sign out: status %d", status)
	}
	uiSignIn(t, ctx, d.base, "admin", adminPassword)
	uiDo(t, ctx, "the other message", chromedp.Navigate(d.base+"/quarantine/dev/"+plain), chromedp.WaitVisible(chromedp.ID("qm-delete")),
		chromedp.Evaluate[chromedp.Void](`window.confirm = question => { sessionStorage.setItem("asked", question); return true; }`))
	if status := uiSubmit(t, ctx, "delete", "#qm-delete"); status != http.StatusOK {
		t.Fatalf("delete: status %d", status)
	}
	if flash := cell("flash", ".flash-ok"); !strings.Contains(flash, "deleted from the quarantine") {
		t.Errorf("after the deletion the page says %q", flash)
	}
	if asked := uiRun(t, ctx, "the question", chromedp.Evaluate[string](`sessionStorage.getItem("asked") || ""`)); !strings.Contains(asked, "Delete this message") {
		t.Errorf("before deleting, the page asked %q", asked)
	}
	if st := cell("state", "#qm-state"); st != "deleted" {
		t.Errorf("the deleted message's state reads %q", st)
	}
	if m, err := d.api.QuarantinedMessage(t.Context(), "dev", plain, false); err != nil || m.State != api.QuarantineDeleted {
		t.Errorf("the deleted message through the API: %+v, %v", m, err)
	}
	for _, m := range sink.messages(t) {
		if strings.Contains(m, "Subject: Quarterly report") || (strings.Contains(m, "Subject: Invoice 2026-03") && !strings.Contains(m, "analyst@example.com")) {
			t.Errorf("a quarantined message reached its recipients:\n%.400s", m)
		}
	}
}

// sendHTMLEICAR sends a message whose only text is HTML, with the EICAR
// test file attached, to bob@example.com through the SMTP listener at addr.
func sendHTMLEICAR(t *testing.T, addr, subject string) {
	t.Helper()
	const boundary = "osprey-html-test"
	msg := fmt.Sprintf("From: Mallory <mallory@evil.example>\r\nTo: Bob <bob@example.com>\r\nSubject: %s\r\n"+
		"Message-ID: <%d@evil.example>\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=%q\r\n\r\n"+
		"--%s\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"+
		"<p>Hello <b>Bob</b>, the invoice is <a href=\"https://evil.example/pay\">here</a>.</p><script>alert(1)</script>\r\n"+
		"--%s\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"eicar.com\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--%s--\r\n",
		subject, time.Now().UnixNano(), time.Now().Format(time.RFC1123Z), boundary,
		boundary, boundary, base64.StdEncoding.EncodeToString([]byte(eicarTestFile)), boundary)
	if err := smtpSend(addr, "localhost", "mallory@evil.example", "bob@example.com", false, msg); err != nil {
		t.Fatalf("send %q: %v", subject, err)
	}
}
