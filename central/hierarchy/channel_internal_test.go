package hierarchy

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ospreysec/osprey/internal/testwait"
)

// echo claims the messages that start with its prefix and answers each
// with the prefix "re:".
type echo struct{ prefix string }

func (e echo) Claims(m string) bool { return strings.HasPrefix(m, e.prefix) }

func (e echo) Serve(ctx context.Context, l *Link[string, string]) error {
	for {
		m, err := l.Recv(ctx)
		if err != nil {
			return nil
		}
		if m == e.prefix+"fail" {
			return errors.New("asked to fail")
		}
		if err := l.Send("re:" + m); err != nil {
			return err
		}
	}
}

func TestChannelsRouteAndSerialiseSends(t *testing.T) {
	ctx, fail := context.WithCancelCause(context.Background())
	defer fail(nil)
	var mu sync.Mutex
	var sent []string
	send := lockedSend(func(m string) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, m)
		return nil
	})
	c := runChannels(ctx, fail, []Channel[string, string]{echo{"a:"}, echo{"b:"}}, "srv", "acme", send)
	for _, m := range []string{"a:1", "b:1", "c:1", "a:2"} {
		claimed, err := c.deliver(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if want := !strings.HasPrefix(m, "c:"); claimed != want {
			t.Errorf("deliver(%q) claimed = %v, want %v", m, claimed, want)
		}
	}
	testwait.For(t, "the three answers", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(sent) == 3
	})
	if _, err := c.deliver(ctx, "b:fail"); err != nil {
		t.Fatal(err)
	}
	<-ctx.Done() // the failing channel ends the link
	c.wait()
	if cause := context.Cause(ctx); cause == nil || !strings.Contains(cause.Error(), "asked to fail") {
		t.Errorf("cause = %v, want the channel's error", cause)
	}
	mu.Lock()
	defer mu.Unlock()
	got := map[string]bool{}
	for _, m := range sent {
		got[m] = true
	}
	for _, want := range []string{"re:a:1", "re:b:1", "re:a:2"} {
		if !got[want] {
			t.Errorf("sent %v, missing %q", sent, want)
		}
	}
	if got["re:c:1"] {
		t.Errorf("an unclaimed message was answered: %v", sent)
	}
}
