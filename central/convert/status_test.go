package convert

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/api"
)

func TestProblems(t *testing.T) {
	const refused = "dial tcp 127.0.0.1:1: connect: connection refused"
	tests := []struct {
		name  string
		texts []string
		errs  []string
		want  []api.Problem
	}{
		{name: "none"},
		{
			name: "levels by prefix and by the failing parts' errors, most urgent first",
			texts: []string{
				"pop3 j@mail:110: unique ids are unusable (UIDL refused); messages are deduplicated by content hash (SHA-256)",
				"pop3 j@mail:110: " + refused + " (3 failures in a row)",
				"RISK: pop3 j@mail:110: TLS is off: the password and the mail cross the network in the clear",
				"WARNING: pop3 j@mail:110: the certificate changed",
				"ALERT: pop3 j@mail:110: polling has failed for 1h0m0s (since 2026-01-01T00:00:00Z): " + refused,
			},
			errs: []string{"", refused},
			want: []api.Problem{
				{Level: api.ProblemAlert, Text: "ALERT: pop3 j@mail:110: polling has failed for 1h0m0s (since 2026-01-01T00:00:00Z): " + refused},
				{Level: api.ProblemRisk, Text: "RISK: pop3 j@mail:110: TLS is off: the password and the mail cross the network in the clear"},
				{Level: api.ProblemWarning, Text: "WARNING: pop3 j@mail:110: the certificate changed"},
				{Level: api.ProblemError, Text: "pop3 j@mail:110: " + refused + " (3 failures in a row)"},
				{Level: api.ProblemNote, Text: "pop3 j@mail:110: unique ids are unusable (UIDL refused); messages are deduplicated by content hash (SHA-256)"},
			},
		},
		{
			name:  "an error that no part fails with now is a note",
			texts: []string{"pop3 j@mail:110: waiting for the mailbox lock: another node polls it"},
			want:  []api.Problem{{Level: api.ProblemNote, Text: "pop3 j@mail:110: waiting for the mailbox lock: another node polls it"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Problems(tt.texts, tt.errs...)); diff != "" {
				t.Errorf("Problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	for _, tt := range []struct {
		n    uint64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {256 << 20, "256.0 MiB"}, {3 << 30, "3.0 GiB"}} {
		if got := FormatBytes(tt.n); got != tt.want {
			t.Errorf("FormatBytes(%d): got %q, want %q", tt.n, got, tt.want)
		}
	}
}
