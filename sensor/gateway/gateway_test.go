package gateway

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/queue"
	"github.com/ospreysec/osprey/sensor/spool"
)

func TestWithoutField(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"none", "Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\nbody\r\n"},
		{"one", "X-Osprey-Verdict: clean\r\nSubject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\nbody\r\n"},
		{"folded, any case", "Subject: a\r\nx-osprey-VERDICT: clean\r\n\tforged\r\nTo: b\r\n\r\nbody\r\n", "Subject: a\r\nTo: b\r\n\r\nbody\r\n"},
		{"in the body it stays", "Subject: a\r\n\r\nX-Osprey-Verdict: clean\r\n", "Subject: a\r\n\r\nX-Osprey-Verdict: clean\r\n"},
		{"a longer name stays", "X-Osprey-Verdicts: 2\r\n\r\n", "X-Osprey-Verdicts: 2\r\n\r\n"},
		{"no body", "X-Osprey-Verdict: clean\r\nSubject: a\r\n", "Subject: a\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(withoutField(nil, []byte(tt.in), queue.VerdictHeader)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			// In place, as Handoff does.
			in := []byte(tt.in)
			if got := string(withoutField(in[:0], in, queue.VerdictHeader)); got != tt.want {
				t.Errorf("in place: got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzWithoutField checks that only header lines are dropped: the body
// comes through whole, and no line of ours is left in the header.
func FuzzWithoutField(f *testing.F) {
	f.Add("X-Osprey-Verdict: clean\r\nSubject: a\r\n\r\nbody\r\n")
	f.Add("Subject: a\r\n x-osprey-verdict: b\r\n\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		b := []byte(in)
		got := string(withoutField(b[:0], b, queue.VerdictHeader))
		if i := strings.Index(in, "\r\n\r\n"); i >= 0 && !strings.HasSuffix(got, in[i+2:]) {
			t.Errorf("the body of %q did not come through: %q", in, got)
		}
		// The header section ends at its first empty line (CRLF or LF).
		for line := range strings.SplitSeq(got, "\n") {
			if strings.TrimSuffix(line, "\r") == "" {
				break
			}
			if strings.HasPrefix(strings.ToLower(line), "x-osprey-verdict:") {
				t.Errorf("%q kept the field in its header: %q", in, got)
			}
		}
	})
}

// TestHoldTimeout: a gateway message that waits past hold_timeout for its
// verdict goes to the queue marked unscanned (and stays in the spool for
// its upload); the verdict that comes later quarantines it while it is
// undelivered. With keep_holding it stays in the spool only. A monitored
// copy is never the gateway's.
func TestHoldTimeout(t *testing.T) {
	for _, keep := range []bool{false, true} {
		name := "deliver_unscanned"
		if keep {
			name = "keep_holding"
		}
		t.Run(name, func(t *testing.T) {
			sp, err := spool.Open(spool.Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sp.Close() })
			var now atomic.Int64
			now.Store(time.Now().UnixNano())
			g := openGateway(t, Options{Dir: t.TempDir(), Spool: sp, Hostname: "gw.test", Now: func() time.Time { return time.Unix(0, now.Load()) }})
			cfg := &ospreyv1.SmtpIntegration{Enabled: true, Mode: ospreyv1.SmtpMode_SMTP_MODE_INBOUND, Gateway: &ospreyv1.SmtpGateway{
				HoldTimeoutSeconds: 60, LocalDomains: []*ospreyv1.LocalDomain{{Domain: "example.com"}}}}
			if keep {
				cfg.Gateway.OnTimeout = ospreyv1.HoldTimeoutAction_HOLD_TIMEOUT_ACTION_KEEP_HOLDING
			}
			if err := g.Apply(cfg); err != nil {
				t.Fatal(err)
			}
			put := func(dir ospreyv1.MailDirection) string {
				env := &ospreyv1.Envelope{MailFrom: "a@partner.test", RcptTo: []string{"b@example.com"}, ReceivedAt: timestamppb.Now(), Direction: dir}
				id, err := sp.Put(t.Context(), spool.Meta{Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP, Envelope: env},
					strings.NewReader("X-Osprey-Verdict: clean\r\nSubject: held\r\n\r\nbody\r\n"))
				if err != nil {
					t.Fatal(err)
				}
				return id
			}
			gwID := put(ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND)
			copyID := put(ospreyv1.MailDirection_MAIL_DIRECTION_UNSPECIFIED)

			if err := g.releaseHeld(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n := g.Queue().Stats().Messages; n != 0 {
				t.Fatalf("before the timeout the queue holds %d messages, want 0", n)
			}
			now.Add(int64(61 * time.Second))
			if err := g.releaseHeld(t.Context()); err != nil {
				t.Fatal(err)
			}
			_, err = g.Queue().Get(t.Context(), copyID)
			if err == nil {
				t.Errorf("the monitored copy went to the queue")
			}
			e, err := g.Queue().Get(t.Context(), gwID)
			if keep {
				if err == nil {
					t.Fatalf("keep_holding: the message went to the queue: %+v", e)
				}
				return
			}
			if err != nil {
				t.Fatalf("the held message is not in the queue: %v", err)
			}
			if !e.Unscanned || e.Verdict != VerdictUnscanned {
				t.Errorf("queued as verdict %q, unscanned %v; want %q, true", e.Verdict, e.Unscanned, VerdictUnscanned)
			}
			if _, err := sp.Get(gwID); err != nil {
				t.Errorf("the message left the spool before its upload: %v", err)
			}
			// Once only, however often the loop looks.
			if err := g.releaseHeld(t.Context()); err != nil {
				t.Fatal(err)
			}
			// The verdict comes: the upload hands it off again.
			msg, err := sp.Get(gwID)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Handoff(t.Context(), msg, verdictDetected, nil); err != nil {
				t.Fatal(err)
			}
			if st := g.Queue().Stats(); st.Messages != 0 || st.Quarantined != 0 {
				t.Errorf("queue %+v after the detection, want it empty", st)
			}
			q, err := g.Quarantine().Get(gwID)
			if err != nil || len(q.Rcpts) != 1 || q.Rcpts[0] != "b@example.com" {
				t.Errorf("quarantined %+v, %v; want the message, to its recipient", q, err)
			}
		})
	}
}

// openGateway opens a gateway for a test, closed at its end.
func openGateway(t *testing.T, opts Options) *Gateway {
	t.Helper()
	if opts.QuarantineDir == "" {
		opts.QuarantineDir = t.TempDir()
	}
	g, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}
