package sensorrpc

import (
	"context"
	"errors"
	"fmt"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ErrOffline is the error of an Ask of a sensor that is not connected to
// any central node (its stored status says so): it was not asked.
var ErrOffline = errors.New("the sensor is offline")

// RefusedError is a sensor's reply that it did not do what it was asked:
// its code, and the sensor's own words.
type RefusedError struct {
	Code    ospreyv1.SensorError_Code
	Message string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the sensor answered %s: %s", e.Code, e.Message)
}

// Ask is the operators' way to a sensor, for the API and the UI alike:
// it hands req to sensor id, which must be in scope sc (else the store's
// not found) and connected (else ErrOffline), and returns its reply. A
// reply that says the sensor refused or failed is a *RefusedError; no
// reply in time is ErrUnavailable, as for Call.
func (r *Router) Ask(ctx context.Context, st *store.Store, sc store.Scope, id string, req *ospreyv1.SensorRequest) (*ospreyv1.SensorReply, error) {
	if _, _, err := st.GetSensor(ctx, sc, id); err != nil {
		return nil, err
	}
	rt, err := st.Status(ctx, sc, id)
	if err != nil {
		return nil, err
	}
	if !rt.GetOnline() {
		return nil, fmt.Errorf("sensor %s: %w", id, ErrOffline)
	}
	rep, err := r.Call(ctx, id, req)
	if err != nil {
		return nil, err
	}
	if e := rep.GetError(); e != nil {
		return nil, &RefusedError{Code: e.GetCode(), Message: e.GetMessage()}
	}
	return rep, nil
}
