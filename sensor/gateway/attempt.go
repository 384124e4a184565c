package gateway

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/queue"
)

// AttemptProto is a delivery attempt of the queue (Options.OnAttempt) as
// a report to the central's audit log carries it: the host it reached,
// the session's TLS, and each recipient's state and reply.
func AttemptProto(a queue.Attempt) *ospreyv1.DeliveryAttempt {
	out := &ospreyv1.DeliveryAttempt{
		MessageId: a.ID, Sender: a.From, Direction: directionProto(a.Direction), NextHop: a.Destination,
		Host: a.Result.Host, Tls: a.Result.TLS, Started: timestamppb.New(a.Started), Took: durationpb.New(a.Result.Took),
		Recipients: make([]*ospreyv1.DeliveryRecipient, 0, len(a.Rcpts)),
	}
	for _, r := range a.Rcpts {
		out.Recipients = append(out.Recipients, &ospreyv1.DeliveryRecipient{
			Address: r.Rcpt, State: queueStates[r.State], Code: uint32(max(r.Reply.Code, 0)),
			Enhanced: r.Reply.Enhanced, Text: r.Reply.Text, NextAttempt: ts(r.NextAttempt),
		})
	}
	return out
}
