package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/sensorrpc"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The queue of a gateway sensor lives on the sensor: these routes ask it,
// through the node that holds its stream (central/sensorrpc), and answer
// 503 when it is not connected.

// sensorError is a request the sensor refused or failed: its status and
// the sensor's own words.
type sensorError struct {
	status int
	msg    string
}

func (e *sensorError) Error() string { return e.msg }

func (s *Server) listQueue(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	v, err := queryParams(r, "state", "sender", "recipient", "next_hop", "min_age", "max_age", "limit", "page_token")
	if err != nil {
		return err
	}
	req, errs := sensorrpc.QueueListRequest(v)
	if len(errs) > 0 {
		return errs
	}
	rep, err := s.askSensor(r.Context(), p, r.PathValue("id"), &ospreyv1.SensorRequest{Op: &ospreyv1.SensorRequest_QueueList{QueueList: req}})
	if err != nil {
		return err
	}
	page := rep.GetQueuePage()
	out := api.QueueList{Messages: make([]api.QueuedMessage, 0, len(page.GetEntries())), NextPageToken: page.GetNextPageToken(),
		Gateway: convert.GatewayStatusFromProto(page.GetGateway())}
	for _, e := range page.GetEntries() {
		out.Messages = append(out.Messages, convert.QueuedMessageFromProto(e))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getQueued(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	rep, err := s.askSensor(r.Context(), p, r.PathValue("id"), &ospreyv1.SensorRequest{
		Op: &ospreyv1.SensorRequest_QueueGet{QueueGet: &ospreyv1.QueueGetRequest{MessageId: r.PathValue("msg")}}})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, convert.QueuedMessageFromProto(rep.GetQueueEntry()))
	return nil
}

// actOnQueued makes the handler of a queue action's route.
func actOnQueued(a api.QueueAction) func(*Server, http.ResponseWriter, *http.Request, auth.Principal) error {
	action, err := convert.QueueActionToProto(a)
	if err != nil {
		panic(err) // the route table names only the actions there are
	}
	return func(s *Server, w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		rep, err := s.askSensor(r.Context(), p, r.PathValue("id"), &ospreyv1.SensorRequest{
			Op: &ospreyv1.SensorRequest_QueueAction{QueueAction: &ospreyv1.QueueActionRequest{MessageId: r.PathValue("msg"), Action: action}}})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, convert.QueuedMessageFromProto(rep.GetQueueEntry()))
		return nil
	}
}

func (s *Server) deleteQueued(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	v, err := queryParams(r, "dsn")
	if err != nil {
		return err
	}
	action := ospreyv1.QueueAction_QUEUE_ACTION_DELETE
	switch v.Get("dsn") {
	case "", "false":
	case "true":
		action = ospreyv1.QueueAction_QUEUE_ACTION_DELETE_WITH_DSN
	default:
		return validate.Errors{{Field: "dsn", Message: "must be true or false"}}
	}
	rep, err := s.askSensor(r.Context(), p, r.PathValue("id"), &ospreyv1.SensorRequest{
		Op: &ospreyv1.SensorRequest_QueueAction{QueueAction: &ospreyv1.QueueActionRequest{MessageId: r.PathValue("msg"), Action: action}}})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, convert.GatewayStatusFromProto(rep.GetGateway()))
	return nil
}

// controlGateway makes the handler of a gateway control's route.
func controlGateway(c api.GatewayControl) func(*Server, http.ResponseWriter, *http.Request, auth.Principal) error {
	control, err := convert.GatewayControlToProto(c)
	if err != nil {
		panic(err) // the route table names only the controls there are
	}
	return func(s *Server, w http.ResponseWriter, r *http.Request, p auth.Principal) error {
		rep, err := s.askSensor(r.Context(), p, r.PathValue("id"), &ospreyv1.SensorRequest{
			Op: &ospreyv1.SensorRequest_Control{Control: &ospreyv1.GatewayControlRequest{Control: control}}})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, convert.GatewayStatusFromProto(rep.GetGateway()))
		return nil
	}
}

// askSensor hands req to sensor id, which must be in p's scope and
// connected, and returns its reply, or the error its reply says.
func (s *Server) askSensor(ctx context.Context, p auth.Principal, id string, req *ospreyv1.SensorRequest) (*ospreyv1.SensorReply, error) {
	if s.sensors == nil {
		return nil, &sensorError{http.StatusServiceUnavailable, "this node does not forward requests to sensors"}
	}
	rep, err := s.sensors.Ask(ctx, s.store, scope(p), id, req)
	var refused *sensorrpc.RefusedError
	switch {
	case errors.Is(err, sensorrpc.ErrOffline):
		return nil, &sensorError{http.StatusServiceUnavailable, fmt.Sprintf("sensor %s is not connected: its queue is on the sensor and shows when it is back", id)}
	case errors.Is(err, sensorrpc.ErrUnavailable):
		return nil, &sensorError{http.StatusServiceUnavailable, fmt.Sprintf("sensor %s did not answer in time: retry", id)}
	case errors.As(err, &refused):
		switch refused.Code {
		case ospreyv1.SensorError_CODE_NOT_FOUND:
			return nil, store.ErrNotFound
		case ospreyv1.SensorError_CODE_INVALID:
			return nil, badRequest("%s", refused.Message)
		case ospreyv1.SensorError_CODE_UNAVAILABLE:
			return nil, &sensorError{http.StatusConflict, refused.Message}
		default:
			return nil, &sensorError{http.StatusBadGateway, "the sensor failed: " + refused.Message}
		}
	}
	if err == nil && req.GetQueueList() == nil && req.GetQueueGet() == nil {
		// What an operator changed, and who.
		s.log.InfoContext(ctx, "sensor did an operator's request", "sensor", id, "request", requestName(req), "user", p.Name)
	}
	return rep, err
}

// requestName names a changing request for the log: the action and its
// message, or the control.
func requestName(req *ospreyv1.SensorRequest) string {
	if a := req.GetQueueAction(); a != nil {
		return a.GetAction().String() + " " + a.GetMessageId()
	}
	return req.GetControl().GetControl().String()
}
