package ui

import (
	"testing"
	"time"

	"github.com/ospreysec/osprey/api"
)

// TestGatewayStatesNewestWins: the page shows a control's answer until a
// status report newer than it comes, and the report from then on.
func TestGatewayStatesNewestWins(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	report := func(at time.Time, sending bool) api.Sensor {
		return api.Sensor{StatusAt: at, GatewayStatus: &api.GatewayStatus{Sending: sending, Receiving: true}}
	}
	var g gatewayStates
	if v := g.view("s1", api.Sensor{}); v != nil {
		t.Errorf("nothing reported nor answered: got %+v, want nil", v)
	}
	if v := g.view("s1", report(t0, true)); v == nil || !v.Sending || v.Answer || !v.At.Equal(t0) {
		t.Errorf("a report alone: got %+v, want it", v)
	}
	g.put("s1", &api.GatewayStatus{Sending: false, Receiving: true}, t0.Add(2*time.Second))
	if v := g.view("s1", report(t0, true)); v == nil || v.Sending || !v.Answer {
		t.Errorf("an answer newer than the report: got %+v, want the answer (stopped)", v)
	}
	if v := g.view("s2", report(t0, true)); v == nil || !v.Sending {
		t.Errorf("another sensor: got %+v, want its own report", v)
	}
	if v := g.view("s1", report(t0.Add(10*time.Second), true)); v == nil || !v.Sending || v.Answer {
		t.Errorf("a report newer than the answer: got %+v, want the report", v)
	}
	if v := g.view("s1", report(t0, true)); v == nil || v.Answer {
		t.Errorf("the answer was kept once a newer report came: got %+v", v)
	}
}

func TestUntil(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{time.Time{}, ""},
		{now.Add(-time.Minute), "now"},
		{now, "now"},
		{now.Add(42 * time.Second), "in 42 s"},
		{now.Add(53 * time.Minute), "in 53 min"},
		{now.Add(5 * time.Hour), "in 5 h"},
		{now.Add(72 * time.Hour), "in 3 days"},
	} {
		if got := until(now, c.at); got != c.want {
			t.Errorf("until %v: got %q, want %q", c.at, got, c.want)
		}
	}
}
