package gossip

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// newMemberlistLogger bridges memberlist's *log.Logger into slog. memberlist
// writes "[LEVEL] memberlist: message"; the level prefix becomes the record's
// level and is cut from the message with the "memberlist: " tag.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(levelHandler{l.Handler()}, slog.LevelInfo)
}

// levelHandler re-levels the records of memberlist's logger.
type levelHandler struct{ next slog.Handler }

// Enabled lets every line through to Handle, which knows its real level.
func (levelHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h levelHandler) Handle(ctx context.Context, r slog.Record) error {
	level, msg := memberlistLevel(r.Message)
	if !h.next.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h levelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return levelHandler{h.next.WithAttrs(as)}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{h.next.WithGroup(name)}
}

// memberlistLevel splits "[WARN] memberlist: text" into its level and text.
func memberlistLevel(s string) (slog.Level, string) {
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(s, "["); ok {
		if tag, text, ok := strings.Cut(rest, "] "); ok {
			switch tag {
			case "DEBUG", "TRACE":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			s = text
		}
	}
	s = strings.TrimPrefix(s, "memberlist: ")
	return level, strings.TrimSpace(s)
}
