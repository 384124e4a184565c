package ui

import (
	"testing"
	"time"
)

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
