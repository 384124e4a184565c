package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/internal/durable"
	"github.com/ospreysec/osprey/sensor/queue"
)

// The operators' management of a gateway: the requests a central hands
// the sensor (HandleRequest), and the two switches that last across
// restarts, sending and receiving, kept in a small file beside the queue.

// controlsFile, in Options.Dir, holds the switches.
const controlsFile = "controls.json"

// controls are the operator's switches; the zero value is the default.
type controls struct {
	SendingStopped   bool `json:"sending_stopped"`
	ReceivingStopped bool `json:"receiving_stopped"`
}

// ErrReceivingStopped is why the gateway takes no mail while an operator
// stopped its receiving: its listeners answer 421, try later.
var ErrReceivingStopped = errors.New("receiving stopped by an operator")

// Receiving returns nil while the gateway takes mail, and
// ErrReceivingStopped while an operator stopped it.
func (g *Gateway) Receiving() error {
	if g.ctl.Load().ReceivingStopped {
		return ErrReceivingStopped
	}
	return nil
}

// loadControls reads the switches; a missing file is the default.
func (g *Gateway) loadControls() error {
	c := &controls{}
	b, err := os.ReadFile(filepath.Join(g.opts.Dir, controlsFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read the gateway's switches: %w", err)
	default:
		if err := json.Unmarshal(b, c); err != nil {
			return fmt.Errorf("read the gateway's switches %s: %w", controlsFile, err)
		}
	}
	g.ctl.Store(c)
	return nil
}

// setControls stores the switches durably (written aside, fsynced,
// renamed over), then applies them.
func (g *Gateway) setControls(change func(*controls)) error {
	g.ctlMu.Lock()
	defer g.ctlMu.Unlock()
	c := *g.ctl.Load()
	change(&c)
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(g.opts.Dir, 0o700); err != nil {
		return err
	}
	err = durable.WriteFile(filepath.Join(g.opts.Dir, controlsFile), b)
	if err != nil {
		return fmt.Errorf("store the gateway's switches: %w", err)
	}
	g.ctl.Store(&c)
	// Under openMu, a queue that opens late reads the switches after this
	// store, or is stored before this load.
	g.openMu.Lock()
	q := g.queue.Load()
	g.openMu.Unlock()
	if q != nil {
		q.SetSending(!c.SendingStopped)
	}
	if g.opts.Notify != nil {
		g.opts.Notify()
	}
	return nil
}

// Enabled reports whether the sensor runs as a gateway (its SMTP
// integration is on, in a gateway mode), or its queue still holds mail
// from when it did.
func (g *Gateway) Enabled() bool {
	if g.set.Load().enabled {
		return true
	}
	q := g.queue.Load()
	return q != nil && q.Stats().Messages > 0
}

// State reports the switches and the queue's depth.
func (g *Gateway) State() *ospreyv1.GatewayState {
	c := g.ctl.Load()
	st := &ospreyv1.GatewayState{Sending: !c.SendingStopped, Receiving: !c.ReceivingStopped}
	if q := g.queue.Load(); q != nil {
		s := q.Stats()
		st.Messages, st.Active, st.Deferred = uint64(s.Messages), uint64(max(s.Active, 0)), uint64(max(s.Deferred, 0))
		st.Held = uint64(s.Held)
	}
	st.Quarantined = uint64(g.quarantine.Stats().Messages)
	return st
}

// HandleRequest does what an operator asked of the queue through a
// central, and answers with the result or why not.
func (g *Gateway) HandleRequest(ctx context.Context, req *ospreyv1.SensorRequest) *ospreyv1.SensorReply {
	if rep := g.handleQuarantine(ctx, req); rep != nil {
		return rep
	}
	q := g.queue.Load()
	if q == nil {
		msg := "this sensor's delivery queue is not open"
		if err := g.Problem(); err != nil {
			msg = err.Error()
		}
		return replyError(ospreyv1.SensorError_CODE_UNAVAILABLE, msg)
	}
	switch op := req.GetOp().(type) {
	case *ospreyv1.SensorRequest_QueueList:
		f, err := filterOf(op.QueueList)
		if err != nil {
			return replyError(ospreyv1.SensorError_CODE_INVALID, err.Error())
		}
		page, err := q.List(ctx, f)
		if err != nil {
			return replyOf(err)
		}
		out := &ospreyv1.QueuePage{NextPageToken: pageToken(page.Next), Gateway: g.State()}
		for _, e := range page.Entries {
			out.Entries = append(out.Entries, entryProto(e))
		}
		return &ospreyv1.SensorReply{Result: &ospreyv1.SensorReply_QueuePage{QueuePage: out}}
	case *ospreyv1.SensorRequest_QueueGet:
		return g.entryReply(ctx, q, op.QueueGet.GetMessageId())
	case *ospreyv1.SensorRequest_QueueAction:
		id := op.QueueAction.GetMessageId()
		var err error
		switch a := op.QueueAction.GetAction(); a {
		case ospreyv1.QueueAction_QUEUE_ACTION_RETRY:
			err = q.RetryNow(ctx, id)
		case ospreyv1.QueueAction_QUEUE_ACTION_HOLD:
			err = q.Hold(ctx, id)
		case ospreyv1.QueueAction_QUEUE_ACTION_RELEASE:
			err = q.Release(ctx, id)
		case ospreyv1.QueueAction_QUEUE_ACTION_DELETE, ospreyv1.QueueAction_QUEUE_ACTION_DELETE_WITH_DSN:
			if err := q.Delete(ctx, id, a == ospreyv1.QueueAction_QUEUE_ACTION_DELETE_WITH_DSN); err != nil {
				return replyOf(err)
			}
			g.log.Info("queued message deleted by an operator", "id", id, "dsn", a == ospreyv1.QueueAction_QUEUE_ACTION_DELETE_WITH_DSN)
			return &ospreyv1.SensorReply{Result: &ospreyv1.SensorReply_Gateway{Gateway: g.State()}}
		default:
			return replyError(ospreyv1.SensorError_CODE_INVALID, fmt.Sprintf("unknown queue action %v", a))
		}
		if err != nil {
			return replyOf(err)
		}
		g.log.Info("queued message changed by an operator", "id", id, "action", op.QueueAction.GetAction().String())
		return g.entryReply(ctx, q, id)
	case *ospreyv1.SensorRequest_Control:
		var err error
		switch c := op.Control.GetControl(); c {
		case ospreyv1.GatewayControl_GATEWAY_CONTROL_STOP_SENDING, ospreyv1.GatewayControl_GATEWAY_CONTROL_RESUME_SENDING:
			err = g.setControls(func(s *controls) { s.SendingStopped = c == ospreyv1.GatewayControl_GATEWAY_CONTROL_STOP_SENDING })
		case ospreyv1.GatewayControl_GATEWAY_CONTROL_STOP_RECEIVING, ospreyv1.GatewayControl_GATEWAY_CONTROL_RESUME_RECEIVING:
			err = g.setControls(func(s *controls) { s.ReceivingStopped = c == ospreyv1.GatewayControl_GATEWAY_CONTROL_STOP_RECEIVING })
		case ospreyv1.GatewayControl_GATEWAY_CONTROL_FLUSH:
			err = q.Flush(ctx)
		default:
			return replyError(ospreyv1.SensorError_CODE_INVALID, fmt.Sprintf("unknown gateway control %v", c))
		}
		if err != nil {
			return replyOf(err)
		}
		g.log.Info("gateway switched by an operator", "control", op.Control.GetControl().String())
		return &ospreyv1.SensorReply{Result: &ospreyv1.SensorReply_Gateway{Gateway: g.State()}}
	default:
		return replyError(ospreyv1.SensorError_CODE_INVALID, "unknown request")
	}
}

func (g *Gateway) entryReply(ctx context.Context, q *queue.Queue, id string) *ospreyv1.SensorReply {
	e, err := q.Get(ctx, id)
	if err != nil {
		return replyOf(err)
	}
	return &ospreyv1.SensorReply{Result: &ospreyv1.SensorReply_QueueEntry{QueueEntry: entryProto(e)}}
}

func replyError(code ospreyv1.SensorError_Code, msg string) *ospreyv1.SensorReply {
	return &ospreyv1.SensorReply{Error: &ospreyv1.SensorError{Code: code, Message: msg}}
}

// replyOf is the reply of a failed queue call.
func replyOf(err error) *ospreyv1.SensorReply {
	if errors.Is(err, queue.ErrNotFound) {
		return replyError(ospreyv1.SensorError_CODE_NOT_FOUND, "no such message in the queue")
	}
	return replyError(ospreyv1.SensorError_CODE_INTERNAL, err.Error())
}

// queueStates maps the queue's states to the protocol's.
var queueStates = map[queue.State]ospreyv1.QueueState{
	queue.StateActive: ospreyv1.QueueState_QUEUE_STATE_ACTIVE, queue.StateDeferred: ospreyv1.QueueState_QUEUE_STATE_DEFERRED,
	queue.StateHeld: ospreyv1.QueueState_QUEUE_STATE_HELD, queue.StateQuarantined: ospreyv1.QueueState_QUEUE_STATE_QUARANTINED,
	queue.StateDelivered: ospreyv1.QueueState_QUEUE_STATE_DELIVERED, queue.StateBounced: ospreyv1.QueueState_QUEUE_STATE_BOUNCED,
}

// filterOf is the queue's filter of a listing request.
func filterOf(r *ospreyv1.QueueListRequest) (queue.Filter, error) {
	f := queue.Filter{Sender: r.GetSender(), Rcpt: r.GetRecipient(), Destination: r.GetNextHop(), Limit: int(r.GetLimit()),
		MinAge: r.GetMinAge().AsDuration(), MaxAge: r.GetMaxAge().AsDuration()}
	if s := r.GetState(); s != ospreyv1.QueueState_QUEUE_STATE_UNSPECIFIED {
		for name, p := range queueStates {
			if p == s {
				f.State = name
			}
		}
		if f.State == "" {
			return f, fmt.Errorf("unknown queue state %v", s)
		}
	}
	if t := r.GetPageToken(); t != "" {
		c, ok := parsePageToken(t)
		if !ok {
			return f, errors.New("page_token: not a page token of this queue; start again without one")
		}
		f.After = c
	}
	return f, nil
}

// A page token is the cursor, "<arrival in unix microseconds>:<id>",
// base64url-encoded.
func pageToken(c queue.Cursor) string {
	if c.ID == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.Arrival.UnixMicro(), 10) + ":" + c.ID))
}

func parsePageToken(t string) (queue.Cursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil {
		return queue.Cursor{}, false
	}
	us, id, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(us, 10, 64)
	if !ok || err != nil || id == "" {
		return queue.Cursor{}, false
	}
	return queue.Cursor{Arrival: time.UnixMicro(n), ID: id}, true
}

func entryProto(e queue.Entry) *ospreyv1.QueueEntry {
	out := &ospreyv1.QueueEntry{
		MessageId: e.ID, Sender: e.From, Arrival: timestamppb.New(e.Arrival), Size: e.Size, Verdict: e.Verdict,
		Direction: directionProto(e.Direction), Unscanned: e.Unscanned, Kind: e.Kind, DelayNoticeSent: e.DelayNoticeSent,
	}
	for _, r := range e.Rcpts {
		out.Recipients = append(out.Recipients, &ospreyv1.QueueRecipient{
			Address: r.Rcpt, NextHop: r.Destination, State: queueStates[r.State], Attempts: uint32(max(r.Attempts, 0)),
			NextAttempt: ts(r.NextAttempt), FirstAttempt: ts(r.FirstAttempt), LastAttempt: ts(r.LastAttempt),
			LastCode: uint32(max(r.LastCode, 0)), LastEnhanced: r.LastEnhanced, LastText: r.LastText, LastHost: r.LastHost,
		})
	}
	return out
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func directionProto(d string) ospreyv1.MailDirection {
	switch d {
	case queue.Inbound:
		return ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND
	case queue.Outbound:
		return ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND
	}
	return ospreyv1.MailDirection_MAIL_DIRECTION_UNSPECIFIED
}
