package netlist

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	type wantErr struct {
		index int
		err   error
		text  string // a substring of the entry's message, if not empty
	}
	tests := []struct {
		name        string
		in          []string
		wantEntries []string
		wantErrs    []wantErr
	}{
		{name: "empty list", in: nil, wantEntries: nil},
		{
			name:        "addresses and prefixes",
			in:          []string{"10.0.0.0/8", "192.0.2.7", "2001:DB8::/32", "2001:db8:1::5"},
			wantEntries: []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "2001:db8:1::5"},
		},
		{
			name:        "exclusions",
			in:          []string{"10.0.0.0/8", "!10.0.0.5", "!10.1.0.0/16"},
			wantEntries: []string{"10.0.0.0/8", "!10.0.0.5", "!10.1.0.0/16"},
		},
		{
			name:        "host prefix is an address",
			in:          []string{"192.0.2.7/32", "2001:db8::1/128"},
			wantEntries: []string{"192.0.2.7", "2001:db8::1"},
		},
		{
			name:        "mapped address is IPv4",
			in:          []string{"::ffff:10.0.0.1", "::ffff:192.0.2.0/120"},
			wantEntries: []string{"10.0.0.1", "192.0.2.0/24"},
		},
		{
			name:        "exclusions only",
			in:          []string{"!10.0.0.5", "!2001:db8::/32"},
			wantEntries: []string{"!10.0.0.5", "!2001:db8::/32"},
		},
		{
			name:     "host bits",
			in:       []string{"10.0.0.1/8"},
			wantErrs: []wantErr{{0, ErrHostBits, "host bits set, did you mean 10.0.0.0/8"}},
		},
		{
			name:     "host bits ipv6",
			in:       []string{"2001:db8::1/32"},
			wantErrs: []wantErr{{0, ErrHostBits, "did you mean 2001:db8::/32"}},
		},
		{
			name:     "zone",
			in:       []string{"fe80::1%eth0", "fe80::%eth0/64"},
			wantErrs: []wantErr{{0, ErrZone, ""}, {1, ErrZone, ""}},
		},
		{
			name: "syntax",
			in:   []string{"", "host.example.com", "10.0.0.0/33", " 10.0.0.1", "10.0.0.1 ", "!!10.0.0.1", "10.0.0", "10.0.0.0/8/8", "!"},
			wantErrs: []wantErr{
				{0, ErrEmpty, ""}, {1, ErrSyntax, ""}, {2, ErrSyntax, ""}, {3, ErrSyntax, ""},
				{4, ErrSyntax, ""}, {5, ErrSyntax, ""}, {6, ErrSyntax, ""}, {7, ErrSyntax, ""}, {8, ErrEmpty, ""},
			},
		},
		{
			name:     "duplicates",
			in:       []string{"10.0.0.1", "10.0.0.1/32", "::ffff:10.0.0.1", "10.0.0.0/8", "!10.0.0.0/8"},
			wantErrs: []wantErr{{1, ErrDuplicate, "same as entry 0"}, {2, ErrDuplicate, ""}, {4, ErrDuplicate, "same as entry 3"}},
		},
		{
			name:     "inclusion inside exclusion",
			in:       []string{"10.0.0.0/8", "!10.1.0.0/16", "10.1.2.0/24"},
			wantErrs: []wantErr{{2, ErrNoEffect, `inside exclusion entry 1 "!10.1.0.0/16"`}},
		},
		{
			name:     "dangling exclusion",
			in:       []string{"10.0.0.0/8", "!192.168.0.0/16", "!2001:db8::1"},
			wantErrs: []wantErr{{1, ErrNoEffect, "no inclusion"}, {2, ErrNoEffect, ""}},
		},
		{
			name:        "exclusion wider than inclusion overlaps it",
			in:          []string{"10.1.0.0/16", "10.2.0.0/16", "!10.0.0.0/8"},
			wantErrs:    []wantErr{{0, ErrNoEffect, ""}, {1, ErrNoEffect, ""}},
			wantEntries: nil,
		},
		{
			name:     "effects judged only when all entries parse",
			in:       []string{"10.0.0.0/88", "!10.1.0.0/16"},
			wantErrs: []wantErr{{0, ErrSyntax, ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(tt.in)
			if len(tt.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("Parse(%q): %v", tt.in, err)
				}
				if diff := cmp.Diff(tt.wantEntries, l.Entries()); diff != "" {
					t.Errorf("Entries() mismatch (-want +got):\n%s", diff)
				}
				return
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse(%q) error = %v, want Errors", tt.in, err)
			}
			if l != nil {
				t.Errorf("Parse(%q) returned a list with an error", tt.in)
			}
			if len(errs) != len(tt.wantErrs) {
				t.Fatalf("got %d errors (%v), want %d", len(errs), err, len(tt.wantErrs))
			}
			for i, w := range tt.wantErrs {
				got := errs[i]
				if got.Index != w.index || !errors.Is(got, w.err) || !strings.Contains(got.Error(), w.text) {
					t.Errorf("error %d = %v (index %d), want index %d, %v containing %q", i, got, got.Index, w.index, w.err, w.text)
				}
				if got.Entry != tt.in[w.index] {
					t.Errorf("error %d entry = %q, want %q", i, got.Entry, tt.in[w.index])
				}
			}
		})
	}
}

func TestContains(t *testing.T) {
	l, err := Parse([]string{"10.0.0.0/8", "!10.1.0.0/16", "!10.0.0.5", "192.0.2.7", "2001:db8::/32", "!2001:db8:bad::/48"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want bool
	}{
		{"10.0.0.1", true},
		{"10.255.255.255", true},
		{"10.0.0.5", false},
		{"10.1.2.3", false},
		{"::ffff:10.0.0.1", true},
		{"::ffff:10.0.0.5", false},
		{"192.0.2.7", true},
		{"192.0.2.8", false},
		{"11.0.0.1", false},
		{"2001:db8::1", true},
		{"2001:db8:bad::1", false},
		{"2001:db8::1%eth0", true},
		{"2001:db9::1", false},
		{"::a00:1", false}, // IPv4-compatible, not mapped: an IPv6 address
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := l.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("Contains(%s) = %t, want %t", tt.addr, got, tt.want)
			}
		})
	}
	if l.Contains(netip.Addr{}) {
		t.Errorf("Contains(zero Addr) = true, want false")
	}
}

func TestEmptyAndDefaults(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	var nilList *List
	empty, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]*List{"nil": nilList, "parsed": empty, "zero": {}} {
		if !l.Empty() || l.HasInclusions() || l.Contains(a) || l.Excludes(a) {
			t.Errorf("%s list: Empty %t, HasInclusions %t, Contains %t, Excludes %t; want true, false, false, false",
				name, l.Empty(), l.HasInclusions(), l.Contains(a), l.Excludes(a))
		}
		if !l.WithDefault(Any).Contains(a) {
			t.Errorf("%s list: WithDefault(Any).Contains(%s) = false, want true", name, a)
		}
	}

	excl, err := Parse([]string{"!10.0.0.5"})
	if err != nil {
		t.Fatal(err)
	}
	if excl.Empty() || excl.Contains(a) {
		t.Errorf("exclusions-only list: Empty %t, Contains %t; want false, false", excl.Empty(), excl.Contains(a))
	}
	d := excl.WithDefault([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")})
	for addr, want := range map[string]bool{"10.0.0.1": true, "10.0.0.5": false, "10.0.1.1": false} {
		if got := d.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("WithDefault(10.0.0.0/24).Contains(%s) = %t, want %t", addr, got, want)
		}
	}
	if diff := cmp.Diff([]string{"10.0.0.0/24", "!10.0.0.5"}, d.Entries()); diff != "" {
		t.Errorf("WithDefault entries mismatch (-want +got):\n%s", diff)
	}

	incl, err := Parse([]string{"192.0.2.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if got := incl.WithDefault(Any); got != incl {
		t.Errorf("WithDefault on a list with inclusions returned a new list")
	}
}

func TestFromPrefixes(t *testing.T) {
	l := FromPrefixes([]netip.Prefix{
		netip.MustParsePrefix("192.0.2.10/24"),
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("::ffff:198.51.100.0/120"),
		{},
	})
	if diff := cmp.Diff([]string{"192.0.2.0/24", "198.51.100.0/24"}, l.Entries()); diff != "" {
		t.Errorf("Entries() mismatch (-want +got):\n%s", diff)
	}
	if !l.Contains(netip.MustParseAddr("198.51.100.9")) {
		t.Errorf("Contains(198.51.100.9) = false, want true")
	}
}

func TestLocalSubnets(t *testing.T) {
	subnets, err := LocalSubnets()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range subnets {
		if p != p.Masked() {
			t.Errorf("subnet %s is not masked", p)
		}
		if p.Addr().Is4In6() {
			t.Errorf("subnet %s is IPv4-mapped", p)
		}
	}
	// Every machine that runs the tests has a loopback interface that is up.
	if !FromPrefixes(subnets).Contains(netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("LocalSubnets() = %v, want it to contain 127.0.0.1", subnets)
	}
}

func BenchmarkContains(b *testing.B) {
	entries := []string{"10.0.0.0/8", "!10.1.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "2001:db8::/32", "!10.0.0.5"}
	l, err := Parse(entries)
	if err != nil {
		b.Fatal(err)
	}
	a := netip.MustParseAddr("192.168.7.9")
	for b.Loop() {
		l.Contains(a)
	}
}
