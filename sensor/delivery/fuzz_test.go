package delivery

import (
	"bufio"
	"strings"
	"testing"
)

// FuzzReadReply reads what a hostile next hop may send: a reply is either
// an error or a code of 200-599 with an enhanced status of its class and
// text without control characters, and reading never takes more than the
// bounds allow.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"250 2.0.0 Ok\r\n",
		"250-smtp.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 STARTTLS\r\n",
		"550-5.1.1 first\r\n550-5.1.1 second\r\n550 5.1.1 third\r\n",
		"451 4.3.0\r\n",
		"250 \r\n",
		"250\r\n",
		"220-x\r\n221 y\r\n",
		"554 5.7.1 bad\x00\x1b[31m\r\n",
		"999 no\r\n",
		"25O ok\r\n",
		"250-a\n250 b\n",
		"550 4.1.1 wrong class\r\n",
		"550 5.01.001 zeros\r\n",
		"250-" + strings.Repeat("x", 5000) + "\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		br := bufio.NewReaderSize(strings.NewReader(s), maxReplyLine)
		r, err := readReply(br)
		if err != nil {
			return
		}
		if r.code < 200 || r.code > 599 {
			t.Fatalf("code %d", r.code)
		}
		if !strings.HasPrefix(r.enhanced, string(rune('0'+r.code/100))+".") || strings.Count(r.enhanced, ".") != 2 {
			t.Fatalf("enhanced %q for code %d", r.enhanced, r.code)
		}
		if strings.ContainsFunc(r.text, func(c rune) bool { return c < ' ' || c == 0x7f }) {
			t.Fatalf("control character in %q", r.text)
		}
		if len(r.lines) > maxReplyLines {
			t.Fatalf("%d lines", len(r.lines))
		}
		if rc := (RcptResult{Code: r.code}); rc.OK() != (r.code < 300) {
			t.Fatalf("class of %d", r.code)
		}
	})
}

// FuzzParseRcptDomain parses recipients as the queue hands them over: a
// domain is normalised and idempotent, a literal is a valid address, and
// Destination never panics on either.
func FuzzParseRcptDomain(f *testing.F) {
	for _, s := range []string{
		"a@example.com", "a@Example.COM.", "a@[192.0.2.1]", "a@[IPv6:2001:db8::1]", "a@[ipv6:::1]",
		"a@[2001:db8::1]", "a@[IPv6:192.0.2.1]", "a@[192.0.2.1", "a@bücher.example", "\"a@b\"@c.example",
		"postmaster", "@", "a@", "a@[]", "a@[IPv6:::ffff:1.2.3.4]", "a@[fe80::1%eth0]",
	} {
		f.Add(s)
	}
	c := New(Options{Hostname: func() (string, error) { return "gw.osprey.test", nil }})
	if err := c.Apply(Config{Routes: []Route{{Domain: "example.com", Hosts: []Host{{Host: "10.0.0.1"}}}}}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := c.Destination(s)
		rd, err := parseRcptDomain(s)
		if err != nil {
			if d != "invalid:"+s {
				t.Fatalf("Destination %q for an invalid recipient", d)
			}
			return
		}
		switch {
		case rd.literal.IsValid():
			if rd.name != "" || rd.literal.Zone() != "" || rd.literal.Is4In6() {
				t.Fatalf("literal %v with name %q", rd.literal, rd.name)
			}
		default:
			again, err := parseRcptDomain("x@" + rd.name)
			if err != nil || again.name != rd.name {
				t.Fatalf("%q normalised to %q, which gives %q, %v", s, rd.name, again.name, err)
			}
		}
		if d == "" || strings.HasPrefix(d, "invalid:") {
			t.Fatalf("Destination %q for a valid recipient", d)
		}
	})
}
