package gateway

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/quarantine"
	"github.com/ospreysec/osprey/sensor/queue"
	"github.com/ospreysec/osprey/sensor/spool"
)

const (
	actDeliver    = ospreyv1.VerdictAction_VERDICT_ACTION_DELIVER
	actTag        = ospreyv1.VerdictAction_VERDICT_ACTION_TAG
	actQuarantine = ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE
	actDropRcpt   = ospreyv1.VerdictAction_VERDICT_ACTION_DROP_NOTIFY_RECIPIENT
	actDropSender = ospreyv1.VerdictAction_VERDICT_ACTION_DROP_NOTIFY_SENDER
)

// actionGateway is a gateway whose queue holds what it is given (it does
// not run, so nothing is delivered), with a spool to hand off from.
type actionGateway struct {
	*Gateway
	t      *testing.T
	sp     *spool.Spool
	events *quarantine.Events
}

func newActionGateway(t *testing.T) *actionGateway {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	events := quarantine.NewEvents(nil)
	g := openGateway(t, Options{Dir: t.TempDir(), Spool: sp, Hostname: "gw.test", Events: events})
	if err := g.Apply(&ospreyv1.SmtpIntegration{Enabled: true, Mode: ospreyv1.SmtpMode_SMTP_MODE_INBOUND,
		Gateway: &ospreyv1.SmtpGateway{LocalDomains: []*ospreyv1.LocalDomain{{Domain: "example.com"}}}}); err != nil {
		t.Fatal(err)
	}
	return &actionGateway{Gateway: g, t: t, sp: sp, events: events}
}

// put spools an inbound message from sender and hands it off with d.
func (a *actionGateway) put(sender, body, verdict string, d *ospreyv1.Disposition) string {
	a.t.Helper()
	env := &ospreyv1.Envelope{MailFrom: sender, RcptTo: []string{"b@example.com", "c@example.com"},
		ReceivedAt: timestamppb.Now(), Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND}
	id, err := a.sp.Put(a.t.Context(), spool.Meta{Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP, Envelope: env}, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	msg, err := a.sp.Get(id)
	if err != nil {
		a.t.Fatal(err)
	}
	if err := a.Handoff(a.t.Context(), msg, verdict, d); err != nil {
		a.t.Fatal(err)
	}
	return id
}

// queued returns the queue's messages.
func (a *actionGateway) queued() []queue.Entry {
	a.t.Helper()
	page, err := a.Queue().List(a.t.Context(), queue.Filter{Limit: 1000})
	if err != nil {
		a.t.Fatal(err)
	}
	return page.Entries
}

func rcptsOf(e queue.Entry) []string {
	var out []string
	for _, r := range e.Rcpts {
		out = append(out, r.Rcpt)
	}
	return out
}

const testMessage = "From: Mallory <m@evil.example>\r\nSubject: =?utf-8?q?Rechnung_f=C3=BCr_Sie?=\r\n\r\nhello\r\n"

// TestHandoffCarriesOutTheDisposition: each action of the central's
// disposition does what it says: the queue delivers, tagged or not; the
// quarantine holds; a drop leaves only its notice.
func TestHandoffCarriesOutTheDisposition(t *testing.T) {
	t.Run("deliver", func(t *testing.T) {
		a := newActionGateway(t)
		id := a.put("m@evil.example", testMessage, "clean", &ospreyv1.Disposition{Action: actDeliver})
		q := a.queued()
		if len(q) != 1 || q[0].ID != id || q[0].Verdict != "clean" {
			t.Fatalf("queue %+v, want the message, clean", q)
		}
	})
	t.Run("tag", func(t *testing.T) {
		a := newActionGateway(t)
		id := a.put("m@evil.example", testMessage, "detected", &ospreyv1.Disposition{Action: actTag, SubjectTag: "[Osprey detect]",
			Headers: []*ospreyv1.HeaderField{{Name: "X-Scan", Value: "détecté"}}})
		body, err := a.Queue().Body(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		want := "X-Scan: =?utf-8?q?d=C3=A9tect=C3=A9?=\r\nFrom: Mallory <m@evil.example>\r\n" +
			"Subject: [Osprey detect] =?utf-8?q?Rechnung_f=C3=BCr_Sie?=\r\n\r\nhello\r\n"
		if string(body) != want {
			t.Errorf("queued body\n%q\nwant\n%q", body, want)
		}
		if got := subjectOf(body); got != "[Osprey detect] Rechnung für Sie" {
			t.Errorf("subject as read %q", got)
		}
	})
	t.Run("quarantine", func(t *testing.T) {
		a := newActionGateway(t)
		id := a.put("m@evil.example", testMessage, "detected", &ospreyv1.Disposition{Action: actQuarantine, Reason: "eicar: found"})
		if q := a.queued(); len(q) != 0 {
			t.Errorf("queue %+v, want it empty", q)
		}
		e, err := a.Quarantine().Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if e.Reason != "eicar: found" || e.Subject != "Rechnung für Sie" || !slices.Equal(e.Rcpts, []string{"b@example.com", "c@example.com"}) ||
			e.Verdict != "detected" || e.From != "m@evil.example" {
			t.Errorf("quarantined %+v", e)
		}
		// The handoff repeated after a crash adds nothing.
		msg, err := a.sp.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Handoff(t.Context(), msg, "detected", &ospreyv1.Disposition{Action: actQuarantine}); err != nil {
			t.Fatal(err)
		}
		if st := a.Quarantine().Stats(); st.Messages != 1 || len(a.queued()) != 0 {
			t.Errorf("after the handoff again: quarantine %+v, queue %v; want one message, and none", st, a.queued())
		}
	})
	t.Run("no disposition: detected is quarantined", func(t *testing.T) {
		a := newActionGateway(t)
		id := a.put("m@evil.example", testMessage, "detected", nil)
		if _, err := a.Quarantine().Get(id); err != nil {
			t.Errorf("quarantine: %v", err)
		}
	})
	t.Run("drop, notify the recipients", func(t *testing.T) {
		a := newActionGateway(t)
		id := a.put("m@evil.example", testMessage, "detected", &ospreyv1.Disposition{Action: actDropRcpt, Reason: "rule r1: sender"})
		q := a.queued()
		if len(q) != 1 || q[0].ID != id+".withheld" || q[0].From != "" || !slices.Equal(rcptsOf(q[0]), []string{"b@example.com", "c@example.com"}) {
			t.Fatalf("queue %+v, want only the notice to the recipients, from the null sender", q)
		}
		body, err := a.Queue().Body(t.Context(), q[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Auto-Submitted: auto-replied", "m@evil.example", "Rechnung für Sie", "rule r1: sender", id} {
			if !strings.Contains(string(body), want) {
				t.Errorf("the notice has no %q:\n%s", want, body)
			}
		}
		if st := a.Quarantine().Stats(); st.Messages != 0 {
			t.Errorf("quarantine %+v, want empty", st)
		}
	})
	t.Run("drop, notify the sender", func(t *testing.T) {
		a := newActionGateway(t)
		id := a.put("m@evil.example", testMessage, "detected", &ospreyv1.Disposition{Action: actDropSender})
		q := a.queued()
		if len(q) != 1 || q[0].ID != id+".withheld" || !slices.Equal(rcptsOf(q[0]), []string{"m@evil.example"}) || q[0].Direction != queue.Outbound {
			t.Fatalf("queue %+v, want only the notice to the sender, outbound", q)
		}
	})
	t.Run("drop, never a notice to the null sender", func(t *testing.T) {
		a := newActionGateway(t)
		a.put("", testMessage, "detected", &ospreyv1.Disposition{Action: actDropSender})
		if q := a.queued(); len(q) != 0 {
			t.Errorf("queue %+v, want nothing", q)
		}
	})
}

// TestQuarantineRequests: an operator looks at a quarantined message
// (its preview, its bytes in pieces), releases a copy to another address,
// releases it, after which the same message handed off again is
// delivered, and deletes another.
func TestQuarantineRequests(t *testing.T) {
	a := newActionGateway(t)
	ctx := t.Context()
	body := "From: m@evil.example\r\nSubject: invoice\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/html\r\n\r\n<script>alert(1)</script>pay now\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n\r\nMZ\r\n--b--\r\n"
	id := a.put("m@evil.example", body, "detected", &ospreyv1.Disposition{Action: actQuarantine, Reason: "double extension"})
	ask := func(op *ospreyv1.SensorRequest) *ospreyv1.SensorReply {
		t.Helper()
		rep := a.HandleRequest(ctx, op)
		if rep.GetError() != nil {
			t.Fatalf("%v: %v", op, rep.GetError())
		}
		return rep
	}

	rep := ask(&ospreyv1.SensorRequest{Op: &ospreyv1.SensorRequest_QuarantineGet{QuarantineGet: &ospreyv1.QuarantineGetRequest{MessageId: id, Preview: true}}})
	e := rep.GetQuarantineEntry()
	p := e.GetPreview()
	if e.GetReason() != "double extension" || e.GetSize() != int64(len(body)) || p.GetText() != "<script>alert(1)</script>pay now" || p.GetTextType() != "text/html" {
		t.Errorf("entry %v", e)
	}
	if len(p.GetAttachments()) != 1 || p.GetAttachments()[0].GetFilename() != "invoice.pdf.exe" || p.GetAttachments()[0].GetSize() != 2 ||
		p.GetAttachments()[0].GetSha256() != "9b8db510ef42b8ed54a3712636fda55a4f8cfcd5493e20b74ab00cd4f3979f2d" {
		t.Errorf("attachments %v", p.GetAttachments())
	}
	var got []byte
	for off := int64(0); ; {
		c := ask(&ospreyv1.SensorRequest{Op: &ospreyv1.SensorRequest_QuarantineRead{QuarantineRead: &ospreyv1.QuarantineReadRequest{MessageId: id, Offset: off, Length: 100}}}).GetQuarantineChunk()
		if len(c.GetData()) == 0 {
			break
		}
		got, off = append(got, c.GetData()...), off+int64(len(c.GetData()))
	}
	if string(got) != body {
		t.Errorf("read in pieces: %q, want %q", got, body)
	}

	act := func(action ospreyv1.QuarantineAction, to ...string) *ospreyv1.SensorReply {
		return a.HandleRequest(ctx, &ospreyv1.SensorRequest{Op: &ospreyv1.SensorRequest_QuarantineAction{
			QuarantineAction: &ospreyv1.QuarantineActionRequest{MessageId: id, Action: action, To: to}}})
	}
	if rep := act(ospreyv1.QuarantineAction_QUARANTINE_ACTION_RELEASE_TO, "Admin <admin@example.com>"); rep.GetError().GetCode() != ospreyv1.SensorError_CODE_INVALID {
		t.Errorf("release to a display name: %v, want invalid", rep)
	}
	rep = act(ospreyv1.QuarantineAction_QUARANTINE_ACTION_RELEASE_TO, "admin@example.com")
	copyID := rep.GetQuarantineEntry().GetQueueId()
	if q, err := a.Queue().Get(ctx, copyID); err != nil || !slices.Equal(rcptsOf(q), []string{"admin@example.com"}) || q.Verdict != VerdictReleased {
		t.Errorf("the copy %s in the queue: %+v, %v; want it to admin@example.com, released", copyID, q, err)
	}
	if _, err := a.Quarantine().Get(id); err != nil {
		t.Errorf("after a release to another address the message left the quarantine: %v", err)
	}
	rep = act(ospreyv1.QuarantineAction_QUARANTINE_ACTION_RELEASE)
	relID := rep.GetQuarantineEntry().GetQueueId()
	if q, err := a.Queue().Get(ctx, relID); err != nil || !slices.Equal(rcptsOf(q), []string{"b@example.com", "c@example.com"}) {
		t.Errorf("the released message in the queue: %+v, %v", q, err)
	}
	if _, err := a.Quarantine().Get(id); err == nil {
		t.Errorf("the released message is still in the quarantine")
	}
	if rep := act(ospreyv1.QuarantineAction_QUARANTINE_ACTION_RELEASE); rep.GetError().GetCode() != ospreyv1.SensorError_CODE_NOT_FOUND {
		t.Errorf("release twice: %v, want not found", rep)
	}
	// The same message handed off again (a crash before the spool removed
	// it) is delivered, not quarantined again by the same verdict.
	msg, err := a.sp.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Handoff(ctx, msg, "detected", &ospreyv1.Disposition{Action: actQuarantine}); err != nil {
		t.Fatal(err)
	}
	if q, err := a.Queue().Get(ctx, id); err != nil || q.Verdict != VerdictReleased {
		t.Errorf("handed off again: %+v, %v; want it queued as released", q, err)
	}
	if st := a.Quarantine().Stats(); st.Messages != 0 {
		t.Errorf("quarantine %+v, want empty", st)
	}

	other := a.put("x@evil.example", testMessage, "detected", &ospreyv1.Disposition{Action: actQuarantine})
	id = other
	if rep := act(ospreyv1.QuarantineAction_QUARANTINE_ACTION_DELETE); rep.GetError() != nil {
		t.Fatal(rep.GetError())
	}
	if _, err := a.Quarantine().Get(other); err == nil {
		t.Errorf("the deleted message is still in the quarantine")
	}
}

// TestLateVerdictWithholdsWhatIsLeft: a message delivered unscanned after
// its hold timeout, whose verdict then says quarantine: what was still
// waiting goes to the quarantine; when nothing was left, the central
// hears that nothing is held.
func TestLateVerdictWithholdsWhatIsLeft(t *testing.T) {
	a := newActionGateway(t)
	id := a.put("m@evil.example", testMessage, VerdictUnscanned, nil)
	if q := a.queued(); len(q) != 1 || !q[0].Unscanned {
		t.Fatalf("queue %+v, want the message, unscanned", q)
	}
	msg, err := a.sp.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Handoff(t.Context(), msg, "detected", &ospreyv1.Disposition{Action: actQuarantine, Reason: "late"}); err != nil {
		t.Fatal(err)
	}
	if e, err := a.Quarantine().Get(id); err != nil || len(e.Rcpts) != 2 || e.Reason != "late" {
		t.Errorf("quarantined %+v, %v; want both recipients, still waiting", e, err)
	}
	if q := a.queued(); len(q) != 0 {
		t.Errorf("queue %+v, want empty", q)
	}
	if ev := a.events.Take(); len(ev) != 0 {
		t.Errorf("events %v, want none", ev)
	}

	// Nothing left: the message left the queue (deleted here, as after its
	// delivery) before the verdict.
	id2 := a.put("m@evil.example", testMessage, VerdictUnscanned, nil)
	if err := a.Queue().Delete(t.Context(), id2, false); err != nil {
		t.Fatal(err)
	}
	msg, err = a.sp.Get(id2)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Handoff(t.Context(), msg, "detected", &ospreyv1.Disposition{Action: actQuarantine}); err != nil {
		t.Fatal(err)
	}
	ev := a.events.Take()
	if len(ev) != 1 || ev[0].GetMessageId() != id2 || ev[0].GetKind() != ospreyv1.QuarantineEventKind_QUARANTINE_EVENT_KIND_NOT_HELD {
		t.Errorf("events %v, want %s not held", ev, id2)
	}
}
