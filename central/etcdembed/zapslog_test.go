package etcdembed

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
)

// levels records the level of each record it handles.
type levels struct{ got []slog.Level }

func (l *levels) Enabled(context.Context, slog.Level) bool { return true }
func (l *levels) Handle(_ context.Context, r slog.Record) error {
	l.got = append(l.got, r.Level)
	return nil
}
func (l *levels) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levels) WithGroup(string) slog.Handler      { return l }

// TestSlogCoreLowersErrorsWhileStopping: etcd's errors are errors, until
// the member is being closed, when the listeners it reports closing are not.
func TestSlogCoreLowersErrorsWhileStopping(t *testing.T) {
	h := &levels{}
	stopping := new(atomic.Bool)
	log := zap.New(newSlogCore(h, zap.WarnLevel, stopping))
	log.Error("setting up serving from embedded etcd failed.")
	log.Warn("slow fdatasync")
	stopping.Store(true)
	log.Error("setting up serving from embedded etcd failed.")
	log.Info("below the level: dropped")
	want := []slog.Level{slog.LevelError, slog.LevelWarn, slog.LevelInfo}
	if len(h.got) != len(want) {
		t.Fatalf("levels %v, want %v", h.got, want)
	}
	for i := range want {
		if h.got[i] != want[i] {
			t.Errorf("record %d: level %v, want %v", i, h.got[i], want[i])
		}
	}
}
