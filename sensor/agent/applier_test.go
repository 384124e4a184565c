package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestMultiApplierRollsBack(t *testing.T) {
	var log []string
	component := func(name string, failRev int64) Applier {
		return ApplierFunc(func(_ context.Context, cfg *ospreyv1.SensorConfig) error {
			if cfg.GetRevision() == failRev {
				return errors.New(name + " refuses")
			}
			log = append(log, name+"@"+string(rune('0'+cfg.GetRevision())))
			return nil
		})
	}
	m := MultiApplier(component("smtp", 0), component("pop3", 3))

	tests := []struct {
		name    string
		rev     int64
		wantErr string
		wantLog []string
	}{
		{"first", 1, "", []string{"smtp@1", "pop3@1"}},
		{"second", 2, "", []string{"smtp@2", "pop3@2"}},
		{"pop3 fails: smtp goes back to 2", 3, "pop3 refuses", []string{"smtp@3", "smtp@2"}},
		{"next", 4, "", []string{"smtp@4", "pop3@4"}},
	}
	for _, tt := range tests {
		log = nil
		err := m.Apply(t.Context(), &ospreyv1.SensorConfig{Revision: tt.rev})
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if gotErr != tt.wantErr {
			t.Errorf("%s: Apply error = %q, want %q", tt.name, gotErr, tt.wantErr)
		}
		if diff := cmp.Diff(tt.wantLog, log); diff != "" {
			t.Errorf("%s: applied (-want +got):\n%s", tt.name, diff)
		}
	}
}
