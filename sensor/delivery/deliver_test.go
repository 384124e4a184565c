package delivery

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/internal/testwait"
)

// TestMXDelivery routes by DNS served by a test server, to smtp-sink
// instances on several loopback addresses of one port: MX preference, the
// fallback past a host that refuses connections and one that answers MAIL
// with 4xx, the A record of a domain without MX, an address literal, and
// the DNS failures that fail a delivery without a connection.
func TestMXDelivery(t *testing.T) {
	port, _ := freePort(t)
	mx1 := startSink(t, "127.0.0.2", port)
	mx2 := startSink(t, "127.0.0.3", port)
	busy := startSink(t, "127.0.0.5", port, "-r", "MAIL")
	// 127.0.0.4 has no listener: connections are refused.
	res := startDNS(t, []string{"servfail.test"},
		"pref.test. 60 IN MX 20 mx2.pref.test.",
		"pref.test. 60 IN MX 10 mx1.pref.test.",
		"mx1.pref.test. 60 IN A 127.0.0.2",
		"mx2.pref.test. 60 IN A 127.0.0.3",
		"fallback.test. 60 IN MX 5 down.fallback.test.",
		"fallback.test. 60 IN MX 10 up.fallback.test.",
		"down.fallback.test. 60 IN A 127.0.0.4",
		"up.fallback.test. 60 IN A 127.0.0.3",
		"busy.test. 60 IN MX 10 busy.busy.test.",
		"busy.test. 60 IN MX 20 up.busy.test.",
		"busy.busy.test. 60 IN A 127.0.0.5",
		"up.busy.test. 60 IN A 127.0.0.2",
		"nomx.test. 60 IN A 127.0.0.3",
		"nullmx.test. 60 IN MX 0 .",
		"nohost.test. 60 IN MX 10 missing.nohost.test.",
	)
	c := runClient(t, Options{Resolver: res}, Config{HeloName: "gw.osprey.test", Port: uint16(port)})

	for _, tc := range []struct {
		name     string
		rcpt     string
		wantHost string // "" when no host is reached
		want     RcptResult
	}{
		{"lowest preference first", "a@pref.test", "mx1.pref.test [127.0.0.2]:", RcptResult{Code: 250, Enhanced: "2.0.0", Text: "Ok"}},
		{"connection refused, next MX", "a@fallback.test", "up.fallback.test [127.0.0.3]:", RcptResult{Code: 250, Enhanced: "2.0.0", Text: "Ok"}},
		{"4xx to MAIL, next MX", "a@busy.test", "up.busy.test [127.0.0.2]:", RcptResult{Code: 250, Enhanced: "2.0.0", Text: "Ok"}},
		{"no MX, the domain's A", "a@nomx.test", "nomx.test [127.0.0.3]:", RcptResult{Code: 250, Enhanced: "2.0.0", Text: "Ok"}},
		{"address literal", "a@[127.0.0.2]", "[127.0.0.2] [127.0.0.2]:", RcptResult{Code: 250, Enhanced: "2.0.0", Text: "Ok"}},
		{"null MX", "a@nullmx.test", "", RcptResult{Code: 556, Enhanced: "5.1.10", Text: "Domain nullmx.test does not accept mail (null MX)"}},
		{"NXDOMAIN", "a@nx.test", "", RcptResult{Code: 550, Enhanced: "5.1.2", Text: "Host or domain name not found: nx.test: no MX and no A/AAAA records"}},
		{"MX host not found", "a@nohost.test", "", RcptResult{Code: 550, Enhanced: "5.4.4", Text: "Host or domain name not found: missing.nohost.test type=A/AAAA"}},
		{"bad recipient domain", "a@bad_domain..test", "", RcptResult{Code: 553, Enhanced: "5.1.3"}},
		{"line break in recipient", "a>\r\nRCPT TO:<b@pref.test", "", RcptResult{Code: 553, Enhanced: "5.1.3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Deliver(t.Context(), request(tc.name, tc.rcpt))
			if !strings.HasPrefix(r.Host, tc.wantHost) || (tc.wantHost == "" && r.Host != "") {
				t.Errorf("Host %q, want %q...", r.Host, tc.wantHost)
			}
			if len(r.Rcpts) != 1 {
				t.Fatalf("%d results, want 1", len(r.Rcpts))
			}
			got := r.Rcpts[0]
			want := tc.want
			want.Rcpt = tc.rcpt
			if tc.want.Text == "" {
				want.Text = got.Text
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("DNS temporary failure", func(t *testing.T) {
		r := c.Deliver(t.Context(), request("servfail", "a@servfail.test"))
		if got := r.Rcpts[0]; got.Code != 451 || got.Enhanced != "4.4.3" || got.Permanent() {
			t.Errorf("got %v, want 451 4.4.3", got)
		}
	})

	t.Run("line break in the sender", func(t *testing.T) {
		req := request("crlf", "a@pref.test")
		req.From = "a>\r\nRCPT TO:<b@pref.test"
		r := c.Deliver(t.Context(), req)
		if got := r.Rcpts[0]; got.Code != 553 || got.Enhanced != "5.1.7" || r.Host != "" {
			t.Errorf("got %v from %q, want 553 5.1.7 without a connection", got, r.Host)
		}
	})

	// Every message the table sent reached a sink, and the sink that
	// answers MAIL with 4xx took none.
	testwait.For(t, "the sinks to count the messages", func() bool {
		_, _, m1 := mx1.counters()
		_, _, m2 := mx2.counters()
		return m1 == 3 && m2 == 2
	})
	if _, _, m := busy.counters(); m != 0 {
		t.Errorf("the busy sink took %d messages, want 0", m)
	}
	if got := busy.commands("MAIL"); len(got) != 1 {
		t.Errorf("the busy sink got MAIL %d times, want once: %q", len(got), got)
	}
}

// TestEqualPreferenceShared: MX hosts of equal preference share the load.
func TestEqualPreferenceShared(t *testing.T) {
	port, _ := freePort(t)
	a := startSink(t, "127.0.0.2", port)
	b := startSink(t, "127.0.0.3", port)
	res := startDNS(t, nil,
		"eq.test. 60 IN MX 10 a.eq.test.",
		"eq.test. 60 IN MX 10 b.eq.test.",
		"a.eq.test. 60 IN A 127.0.0.2",
		"b.eq.test. 60 IN A 127.0.0.3",
	)
	// Without the cache each delivery picks its host afresh.
	c := runClient(t, Options{Resolver: res, CacheSize: -1}, Config{HeloName: "gw.osprey.test", Port: uint16(port)})
	hosts := map[string]int{}
	for i := 0; len(hosts) < 2; i++ {
		if i == 200 {
			t.Fatalf("200 deliveries went to %v only", hosts)
		}
		r := c.Deliver(t.Context(), request("eq", "x@eq.test"))
		if !r.Rcpts[0].OK() {
			t.Fatalf("delivery %d: %v", i, r.Rcpts[0])
		}
		hosts[r.HostName()]++
	}
	testwait.For(t, "both sinks to have messages", func() bool {
		_, _, ma := a.counters()
		_, _, mb := b.counters()
		return ma > 0 && mb > 0 && ma+mb == hosts["a.eq.test"]+hosts["b.eq.test"]
	})
}

// TestConfiguredRoutes sends a route's domain to its hosts by preference
// (falling back past a dead one), everything else to the default relay
// hosts, and resolves a route host by MX when told to.
func TestConfiguredRoutes(t *testing.T) {
	port, _ := freePort(t)
	internal := startSink(t, "127.0.0.2", port)
	relay := startSink(t, "127.0.0.3", port)
	res := startDNS(t, nil,
		"relay.isp.test. 60 IN MX 10 smtp.isp.test.",
		"smtp.isp.test. 60 IN A 127.0.0.3",
		"mailhub.corp.test. 60 IN A 127.0.0.2",
	)
	c := runClient(t, Options{Resolver: res}, Config{
		HeloName: "gw.osprey.test",
		Port:     uint16(port),
		Routes: []Route{
			{Domain: "corp.test", Hosts: []Host{
				{Host: "mailhub.corp.test", Preference: 20},
				{Host: "127.0.0.4", Preference: 10}, // refuses connections
			}},
			{Domain: "mx.corp.test"}, // MX lookup: no such domain here
		},
		Default: Route{Hosts: []Host{{Host: "relay.isp.test", MX: true}}},
	})

	for _, tc := range []struct {
		rcpt, dest, host string
		ok               bool
	}{
		{"a@corp.test", "route:corp.test", "mailhub.corp.test [127.0.0.2]:", true},
		{"a@sales.corp.test", "route:corp.test", "mailhub.corp.test [127.0.0.2]:", true},
		{"a@elsewhere.test", "relay", "smtp.isp.test [127.0.0.3]:", true},
		{"a@mx.corp.test", "mx.corp.test", "", false},
	} {
		if got := c.Destination(tc.rcpt); got != tc.dest {
			t.Errorf("Destination(%s) = %q, want %q", tc.rcpt, got, tc.dest)
		}
		r := c.Deliver(t.Context(), request("route", tc.rcpt))
		if !strings.HasPrefix(r.Host, tc.host) || r.Rcpts[0].OK() != tc.ok {
			t.Errorf("%s: host %q, %v; want host %q..., ok %t", tc.rcpt, r.Host, r.Rcpts[0], tc.host, tc.ok)
		}
	}
	testwait.For(t, "the sinks to count the messages", func() bool {
		_, _, mi := internal.counters()
		_, _, mr := relay.counters()
		return mi == 2 && mr == 1
	})
}

// TestRecipientReplies: RCPT answered 4xx or 5xx fail their recipients in
// that class, without DATA when no recipient is left; DATA refused or the
// final dot refused fail the recipients accepted at RCPT.
func TestRecipientReplies(t *testing.T) {
	port, _ := freePort(t)
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		enhanced string
		data     bool // whether DATA must have been sent
	}{
		{"RCPT 4xx", []string{"-r", "RCPT"}, 450, "4.3.0", false},
		{"RCPT 5xx", []string{"-f", "RCPT"}, 500, "5.3.0", false},
		{"DATA 4xx", []string{"-r", "DATA"}, 450, "4.3.0", true},
		{"end of data 5xx", []string{"-f", "."}, 500, "5.3.0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSink(t, "127.0.0.2", port, tc.args...)
			c := runClient(t, Options{}, Config{HeloName: "gw.osprey.test", Port: uint16(port)})
			r := c.Deliver(t.Context(), request(tc.name, "a@[127.0.0.2]", "b@[127.0.0.2]"))
			for i, got := range r.Rcpts {
				if got.Code != tc.code || got.Enhanced != tc.enhanced || got.Text != "Error: command failed" {
					t.Errorf("recipient %d: got %v, want %d %s Error: command failed", i, got, tc.code, tc.enhanced)
				}
			}
			if got := len(s.commands("DATA")) > 0; got != tc.data {
				t.Errorf("DATA sent: %t, want %t (commands %q)", got, tc.data, s.commands("MAIL", "RCPT", "DATA", "RSET"))
			}
			s.stop()
		})
	}
}

// TestConnectionReuse: a burst to one next hop goes over one connection,
// RSET after a transaction that did not finish; a cached session that
// died meanwhile is replaced transparently.
func TestConnectionReuse(t *testing.T) {
	port, _ := freePort(t)
	s := startSink(t, "127.0.0.2", port)
	c := runClient(t, Options{}, Config{HeloName: "gw.osprey.test", Port: uint16(port)})
	const n = 20
	for i := range n {
		r := c.Deliver(t.Context(), request("burst", "a@[127.0.0.2]"))
		if !r.Rcpts[0].OK() {
			t.Fatalf("message %d: %v", i, r.Rcpts[0])
		}
	}
	// The first connection was startSink's probe.
	if conns, ehlos := s.commands("connect"), s.commands("EHLO"); len(conns) != 2 || len(ehlos) != 1 {
		t.Errorf("%d messages made connections %q and EHLOs %q, want one of each", n, conns[1:], ehlos)
	}
	if got := c.cache.size(); got != 1 {
		t.Errorf("%d idle sessions, want 1", got)
	}

	// The next hop restarts: the cached session is dead, the delivery
	// goes through on a new one.
	s.stop()
	s2 := startSink(t, "127.0.0.2", port)
	r := c.Deliver(t.Context(), request("after restart", "a@[127.0.0.2]"))
	if !r.Rcpts[0].OK() {
		t.Fatalf("after the restart: %v", r.Rcpts[0])
	}
	testwait.For(t, "the new sink to count the message", func() bool { _, _, m := s2.counters(); return m == 1 })
}

// TestRSETBeforeReuse: a session whose transaction ended without DATA (every
// recipient refused) is reset before the next message uses it. After RSET
// go-smtp's Client says EHLO again; it declares BODY=8BITMIME whenever the
// next hop offers 8BITMIME (smtp-sink does).
func TestRSETBeforeReuse(t *testing.T) {
	port, _ := freePort(t)
	s := startSink(t, "127.0.0.2", port, "-f", "RCPT")
	c := runClient(t, Options{}, Config{HeloName: "gw.osprey.test", Port: uint16(port)})
	for range 3 {
		if r := c.Deliver(t.Context(), request("rset", "a@[127.0.0.2]")); !r.Rcpts[0].Permanent() {
			t.Fatalf("got %v, want a 5xx", r.Rcpts[0])
		}
	}
	want := []string{
		"EHLO gw.osprey.test", "MAIL FROM:<sender@origin.test> BODY=8BITMIME", "RCPT TO:<a@[127.0.0.2]>", "RSET",
		"EHLO gw.osprey.test", "MAIL FROM:<sender@origin.test> BODY=8BITMIME", "RCPT TO:<a@[127.0.0.2]>", "RSET",
		"EHLO gw.osprey.test", "MAIL FROM:<sender@origin.test> BODY=8BITMIME", "RCPT TO:<a@[127.0.0.2]>", "RSET"}
	if diff := cmp.Diff(want, s.commands("EHLO", "MAIL", "RCPT", "DATA", "RSET")); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
}

// TestHangingHost: a host that accepts the connection and never greets
// costs the command timeout, then the next host is tried; cancelling the
// delivery's context ends it at once.
func TestHangingHost(t *testing.T) {
	port, hang := freePort(t) // 127.0.0.1: accepts, never answers
	s := startSink(t, "127.0.0.3", port)
	res := startDNS(t, nil,
		"hang.test. 60 IN MX 10 hang.hang.test.",
		"hang.test. 60 IN MX 20 ok.hang.test.",
		"hang.hang.test. 60 IN A 127.0.0.1",
		"ok.hang.test. 60 IN A 127.0.0.3",
	)
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			conn, err := hang.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- conn
		}
	}()
	t.Cleanup(func() {
		hang.Close()
		for conn := range accepted {
			conn.Close()
		}
	})

	c := runClient(t, Options{Resolver: res}, Config{HeloName: "gw.osprey.test", Port: uint16(port), CommandTimeout: 200 * time.Millisecond})
	r := c.Deliver(t.Context(), request("hang", "a@hang.test"))
	if !r.Rcpts[0].OK() || r.HostName() != "ok.hang.test" {
		t.Errorf("got %v from %q, want delivered by ok.hang.test", r.Rcpts[0], r.Host)
	}
	testwait.For(t, "the sink to count the message", func() bool { _, _, m := s.counters(); return m == 1 })
	(<-accepted).Close() // the connection that timed out

	c2 := runClient(t, Options{Resolver: res}, Config{HeloName: "gw.osprey.test", Port: uint16(port)})
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-accepted // the delivery is connected and waits for the greeting
		cancel()
	}()
	r = c2.Deliver(ctx, request("cancel", "a@[127.0.0.1]"))
	if got := r.Rcpts[0]; got.Code != 451 || got.Enhanced != "4.4.2" || !strings.Contains(got.Text, "interrupted") {
		t.Errorf("got %v, want 451 4.4.2 interrupted", got)
	}
}
