package delivery

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

// FuzzParseReply turns what a hostile next hop may send, as go-smtp's
// Client hands it over (a code of three digits, the lines of the text joined
// by "\n", an enhanced status taken off a refusal's first line), into a
// result: an enhanced status of the code's class and one line of text
// without control characters; a refusal is only a 4xx or 5xx.
func FuzzParseReply(f *testing.F) {
	for _, s := range []struct {
		code, e0, e1, e2 int
		msg              string
	}{
		{250, 0, 0, 0, "2.0.0 Ok: queued as 4ZxK"},
		{250, 0, 0, 0, "smtp.example\nPIPELINING\nSIZE 1000\nSTARTTLS"},
		{550, 5, 1, 1, "first\nsecond\nthird"},
		{451, 0, 0, 0, "4.3.0"},
		{250, 0, 0, 0, ""},
		{554, 5, 7, 1, "bad\x00\x1b[31m\r"},
		{999, 0, 0, 0, "no"},
		{550, 4, 1, 1, "wrong class"},
		{550, 0, 0, 0, "5.01.001 zeros"},
		{421, -1, -1, -1, "4.4.2 closing\n4.4.2 bye"},
		{354, 0, 0, 0, "go ahead"},
		{250, 0, 0, 0, "caf\xc3\xa9 \xff"},
	} {
		f.Add(s.code, s.e0, s.e1, s.e2, s.msg)
	}
	check := func(t *testing.T, r reply) {
		t.Helper()
		if !strings.HasPrefix(r.enhanced, strconv.Itoa(r.code/100)+".") || strings.Count(r.enhanced, ".") != 2 {
			t.Fatalf("enhanced %q for code %d", r.enhanced, r.code)
		}
		if strings.ContainsFunc(r.text, func(c rune) bool { return c < ' ' || c == 0x7f }) || !utf8.ValidString(r.text) {
			t.Fatalf("control character or bad UTF-8 in %q", r.text)
		}
		if rc := (RcptResult{Code: r.code}); rc.OK() != (r.code < 300) {
			t.Fatalf("class of %d", r.code)
		}
	}
	f.Fuzz(func(t *testing.T, code, e0, e1, e2 int, msg string) {
		if code < 100 || code > 999 {
			return // textproto reads three digits, 100 or more
		}
		if code >= 200 && code <= 599 {
			check(t, parseReply(code, msg))
		}
		r, ok := refusal(&smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{e0, e1, e2}, Message: msg})
		if ok != (code >= 400 && code <= 599) {
			t.Fatalf("code %d: refusal %t", code, ok)
		}
		if ok {
			check(t, r)
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
