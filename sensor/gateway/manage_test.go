package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/queue"
	"github.com/ospreysec/osprey/sensor/spool"
)

func control(c ospreyv1.GatewayControl) *ospreyv1.SensorRequest {
	return &ospreyv1.SensorRequest{Op: &ospreyv1.SensorRequest_Control{Control: &ospreyv1.GatewayControlRequest{Control: c}}}
}

// TestSwitchesLastAcrossRestarts: sending and receiving stopped by an
// operator stay stopped when the gateway opens again on its directory,
// until resumed; receiving stopped is what the listeners' check says.
func TestSwitchesLastAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	qdir := t.TempDir()
	open := func() *Gateway {
		return openGateway(t, Options{Dir: dir, QuarantineDir: qdir, Hostname: "gw.test"})
	}
	g := open()
	if st := g.State(); !st.GetSending() || !st.GetReceiving() || g.Receiving() != nil {
		t.Fatalf("a new gateway: %v, receiving %v; want sending and receiving", st, g.Receiving())
	}
	for _, c := range []ospreyv1.GatewayControl{ospreyv1.GatewayControl_GATEWAY_CONTROL_STOP_SENDING, ospreyv1.GatewayControl_GATEWAY_CONTROL_STOP_RECEIVING} {
		rep := g.HandleRequest(t.Context(), control(c))
		if rep.GetError() != nil {
			t.Fatalf("%v: %v", c, rep.GetError())
		}
	}
	if !errors.Is(g.Receiving(), ErrReceivingStopped) {
		t.Errorf("receiving stopped: the check says %v", g.Receiving())
	}
	g.Close()

	g = open()
	st := g.State()
	if st.GetSending() || st.GetReceiving() || !errors.Is(g.Receiving(), ErrReceivingStopped) {
		t.Fatalf("after a restart: %v; want both still stopped", st)
	}
	rep := g.HandleRequest(t.Context(), control(ospreyv1.GatewayControl_GATEWAY_CONTROL_RESUME_RECEIVING))
	if got := rep.GetGateway(); got == nil || !got.GetReceiving() || got.GetSending() {
		t.Errorf("resume receiving: %v; want receiving, not sending", rep)
	}
	g.Close()
	if st := open().State(); st.GetSending() || !st.GetReceiving() {
		t.Errorf("after a second restart: %v; want receiving only", st)
	}
}

// TestUnreadableSwitchesDefault: a switches file that cannot be parsed
// leaves the gateway sending and receiving (the operator sets them again)
// rather than keeping it from starting.
func TestUnreadableSwitchesDefault(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, controlsFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := openGateway(t, Options{Dir: dir, Hostname: "gw.test"})
	if st := g.State(); !st.GetSending() || !st.GetReceiving() {
		t.Errorf("state %v, want the defaults", st)
	}
}

// TestHandleRequest answers from the queue: a listing with its filters
// and pages, a message, an action, and says why not for what it cannot
// do.
func TestHandleRequest(t *testing.T) {
	sp, err := spool.Open(spool.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	g := openGateway(t, Options{Dir: t.TempDir(), Spool: sp, Hostname: "gw.test"})
	if err := g.Apply(&ospreyv1.SmtpIntegration{Enabled: true, Mode: ospreyv1.SmtpMode_SMTP_MODE_INBOUND,
		Gateway: &ospreyv1.SmtpGateway{LocalDomains: []*ospreyv1.LocalDomain{{Domain: "example.com"}}}}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, from := range []string{"a@partner.test", "b@partner.test", "c@other.test"} {
		env := &ospreyv1.Envelope{MailFrom: from, RcptTo: []string{"bob@example.com"}, ReceivedAt: timestamppb.Now(),
			Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND}
		id, err := sp.Put(t.Context(), spool.Meta{Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP, Envelope: env}, strings.NewReader("Subject: x\r\n\r\nbody\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		msg, err := sp.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Handoff(t.Context(), msg, "clean", nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	list := func(r *ospreyv1.QueueListRequest) *ospreyv1.SensorReply {
		return g.HandleRequest(t.Context(), &ospreyv1.SensorRequest{Op: &ospreyv1.SensorRequest_QueueList{QueueList: r}})
	}
	var paged []string
	for r := (&ospreyv1.QueueListRequest{Limit: 2}); ; {
		rep := list(r)
		if rep.GetError() != nil {
			t.Fatal(rep.GetError())
		}
		for _, e := range rep.GetQueuePage().GetEntries() {
			paged = append(paged, e.GetMessageId())
			if rc := e.GetRecipients(); len(rc) != 1 || rc[0].GetState() != ospreyv1.QueueState_QUEUE_STATE_ACTIVE ||
				rc[0].GetNextHop() == "" || e.GetDirection() != ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND {
				t.Errorf("entry %v, want one active inbound recipient with its next hop", e)
			}
		}
		if r.PageToken = rep.GetQueuePage().GetNextPageToken(); r.PageToken == "" {
			break
		}
	}
	if strings.Join(paged, ",") != strings.Join(ids, ",") {
		t.Errorf("pages %v, want %v", paged, ids)
	}
	if got := list(&ospreyv1.QueueListRequest{Sender: "PARTNER.test"}).GetQueuePage().GetEntries(); len(got) != 2 {
		t.Errorf("sender partner.test: %d entries, want 2", len(got))
	}
	if got := list(&ospreyv1.QueueListRequest{MinAge: durationpb.New(3600e9)}).GetQueuePage().GetEntries(); len(got) != 0 {
		t.Errorf("an hour old: %d entries, want none", len(got))
	}
	if rep := list(&ospreyv1.QueueListRequest{PageToken: "not a token"}); rep.GetError().GetCode() != ospreyv1.SensorError_CODE_INVALID {
		t.Errorf("a bad page token: %v, want invalid", rep)
	}
	act := func(id string, a ospreyv1.QueueAction) *ospreyv1.SensorReply {
		return g.HandleRequest(t.Context(), &ospreyv1.SensorRequest{Op: &ospreyv1.SensorRequest_QueueAction{
			QueueAction: &ospreyv1.QueueActionRequest{MessageId: id, Action: a}}})
	}
	rep := act(ids[0], ospreyv1.QueueAction_QUEUE_ACTION_HOLD)
	if rc := rep.GetQueueEntry().GetRecipients(); len(rc) != 1 || rc[0].GetState() != ospreyv1.QueueState_QUEUE_STATE_HELD {
		t.Errorf("hold: %v", rep)
	}
	if rep := act(ids[1], ospreyv1.QueueAction_QUEUE_ACTION_DELETE); rep.GetGateway().GetMessages() != 2 {
		t.Errorf("delete: %v, want the gateway with 2 messages left", rep)
	}
	if rep := act(ids[1], ospreyv1.QueueAction_QUEUE_ACTION_DELETE); rep.GetError().GetCode() != ospreyv1.SensorError_CODE_NOT_FOUND {
		t.Errorf("delete again: %v, want not found", rep)
	}
	if _, err := g.Queue().Get(t.Context(), ids[1]); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("the deleted message: %v", err)
	}
}
