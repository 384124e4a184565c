package acceptlist

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/pkg/domainlist"
	"github.com/ospreysec/osprey/pkg/netlist"
)

func TestParseEntry(t *testing.T) {
	tests := []struct {
		in, want string
		err      error // wrapped by the error, when one is wanted
	}{
		{in: "192.0.2.1", want: "192.0.2.1"},
		{in: "192.0.2.1/32", want: "192.0.2.1"},
		{in: "192.0.2.0/24", want: "192.0.2.0/24"},
		{in: "!192.0.2.128/25", want: "!192.0.2.128/25"},
		{in: "2001:0DB8:0000:0000:0000:0000:0000:0001", want: "2001:db8::1"},
		{in: "2001:db8:0::/32", want: "2001:db8::/32"},
		{in: "2001:db8::1/128", want: "2001:db8::1"},
		{in: "::ffff:192.0.2.1", want: "192.0.2.1"},
		{in: "::ffff:192.0.2.0/120", want: "192.0.2.0/24"},
		{in: "Mail.Example.COM.", want: "mail.example.com"},
		{in: "bücher.de", want: "xn--bcher-kva.de"},
		{in: "192.0.2.1/24", err: netlist.ErrHostBits},
		{in: "2001:db8::1/32", err: netlist.ErrHostBits},
		{in: "fe80::1%eth0", err: netlist.ErrZone},
		{in: "192.0.2.300", err: netlist.ErrSyntax},
		{in: "192.0.2.0/33", err: netlist.ErrSyntax},
		{in: "!example.com", err: ErrDomainExclusion},
		{in: "localhost", err: domainlist.ErrSingleLabel},
		{in: "*.example.com", err: domainlist.ErrWildcard},
		{in: "a@example.com", err: domainlist.ErrAt},
		{in: "", err: ErrEmpty},
		{in: "!", err: ErrEmpty},
		{in: "!!192.0.2.1", err: domainlist.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			e, err := ParseEntry(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseEntry(%q) = %v, %v; want an error wrapping %v", tt.in, e, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEntry(%q): %v", tt.in, err)
			}
			if got := e.String(); got != tt.want {
				t.Errorf("ParseEntry(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestHostBitsNamesThePrefix(t *testing.T) {
	_, err := ParseEntry("10.0.0.1/8")
	if err == nil || !strings.Contains(err.Error(), "did you mean 10.0.0.0/8") {
		t.Errorf("got %v, want the error to name 10.0.0.0/8", err)
	}
}

func TestParseSortsAndDeduplicates(t *testing.T) {
	l, err := Parse([]string{
		"mail.example.org", "2001:db8::/32", "10.0.0.0/8", "192.0.2.1", "!10.1.0.0/16",
		"example.com", "9.9.9.9", "2001:DB8::/32", "10.0.0.0/8", "::ffff:9.9.9.9", "::1",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"9.9.9.9", "10.0.0.0/8", "!10.1.0.0/16", "192.0.2.1", "::1", "2001:db8::/32", "example.com", "mail.example.org"}
	if diff := cmp.Diff(want, l.Entries()); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

func TestParseReportsEveryBadEntry(t *testing.T) {
	_, err := Parse([]string{"10.0.0.1/8", "192.0.2.1", "bad entry", "192.0.2.1", "!192.0.2.1"})
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v (%T), want *Errors", err, err)
	}
	var got []string
	for _, e := range errs.Entries {
		got = append(got, fmt.Sprintf("%d %s", e.Index, e.Entry))
	}
	want := []string{"0 10.0.0.1/8", "2 bad entry", "4 !192.0.2.1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bad entries (-want +got):\n%s", diff)
	}
	if !errors.Is(err, ErrContradiction) || !errors.Is(err, netlist.ErrHostBits) {
		t.Errorf("%v: want it to wrap ErrContradiction and ErrHostBits", err)
	}
	if !strings.Contains(errs.Entries[2].Error(), `entry 1 "192.0.2.1"`) {
		t.Errorf("%v: want it to name the entry it contradicts", errs.Entries[2])
	}
}

func TestImport(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"commas", "192.0.2.1,192.0.2.2, example.com", []string{"192.0.2.1", "192.0.2.2", "example.com"}},
		{"semicolons and tabs", "192.0.2.1;\t192.0.2.2\t;;example.com", []string{"192.0.2.1", "192.0.2.2", "example.com"}},
		{"lines", "2001:db8::1\n192.0.2.1\n\n\nexample.com\n", []string{"192.0.2.1", "2001:db8::1", "example.com"}},
		{"crlf and bom", "\uFEFF192.0.2.1\r\n192.0.2.2\r\n", []string{"192.0.2.1", "192.0.2.2"}},
		{"duplicates", "192.0.2.1 192.0.2.1/32 ::ffff:192.0.2.1", []string{"192.0.2.1"}},
		{"empty", " \n\t\n", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Import(strings.NewReader(tt.text), nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, l.Entries()); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestImportNamesEveryBadLine(t *testing.T) {
	text := "192.0.2.1, 192.0.2.2\n" +
		"10.0.0.1/8;example.com\n" +
		"\n" +
		"host_1.example.com\t2001:db8::1\n" +
		"!192.0.2.2\n"
	_, err := Import(strings.NewReader(text), nil)
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v (%T), want *Errors", err, err)
	}
	var got []string
	for _, e := range errs.Entries {
		got = append(got, e.Error())
	}
	want := []string{
		`line 2: "10.0.0.1/8": host bits set, did you mean 10.0.0.0/8`,
		`line 4: "host_1.example.com": not an IP address, CIDR prefix or domain: invalid domain name: idna: disallowed rune U+005F`,
		`line 5: "!192.0.2.2": the same entry is both included and excluded: line 1 "192.0.2.2" says otherwise`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func TestImportAppends(t *testing.T) {
	base, err := Parse([]string{"192.0.2.1", "!10.1.0.0/16", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Import(strings.NewReader("192.0.2.1\nexample.com\n2001:db8::/32"), base)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "!10.1.0.0/16", "192.0.2.1", "2001:db8::/32", "example.com"}
	if diff := cmp.Diff(want, l.Entries()); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	_, err = Import(strings.NewReader("example.net\n10.1.0.0/16"), base)
	if !errors.Is(err, ErrContradiction) || !strings.Contains(err.Error(), `line 2: "10.1.0.0/16"`) {
		t.Errorf("got %v, want line 2 to contradict the stored exclusion", err)
	}
	if diff := cmp.Diff([]string{"10.0.0.0/8", "!10.1.0.0/16", "192.0.2.1"}, base.Entries()); diff != "" {
		t.Errorf("the base list changed (-want +got):\n%s", diff)
	}
}

func TestImportCapsTheErrors(t *testing.T) {
	text := strings.Repeat("bad_entry\n", MaxErrors+5)
	_, err := Import(strings.NewReader(text), nil)
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want *Errors", err)
	}
	if len(errs.Entries) != MaxErrors || errs.Omitted != 5 {
		t.Errorf("got %d listed and %d omitted, want %d and 5", len(errs.Entries), errs.Omitted, MaxErrors)
	}
	if !strings.HasSuffix(err.Error(), "and 5 more bad entries") {
		t.Errorf("error ends %q, want the count of the others", err.Error()[max(0, len(err.Error())-60):])
	}
}

func TestTooMany(t *testing.T) {
	var b strings.Builder
	for i := range MaxEntries + 1 {
		fmt.Fprintf(&b, "10.%d.%d.%d\n", i>>16, (i>>8)&255, i&255)
	}
	if _, err := Import(strings.NewReader(b.String()), nil); !errors.Is(err, ErrTooMany) {
		t.Errorf("import of %d entries: got %v, want ErrTooMany", MaxEntries+1, err)
	}
}

func TestEdit(t *testing.T) {
	base, err := Parse([]string{"192.0.2.1", "example.com", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		add, remove []string
		want        []string
		errs        []string
	}{
		{name: "add", add: []string{"192.0.2.0/24", "192.0.2.1", "Example.COM"}, want: []string{"192.0.2.0/24", "192.0.2.1", "2001:db8::/32", "example.com"}},
		{name: "remove in another form", remove: []string{"2001:DB8:0::/32"}, want: []string{"192.0.2.1", "example.com"}},
		{name: "change", add: []string{"example.org"}, remove: []string{"example.com"}, want: []string{"192.0.2.1", "2001:db8::/32", "example.org"}},
		{name: "exclusion replaces inclusion", add: []string{"!192.0.2.1"}, remove: []string{"192.0.2.1"}, want: []string{"!192.0.2.1", "2001:db8::/32", "example.com"}},
		{name: "remove everything", remove: []string{"192.0.2.1", "example.com", "2001:db8::/32"}, want: []string{}},
		{
			name: "errors", add: []string{"!192.0.2.1", "10.0.0.1/8"}, remove: []string{"example.net", "192.0.2.1/24"},
			errs: []string{
				`remove[0] "example.net": not in the list`,
				`remove[1] "192.0.2.1/24": host bits set, did you mean 192.0.2.0/24`,
				`add[0] "!192.0.2.1": the same entry is both included and excluded: the list holds "192.0.2.1"`,
				`add[1] "10.0.0.1/8": host bits set, did you mean 10.0.0.0/8`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := base.Edit(tt.add, tt.remove)
			if tt.errs != nil {
				var errs *Errors
				if !errors.As(err, &errs) {
					t.Fatalf("got %v, want *Errors", err)
				}
				var got []string
				for _, e := range errs.Entries {
					got = append(got, e.Error())
				}
				if diff := cmp.Diff(tt.errs, got); diff != "" {
					t.Errorf("errors (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, l.Entries()); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	l, err := Parse([]string{"2001:db8::/32", "example.com", "!10.1.0.0/16", "10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Export(&b, l.Entries()); err != nil {
		t.Fatal(err)
	}
	if want := "10.0.0.0/8\n!10.1.0.0/16\n2001:db8::/32\nexample.com\n"; b.String() != want {
		t.Errorf("export %q, want %q", b.String(), want)
	}
	again, err := Import(strings.NewReader(b.String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(l.Entries(), again.Entries()); diff != "" {
		t.Errorf("round trip (-before +after):\n%s", diff)
	}
}

func TestMatcher(t *testing.T) {
	m, err := Compile([]string{"10.0.0.0/8", "!10.1.0.0/16", "10.1.2.0/24", "2001:db8::/32", "192.0.2.7", "example.com", "!198.51.100.9"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr  string
		names []string
		want  bool
	}{
		{"10.2.3.4", nil, true},
		{"::ffff:10.2.3.4", nil, true},
		{"10.1.2.3", nil, false}, // the exclusion wins over the longer inclusion
		{"10.1.2.3", []string{"mail.example.com"}, false},
		{"192.0.2.7", nil, true},
		{"192.0.2.8", nil, false},
		{"192.0.2.8", []string{"example.com"}, true},
		{"192.0.2.8", []string{"MX1.Mail.Example.Com."}, true},
		{"192.0.2.8", []string{"example.com.evil.net", "notexample.com"}, false},
		{"198.51.100.9", []string{"mail.example.com"}, false},
		{"2001:db8::25", nil, true},
		{"fe80::1%eth0", nil, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.addr, tt.names), func(t *testing.T) {
			a := netip.MustParseAddr(tt.addr)
			if got := m.Match(a, tt.names); got != tt.want {
				t.Errorf("Match(%s, %q) = %t, want %t", a, tt.names, got, tt.want)
			}
		})
	}
	if !m.NeedsName(netip.MustParseAddr("192.0.2.8")) || m.NeedsName(netip.MustParseAddr("192.0.2.7")) || m.NeedsName(netip.MustParseAddr("198.51.100.9")) {
		t.Error("NeedsName: want true only for an address neither matched nor excluded")
	}
	var none *Matcher
	if none.Match(netip.MustParseAddr("10.0.0.1"), []string{"example.com"}) || none.HasDomains() || none.Len() != 0 {
		t.Error("a nil Matcher matched something")
	}
	only, err := Compile([]string{"!10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	if only.Contains(netip.MustParseAddr("192.0.2.1")) {
		t.Error("a list of exclusions only matched an address")
	}
}

// TestMatchesAsNetlist checks that a list of addresses and prefixes means
// what the same list means as a client list (package netlist): trusted
// networks moved into an outbound acceptance list match the same clients.
func TestMatchesAsNetlist(t *testing.T) {
	entries := []string{"10.0.0.0/8", "!10.1.0.0/16", "10.1.2.0/25", "192.0.2.0/24", "!192.0.2.128/26", "2001:db8::/32", "!2001:db8:1::/48"}
	// netlist refuses 10.1.2.0/25 (no effect inside the exclusion); the
	// acceptance list keeps it, with no effect either.
	nl, err := netlist.Parse([]string{"10.0.0.0/8", "!10.1.0.0/16", "192.0.2.0/24", "!192.0.2.128/26", "2001:db8::/32", "!2001:db8:1::/48"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := Compile(entries)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"10.0.0.1", "10.1.0.1", "10.1.2.1", "10.255.255.255", "11.0.0.0", "192.0.2.127", "192.0.2.128", "192.0.2.191", "192.0.2.192",
		"2001:db8::1", "2001:db8:1::1", "2001:db8:2::1", "2001:db9::1", "::ffff:10.0.0.1"} {
		a := netip.MustParseAddr(s)
		if got, want := m.Contains(a), nl.Contains(a); got != want {
			t.Errorf("%s: acceptance list %t, netlist %t", a, got, want)
		}
	}
}
