package agent

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Base: 500 * time.Millisecond, Max: 30 * time.Second}
	tests := []struct {
		name    string
		attempt int
		r       float64
		want    time.Duration
	}{
		{"first retry, top of the range", 0, 1, 500 * time.Millisecond},
		{"first retry, bottom of the range", 0, 0, 0},
		{"third retry", 2, 1, 2 * time.Second},
		{"half way", 3, 0.5, 2 * time.Second},
		{"capped", 6, 1, 30 * time.Second},
		{"far past the cap", 1000, 1, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := b.Delay(tt.attempt, tt.r); got != tt.want {
				t.Errorf("Delay(%d, %v) = %v, want %v", tt.attempt, tt.r, got, tt.want)
			}
		})
	}
}

func TestDefaultRetry(t *testing.T) {
	tests := []struct {
		name string
		err  error
		// max is the cap the delays stay under; over, a delay that only
		// the long policy gives once past a few attempts.
		max, over time.Duration
	}{
		{"revoked", status.Error(codes.PermissionDenied, "sensor is revoked"), 5 * time.Minute, 30 * time.Second},
		{"pending", status.Error(codes.FailedPrecondition, "sensor is pending"), 30 * time.Second, 0},
		{"unreachable", status.Error(codes.Unavailable, "connection refused"), 30 * time.Second, 0},
		{"other", errors.New("central closed the stream"), 30 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var longest time.Duration
			for range 200 {
				d := DefaultRetry(20, tt.err)
				if d < 0 || d > tt.max {
					t.Fatalf("DefaultRetry(20, %v) = %v, want within [0, %v]", tt.err, d, tt.max)
				}
				longest = max(longest, d)
			}
			if longest <= tt.over {
				t.Errorf("longest of 200 delays = %v, want some over %v", longest, tt.over)
			}
			if d := DefaultRetry(0, tt.err); d > tt.max {
				t.Errorf("DefaultRetry(0, %v) = %v, want at most %v", tt.err, d, tt.max)
			}
		})
	}
}

func TestMoved(t *testing.T) {
	moved, err := status.New(codes.Unavailable, "move").WithDetails(&errdetails.ErrorInfo{Reason: rebalanceReason, Domain: "osprey"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := status.New(codes.Unavailable, "other").WithDetails(&errdetails.ErrorInfo{Reason: "SOMETHING_ELSE"})
	if err != nil {
		t.Fatal(err)
	}
	denied, err := status.New(codes.PermissionDenied, "move").WithDetails(&errdetails.ErrorInfo{Reason: rebalanceReason})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"rebalance", moved.Err(), true},
		{"unavailable for another reason", other.Err(), false},
		{"unavailable without details", status.Error(codes.Unavailable, "connection refused"), false},
		{"the reason with another code", denied.Err(), false},
		{"not a status", errors.New("stream closed"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Moved(tt.err); got != tt.want {
				t.Errorf("Moved(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
