package domainlist

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		{name: "lower", in: "example.com", want: "example.com"},
		{name: "upper", in: "Mail.EXAMPLE.Com", want: "mail.example.com"},
		{name: "trailing dot", in: "example.com.", want: "example.com"},
		{name: "two trailing dots", in: "example.com..", wantErr: ErrEmptyLabel},
		{name: "unicode", in: "Bücher.DE", want: "xn--bcher-kva.de"},
		{name: "a-label", in: "XN--BCHER-KVA.de", want: "xn--bcher-kva.de"},
		{name: "full-width", in: "ｅｘａｍｐｌｅ．ｃｏｍ", want: "example.com"},
		{name: "ideographic full stop", in: "example。com。", want: "example.com"},
		{name: "digits in labels", in: "123.example.com", want: "123.example.com"},
		{name: "hyphen inside", in: "my-mail.example.com", want: "my-mail.example.com"},
		{name: "empty", in: "", wantErr: ErrEmpty},
		{name: "dot", in: ".", wantErr: ErrEmpty},
		{name: "space", in: "exa mple.com", wantErr: ErrSpace},
		{name: "tab", in: "example.com\t", wantErr: ErrSpace},
		{name: "at", in: "user@example.com", wantErr: ErrAt},
		{name: "wildcard label", in: "*.example.com", wantErr: ErrWildcard},
		{name: "wildcard alone", in: "*", wantErr: ErrWildcard},
		{name: "ipv4", in: "192.0.2.1", wantErr: ErrIPLiteral},
		{name: "ipv4 trailing dot", in: "192.0.2.1.", wantErr: ErrIPLiteral},
		{name: "ipv6", in: "2001:db8::1", wantErr: ErrIPLiteral},
		{name: "address literal", in: "[192.0.2.1]", wantErr: ErrIPLiteral},
		{name: "partial ipv4", in: "10.0.0", wantErr: ErrNumericTLD},
		{name: "full-width ipv4", in: "１９２.０.２.１", wantErr: ErrNumericTLD},
		{name: "single label", in: "localhost", wantErr: ErrSingleLabel},
		{name: "tld", in: "com.", wantErr: ErrSingleLabel},
		{name: "empty label", in: "a..example.com", wantErr: ErrEmptyLabel},
		{name: "leading dot", in: ".example.com", wantErr: ErrEmptyLabel},
		{name: "long label", in: strings.Repeat("a", 64) + ".com", wantErr: ErrLabelLength},
		{name: "label of 63", in: strings.Repeat("a", 63) + ".com", want: strings.Repeat("a", 63) + ".com"},
		{name: "long name", in: strings.Repeat("abcdefghi.", 24) + "abcdefghij.com", wantErr: ErrNameLength},
		{name: "name of 253", in: strings.Repeat("abcdefghi.", 25) + "com", want: strings.Repeat("abcdefghi.", 25) + "com"},
		{name: "underscore", in: "_dmarc.example.com", wantErr: ErrInvalid},
		{name: "leading hyphen", in: "-a.example.com", wantErr: ErrInvalid},
		{name: "trailing hyphen", in: "a-.example.com", wantErr: ErrInvalid},
		{name: "reserved hyphens", in: "ab--cd.example.com", wantErr: ErrInvalid},
		{name: "bad punycode", in: "xn--zz.com", wantErr: ErrInvalid},
		{name: "slash", in: "a/b.com", wantErr: ErrInvalid},
		{name: "nul", in: "a\x00b.com", wantErr: ErrInvalid},
		{name: "invalid utf-8", in: "a\xffb.com", wantErr: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Normalize(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Normalize(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	type wantErr struct {
		index int
		err   error
		text  string
	}
	tests := []struct {
		name        string
		in          []string
		wantEntries []string
		wantErrs    []wantErr
	}{
		{name: "empty", in: []string{}, wantEntries: nil},
		{
			name:        "normalised",
			in:          []string{"Example.COM.", "!HR.example.com", "bücher.de"},
			wantEntries: []string{"example.com", "!hr.example.com", "xn--bcher-kva.de"},
		},
		{
			name:        "exclusions only",
			in:          []string{"!hr.example.com", "!example.org"},
			wantEntries: []string{"!hr.example.com", "!example.org"},
		},
		{
			name:        "re-inclusion and redundant entries",
			in:          []string{"example.com", "!hr.example.com", "it.hr.example.com", "mail.example.com", "!x.hr.example.com"},
			wantEntries: []string{"example.com", "!hr.example.com", "it.hr.example.com", "mail.example.com", "!x.hr.example.com"},
		},
		{
			name:        "exclusion listed before its inclusion",
			in:          []string{"!hr.example.com", "example.com"},
			wantEntries: []string{"!hr.example.com", "example.com"},
		},
		{
			name: "every bad entry",
			in:   []string{"example.com", "*.example.org", "", "192.0.2.1", "!!example.net", "user@example.com", "a b.com", "localhost"},
			wantErrs: []wantErr{
				{1, ErrWildcard, ""}, {2, ErrEmpty, ""}, {3, ErrIPLiteral, ""}, {4, ErrNegation, ""},
				{5, ErrAt, ""}, {6, ErrSpace, ""}, {7, ErrSingleLabel, ""},
			},
		},
		{
			name:     "bare exclamation mark",
			in:       []string{"!"},
			wantErrs: []wantErr{{0, ErrEmpty, ""}},
		},
		{
			name:     "duplicates",
			in:       []string{"example.com", "EXAMPLE.com.", "!example.com", "bücher.de", "xn--bcher-kva.de"},
			wantErrs: []wantErr{{1, ErrDuplicate, `same as entry 0 "example.com"`}, {2, ErrDuplicate, "conflicts with entry 0"}, {4, ErrDuplicate, "same as entry 3"}},
		},
		{
			name:     "exclusion no inclusion covers",
			in:       []string{"example.com", "!hr.exmaple.com", "!example.org", "!sub.example.org"},
			wantErrs: []wantErr{{1, ErrNoEffect, "no inclusion covers hr.exmaple.com"}, {2, ErrNoEffect, ""}, {3, ErrNoEffect, ""}},
		},
		{
			name:     "exclusion of a parent is not covered by a child inclusion",
			in:       []string{"mail.example.com", "!example.com"},
			wantErrs: []wantErr{{1, ErrNoEffect, ""}},
		},
		{
			name:     "effects judged only when all entries parse",
			in:       []string{"exa mple.com", "!hr.example.com"},
			wantErrs: []wantErr{{0, ErrSpace, ""}},
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
			if len(errs) != len(tt.wantErrs) {
				t.Fatalf("got %d errors (%v), want %d", len(errs), err, len(tt.wantErrs))
			}
			for i, w := range tt.wantErrs {
				got := errs[i]
				if got.Index != w.index || got.Entry != tt.in[w.index] || !errors.Is(got, w.err) || !strings.Contains(got.Error(), w.text) {
					t.Errorf("error %d = %v (index %d), want index %d, %v containing %q", i, got, got.Index, w.index, w.err, w.text)
				}
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name    string
		entries []string
		domains map[string]bool
	}{
		{
			name:    "empty list matches any valid domain",
			entries: nil,
			domains: map[string]bool{"example.com": true, "anything.example": true, "localhost": false, "192.0.2.1": false, "": false},
		},
		{
			name:    "inclusion covers subdomains",
			entries: []string{"example.com"},
			domains: map[string]bool{
				"example.com": true, "EXAMPLE.COM.": true, "a.b.example.com": true,
				"example.org": false, "notexample.com": false, "com": false, "example.com.evil.org": false,
			},
		},
		{
			name:    "most specific wins",
			entries: []string{"it.hr.example.com", "!hr.example.com", "example.com"},
			domains: map[string]bool{
				"example.com": true, "mail.example.com": true,
				"hr.example.com": false, "x.hr.example.com": false,
				"it.hr.example.com": true, "a.it.hr.example.com": true,
			},
		},
		{
			name:    "exclusions only",
			entries: []string{"!hr.example.com"},
			domains: map[string]bool{"example.com": true, "example.org": true, "hr.example.com": false, "a.hr.example.com": false},
		},
		{
			name:    "idna",
			entries: []string{"bücher.de"},
			domains: map[string]bool{"xn--bcher-kva.de": true, "BÜCHER.de": true, "mail.bücher.de": true, "bucher.de": false},
		},
		{
			name:    "invalid domains never match",
			entries: []string{"!hr.example.com"},
			domains: map[string]bool{"*.example.com": false, "a..example.com": false, "_x.example.com": false, "[192.0.2.1]": false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Parse(tt.entries)
			if err != nil {
				t.Fatal(err)
			}
			for d, want := range tt.domains {
				if got := l.Match(d); got != want {
					t.Errorf("Match(%q) = %t, want %t", d, got, want)
				}
			}
		})
	}
}

func TestNilAndZeroList(t *testing.T) {
	var nilList *List
	for name, l := range map[string]*List{"nil": nilList, "zero": {}} {
		if !l.Empty() || !l.Match("example.com") || l.Match("localhost") || l.Entries() != nil || l.String() != "" {
			t.Errorf("%s list: Empty %t, Match(example.com) %t, Match(localhost) %t, Entries %q, String %q",
				name, l.Empty(), l.Match("example.com"), l.Match("localhost"), l.Entries(), l)
		}
	}
}

func TestStringRoundTrip(t *testing.T) {
	in := []string{"Example.com.", "!HR.example.com", "it.hr.example.com", "Bücher.de"}
	l, err := Parse(in)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.String(), "example.com, !hr.example.com, it.hr.example.com, xn--bcher-kva.de"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	again, err := Parse(strings.Split(l.String(), ", "))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(l.Entries(), again.Entries()); diff != "" {
		t.Errorf("round trip mismatch (-first +second):\n%s", diff)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	l, err := Parse([]string{"example.com", "!hr.example.com", "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		l.Match("deep.sub.mail.example.net")
		l.Match("x.hr.example.com")
	})
	if allocs != 0 {
		t.Errorf("Match allocated %v times per run, want 0", allocs)
	}
}

func BenchmarkMatch(b *testing.B) {
	l, err := Parse([]string{"example.com", "!hr.example.com", "example.org", "example.net", "it.hr.example.com"})
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range []string{"mail.example.com", "Deep.Sub.Example.NET", "bücher.de"} {
		b.Run(d, func(b *testing.B) {
			for b.Loop() {
				l.Match(d)
			}
		})
	}
}
