package domainlist

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse parses a newline-separated list and checks that a list that
// parses survives Entries → Parse unchanged, and that each entry matches
// itself the way it says.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"example.com\n!hr.example.com\nit.hr.example.com",
		"!hr.example.com",
		"Bücher.DE.\nxn--bcher-kva.de",
		"*.example.com",
		"192.0.2.1\n[::1]",
		"example.com\n!example.com",
		"ｅｘａｍｐｌｅ．ｃｏｍ",
		"a..b.com\n!!x.org",
		"xn--zz.com\nab--cd.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		entries := strings.Split(s, "\n")
		l, err := Parse(entries)
		if err != nil {
			errs, ok := err.(Errors)
			if !ok || len(errs) == 0 {
				t.Fatalf("Parse error %v (%T) is not a non-empty Errors", err, err)
			}
			for _, e := range errs {
				if e.Index < 0 || e.Index >= len(entries) || e.Entry != entries[e.Index] {
					t.Fatalf("bad EntryError %+v for %q", e, entries)
				}
			}
			return
		}
		again, err := Parse(l.Entries())
		if err != nil {
			t.Fatalf("Parse(%q) of Entries of %q: %v", l.Entries(), entries, err)
		}
		if diff := cmp.Diff(l.Entries(), again.Entries()); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
		for _, e := range l.Entries() {
			d, excluded := strings.CutPrefix(e, "!")
			if n, err := Normalize(d); err != nil || n != d {
				t.Fatalf("entry %q does not normalise to itself: %q, %v", e, n, err)
			}
			if l.Match(d) == excluded {
				t.Fatalf("list %q: Match(%q) = %t", l.Entries(), d, !excluded)
			}
		}
	})
}

// FuzzRecipientDomain checks that an accepted recipient's domain is
// normalised and that the address carries none of the refused routing forms.
func FuzzRecipientDomain(f *testing.F) {
	for _, s := range []string{
		"user@example.com",
		"<@a,@b:user@example.com>",
		"user%victim.example@example.com",
		`"user@victim.example"@example.com`,
		`"a\"b"@example.com`,
		"user@[192.0.2.1]",
		"user@bücher.de.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		d, err := RecipientDomain(addr)
		if err != nil {
			return
		}
		if n, err := Normalize(d); err != nil || n != d {
			t.Fatalf("RecipientDomain(%q) = %q, which normalises to %q, %v", addr, d, n, err)
		}
		at := strings.LastIndex(addr, "@")
		if at < 0 {
			t.Fatalf("RecipientDomain(%q) accepted an address without '@'", addr)
		}
		if local := addr[:at]; strings.ContainsAny(local, "%!") || strings.HasPrefix(strings.TrimPrefix(local, "<"), "@") {
			t.Fatalf("RecipientDomain(%q) accepted a routing local part", addr)
		}
	})
}
