package rspamd_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ospreysec/osprey/central/scan/rspamd"
	"github.com/ospreysec/osprey/central/scan/scantest"
	"github.com/ospreysec/osprey/internal/rspamdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// newClient returns a client of url, closed when t ends.
func newClient(t *testing.T, o rspamd.Options) *rspamd.Client {
	t.Helper()
	c, err := rspamd.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func symbolNames(res *ospreyv1.SpamResult) []string {
	var names []string
	for _, s := range res.GetSymbols() {
		names = append(names, s.GetName())
	}
	return names
}

var (
	clean = scantest.Message(scantest.Headers("alice@example.com", "bob@example.org", "lunch"),
		scantest.Text("Shall we meet for lunch on Thursday at noon?\r\n"))
	gtube = scantest.Message(scantest.Headers("mallory@example.net", "bob@example.org", "offer"),
		scantest.Text("Buy now.\r\n"+scantest.GTUBE+"\r\n"))
)

// TestCheck asks a real rspamd about a clean message and GTUBE, with the
// envelope as rspamd's request headers.
func TestCheck(t *testing.T) {
	srv := rspamdtest.New(t, rspamdtest.Options{})
	c := newClient(t, rspamd.Options{URL: srv.URL})
	// A client in a private network, which rspamd counts as local: it
	// leaves out the checks of the client's DNS names, whose results
	// depend on the machine's resolver.
	env := rspamd.Envelope{
		From: "alice@example.com", Rcpt: []string{"bob@example.org", "carol@example.org"},
		IP: "10.1.2.3:40000", Helo: "mail.example.com", QueueID: "0123456789abcdef",
		TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256",
	}
	// What rspamd says only when it got the envelope: its sender is the
	// From header's, and the To header's recipients are among its own.
	envelopeSymbols := []string{"FROM_EQ_ENVFROM", "TO_MATCH_ENVRCPT_ALL"}
	tests := []struct {
		name        string
		msg         []byte
		env         rspamd.Envelope
		wantAction  string
		spam        bool     // score at or above the required score
		wantSymbols []string // among the symbols
		notSymbols  []string // not among them
	}{
		{"clean", clean, env, "no action", false, envelopeSymbols, nil},
		{"gtube", gtube, env, "reject", true, []string{"GTUBE"}, nil},
		{"no envelope", clean, rspamd.Envelope{}, "", false, nil, envelopeSymbols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Check(t.Context(), bytes.NewReader(tt.msg), int64(len(tt.msg)), tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantAction != "" && res.GetAction() != tt.wantAction {
				t.Errorf("action: got %q, want %q (score %v, symbols %v)", res.GetAction(), tt.wantAction, res.GetScore(), symbolNames(res))
			}
			if res.GetRequiredScore() <= 0 {
				t.Errorf("required score: got %v, want rspamd's reject threshold", res.GetRequiredScore())
			}
			if spam := res.GetScore() >= res.GetRequiredScore(); spam != tt.spam {
				t.Errorf("score %v against required %v: got spam %v, want %v", res.GetScore(), res.GetRequiredScore(), spam, tt.spam)
			}
			names := symbolNames(res)
			for _, want := range tt.wantSymbols {
				if !slices.Contains(names, want) {
					t.Errorf("symbols: got %v, want %s among them", names, want)
				}
			}
			for _, not := range tt.notSymbols {
				if slices.Contains(names, not) {
					t.Errorf("symbols: got %v, want no %s", names, not)
				}
			}
			if len(names) == 0 {
				t.Error("no symbols")
			}
		})
	}
}

// TestCheckBounds: the symbols kept and the size sent.
func TestCheckBounds(t *testing.T) {
	srv := rspamdtest.New(t, rspamdtest.Options{})
	t.Run("symbols", func(t *testing.T) {
		all, err := newClient(t, rspamd.Options{URL: srv.URL}).Check(t.Context(), bytes.NewReader(clean), int64(len(clean)), rspamd.Envelope{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all.GetSymbols()) <= 2 {
			t.Fatalf("rspamd gave %d symbols; the test needs more than 2", len(all.GetSymbols()))
		}
		res, err := newClient(t, rspamd.Options{URL: srv.URL, MaxSymbols: 2}).Check(t.Context(), bytes.NewReader(clean), int64(len(clean)), rspamd.Envelope{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := symbolNames(res), symbolNames(all)[:2]; !slices.Equal(got, want) {
			t.Errorf("got symbols %v, want the 2 of the largest scores %v (of %v)", got, want, all.GetSymbols())
		}
		if res.GetScore() != all.GetScore() {
			t.Errorf("score: got %v, want %v whatever symbols are kept", res.GetScore(), all.GetScore())
		}
	})
	t.Run("too large", func(t *testing.T) {
		c := newClient(t, rspamd.Options{URL: srv.URL, MaxSize: 100})
		big := append(bytes.Clone(clean), bytes.Repeat([]byte("x"), 100)...)
		var dialled atomic.Bool
		ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{GetConn: func(string) { dialled.Store(true) }})
		if _, err := c.Check(ctx, bytes.NewReader(big), int64(len(big)), rspamd.Envelope{}); !errors.Is(err, rspamd.ErrTooLarge) {
			t.Errorf("got %v, want ErrTooLarge", err)
		}
		if dialled.Load() {
			t.Error("the message was sent all the same")
		}
	})
}

// TestCheckRspamdDown: an rspamd that is not there, or hangs, fails the
// check within the client's time bound.
func TestCheckRspamdDown(t *testing.T) {
	srv := rspamdtest.New(t, rspamdtest.Options{})
	const timeout = 500 * time.Millisecond
	t.Run("hung", func(t *testing.T) {
		c := newClient(t, rspamd.Options{URL: srv.URL, Timeout: timeout})
		resume := srv.Stall(t)
		defer resume()
		start := time.Now()
		_, err := c.Check(t.Context(), bytes.NewReader(clean), int64(len(clean)), rspamd.Envelope{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want a deadline exceeded", err)
		}
		if took := time.Since(start); took > timeout+2*time.Second {
			t.Errorf("took %v, want about %v", took, timeout)
		}
		if err := c.Ping(t.Context()); err == nil {
			t.Error("Ping of a hung rspamd: got nil, want an error")
		}
		resume()
		if err := c.Ping(t.Context()); err != nil {
			t.Errorf("Ping once it goes on: %v", err)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		c := newClient(t, rspamd.Options{URL: srv.URL, Timeout: timeout})
		if err := c.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		_, err := c.Check(t.Context(), bytes.NewReader(clean), int64(len(clean)), rspamd.Envelope{})
		var op *net.OpError
		if !errors.As(err, &op) {
			t.Errorf("got %v, want a refused connection", err)
		}
		if err := c.Ping(t.Context()); err == nil {
			t.Error("Ping of a stopped rspamd: got nil, want an error")
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    rspamd.Options
		want []string // parts of the error, "" for none
	}{
		{"ok", rspamd.Options{URL: "http://127.0.0.1:11333"}, nil},
		{"https with a path", rspamd.Options{URL: "https://rspamd.example/scan/", Timeout: time.Second, MaxSize: 1, MaxSymbols: 1, MaxConns: 1}, nil},
		{"empty", rspamd.Options{}, []string{"rspamd.url: empty"}},
		{"scheme", rspamd.Options{URL: "tcp://127.0.0.1:11333"}, []string{"want http:// or https://"}},
		{"no host", rspamd.Options{URL: "http:///checkv2"}, []string{"no host"}},
		{"credentials", rspamd.Options{URL: "http://u:p@127.0.0.1:11333"}, []string{"no user or password"}},
		{"query", rspamd.Options{URL: "http://127.0.0.1:11333/?x=1"}, []string{"no query or fragment"}},
		{"every number", rspamd.Options{URL: "http://127.0.0.1", Timeout: -1, MaxSize: -1, MaxSymbols: -1, MaxConns: -1},
			[]string{"rspamd.timeout", "rspamd.max_size", "rspamd.max_symbols", "rspamd.max_conns"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil, want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to say %q", err, w)
				}
			}
		})
	}
}
