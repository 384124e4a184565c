package sensorsvc

import "testing"

func TestExcess(t *testing.T) {
	tests := []struct {
		name                string
		held, total, nodes  int
		step                float64
		wantMove, wantLimit int
	}{
		{"even", 30, 90, 3, 0.05, 0, 0},
		{"within the slack", 32, 90, 3, 0.05, 0, 0},
		{"over by one past the slack", 33, 90, 3, 0.05, 1, 32},
		{"a node came back", 45, 90, 3, 0.05, 2, 32},
		{"a node came back, 30,000 sensors", 15000, 30000, 3, 0.05, 750, 10500},
		{"the step is more than the excess", 40, 90, 3, 0.5, 10, 32},
		{"survivor of a dead node", 15000, 30000, 2, 0.05, 0, 0},
		{"the count is behind this node's", 100, 10, 2, 0.05, 0, 0},
		{"share rounds up", 35, 100, 3, 0.05, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			move, limit := excess(tt.held, tt.total, tt.nodes, tt.step)
			if move != tt.wantMove || limit != tt.wantLimit {
				t.Errorf("excess(%d, %d, %d, %v) = %d, %d; want %d, %d", tt.held, tt.total, tt.nodes, tt.step, move, limit, tt.wantMove, tt.wantLimit)
			}
		})
	}
}
