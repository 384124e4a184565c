package convert

import (
	"github.com/ospreysec/osprey/api"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

var queueStates = enum[ospreyv1.QueueState, api.QueueState]{
	what: "state",
	names: []api.QueueState{"", api.QueueActive, api.QueueDeferred, api.QueueHeld, api.QueueQuarantined,
		api.QueueDelivered, api.QueueBounced},
}

// QueueStateToProto is the queue state named s ("" is unspecified).
func QueueStateToProto(s api.QueueState) (ospreyv1.QueueState, error) {
	return queueStates.toProto(s)
}

// QueueStateFromProto names a queue state ("" for unspecified).
func QueueStateFromProto(s ospreyv1.QueueState) api.QueueState { return queueStates.toAPI(s) }

var gatewayControls = enum[ospreyv1.GatewayControl, api.GatewayControl]{
	what: "control", required: true,
	names: []api.GatewayControl{"", api.GatewayStopSending, api.GatewayResumeSending, api.GatewayStopReceiving,
		api.GatewayResumeReceiving, api.GatewayFlush},
}

// GatewayControlToProto is the gateway control named c.
func GatewayControlToProto(c api.GatewayControl) (ospreyv1.GatewayControl, error) {
	return gatewayControls.toProto(c)
}

var queueActions = enum[ospreyv1.QueueAction, api.QueueAction]{
	what: "action", required: true,
	names: []api.QueueAction{"", api.QueueRetry, api.QueueHold, api.QueueRelease},
}

// QueueActionToProto is the queue action named a (retry, hold or release;
// deletions have their own route).
func QueueActionToProto(a api.QueueAction) (ospreyv1.QueueAction, error) {
	return queueActions.toProto(a)
}

// GatewayStatusFromProto is a gateway's state as the API shows it; nil
// for a sensor that reported none.
func GatewayStatusFromProto(g *ospreyv1.GatewayState) *api.GatewayStatus {
	if g == nil {
		return nil
	}
	return &api.GatewayStatus{Sending: g.GetSending(), Receiving: g.GetReceiving(), Messages: g.GetMessages(),
		Active: g.GetActive(), Deferred: g.GetDeferred(), Held: g.GetHeld(), Quarantined: g.GetQuarantined()}
}

// QueuedMessageFromProto is a queued message as the API shows it.
func QueuedMessageFromProto(e *ospreyv1.QueueEntry) api.QueuedMessage {
	m := api.QueuedMessage{
		ID: e.GetMessageId(), Sender: e.GetSender(), Arrival: timeFromProto(e.GetArrival()), Size: e.GetSize(),
		Verdict: e.GetVerdict(), Direction: directions.toAPI(e.GetDirection()), Unscanned: e.GetUnscanned(),
		Kind: e.GetKind(), DelayNoticeSent: e.GetDelayNoticeSent(),
		Recipients: make([]api.QueuedRecipient, 0, len(e.GetRecipients())),
	}
	for _, r := range e.GetRecipients() {
		m.Recipients = append(m.Recipients, api.QueuedRecipient{
			Address: r.GetAddress(), NextHop: r.GetNextHop(), State: QueueStateFromProto(r.GetState()),
			Attempts: r.GetAttempts(), NextAttempt: timeFromProto(r.GetNextAttempt()),
			FirstAttempt: timeFromProto(r.GetFirstAttempt()), LastAttempt: timeFromProto(r.GetLastAttempt()),
			LastCode: r.GetLastCode(), LastEnhanced: r.GetLastEnhanced(), LastText: r.GetLastText(), LastHost: r.GetLastHost(),
		})
	}
	return m
}

// directions name the mail directions as the API does.
var directions = enum[ospreyv1.MailDirection, string]{what: "direction", names: []string{"", "inbound", "outbound"}}

// DirectionFromProto names a mail direction: inbound or outbound, "" for
// unspecified.
func DirectionFromProto(d ospreyv1.MailDirection) string { return directions.toAPI(d) }
