package pop3poll

import (
	"io"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/pkg/pop3/pop3test"
	"github.com/ospreysec/osprey/sensor/spool"
)

// TestContentHashFallback polls servers whose unique ids cannot be used:
// every message is spooled exactly once, also when a session dies before
// QUIT, and the status says why hashes are used.
func TestContentHashFallback(t *testing.T) {
	tests := []struct {
		name   string
		uids   pop3test.UIDMode
		reason string
	}{
		{"no UIDL", pop3test.NoUIDL, "does not support UIDL"},
		{"one id for all", pop3test.SameID, "for messages 1 and 2"},
		{"message numbers as ids", pop3test.NumberIDs, "reuses unique id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := pop3test.StartServer(t, pop3test.ServerOptions{User: testUser, Password: testPass, UIDs: tt.uids})
			sp := openSpool(t, t.TempDir())
			cfg := plainIntegration(f.Addr())
			mb := Mailbox(cfg.GetPop3())
			want := map[string]bool{}
			add := func(i int) {
				m := message(i)
				f.Add(m)
				want[string(m)] = true
			}
			add(1)
			add(2)
			p := newPoller(t, Options{Spool: sp})
			drain(t, p, cfg)
			if f.Messages() != 0 {
				t.Fatalf("%d messages left", f.Messages())
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
			if f.Messages() != 3 {
				t.Fatalf("%d messages on the server after the crash, want 3", f.Messages())
			}
			drain(t, p, cfg)
			if f.Messages() != 0 {
				t.Fatalf("%d messages left", f.Messages())
			}
			got := spooled(t, sp, mb)
			checkAll(t, got, want)
			for uidl := range got {
				if !strings.HasPrefix(uidl, hashPrefix) && tt.uids == pop3test.NoUIDL {
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

// TestOneSpoolPerMessage polls servers that keep the messages whose
// deletion they confirmed, or give the ids of deleted messages to new
// ones, over ten sessions, while an uploader takes every message out of
// the spool after each (leaving the spool's tombstones, as the real one
// does). Each of three messages, added over the sessions, is spooled
// exactly once: whichever key the poller uses, across its switch from
// unique ids to content hashes, and across a restart of the poller.
func TestOneSpoolPerMessage(t *testing.T) {
	noUIDL := pop3test.NoUIDL
	tests := []struct {
		name string
		uids pop3test.UIDMode
		keep bool // the server keeps deleted messages
		// switchTo, when set, is how the server answers UIDL from the
		// fourth session on.
		switchTo *pop3test.UIDMode
		restart  bool // a new poller takes over from the sixth session on
		hashes   bool // content hashes are in use at the end
	}{
		{name: "keeps deleted messages", uids: pop3test.UniqueIDs, keep: true},
		{name: "keeps deleted messages, restart", uids: pop3test.UniqueIDs, keep: true, restart: true},
		{name: "keeps deleted messages, message numbers as ids", uids: pop3test.NumberIDs, keep: true, restart: true},
		{name: "keeps deleted messages, one id for all", uids: pop3test.SameID, keep: true, hashes: true},
		{name: "keeps deleted messages, then refuses UIDL", uids: pop3test.UniqueIDs, keep: true, switchTo: &noUIDL, hashes: true},
		{name: "keeps deleted messages, never answers UIDL", uids: pop3test.NoUIDL, keep: true, restart: true, hashes: true},
		{name: "reuses the ids of deleted messages", uids: pop3test.NumberIDs, hashes: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := pop3test.StartServer(t, pop3test.ServerOptions{User: testUser, Password: testPass, UIDs: tt.uids, KeepDeleted: tt.keep})
			sp := openSpool(t, t.TempDir())
			cfg := plainIntegration(srv.Addr())
			mb := Mailbox(cfg.GetPop3())
			p := newPoller(t, Options{Spool: sp})
			want := map[string]bool{}
			var got []spool.Meta
			bodies := map[string]int{}
			for session := 1; session <= 10; session++ {
				switch session {
				case 1, 3, 7:
					m := message(session)
					srv.Add(m)
					want[string(m)] = true
				case 4:
					if tt.switchTo != nil {
						srv.SetUIDs(*tt.switchTo)
					}
				case 6:
					if tt.restart {
						p = newPoller(t, Options{Spool: sp})
					}
				}
				if _, err := pollOnce(t, p, cfg); err != nil {
					t.Fatalf("session %d: %v", session, err)
				}
				for _, u := range upload(t, sp) {
					got = append(got, u.meta)
					bodies[u.body]++
					if !want[u.body] {
						t.Errorf("session %d spooled %q, which is not a message of the server", session, u.body)
					}
				}
			}
			for b, n := range bodies {
				if n != 1 {
					t.Errorf("message %q spooled %d times, want once (spooled: %+v)", b, n, got)
				}
			}
			if len(bodies) != len(want) {
				t.Errorf("%d messages spooled, want %d", len(bodies), len(want))
			}
			if n, wantN := srv.Messages(), map[bool]int{true: 3, false: 0}[tt.keep]; n != wantN {
				t.Errorf("%d messages on the server, want %d", n, wantN)
			}
			for _, m := range got {
				if m.Envelope.GetMailbox() != mb {
					t.Errorf("spooled for mailbox %q, want %q", m.Envelope.GetMailbox(), mb)
				}
			}
			problems := strings.Join(p.Status().Problems, "\n")
			if got := strings.Contains(problems, "content hash"); got != tt.hashes {
				t.Errorf("problems %q: content hashes in use %v, want %v", problems, got, tt.hashes)
			}
			// The server shows that it keeps deleted messages when it
			// lists their ids again.
			wantKeeps := tt.keep && tt.uids != pop3test.NoUIDL
			if got := strings.Contains(problems, "keeps messages whose deletion it confirmed"); got != wantKeeps {
				t.Errorf("problems %q: say that the server keeps deleted messages %v, want %v", problems, got, wantKeeps)
			}
		})
	}
}

// uploaded is a message that upload took out of the spool.
type uploaded struct {
	meta spool.Meta
	body string
}

// upload does what the uploader does once a central acknowledged an
// upload: it removes every spooled message, which leaves the tombstone of
// its UIDL.
func upload(t *testing.T, sp *spool.Spool) []uploaded {
	t.Helper()
	var out []uploaded
	for _, id := range sp.List() {
		m, err := sp.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		r, err := m.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := sp.Remove(id); err != nil {
			t.Fatal(err)
		}
		out = append(out, uploaded{meta: m.Meta, body: string(b)})
	}
	return out
}
