package senderauth

import (
	"strings"
	"testing"
)

// FuzzIsOurs: only an Authentication-Results field can be ours, and what
// Header writes under an id is always recognised under it.
func FuzzIsOurs(f *testing.F) {
	f.Add("Authentication-Results: gw.example.com; spf=pass", "gw.example.com")
	f.Add("Authentication-Results: (c (d)) \"gw\\\"x\"; none", "gw\"x")
	f.Add("authentication-results:\r\n\tGW.example.com.;", "gw.example.com")
	f.Fuzz(func(t *testing.T, field, id string) {
		if IsOurs(field, id) {
			name, _, _ := strings.Cut(field, ":")
			if !strings.EqualFold(strings.TrimSpace(name), HeaderName) {
				t.Errorf("IsOurs(%q, %q): a field of another name", field, id)
			}
		}
	})
}

// FuzzHeaderParsing: the header of any message splits into fields, and
// what the checks take from it (the From domain, a signature's d= and s=)
// is safe in a header and a log line.
func FuzzHeaderParsing(f *testing.F) {
	f.Add("From: Alice <alice@example.org>\r\nDKIM-Signature: v=1; d=example.org; s=s1;\r\n\tb=xyz\r\n\r\n")
	f.Add("From: a@x.example, b@y.example\r\n\r\n")
	f.Add("From: \"a@b\" <c@d.example>\r\nDKIM-Signature: d=\r\n\r\n")
	safe := func(s string) bool {
		return !strings.ContainsFunc(s, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("-_.?", r))
		})
	}
	f.Fuzz(func(t *testing.T, header string) {
		var froms []string
		for _, fl := range headerFields([]byte(header)) {
			switch {
			case strings.EqualFold(fl.name, "From"):
				froms = append(froms, fl.value)
			case strings.EqualFold(fl.name, "DKIM-Signature"):
				s := parseSignature(fl.value)
				if !safe(s.domain) || !safe(s.selector) || len(s.domain) > maxName || len(s.selector) > maxName {
					t.Errorf("signature %q gave d=%q s=%q", fl.value, s.domain, s.selector)
				}
			}
		}
		if d, ok := authorDomain(froms); ok && (!safe(d) || d == "" || strings.Contains(d, "?")) {
			t.Errorf("From %q gave the domain %q", froms, d)
		}
	})
}
