package promtext

import (
	"strings"
	"testing"
)

func TestValue(t *testing.T) {
	const page = `# HELP osprey_central_uploads_total Messages uploaded by sensors and recorded (first time).
# TYPE osprey_central_uploads_total counter
osprey_central_uploads_total 2000
osprey_central_uploads_total_extra 7
etcd_mvcc_db_total_size_in_bytes 1.6384e+06
grpc_server_handled_total{grpc_code="OK"} 12
broken_value abc
`
	tests := []struct {
		name   string
		sample string
		want   float64
		wantOK bool
	}{
		{"counter", "osprey_central_uploads_total", 2000, true},
		{"float with exponent", "etcd_mvcc_db_total_size_in_bytes", 1638400, true},
		{"labelled only", "grpc_server_handled_total", 0, false},
		{"absent", "osprey_missing", 0, false},
		{"prefix of another name", "osprey_central_uploads", 0, false},
		{"not a number", "broken_value", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Value(strings.NewReader(page), tt.sample)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Value(%q) = %v, %v; want %v, %v", tt.sample, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
