package tests

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/testwait"
)

// TestGatewayQueueManagement: an operator manages a gateway sensor's queue
// through the central's API, the sensor being its own process connected to
// the dev node. The internal server answers 4xx, so mail waits deferred:
// the listing filters it by state, sender, recipient and next hop, page by
// page; a message is held, another deleted with a failure notice to its
// sender (which the queue then holds as a notice of its own); sending is
// stopped (and stays stopped across a restart of the sensor) while the
// internal server takes mail again, a flush delivers nothing until
// sending resumes; the held message is delivered once released; receiving
// stopped turns mail away with 421. Each step shows in the sensor's status,
// the deferring next hop too.
func TestGatewayQueueManagement(t *testing.T) {
	ctx := t.Context()
	const n = 5
	g := startDeferringGateway(t, n)
	d, s, soft, next, listen := g.dev, g.sensor, g.sink, g.next, g.listen
	waitSensor(t, d.api, s.id, "the deferring next hop named", func(s *api.Sensor) bool {
		return hasProblem(s.Problems, api.ProblemWarning, "mail to route:example.com is deferred")
	})

	list := func(q api.QueueQuery) *api.QueueList {
		t.Helper()
		l, err := d.api.Queue(ctx, s.id, q)
		if err != nil {
			t.Fatalf("queue %+v: %v", q, err)
		}
		return l
	}
	all := list(api.QueueQuery{State: api.QueueDeferred})
	if len(all.Messages) != n {
		t.Fatalf("%d deferred messages listed, want %d", len(all.Messages), n)
	}
	if g := all.Gateway; g == nil || !g.Sending || !g.Receiving || g.Deferred != n || g.Messages != n {
		t.Errorf("the listing's gateway state %+v, want sending, receiving, %d deferred", g, n)
	}
	for _, m := range all.Messages {
		if m.Sender != "alice@partner.test" || len(m.Recipients) != 1 {
			t.Fatalf("listed %+v, want alice's message to one recipient", m)
		}
		r := m.Recipients[0]
		if r.Address != "bob@example.com" || r.NextHop != "route:example.com" || r.State != api.QueueDeferred ||
			r.Attempts != 1 || r.LastCode/100 != 4 || r.NextAttempt.IsZero() {
			t.Errorf("recipient %+v, want bob deferred once at route:example.com with a 4xx", r)
		}
	}
	for _, q := range []api.QueueQuery{{Sender: "nobody@"}, {Recipient: "carol@"}, {NextHop: "example.org"}, {State: api.QueueHeld}} {
		if got := list(q); len(got.Messages) != 0 {
			t.Errorf("%+v selected %d messages, want none", q, len(got.Messages))
		}
	}
	if got := list(api.QueueQuery{Sender: "ALICE@partner", Recipient: "bob@", NextHop: "route:example.com"}); len(got.Messages) != n {
		t.Errorf("alice's messages to bob at route:example.com: %d, want %d", len(got.Messages), n)
	}
	// Pages of 2, oldest first, each message once.
	var paged []string
	for q := (api.QueueQuery{Limit: 2}); ; {
		p := list(q)
		for _, m := range p.Messages {
			paged = append(paged, m.ID)
		}
		if p.NextPageToken == "" {
			break
		}
		q.PageToken = p.NextPageToken
	}
	var ids []string
	for _, m := range all.Messages {
		ids = append(ids, m.ID)
	}
	if !slices.Equal(paged, ids) {
		t.Errorf("paged listing %v, want %v", paged, ids)
	}

	// Refusals: field errors, no such message, no such sensor.
	var apiErr *api.Error
	if _, err := d.api.Queue(ctx, s.id, api.QueueQuery{State: "stuck", MinAge: -1}); !errors.As(err, &apiErr) ||
		apiErr.StatusCode != http.StatusBadRequest || len(apiErr.Fields) != 2 {
		t.Errorf("bad state and age: %v, want 400 naming both fields", err)
	}
	if _, err := d.api.QueueAct(ctx, s.id, "0000000000000000", api.QueueHold); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("hold of no such message: %v, want 404", err)
	}
	if _, err := d.api.Queue(ctx, "no-such-sensor", api.QueueQuery{}); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("queue of no such sensor: %v, want 404", err)
	}

	// osprey ctl lists the same, and holds one.
	ctl := []string{"OSPREY_ADDRESS=" + d.base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword}
	out, err := run(t, ctl, "", "ctl", "queue", "list", s.id, "--state", "deferred", "--next-hop", "route:example.com")
	if err != nil || strings.Count(out, "route:example.com") != n || !strings.Contains(out, "bob@example.com") {
		t.Errorf("ctl queue list: %v\n%s\nwant the %d deferred messages", err, out, n)
	}
	held, deleted := ids[0], ids[1]
	if out, err := run(t, ctl, "", "ctl", "queue", "hold", s.id, held); err != nil || !strings.Contains(out, `"state": "held"`) {
		t.Fatalf("ctl queue hold: %v\n%s", err, out)
	}
	if out, err := run(t, ctl, "", "ctl", "queue", "list", s.id, "--state", "stuck"); err == nil || !strings.Contains(out, "state") {
		t.Errorf("ctl queue list --state stuck: %v\n%s\nwant an error naming the state", err, out)
	}
	if _, err := d.api.DeleteQueued(ctx, s.id, deleted, true); err != nil {
		t.Fatalf("delete with a DSN: %v", err)
	}
	if _, err := d.api.QueuedMessage(ctx, s.id, deleted); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("the deleted message: %v, want 404", err)
	}
	notices := 0
	for _, m := range list(api.QueueQuery{}).Messages {
		if m.Kind == "failure" {
			notices++
			if m.Sender != "" || m.Recipients[0].Address != "alice@partner.test" {
				t.Errorf("failure notice %+v, want one from the null sender to alice", m)
			}
		}
	}
	if notices != 1 {
		t.Errorf("%d failure notices queued, want 1 for the deletion with a DSN", notices)
	}

	// Sending stopped, through a restart of the sensor.
	st, err := d.api.ControlGateway(ctx, s.id, api.GatewayStopSending)
	if err != nil || st.Sending || !st.Receiving {
		t.Fatalf("stop sending: %+v, %v", st, err)
	}
	s.kill(t)
	s.restart(t)
	waitSensor(t, d.api, s.id, "back, still not sending", func(s *api.Sensor) bool {
		return s.Online && s.GatewayStatus != nil && !s.GatewayStatus.Sending && hasProblem(s.Problems, api.ProblemWarning, "sending stopped")
	})
	soft.stop()
	sink := runSink(t, next, t.TempDir()).smtpSink
	if _, err := d.api.ControlGateway(ctx, s.id, api.GatewayFlush); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if st, err = d.api.ControlGateway(ctx, s.id, api.GatewayResumeSending); err != nil || !st.Sending {
		t.Fatalf("resume sending: %+v, %v", st, err)
	}
	testwait.For(t, "the 3 messages neither held nor deleted, and the notice, delivered", func() bool { return len(sink.messages(t)) >= n-1 })
	if _, err := d.api.QueueAct(ctx, s.id, held, api.QueueRelease); err != nil {
		t.Fatalf("release: %v", err)
	}
	testwait.For(t, "the released message delivered", func() bool { return len(sink.messages(t)) >= n })
	var got []string
	for _, subject := range sink.subjects(t) {
		if strings.HasPrefix(subject, "queued ") {
			got = append(got, subject)
		}
	}
	wantSubjects(t, got, []string{"queued 0", "queued 2", "queued 3", "queued 4"})

	// Receiving stopped: 421 at connect, until resumed.
	if st, err = d.api.ControlGateway(ctx, s.id, api.GatewayStopReceiving); err != nil || st.Receiving {
		t.Fatalf("stop receiving: %+v, %v", st, err)
	}
	err = smtpSend(listen, "partner.test", "alice@partner.test", "bob@example.com", false, "Subject: stopped\r\n\r\nx\r\n")
	if err == nil || !strings.Contains(err.Error(), "421") {
		t.Errorf("a message while receiving is stopped: %v, want 421", err)
	}
	waitSensor(t, d.api, s.id, "receiving stopped in its status", func(s *api.Sensor) bool {
		return s.GatewayStatus != nil && !s.GatewayStatus.Receiving && hasProblem(s.Problems, api.ProblemWarning, "receiving stopped")
	})
	if _, err := d.api.ControlGateway(ctx, s.id, api.GatewayResumeReceiving); err != nil {
		t.Fatalf("resume receiving: %v", err)
	}
	sendSubject(t, listen, "queued 5")
	testwait.For(t, "the message after resuming delivered", func() bool { return len(sink.messages(t)) >= n+1 })
}

// deferringGateway is an osprey sensor process enrolled with a dev node,
// an inbound gateway for example.com and partner.test whose internal
// server, smtp-sink at next, answers 4xx to every RCPT: its mail waits
// deferred, and is tried again only when an operator asks.
type deferringGateway struct {
	dev          *devNode
	sensor       *gatewaySensor
	sink         *sinkRun
	next, listen string // the internal server's address, the gateway's listener
}

// startDeferringGateway starts a deferringGateway and sends n messages
// from alice@partner.test to bob@example.com through it ("queued 0", ...),
// once it counts them deferred.
func startDeferringGateway(t *testing.T, n int) *deferringGateway {
	t.Helper()
	g := &deferringGateway{next: loopbackPort(t), listen: loopbackPort(t)}
	g.sink = runSink(t, g.next, "", "-r", "RCPT")
	grpc := loopbackPort(t)
	g.dev = startDevAt(t, filepath.Join(t.TempDir(), "data"), grpc)
	// The sender's domain is local too, so that a failure notice to it
	// waits at the same internal server.
	cfg := inboundGateway(t, g.listen, "example.com", g.next, "partner.test", g.next)
	// Retries come only when the operator asks.
	cfg.Gateway.Queue.MinBackoffSeconds, cfg.Gateway.Queue.MaxBackoffSeconds = 3600, 7200
	g.sensor = startGatewaySensor(t, g.dev, grpc, "gw1", g.listen, cfg)
	for i := range n {
		sendSubject(t, g.listen, fmt.Sprintf("queued %d", i))
	}
	waitSensor(t, g.dev.api, g.sensor.id, fmt.Sprintf("%d recipients deferred after a 4xx", n), func(s *api.Sensor) bool {
		return s.GatewayStatus != nil && s.GatewayStatus.Deferred == uint64(n)
	})
	return g
}
