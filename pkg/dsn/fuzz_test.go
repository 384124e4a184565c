package dsn

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzBuild builds notices from hostile values (the recipient, the next
// hop's name and reply, the original headers all come from the network) and
// checks that every notice parses, reports every recipient in a group of
// exactly the fields it should have, and has no field a value injected.
func FuzzBuild(f *testing.F) {
	f.Add("bob@example.com", "mx.example.com", "550 5.1.1 unknown user", "Subject: hi\r\n\r\nbody", "5.1.1", false)
	f.Add("jörg@bücher.example", "mx\r\nX-A: 1", "451-4.3.0 a\n451 4.3.0 b", "X: y\nZ: w", "4.3.0", true)
	f.Add("a@b\r\nBcc: c@d", "", strings.Repeat("x", 3000), "", "4.4.1", false)
	f.Add("a@b", "h", "\x00\x1b\r\r\n\t \xff\xfe", "\xff: \r\n", "5.0.0", true)
	f.Fuzz(func(t *testing.T, rcpt, remote, diag, orig, status string, delayed bool) {
		action := Failed
		if delayed {
			action = Delayed
		}
		r := Report{
			ReportingMTA: "gw.example.net",
			To:           "alice@example.org",
			Now:          time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC),
			Original:     []byte(orig),
			Recipients: []Recipient{
				{Rcpt: rcpt, Action: action, Status: status, RemoteMTA: remote, Diagnostic: diag, LastAttempt: time.Unix(1e9, 0), WillRetryUntil: time.Unix(2e9, 0)},
				{Rcpt: "second@example.com", Action: Failed, Status: "5.1.1"},
			},
		}
		b, err := Build(r)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		n := parse(t, b)
		if len(n.groups) != 3 {
			t.Fatalf("%d field groups, want 3:\n%s", len(n.groups), b)
		}
		allowed := map[string]bool{"Final-Recipient": true, "Action": true, "Status": true, "Remote-Mta": true,
			"Diagnostic-Code": true, "Last-Attempt-Date": true, "Will-Retry-Until": true}
		for _, k := range n.order[1] {
			if !allowed[k] {
				t.Fatalf("unexpected field %q in a recipient group:\n%s", k, b)
			}
		}
		if got := n.groups[1]["Action"]; got != string(action) {
			t.Fatalf("Action %q, want %q", got, action)
		}
		if got := n.groups[2]["Final-Recipient"]; got != "rfc822; second@example.com" {
			t.Fatalf("second recipient %q", got)
		}
		for _, line := range bytes.Split(b, []byte("\r\n")) {
			if len(line) > maxLine {
				t.Fatalf("line of %d bytes", len(line))
			}
		}
	})
}
