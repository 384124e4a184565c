package benchproc

import (
	"math"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	if got := Median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("odd: %v, want 2", got)
	}
	if got := Median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("even: %v, want 2.5", got)
	}
	if got := Median[float64](nil); !math.IsNaN(got) {
		t.Errorf("empty: %v, want NaN", got)
	}
	if got := Median([]time.Duration{3 * time.Second, time.Second}); got != 2*time.Second {
		t.Errorf("durations: %v, want 2s", got)
	}
	v := []int64{5, 1, 3}
	Median(v)
	if v[0] != 5 {
		t.Errorf("Median sorted its argument: %v", v)
	}
}
