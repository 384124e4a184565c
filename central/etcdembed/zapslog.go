package etcdembed

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"

	"go.uber.org/zap/zapcore"
)

// slogCore is a zapcore.Core that writes into a slog.Handler, so the embedded
// etcd's logs go wherever the node's logs go, in the same format.
type slogCore struct {
	h     slog.Handler
	level zapcore.Level
	// stopping, once set, lowers errors to info: a member that is being
	// closed reports each listener it closes as a failure to serve.
	stopping *atomic.Bool
}

func newSlogCore(h slog.Handler, level zapcore.Level, stopping *atomic.Bool) zapcore.Core {
	return &slogCore{h: h.WithGroup("etcd"), level: level, stopping: stopping}
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= c.level }

// recordLevel is the slog level of an entry.
func (c *slogCore) recordLevel(l zapcore.Level) slog.Level {
	if l < zapcore.DPanicLevel && c.stopping != nil && c.stopping.Load() {
		return min(slogLevel(l), slog.LevelInfo)
	}
	return slogLevel(l)
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{h: c.h.WithAttrs(attrs(fields)), level: c.level, stopping: c.stopping}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, c.recordLevel(e.Level), e.Message, 0)
	r.AddAttrs(attrs(fields)...)
	err := c.h.Handle(context.Background(), r)
	if e.Level >= zapcore.DPanicLevel {
		// etcd panics or exits the process after this line: say why on
		// standard error too, whatever the handler does with it (a
		// discarding or buffered one would leave the exit unexplained).
		fmt.Fprintf(os.Stderr, "embedded etcd: %s: %s %v\n", e.Level.CapitalString(), e.Message, attrs(fields))
	}
	return err
}

func (c *slogCore) Sync() error { return nil }

func attrs(fields []zapcore.Field) []slog.Attr {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		out = append(out, slog.Any(k, v))
	}
	return out
}

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l >= zapcore.WarnLevel:
		return slog.LevelWarn
	case l >= zapcore.InfoLevel:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}
