package spool

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollectorExportsStats(t *testing.T) {
	s := open(t, Options{})
	var ids []string
	for range 3 {
		id, err := s.Put(t.Context(), smtpMeta(), strings.NewReader("Subject: hi\r\n\r\nbody\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := s.Remove(ids[0]); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(s))
	st := s.Stats()
	want := `
# HELP osprey_sensor_spool_messages Messages in the spool, waiting for their upload.
# TYPE osprey_sensor_spool_messages gauge
osprey_sensor_spool_messages 2
# HELP osprey_sensor_spool_puts_total Messages spooled since the spool was opened.
# TYPE osprey_sensor_spool_puts_total counter
osprey_sensor_spool_puts_total 3
# HELP osprey_sensor_spool_removes_total Messages removed (uploaded) since the spool was opened.
# TYPE osprey_sensor_spool_removes_total counter
osprey_sensor_spool_removes_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"osprey_sensor_spool_messages", "osprey_sensor_spool_puts_total", "osprey_sensor_spool_removes_total"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(bytesOnly{NewCollector(s)}); got != float64(st.Bytes) || got == 0 {
		t.Errorf("osprey_sensor_spool_bytes = %v, want %d", got, st.Bytes)
	}
}

// bytesOnly narrows a Collector to its spool bytes gauge.
type bytesOnly struct{ c *Collector }

func (b bytesOnly) Describe(ch chan<- *prometheus.Desc) { ch <- b.c.bytes }
func (b bytesOnly) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 32)
	b.c.Collect(all)
	close(all)
	for m := range all {
		if m.Desc() == b.c.bytes {
			ch <- m
		}
	}
}
