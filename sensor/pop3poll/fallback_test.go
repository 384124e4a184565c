package pop3poll

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeServer is a minimal POP3 server for what Dovecot will not do: no
// UIDL, or unique ids that are not unique. It serves one connection at a
// time; QUIT deletes the messages marked deleted.
type fakeServer struct {
	mu   sync.Mutex
	msgs []string
	// uids gives the unique ids of the current messages; nil means UIDL
	// is refused.
	uids func(msgs []string) []string
}

func (f *fakeServer) add(msg string) {
	f.mu.Lock()
	f.msgs = append(f.msgs, msg)
	f.mu.Unlock()
}

func (f *fakeServer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.msgs)
}

func (f *fakeServer) start(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.serve(c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l.Addr().String()
}

func (f *fakeServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(s string) { w.WriteString(s + "\r\n"); w.Flush() }
	f.mu.Lock()
	msgs := append([]string(nil), f.msgs...)
	f.mu.Unlock()
	deleted := map[int]bool{}
	reply("+OK fake")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		n, _ := strconv.Atoi(arg)
		switch strings.ToUpper(cmd) {
		case "USER", "PASS", "NOOP":
			reply("+OK")
		case "STAT":
			size := 0
			for _, m := range msgs {
				size += len(m)
			}
			reply(fmt.Sprintf("+OK %d %d", len(msgs), size))
		case "LIST":
			reply("+OK")
			for i, m := range msgs {
				reply(fmt.Sprintf("%d %d", i+1, len(m)))
			}
			reply(".")
		case "UIDL":
			if f.uids == nil {
				reply("-ERR unknown command")
				continue
			}
			reply("+OK")
			for i, u := range f.uids(msgs) {
				reply(fmt.Sprintf("%d %s", i+1, u))
			}
			reply(".")
		case "RETR":
			if n < 1 || n > len(msgs) {
				reply("-ERR no such message")
				continue
			}
			reply("+OK")
			for _, l := range strings.SplitAfter(msgs[n-1], "\r\n") {
				if strings.HasPrefix(l, ".") {
					w.WriteString(".")
				}
				w.WriteString(l)
			}
			reply(".")
		case "DELE":
			deleted[n] = true
			reply("+OK")
		case "QUIT":
			f.mu.Lock()
			var keep []string
			for i, m := range f.msgs {
				if !deleted[i+1] {
					keep = append(keep, m)
				}
			}
			f.msgs = keep
			f.mu.Unlock()
			reply("+OK bye")
			return
		default:
			reply("-ERR unknown command")
		}
	}
}

// TestContentHashFallback polls servers whose unique ids cannot be used:
// every message is spooled exactly once, also when a session dies before
// QUIT, and the status says why hashes are used.
func TestContentHashFallback(t *testing.T) {
	tests := []struct {
		name   string
		uids   func(msgs []string) []string
		reason string
	}{
		{"no UIDL", nil, "does not support UIDL"},
		{"one id for all", func(msgs []string) []string {
			out := make([]string, len(msgs))
			for i := range out {
				out[i] = "same"
			}
			return out
		}, "for messages 1 and 2"},
		{"message numbers as ids", func(msgs []string) []string {
			out := make([]string, len(msgs))
			for i := range out {
				out[i] = strconv.Itoa(i + 1)
			}
			return out
		}, "reuses unique id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeServer{uids: tt.uids}
			addr := f.start(t)
			sp := openSpool(t, t.TempDir())
			cfg := plainIntegration(addr)
			mb := Mailbox(cfg.GetPop3())
			want := map[string]bool{}
			add := func(i int) {
				m := string(message(i))
				f.add(m)
				want[m] = true
			}
			add(1)
			add(2)
			p := newPoller(t, Options{Spool: sp})
			drain(t, p, cfg)
			if f.count() != 0 {
				t.Fatalf("%d messages left", f.count())
			}
			// New messages at the numbers, and with the ids, of the
			// deleted ones.
			add(3)
			add(4)
			add(5)
			// A session that dies after spooling, before QUIT.
			hs := &hookSpool{Spool: sp, after: func(n int) {
				if n == 2 {
					panic("crash")
				}
			}}
			crashed := newPoller(t, Options{Spool: hs})
			crashed.mbox = p.mbox
			func() {
				defer func() { recover() }()
				pollOnce(t, crashed, cfg)
			}()
			if f.count() != 3 {
				t.Fatalf("%d messages on the server after the crash, want 3", f.count())
			}
			drain(t, p, cfg)
			if f.count() != 0 {
				t.Fatalf("%d messages left", f.count())
			}
			got := spooled(t, sp, mb)
			checkAll(t, got, want)
			for uidl := range got {
				if !strings.HasPrefix(uidl, hashPrefix) && tt.uids == nil {
					t.Errorf("UIDL %q, want a content hash", uidl)
				}
			}
			found := false
			for _, pr := range p.Status().Problems {
				found = found || (strings.Contains(pr, "content hash") && strings.Contains(pr, tt.reason))
			}
			if !found {
				t.Errorf("problems %q do not say that hashes are used because %q", p.Status().Problems, tt.reason)
			}
		})
	}
}
