package agent

import (
	"crypto/x509"
	"log/slog"
	"testing"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestRenewDue(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	certs := []*x509.Certificate{
		{Raw: []byte("one"), NotBefore: start, NotAfter: start.Add(100 * time.Hour)},
		{Raw: []byte("two"), NotBefore: start, NotAfter: start.Add(100 * time.Hour)},
	}
	tests := []struct {
		name          string
		from, until   int
		earliest, end time.Duration // the window, from NotBefore
	}{
		{"default window", defaultRenewFrom, defaultRenewUntil, 60 * time.Hour, 75 * time.Hour},
		{"a point", 10, 10, 10 * time.Hour, 10 * time.Hour},
		{"wide", 10, 90, 10 * time.Hour, 90 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range certs {
				due := renewDue(c, tt.from, tt.until)
				if got := due.Sub(c.NotBefore); got < tt.earliest || got > tt.end {
					t.Errorf("certificate %q: due %v after it starts, want %v to %v", c.Raw, got, tt.earliest, tt.end)
				}
				if again := renewDue(c, tt.from, tt.until); !again.Equal(due) {
					t.Errorf("certificate %q: due %v, then %v; want the same point each time", c.Raw, due, again)
				}
			}
		})
	}
	if a, b := renewDue(certs[0], 10, 90), renewDue(certs[1], 10, 90); a.Equal(b) {
		t.Errorf("two certificates due at the same instant %v: want them spread", a)
	}
}

func TestTakePolicy(t *testing.T) {
	a := &Agent{log: slog.New(slog.DiscardHandler)}
	tests := []struct {
		name        string
		from, until uint32
		changed     bool
		want        [2]int
	}{
		{"the central's window", 30, 40, true, [2]int{30, 40}},
		{"the same again", 30, 40, false, [2]int{30, 40}},
		{"closes before it opens", 50, 40, false, [2]int{30, 40}},
		{"at the end of the lifetime", 50, 100, false, [2]int{30, 40}},
		{"empty", 0, 0, false, [2]int{30, 40}},
		{"another", 60, 75, true, [2]int{60, 75}},
	}
	for _, tt := range tests {
		changed := a.takePolicy(&ospreyv1.CertificatePolicy{RenewFromPercent: tt.from, RenewUntilPercent: tt.until})
		if got := [2]int{a.renewFrom, a.renewUntil}; changed != tt.changed || got != tt.want {
			t.Errorf("%s: got %v, window %v; want %v, %v", tt.name, changed, got, tt.changed, tt.want)
		}
	}
}
