package spool

import (
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestSeal: what Meta.Seal sets in the envelope once the body is read is
// kept with the message, in a segment and in a spilled file, and survives
// a reopen; Seal is not called when the body fails.
func TestSeal(t *testing.T) {
	auth := &ospreyv1.AuthResults{Spf: "pass", SpfDomain: "example.com", Dmarc: "fail", DmarcPolicy: "reject", FromDomain: "example.org",
		Dkim: []*ospreyv1.DkimResult{{Result: "fail", Domain: "example.org", Selector: "s1"}}}
	for _, tc := range []struct {
		name string
		body string
	}{
		{"segment", "From: a@example.org\r\n\r\nhello\r\n"},
		{"spilled", strings.Repeat("0123456789abcdef", spillSize/16+chunkSize/16+3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, Options{Now: newClock(t0).Now})
			meta := smtpMeta()
			read := 0
			r := &countingReader{r: strings.NewReader(tc.body), n: &read}
			meta.Seal = func(env *ospreyv1.Envelope) {
				if read != len(tc.body) {
					t.Errorf("Seal called after %d of %d bytes of the body", read, len(tc.body))
				}
				env.Auth = proto.CloneOf(auth)
			}
			id, err := s.Put(t.Context(), meta, r)
			if err != nil {
				t.Fatal(err)
			}
			check := func(s *Spool) {
				t.Helper()
				m, err := s.Get(id)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(auth, m.Meta.Envelope.GetAuth(), cmpMeta); diff != "" {
					t.Errorf("sealed results (-want +got):\n%s", diff)
				}
				if got := content(t, s, id); got != tc.body {
					t.Errorf("content: got %d bytes, want %d", len(got), len(tc.body))
				}
			}
			check(s)
			check(reopen(t, s, Options{Now: newClock(t0).Now}))
		})
	}

	t.Run("too large", func(t *testing.T) {
		s := open(t, Options{Now: newClock(t0).Now})
		meta := smtpMeta()
		meta.Seal = func(env *ospreyv1.Envelope) { env.Helo = strings.Repeat("x", SealRoom+100) }
		if _, err := s.Put(t.Context(), meta, strings.NewReader("x")); err == nil || !strings.Contains(err.Error(), "sealing") {
			t.Errorf("got %v, want the seal refused", err)
		}
		if n := len(s.List()); n != 0 {
			t.Errorf("%d messages kept, want none", n)
		}
	})

	t.Run("body fails", func(t *testing.T) {
		s := open(t, Options{Now: newClock(t0).Now})
		meta := smtpMeta()
		meta.Seal = func(*ospreyv1.Envelope) { t.Error("Seal called for a body that failed") }
		if _, err := s.Put(t.Context(), meta, iotest.ErrReader(iotest.ErrTimeout)); err == nil {
			t.Error("Put of a failing body succeeded")
		}
	})
}

type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n *int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += n
	return n, err
}
