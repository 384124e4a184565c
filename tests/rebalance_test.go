package tests

import (
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ospreysec/osprey/central/sensorsvc"
	"github.com/ospreysec/osprey/sensor/agent"
)

// TestAgentKnowsTheRebalanceStatus keeps the two sides of the rebalance
// status in step: the central and the agent cannot import each other, so
// each spells its reason, and the agent must recognise the central's.
func TestAgentKnowsTheRebalanceStatus(t *testing.T) {
	st, err := status.New(codes.Unavailable, "move").WithDetails(&errdetails.ErrorInfo{Reason: sensorsvc.RebalanceReason, Domain: "osprey"})
	if err != nil {
		t.Fatal(err)
	}
	if !agent.Moved(st.Err()) {
		t.Errorf("agent.Moved(status with reason %q) = false, want true", sensorsvc.RebalanceReason)
	}
}
