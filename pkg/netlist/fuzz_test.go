package netlist

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse parses a newline-separated list, and checks that a list that
// parses survives Entries → Parse unchanged and matches its own addresses
// consistently.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8\n!10.0.0.5",
		"2001:db8::/32\n!2001:db8::1",
		"::ffff:10.0.0.1",
		"::ffff:10.0.0.0/104\n!10.0.0.1",
		"10.0.0.1/8",
		"fe80::1%eth0",
		"!10.0.0.1",
		"0.0.0.0/0\n::/0",
		"1.2.3.4\n1.2.3.4/32",
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
			p, err := ParsePrefix(strings.TrimPrefix(e, "!"))
			if err != nil {
				t.Fatalf("ParsePrefix(%q): %v", e, err)
			}
			if strings.HasPrefix(e, "!") && l.Contains(p.Addr()) {
				t.Fatalf("list %q contains %s which it excludes", l.Entries(), p.Addr())
			}
			if mapped := netip.AddrFrom16(p.Addr().As16()); l.Contains(mapped) != l.Contains(p.Addr()) {
				t.Fatalf("list %q: Contains(%s) differs from Contains(%s)", l.Entries(), mapped, p.Addr())
			}
		}
	})
}
