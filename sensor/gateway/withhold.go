package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/quarantine"
	"github.com/ospreysec/osprey/sensor/queue"
)

// Withholding. A message the central's disposition keeps from delivery
// (quarantine, or a drop with a notice) is first put in the delivery
// queue with its recipients quarantined, as a late verdict does to a
// message delivered unscanned: one durable step, idempotent by id, that
// also covers the recipients such a message still had waiting (and
// leaves alone those it was delivered to). withhold then moves the
// quarantined recipients out of the queue: into the quarantine, or into a
// notice. Each step is idempotent, so a crash anywhere is mended by the
// handoff that comes again after the restart (the message is still in the
// spool), or by withholdLeftovers at the next start.

// actionOf returns what to do with a message: its disposition's action;
// without one (a central older than dispositions, or a message handed off
// unscanned), a detected message is quarantined, anything else delivered.
func actionOf(verdict string, d *ospreyv1.Disposition) ospreyv1.VerdictAction {
	if a := d.GetAction(); a != ospreyv1.VerdictAction_VERDICT_ACTION_UNSPECIFIED {
		return a
	}
	if verdict == verdictDetected {
		return ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE
	}
	return ospreyv1.VerdictAction_VERDICT_ACTION_DELIVER
}

// withheld reports whether an action keeps a message from delivery.
func withheld(a ospreyv1.VerdictAction) bool {
	switch a {
	case ospreyv1.VerdictAction_VERDICT_ACTION_DELIVER, ospreyv1.VerdictAction_VERDICT_ACTION_TAG:
		return false
	}
	return true
}

// withhold moves message id's quarantined recipients out of the delivery
// queue: into the quarantine (QUARANTINE, and an action this sensor does
// not know), or into a notice to them or to the sender (the drops).
func (g *Gateway) withhold(ctx context.Context, q *queue.Queue, id string, action ospreyv1.VerdictAction, reason string) error {
	e, err := q.Get(ctx, id)
	if errors.Is(err, queue.ErrNotFound) {
		// Done before a crash, or nothing was left to withhold (delivered
		// unscanned, all of it, before the verdict came).
		if _, qerr := g.quarantine.Get(id); action == ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE && qerr != nil {
			g.event(id, ospreyv1.QuarantineEventKind_QUARANTINE_EVENT_KIND_NOT_HELD)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("withhold %s: %w", id, err)
	}
	var rcpts []string
	for _, r := range e.Rcpts {
		if r.State == queue.StateQuarantined {
			rcpts = append(rcpts, r.Rcpt)
		}
	}
	if len(rcpts) > 0 {
		body, err := q.Body(ctx, id)
		if err != nil {
			return fmt.Errorf("withhold %s: %w", id, err)
		}
		switch action {
		case ospreyv1.VerdictAction_VERDICT_ACTION_DROP_NOTIFY_RECIPIENT:
			err = g.notify(ctx, q, e, body, rcpts, rcpts, e.Direction, reason)
		case ospreyv1.VerdictAction_VERDICT_ACTION_DROP_NOTIFY_SENDER:
			if e.From != "" { // never a notice to the null sender
				back := queue.Inbound
				if e.Direction == queue.Inbound {
					back = queue.Outbound
				}
				err = g.notify(ctx, q, e, body, rcpts, []string{e.From}, back, reason)
			}
		default:
			_, err = g.quarantine.Put(quarantine.Entry{
				ID: id, From: e.From, Rcpts: rcpts, Direction: e.Direction, Arrival: e.Arrival,
				Verdict: e.Verdict, Reason: reason, Subject: subjectOf(body),
			}, body)
		}
		if err != nil {
			return fmt.Errorf("withhold %s: %w", id, err)
		}
		g.log.Info("message withheld from delivery", "id", id, "action", action, "recipients", len(rcpts), "reason", reason)
	} else if _, qerr := g.quarantine.Get(id); action == ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE && qerr != nil {
		g.event(id, ospreyv1.QuarantineEventKind_QUARANTINE_EVENT_KIND_NOT_HELD)
	}
	if err := q.Delete(ctx, id, false); err != nil && !errors.Is(err, queue.ErrNotFound) {
		return fmt.Errorf("withhold %s: %w", id, err)
	}
	return nil
}

// notify enqueues the notice that message e (to rcpts) was dropped, to
// whom, from the null sender.
func (g *Gateway) notify(ctx context.Context, q *queue.Queue, e queue.Entry, body []byte, rcpts, to []string, dir, reason string) error {
	from := e.From
	if from == "" {
		from = "<>"
	}
	text := fmt.Sprintf("A message was not delivered: the mail gateway %s withheld it.\r\n\r\n"+
		"  From:     %s\r\n  To:       %s\r\n  Subject:  %s\r\n  Received: %s\r\n  Reason:   %s\r\n\r\n"+
		"Ask your mail administrator if you need it; quote this reference: %s\r\n",
		g.helo(), from, strings.Join(rcpts, ", "), subjectOf(body), e.Arrival.UTC().Format(time.RFC1123Z),
		oneLine(reason), e.ID)
	var rnd [8]byte
	rand.Read(rnd[:])
	msg := "From: Mail Delivery System <MAILER-DAEMON@" + g.helo() + ">\r\n" +
		"To: " + strings.Join(to, ", ") + "\r\n" +
		"Subject: " + mime.QEncoding.Encode("utf-8", "Message withheld: "+subjectOf(body)) + "\r\n" +
		"Date: " + g.now().UTC().Format(time.RFC1123Z) + "\r\n" +
		"Message-ID: <" + hex.EncodeToString(rnd[:]) + ".notice@" + g.helo() + ">\r\n" +
		"Auto-Submitted: auto-replied\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n\r\n" + text
	_, err := q.Enqueue(ctx, queue.Message{ID: e.ID + ".withheld", Rcpts: to, Body: []byte(msg),
		Arrival: g.now(), Direction: dir, Verdict: "notice"})
	return err
}

// helo is the gateway's name in its notices.
func (g *Gateway) helo() string {
	if h := g.set.Load().helo; h != "" {
		return h
	}
	return g.opts.Hostname
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// withholdLeftovers withholds what the queue holds quarantined: messages
// a crash left between the queue and the quarantine, and those a sensor
// older than the quarantine kept in its queue.
func (g *Gateway) withholdLeftovers(ctx context.Context, q *queue.Queue) error {
	var errs []error
	var after queue.Cursor
	for {
		page, err := q.List(ctx, queue.Filter{State: queue.StateQuarantined, After: after, Limit: 100})
		if err != nil {
			return err
		}
		for _, e := range page.Entries {
			if err := g.withhold(ctx, q, e.ID, ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE, "detected"); err != nil {
				errs = append(errs, err)
			}
		}
		if page.Next.ID == "" {
			return errors.Join(errs...)
		}
		after = page.Next
	}
}

// ReleaseQuarantined delivers a quarantined message: to its recipients,
// after which it leaves the quarantine and is not quarantined again if it
// is handed off again; or, with to, a copy to those addresses, and it
// stays. The delivered message's X-Osprey-Verdict says "released". It
// returns the id the copy has in the delivery queue.
func (g *Gateway) ReleaseQuarantined(ctx context.Context, id string, to []string) (string, error) {
	q := g.queue.Load()
	if q == nil {
		err := g.Problem()
		if err == nil {
			err = errors.New("the delivery queue is not open")
		}
		return "", fmt.Errorf("release %s: %w: %w", id, errUnavailable, err)
	}
	e, err := g.quarantine.Get(id)
	if err != nil {
		return "", err
	}
	body, err := g.quarantine.Body(id)
	if err != nil {
		return "", err
	}
	rcpts := e.Rcpts
	if len(to) > 0 {
		rcpts = to
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	qid := id + ".released." + hex.EncodeToString(rnd[:])
	if _, err := q.Enqueue(ctx, queue.Message{ID: qid, From: e.From, Rcpts: rcpts, Body: body,
		Arrival: e.Arrival, Direction: e.Direction, Verdict: VerdictReleased}); err != nil {
		return "", fmt.Errorf("release %s: %w", id, err)
	}
	if len(to) == 0 {
		if err := g.quarantine.MarkReleased(id); err != nil {
			return "", fmt.Errorf("release %s: %w", id, err)
		}
		if err := g.quarantine.Remove(id); err != nil && !errors.Is(err, quarantine.ErrNotFound) {
			return "", fmt.Errorf("release %s: %w", id, err)
		}
	}
	g.log.Info("quarantined message released", "id", id, "queue_id", qid, "to", rcpts)
	return qid, nil
}

// errUnavailable marks what failed because the delivery queue is not open.
var errUnavailable = errors.New("unavailable")

// Quarantine returns the gateway's quarantine.
func (g *Gateway) Quarantine() *quarantine.Quarantine { return g.quarantine }

// event records what happened to a quarantined message for the central.
func (g *Gateway) event(id string, kind ospreyv1.QuarantineEventKind) {
	if g.opts.Events != nil {
		g.opts.Events.Add(id, kind)
	}
}
