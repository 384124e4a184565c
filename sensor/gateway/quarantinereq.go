package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/quarantine"
)

// MaxQuarantineRead bounds one QuarantineReadRequest: a piece of a message
// travels in one reply.
const MaxQuarantineRead = 256 << 10

// handleQuarantine answers the requests about the quarantine, and nil for
// the others.
func (g *Gateway) handleQuarantine(ctx context.Context, req *ospreyv1.SensorRequest) *ospreyv1.SensorReply {
	switch op := req.GetOp().(type) {
	case *ospreyv1.SensorRequest_QuarantineGet:
		id := op.QuarantineGet.GetMessageId()
		e, err := g.quarantine.Get(id)
		if err != nil {
			return quarantineReplyOf(err)
		}
		out := quarantineEntryProto(e)
		if op.QuarantineGet.GetPreview() {
			body, err := g.quarantine.Body(id)
			if err != nil {
				return quarantineReplyOf(err)
			}
			out.Preview = preview(body)
		}
		return &ospreyv1.SensorReply{Result: &ospreyv1.SensorReply_QuarantineEntry{QuarantineEntry: out}}
	case *ospreyv1.SensorRequest_QuarantineRead:
		r := op.QuarantineRead
		if r.GetOffset() < 0 || r.GetLength() == 0 || r.GetLength() > MaxQuarantineRead {
			return replyError(ospreyv1.SensorError_CODE_INVALID, fmt.Sprintf("read %d bytes at %d: want 1 to %d bytes at 0 or more", r.GetLength(), r.GetOffset(), MaxQuarantineRead))
		}
		// The whole message is read each time: quarantined messages are
		// read rarely, and bounded in size by the gateway's own limit.
		body, err := g.quarantine.Body(r.GetMessageId())
		if err != nil {
			return quarantineReplyOf(err)
		}
		start := min(r.GetOffset(), int64(len(body)))
		end := min(start+int64(r.GetLength()), int64(len(body)))
		return &ospreyv1.SensorReply{Result: &ospreyv1.SensorReply_QuarantineChunk{QuarantineChunk: &ospreyv1.QuarantineChunk{
			Data: body[start:end], Size: int64(len(body)),
		}}}
	case *ospreyv1.SensorRequest_QuarantineAction:
		return g.quarantineAction(ctx, op.QuarantineAction)
	}
	return nil
}

func (g *Gateway) quarantineAction(ctx context.Context, a *ospreyv1.QuarantineActionRequest) *ospreyv1.SensorReply {
	id := a.GetMessageId()
	e, err := g.quarantine.Get(id)
	if err != nil {
		return quarantineReplyOf(err)
	}
	out := quarantineEntryProto(e)
	switch a.GetAction() {
	case ospreyv1.QuarantineAction_QUARANTINE_ACTION_DELETE:
		if err := g.quarantine.Remove(id); err != nil {
			return quarantineReplyOf(err)
		}
		g.log.Info("quarantined message deleted by an operator", "id", id)
	case ospreyv1.QuarantineAction_QUARANTINE_ACTION_RELEASE:
		if out.QueueId, err = g.ReleaseQuarantined(ctx, id, nil); err != nil {
			return quarantineReplyOf(err)
		}
	case ospreyv1.QuarantineAction_QUARANTINE_ACTION_RELEASE_TO:
		if err := validate.ReleaseAddresses(a.GetTo()); err != nil {
			return replyError(ospreyv1.SensorError_CODE_INVALID, err.Error())
		}
		if out.QueueId, err = g.ReleaseQuarantined(ctx, id, a.GetTo()); err != nil {
			return quarantineReplyOf(err)
		}
	default:
		return replyError(ospreyv1.SensorError_CODE_INVALID, fmt.Sprintf("unknown quarantine action %v", a.GetAction()))
	}
	return &ospreyv1.SensorReply{Result: &ospreyv1.SensorReply_QuarantineEntry{QuarantineEntry: out}}
}

// quarantineReplyOf is the reply of a failed quarantine call.
func quarantineReplyOf(err error) *ospreyv1.SensorReply {
	if errors.Is(err, quarantine.ErrNotFound) {
		return replyError(ospreyv1.SensorError_CODE_NOT_FOUND, "no such message in the quarantine")
	}
	if errors.Is(err, errUnavailable) {
		return replyError(ospreyv1.SensorError_CODE_UNAVAILABLE, err.Error())
	}
	return replyError(ospreyv1.SensorError_CODE_INTERNAL, err.Error())
}

func quarantineEntryProto(e quarantine.Entry) *ospreyv1.QuarantineEntry {
	return &ospreyv1.QuarantineEntry{
		MessageId: e.ID, Sender: e.From, Recipients: e.Rcpts, Direction: directionProto(e.Direction),
		Arrival: ts(e.Arrival), QuarantinedAt: ts(e.At), Verdict: e.Verdict, Reason: e.Reason,
		Subject: e.Subject, Size: e.Size,
	}
}
