package spool

import (
	"strings"
	"testing"
	"time"
)

func TestUIDL(t *testing.T) {
	const mailbox = "journal@pop.example.com"
	c := newClock(t0)
	opts := Options{Now: c.Now, UIDLRetention: 24 * time.Hour}
	s := open(t, opts)
	if s.HasUIDL(mailbox, "u1") {
		t.Fatalf("HasUIDL before Put")
	}
	id := put(t, s, pop3Meta(mailbox, "u1"), "polled")
	put(t, s, pop3Meta(mailbox, "u2"), "polled too")
	for _, tt := range []struct {
		mailbox, uidl string
		want          bool
	}{
		{mailbox, "u1", true},
		{mailbox, "u2", true},
		{mailbox, "u3", false},
		{"other@pop.example.com", "u1", false},
	} {
		if got := s.HasUIDL(tt.mailbox, tt.uidl); got != tt.want {
			t.Errorf("HasUIDL(%s, %s): got %v, want %v", tt.mailbox, tt.uidl, got, tt.want)
		}
	}

	// The poller spools the same message again, e.g. after it crashed
	// between Put and DELE and skipped HasUIDL: nothing new is spooled,
	// the body is read, the first id is returned.
	body := strings.NewReader("polled")
	again, err := s.Put(t.Context(), pop3Meta(mailbox, "u1"), body)
	if err != nil || again != id {
		t.Errorf("Put of a spooled UIDL: got %q, %v, want %q", again, err, id)
	}
	if body.Len() != 0 {
		t.Errorf("Put of a spooled UIDL left %d bytes of the body unread", body.Len())
	}
	if got := s.Stats().Messages; got != 2 {
		t.Errorf("Messages: got %d, want 2", got)
	}

	s = reopen(t, s, opts)
	if !s.HasUIDL(mailbox, "u1") || !s.HasUIDL(mailbox, "u2") {
		t.Errorf("HasUIDL after reopen: false, want true")
	}

	// Uploaded and removed: the tombstone keeps the UIDL, across a reopen too.
	if err := s.Remove(id); err != nil {
		t.Fatal(err)
	}
	if !s.HasUIDL(mailbox, "u1") {
		t.Errorf("HasUIDL after Remove: false, want true")
	}
	s = reopen(t, s, opts)
	if !s.HasUIDL(mailbox, "u1") {
		t.Errorf("HasUIDL after Remove and reopen: false, want true")
	}
	if st := s.Stats(); st.Messages != 1 || st.Tombstones != 1 || st.Bytes != liveBytes(t, s.dir) {
		t.Errorf("Stats: got %+v, want 1 message of %d bytes and 1 tombstone", st, liveBytes(t, s.dir))
	}
	if got, err := s.Put(t.Context(), pop3Meta(mailbox, "u1"), strings.NewReader("polled")); err != nil || got != id {
		t.Errorf("Put of a removed UIDL: got %q, %v, want %q", got, err, id)
	}

	// The server no longer lists u1 nor u2: only the tombstone goes.
	if err := s.ForgetUIDLs(mailbox, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if s.HasUIDL(mailbox, "u1") || !s.HasUIDL(mailbox, "u2") {
		t.Errorf("after ForgetUIDLs: HasUIDL u1 %v, u2 %v, want false, true", s.HasUIDL(mailbox, "u1"), s.HasUIDL(mailbox, "u2"))
	}
	s = reopen(t, s, opts)
	if s.HasUIDL(mailbox, "u1") {
		t.Errorf("HasUIDL of a forgotten UIDL after reopen: true")
	}

	// A tombstone older than the retention is dropped at Open.
	ids := s.List()
	if err := s.Remove(ids[0]); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, Options{Now: func() time.Time { return time.Now().Add(25 * time.Hour) }, UIDLRetention: 24 * time.Hour})
	clean(t, s) // its first pass rewrites the removal log without it
	if s.HasUIDL(mailbox, "u2") || s.Stats().Tombstones != 0 || len(files(t, s.dir)) != 0 {
		t.Errorf("expired tombstone kept: HasUIDL %v, Stats %+v, files %v", s.HasUIDL(mailbox, "u2"), s.Stats(), files(t, s.dir))
	}
}

func TestUIDLWithoutMailbox(t *testing.T) {
	s := open(t, Options{})
	if _, err := s.Put(t.Context(), Meta{UIDL: "u1"}, strings.NewReader("x")); err == nil {
		t.Errorf("Put of a UIDL without mailbox: got nil error")
	}
}
