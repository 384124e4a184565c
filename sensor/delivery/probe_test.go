package delivery

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestProbe asks smtp-sink instances about recipients the way recipient
// verification does: the next hop's reply to RCPT in each class, the
// fallback past hosts that fail before RCPT (no connection, MAIL FROM:<>
// refused), and the failures that never reach a host. Every probe says
// MAIL FROM:<> and RCPT, then RSET and QUIT, and never DATA.
func TestProbe(t *testing.T) {
	port, _ := freePort(t)
	ok := startSink(t, "127.0.0.2", port)
	hard := startSink(t, "127.0.0.3", port, "-f", "RCPT")
	soft := startSink(t, "127.0.0.5", port, "-r", "RCPT")
	noNull := startSink(t, "127.0.0.6", port, "-f", "MAIL")
	// 127.0.0.4 has no listener: connections are refused.
	res := startDNS(t, nil,
		"ok.test. 60 IN MX 10 mx.ok.test.",
		"mx.ok.test. 60 IN A 127.0.0.2",
		"hard.test. 60 IN MX 10 mx.hard.test.",
		"mx.hard.test. 60 IN A 127.0.0.3",
		"soft.test. 60 IN MX 10 mx.soft.test.",
		"mx.soft.test. 60 IN A 127.0.0.5",
		"fallback.test. 60 IN MX 5 down.fallback.test.",
		"fallback.test. 60 IN MX 7 nonull.fallback.test.",
		"fallback.test. 60 IN MX 10 up.fallback.test.",
		"down.fallback.test. 60 IN A 127.0.0.4",
		"nonull.fallback.test. 60 IN A 127.0.0.6",
		"up.fallback.test. 60 IN A 127.0.0.2",
		"down.test. 60 IN MX 10 mx.down.test.",
		"mx.down.test. 60 IN A 127.0.0.4",
	)
	c := runClient(t, Options{Resolver: res}, Config{HeloName: "gw.osprey.test", Port: uint16(port)})

	for _, tc := range []struct {
		name   string
		rcpt   string
		atRcpt bool
		code   int
		status string
		host   string
	}{
		{"accepted", "known@ok.test", true, 250, "2.1.5", "mx.ok.test [127.0.0.2]:"},
		{"refused", "unknown@hard.test", true, 500, "5.3.0", "mx.hard.test [127.0.0.3]:"},
		{"deferred", "busy@soft.test", true, 450, "4.3.0", "mx.soft.test [127.0.0.5]:"},
		{"past a host down and one refusing the null sender", "known@fallback.test", true, 250, "2.1.5", "up.fallback.test [127.0.0.2]:"},
		{"no host answers", "a@down.test", false, 451, "4.4.1", ""},
		{"no such domain", "a@nx.test", false, 550, "5.1.2", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Probe(t.Context(), tc.rcpt, nil)
			if r.AtRcpt != tc.atRcpt || r.Reply.Code != tc.code || r.Reply.Enhanced != tc.status || r.Reply.Rcpt != tc.rcpt {
				t.Errorf("Probe(%s) = at RCPT %v, %v; want at RCPT %v, %d %s", tc.rcpt, r.AtRcpt, r.Reply, tc.atRcpt, tc.code, tc.status)
			}
			if !strings.HasPrefix(r.Host, tc.host) || (tc.host == "") != (r.Host == "") {
				t.Errorf("host %q, want %q...", r.Host, tc.host)
			}
		})
	}

	want := map[*sink][]string{
		ok:     {"MAIL FROM:<> BODY=8BITMIME", "RCPT TO:<known@ok.test>", "RSET", "QUIT", "MAIL FROM:<> BODY=8BITMIME", "RCPT TO:<known@fallback.test>", "RSET", "QUIT"},
		hard:   {"MAIL FROM:<> BODY=8BITMIME", "RCPT TO:<unknown@hard.test>", "RSET", "QUIT"},
		soft:   {"MAIL FROM:<> BODY=8BITMIME", "RCPT TO:<busy@soft.test>", "RSET", "QUIT"},
		noNull: {"MAIL FROM:<> BODY=8BITMIME", "QUIT"},
	}
	for s, cmds := range want {
		if diff := cmp.Diff(cmds, s.commands("MAIL", "RCPT", "RSET", "QUIT", "DATA")); diff != "" {
			t.Errorf("commands to %s (-want +got):\n%s", s.addr, diff)
		}
	}
}

// TestProbeGate checks that every connection of a probe waits at the gate
// with the address it goes to, and that a probe the gate turns away ends
// with a temporary failure and no connection.
func TestProbeGate(t *testing.T) {
	port, _ := freePort(t)
	s := startSink(t, "127.0.0.2", port)
	res := startDNS(t, nil,
		"gate.test. 60 IN MX 5 down.gate.test.",
		"gate.test. 60 IN MX 10 up.gate.test.",
		"down.gate.test. 60 IN A 127.0.0.4",
		"up.gate.test. 60 IN A 127.0.0.2",
	)
	c := runClient(t, Options{Resolver: res}, Config{HeloName: "gw.osprey.test", Port: uint16(port)})

	var mu sync.Mutex
	var asked, released []string
	gate := func(_ context.Context, addr string) (func(), error) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, addr)
		return func() {
			mu.Lock()
			defer mu.Unlock()
			released = append(released, addr)
		}, nil
	}
	if r := c.Probe(t.Context(), "a@gate.test", gate); !r.AtRcpt || r.Reply.Code != 250 {
		t.Fatalf("Probe = %+v, want 250 at RCPT", r)
	}
	wantAddrs := []string{"127.0.0.4:" + strconv.Itoa(port), "127.0.0.2:" + strconv.Itoa(port)}
	if diff := cmp.Diff(wantAddrs, asked); diff != "" {
		t.Errorf("gate asked for (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantAddrs, released, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("gate released (-want +got):\n%s", diff)
	}

	closed := func(context.Context, string) (func(), error) { return nil, errors.New("waited too long") }
	before := len(s.commands("MAIL"))
	r := c.Probe(t.Context(), "b@gate.test", closed)
	if r.AtRcpt || r.Reply.Code != 451 || r.Reply.Enhanced != "4.4.5" || !strings.Contains(r.Reply.Text, "waited too long") {
		t.Errorf("Probe through a closed gate = %+v, want 451 4.4.5", r)
	}
	if got := len(s.commands("MAIL")); got != before {
		t.Errorf("a probe the gate turned away sent MAIL")
	}
	if slices.Contains(s.commands("RCPT"), "RCPT TO:<b@gate.test>") {
		t.Error("a probe the gate turned away reached RCPT")
	}
}
