package acceptlist

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParseEntry checks that an entry that parses has a canonical form
// that parses to the same entry, and that excluded and domain entries
// keep their kind.
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{
		"192.0.2.1", "192.0.2.0/24", "!10.0.0.0/8", "2001:DB8::1", "2001:db8::/32", "::ffff:10.0.0.1",
		"::ffff:10.0.0.0/104", "10.0.0.1/8", "fe80::1%eth0", "Mail.Example.COM.", "bücher.de", "!example.com",
		"1.2.3", "0.0.0.0/0", "::/0", "xn--zz.com", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEntry(s)
		if err != nil {
			return
		}
		c := e.String()
		again, err := ParseEntry(c)
		if err != nil {
			t.Fatalf("ParseEntry(%q) = %q, which does not parse: %v", s, c, err)
		}
		if again != e || again.String() != c {
			t.Fatalf("ParseEntry(%q) = %+v (%q), but its form parses to %+v (%q)", s, e, c, again, again.String())
		}
		if e.IsDomain() == e.Prefix.IsValid() || (e.IsDomain() && e.Exclude) {
			t.Fatalf("ParseEntry(%q) = %+v: not exactly one of a domain and a prefix", s, e)
		}
		if e.Prefix.IsValid() && (e.Prefix != e.Prefix.Masked() || e.Prefix.Addr().Is4In6() || e.Prefix.Addr().Zone() != "") {
			t.Fatalf("ParseEntry(%q) = %s: not canonical", s, e.Prefix)
		}
	})
}

// FuzzImport imports a file and checks that a refused one names lines it
// has, and that an accepted one is sorted, without repeats, exports to a
// file that imports to the same list, and matches its own entries.
func FuzzImport(f *testing.F) {
	for _, s := range []string{
		"192.0.2.1, 192.0.2.2;example.com\t2001:db8::/32\n",
		"\uFEFF10.0.0.0/8\r\n!10.1.0.0/16\r\n10.1.2.3\r\n",
		"10.0.0.1/8\nbad_entry\n!example.com",
		"192.0.2.1\n!192.0.2.1",
		"::ffff:192.0.2.1 192.0.2.1/32 192.0.2.1",
		",,;;\t \n\n",
		"fe80::1%eth0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Import(strings.NewReader(s), nil)
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) {
				if errors.Is(err, ErrTooMany) {
					return
				}
				t.Fatalf("Import error %v (%T) is not *Errors", err, err)
			}
			lines := strings.Split(s, "\n")
			for _, e := range errs.Entries {
				if e.Line < 1 || e.Line > len(lines) || !strings.Contains(lines[e.Line-1], e.Entry) {
					t.Fatalf("error %v names no entry of %q", e, s)
				}
			}
			return
		}
		entries := l.Entries()
		for i := 1; i < len(entries); i++ {
			a, _ := ParseEntry(entries[i-1])
			b, _ := ParseEntry(entries[i])
			if Compare(a, b) >= 0 || a.key() == b.key() {
				t.Fatalf("entries %q: %q before %q", entries, entries[i-1], entries[i])
			}
		}
		var buf bytes.Buffer
		if err := Export(&buf, entries); err != nil {
			t.Fatal(err)
		}
		again, err := Import(&buf, nil)
		if err != nil {
			t.Fatalf("import of the export of %q: %v", entries, err)
		}
		if diff := cmp.Diff(entries, again.Entries()); diff != "" {
			t.Fatalf("export and import (-before +after):\n%s", diff)
		}
		m := l.Matcher()
		hasExclusion := slices.ContainsFunc(entries, func(e string) bool { return strings.HasPrefix(e, "!") })
		for _, s := range entries {
			e, _ := ParseEntry(s)
			switch {
			case e.IsDomain():
				if !m.MatchName(e.Domain) || !m.MatchName("x."+e.Domain) {
					t.Fatalf("list %q: %s does not match its name", entries, e.Domain)
				}
			case e.Exclude:
				if m.Contains(e.Prefix.Addr()) || !m.Excludes(e.Prefix.Addr()) {
					t.Fatalf("list %q: %s is matched", entries, s)
				}
			case !hasExclusion:
				if !m.Contains(e.Prefix.Addr()) {
					t.Fatalf("list %q: %s is not matched", entries, s)
				}
			}
		}
	})
}
