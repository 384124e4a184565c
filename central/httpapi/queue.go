package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

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

// Bounds of the queue listing's parameters.
const (
	maxQueueLimit = 1000
	maxQueueText  = 256
)

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
	var errs validate.Errors
	bad := func(field, msg string) { errs = append(errs, validate.FieldError{Field: field, Message: msg}) }
	req := &ospreyv1.QueueListRequest{Sender: v.Get("sender"), Recipient: v.Get("recipient"), NextHop: v.Get("next_hop"), PageToken: v.Get("page_token")}
	if req.State, err = convert.QueueStateToProto(api.QueueState(v.Get("state"))); err != nil {
		bad("state", err.Error())
	}
	for field, text := range map[string]string{"sender": req.Sender, "recipient": req.Recipient, "next_hop": req.NextHop, "page_token": req.PageToken} {
		if len(text) > maxQueueText {
			bad(field, fmt.Sprintf("must be at most %d bytes long", maxQueueText))
		}
	}
	for field, dst := range map[string]**durationpb.Duration{"min_age": &req.MinAge, "max_age": &req.MaxAge} {
		text := v.Get(field)
		if text == "" {
			continue
		}
		d, err := time.ParseDuration(text)
		if err != nil || d < 0 {
			bad(field, `must be a duration such as "90s", "15m" or "4h"`)
			continue
		}
		*dst = durationpb.New(d)
	}
	if req.MinAge != nil && req.MaxAge != nil && req.MaxAge.AsDuration() < req.MinAge.AsDuration() {
		bad("max_age", "must not be less than min_age")
	}
	if text := v.Get("limit"); text != "" {
		n, err := strconv.Atoi(text)
		if err != nil || n < 1 || n > maxQueueLimit {
			bad("limit", fmt.Sprintf("must be a number from 1 to %d", maxQueueLimit))
		}
		req.Limit = uint32(max(n, 0))
	}
	if len(errs) > 0 {
		return errs
	}
	rep, err := s.askSensor(r.Context(), p, r.PathValue("id"), &ospreyv1.SensorRequest{Op: &ospreyv1.SensorRequest_QueueList{QueueList: req}})
	if err != nil {
		return err
	}
	page := rep.GetQueuePage()
	out := api.QueueList{Messages: make([]api.QueuedMessage, 0, len(page.GetEntries())), NextPageToken: page.GetNextPageToken()}
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
	if _, _, err := s.store.GetSensor(ctx, scope(p), id); err != nil {
		return nil, err
	}
	rt, err := s.store.Status(ctx, scope(p), id)
	if err != nil {
		return nil, err
	}
	if !rt.GetOnline() {
		return nil, &sensorError{http.StatusServiceUnavailable, fmt.Sprintf("sensor %s is not connected: its queue is on the sensor and shows when it is back", id)}
	}
	rep, err := s.sensors.Call(ctx, id, req)
	if errors.Is(err, sensorrpc.ErrUnavailable) {
		return nil, &sensorError{http.StatusServiceUnavailable, fmt.Sprintf("sensor %s did not answer in time: retry", id)}
	}
	if err != nil {
		return nil, err
	}
	if e := rep.GetError(); e != nil {
		switch e.GetCode() {
		case ospreyv1.SensorError_CODE_NOT_FOUND:
			return nil, store.ErrNotFound
		case ospreyv1.SensorError_CODE_INVALID:
			return nil, badRequest("%s", e.GetMessage())
		case ospreyv1.SensorError_CODE_UNAVAILABLE:
			return nil, &sensorError{http.StatusConflict, e.GetMessage()}
		default:
			return nil, &sensorError{http.StatusBadGateway, "the sensor failed: " + e.GetMessage()}
		}
	}
	return rep, nil
}
