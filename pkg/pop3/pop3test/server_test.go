package pop3test_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/pkg/pop3"
	"github.com/ospreysec/osprey/pkg/pop3/pop3test"
)

// session logs in to s, lists its UIDs (nil when UIDL fails with -ERR),
// retrieves message 1, deletes the messages numbered del and quits.
func session(t *testing.T, s *pop3test.Server, del ...int) (uids []string, first string) {
	t.Helper()
	ctx := context.Background()
	c, err := pop3.Dial(ctx, pop3.Options{Addr: s.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "alice", "secret"); err != nil {
		t.Fatal(err)
	}
	list, err := c.UIDL(ctx)
	var perr *pop3.Error
	if err != nil && !errors.As(err, &perr) {
		t.Fatal(err)
	}
	for _, m := range list {
		uids = append(uids, m.UID)
	}
	r, err := c.Retr(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range del {
		if err := c.Dele(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	return uids, string(b)
}

func TestServer(t *testing.T) {
	one, two, three := []byte("Subject: 1\r\n\r\n.one\r\n"), []byte("Subject: 2\r\n\r\ntwo\r\n"), []byte("Subject: 3\r\n\r\nthree\r\n")
	tests := []struct {
		name  string
		opts  pop3test.ServerOptions
		after []string // the UIDs once message 1 was deleted and message 3 added
		left  int      // messages on the server at the end
	}{
		{"unique ids", pop3test.ServerOptions{}, []string{"uid-2", "uid-3"}, 2},
		{"no UIDL", pop3test.ServerOptions{UIDs: pop3test.NoUIDL}, nil, 2},
		{"message numbers", pop3test.ServerOptions{UIDs: pop3test.NumberIDs}, []string{"1", "2"}, 2},
		{"one id", pop3test.ServerOptions{UIDs: pop3test.SameID}, []string{"same", "same"}, 2},
		{"keeps deleted messages", pop3test.ServerOptions{KeepDeleted: true}, []string{"uid-1", "uid-2", "uid-3"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.User, tt.opts.Password = "alice", "secret"
			s := pop3test.StartServer(t, tt.opts)
			s.Add(one)
			s.Add(two)
			_, first := session(t, s, 1)
			if first != string(one) {
				t.Errorf("RETR 1: got %q, want %q", first, one)
			}
			s.Add(three)
			uids, _ := session(t, s)
			if diff := cmp.Diff(tt.after, uids); diff != "" {
				t.Errorf("UIDL (-want +got):\n%s", diff)
			}
			if got := s.Messages(); got != tt.left {
				t.Errorf("%d messages left, want %d", got, tt.left)
			}
			if got := s.Sessions(); got != 2 {
				t.Errorf("%d sessions, want 2", got)
			}
		})
	}
}
