package remotesensors

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestSecondarySwitch checks the SCN's side on a real etcd: its list
// carries its sensors and its administrator's switch, and while the switch
// is off a write of the PCN never reaches the SCN's API (reads still do).
func TestSecondarySwitch(t *testing.T) {
	ctx := t.Context()
	cli := etcdtest.Client(t)
	st := store.New(cli)
	if _, err := st.CreateTenant(ctx, store.AllTenants(), &ospreyv1.Tenant{Id: "t1", Name: "T1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateSensor(ctx, store.AllTenants(), &ospreyv1.Sensor{Id: "s1", Name: "S1", Tenant: "t1", State: ospreyv1.SensorState_SENSOR_STATE_APPROVED}); err != nil {
		t.Fatal(err)
	}
	var ran []*ospreyv1.RemoteSensorCall
	s := NewSecondary(SecondaryOptions{Client: cli, Store: st, Documents: func(_ context.Context, c *ospreyv1.RemoteSensorCall) (int, []byte, int64) {
		ran = append(ran, c)
		return http.StatusOK, []byte(`{}`), 7
	}})

	for _, refuse := range []bool{false, true} {
		if err := st.PutSensorManagement(ctx, &ospreyv1.SensorManagement{RefuseWrites: refuse}); err != nil {
			t.Fatal(err)
		}
		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if list.GetWritesRefused() != refuse || len(list.GetSensors()) != 1 || list.GetSensors()[0].GetId() != "s1" || list.GetSensors()[0].GetTenant() != "t1" {
			t.Errorf("refuse %v: list %v; want s1 of t1 and writes_refused %v", refuse, list, refuse)
		}
		ran = nil
		read := s.answer(ctx, &ospreyv1.RemoteSensorCall{Id: "r", Sensor: "s1", Document: "smtp"})
		write := s.answer(ctx, &ospreyv1.RemoteSensorCall{Id: "w", Sensor: "s1", Document: "smtp", Write: true, Body: []byte(`{}`)})
		if read.GetHttpStatus() != http.StatusOK || read.GetVersion() != 7 || read.GetId() != "r" {
			t.Errorf("refuse %v: read answered %v; want 200 at version 7", refuse, read)
		}
		wantWrite, wantRan := http.StatusOK, 2
		if refuse {
			wantWrite, wantRan = http.StatusForbidden, 1
		}
		if write.GetHttpStatus() != int32(wantWrite) || len(ran) != wantRan {
			t.Errorf("refuse %v: write answered %d after %d calls of the API; want %d after %d", refuse, write.GetHttpStatus(), len(ran), wantWrite, wantRan)
		}
		if refuse {
			var e api.Error
			if err := json.Unmarshal(write.GetBody(), &e); err != nil || e.Message != ErrWritesRefused {
				t.Errorf("refused write: body %s; want the error saying the switch is off", write.GetBody())
			}
		}
	}
}
