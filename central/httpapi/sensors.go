package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func (s *Server) listSensors(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	sensors, err := s.store.ListSensors(r.Context(), scope(p))
	if err != nil {
		return err
	}
	statuses, err := s.store.Statuses(r.Context(), scope(p))
	if err != nil {
		return err
	}
	out := api.SensorList{Sensors: make([]api.Sensor, 0, len(sensors))}
	for _, sn := range sensors {
		v, err := s.sensorView(r.Context(), scope(p), sn, statuses[sn.GetId()])
		if err != nil {
			return err
		}
		out.Sensors = append(out.Sensors, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getSensor(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	sn, _, err := s.store.GetSensor(r.Context(), scope(p), r.PathValue("id"))
	if err != nil {
		return err
	}
	v, err := s.sensorViewWithStatus(r.Context(), scope(p), sn)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) sensorViewWithStatus(ctx context.Context, sc store.Scope, sn *ospreyv1.Sensor) (api.Sensor, error) {
	st, err := s.store.Status(ctx, sc, sn.GetId())
	if err != nil {
		return api.Sensor{}, err
	}
	return s.sensorView(ctx, sc, sn, st)
}

// sensorView is a sensor's record with its configuration version and the
// status its stream reports (nil: never connected).
func (s *Server) sensorView(ctx context.Context, sc store.Scope, sn *ospreyv1.Sensor, st *ospreyv1.SensorRuntime) (api.Sensor, error) {
	v := convert.SensorFromProto(sn)
	cfg, err := s.store.SensorConfig(ctx, sc, sn.GetId())
	if err != nil {
		return api.Sensor{}, err
	}
	v.ConfigVersion = cfg.Version()
	convert.SensorStatus(&v, st)
	return v, nil
}

func (s *Server) approveSensor(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return s.setSensorState(w, r, p, ospreyv1.SensorState_SENSOR_STATE_APPROVED)
}

func (s *Server) revokeSensor(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	return s.setSensorState(w, r, p, ospreyv1.SensorState_SENSOR_STATE_REVOKED)
}

// setSensorState moves a sensor to state, retrying when a concurrent write
// (an enrollment renewal, another admin) changed the record in between.
func (s *Server) setSensorState(w http.ResponseWriter, r *http.Request, p auth.Principal, state ospreyv1.SensorState) error {
	id := r.PathValue("id")
	for attempt := 0; ; attempt++ {
		sn, version, err := s.store.GetSensor(r.Context(), scope(p), id)
		if err != nil {
			return err
		}
		if sn.GetLocal() && state == ospreyv1.SensorState_SENSOR_STATE_REVOKED {
			return badRequest("sensor %q is the Sensor component of a Central Node; it cannot be revoked", id)
		}
		if sn.GetState() != state {
			sn.State = state
			_, err = s.store.UpdateSensor(r.Context(), scope(p), sn, version)
			if errors.Is(err, store.ErrConflict) && attempt < 3 {
				continue
			}
			if err != nil {
				return fmt.Errorf("set sensor %s %s: %w", id, state, err)
			}
		}
		v, err := s.sensorViewWithStatus(r.Context(), scope(p), sn)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, v)
		return nil
	}
}
