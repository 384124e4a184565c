package sensor_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor"
	"github.com/ospreysec/osprey/sensor/agent"
	"github.com/ospreysec/osprey/sensor/internal/centraltest"
)

// sensorMetrics are metrics of each of the sensor's components.
var sensorMetrics = []string{
	"osprey_smtp_connections_total",
	"osprey_sensor_spool_messages",
	"osprey_sensor_uploaded_total",
	"osprey_sensor_pop3_polls_total",
	"osprey_sensor_pop3_errors_total",
}

// gathered returns the names of the metrics reg serves.
func gathered(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	return names
}

// TestRunServesItsMetricsOnAGivenRegistry: with a Registerer (a central
// node's, in a process that runs both), the sensor's metrics are served by
// that registry while Run runs, and are gone when it returns, so a second
// Run registers them again without a duplicate.
func TestRunServesItsMetricsOnAGivenRegistry(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	reg := prometheus.NewRegistry()
	dir := filepath.Join(t.TempDir(), "data")
	out := newNotices()
	opts := sensor.Options{Central: srv.Addr(), JoinToken: srv.Token().String(), DataDir: dir, Name: "n1",
		Notice: out.add, Registerer: reg}
	stop := run(t, opts)
	out.waitFor(t, "Waiting for approval")
	id, err := agent.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetState(id.SensorID, ospreyv1.SensorState_SENSOR_STATE_APPROVED)

	for round := 1; round <= 2; round++ {
		// The stream starts once every component is built and registered.
		srv.NextStream(t)
		got := gathered(t, reg)
		for _, name := range sensorMetrics {
			if !slices.Contains(got, name) {
				t.Errorf("run %d: the registry serves %v, want %s among them", round, got, name)
			}
		}
		if err := stop(); err != nil {
			t.Fatalf("run %d: Run = %v, want nil after cancel", round, err)
		}
		for _, name := range gathered(t, reg) {
			if strings.HasPrefix(name, "osprey_") {
				t.Errorf("run %d: the registry still serves %s after Run returned", round, name)
			}
		}
		if round == 1 {
			opts.Notice = nil
			stop = run(t, opts)
		}
	}
}
