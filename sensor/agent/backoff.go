package agent

import (
	"math/rand/v2"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Backoff is exponential backoff with full jitter: before retry attempt n
// (0 for the first retry) it waits a uniformly random time below
// min(Max, Base·2ⁿ).
type Backoff struct {
	Base, Max time.Duration
}

// Delay returns the wait before attempt, where r is uniform in [0, 1)
// (rand.Float64()).
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	limit := b.Base
	for i := 0; i < attempt && limit < b.Max; i++ {
		limit *= 2
	}
	limit = min(limit, b.Max)
	return time.Duration(r * float64(limit))
}

// The retry policies of [DefaultRetry].
var (
	reconnectBackoff = Backoff{Base: 500 * time.Millisecond, Max: 30 * time.Second}
	revokedBackoff   = Backoff{Base: 5 * time.Second, Max: 5 * time.Minute}
)

// DefaultRetry is the default of [Options.Retry] and [EnrollOptions.Retry]:
// exponential backoff with full jitter from 500 ms up to 30 s, or, when err
// carries the gRPC code PermissionDenied (the central refuses a revoked
// sensor), from 5 s up to 5 min: an administrator may approve the sensor
// again, but it need not be soon. A pending sensor, refused with
// FailedPrecondition, retries at the normal pace.
func DefaultRetry(attempt int, err error) time.Duration {
	if status.Code(err) == codes.PermissionDenied {
		return revokedBackoff.Delay(attempt, rand.Float64())
	}
	return reconnectBackoff.Delay(attempt, rand.Float64())
}

// rebalanceReason is the reason (google.rpc.ErrorInfo) with which a central
// node ends a stream it moves to another node because it holds more than
// its share of the cluster's sensors (sensorsvc.RebalanceReason).
const rebalanceReason = "OSPREY_REBALANCE"

// Moved says whether err is a central node's request to reconnect
// elsewhere: the stream had nothing wrong, and the agent reconnects at once
// (within the first step of its backoff, jittered so that the sensors a
// node moves together do not arrive together), however often it happens.
func Moved(err error) bool {
	if status.Code(err) != codes.Unavailable {
		return false
	}
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == rebalanceReason {
			return true
		}
	}
	return false
}
