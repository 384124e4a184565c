// Package domainlist matches recipient domains against the "Destination
// domains" list of an SMTP integration, and extracts the domain of an SMTP
// recipient safely enough to decide whether to accept it.
//
// An entry "example.com" covers that domain and all its subdomains; an entry
// "!hr.example.com" excludes that domain and its subdomains. When entries
// nest, the most specific one wins, whichever comes first in the list:
//
//	example.com        covers example.com, mail.example.com, ...
//	!hr.example.com    but not hr.example.com nor x.hr.example.com,
//	it.hr.example.com  yet again it.hr.example.com and its subdomains.
//
// A domain that no entry covers is matched when the list has no inclusions
// (an empty list, or exclusions only: "everything but these") and not
// matched otherwise.
//
// Entries and matched domains are normalised the same way by [Normalize]:
// IDNA (UTS #46, lookup profile) to lower-case A-labels, so "Bücher.DE" and
// "xn--bcher-kva.de" are one domain, and one trailing dot removed. These are
// refused: wildcards ("*.example.com": an entry already covers its
// subdomains), IP addresses and address literals, single-label names and
// names whose last label is numeric, empty labels, labels over 63 and names
// over 253 octets, white space, '@' (an address instead of a domain), and
// anything IDNA refuses (such as '_').
//
// [Parse] also refuses entries that could not mean what they say:
//
//   - duplicates after normalisation, including one domain both included and
//     excluded ("example.com" and "!Example.COM.");
//   - "!!example.com";
//   - an exclusion that no inclusion covers, in a list that has inclusions:
//     it would have no effect, and it is most often a typo that leaves mail
//     the administrator meant to exclude in scope (with "example.com",
//     "!hr.exmaple.com" excludes nothing). In a list of exclusions only each
//     exclusion is meaningful and kept.
//
// Redundant inclusions ("example.com" and "mail.example.com") and
// exclusions inside exclusions are allowed: they change nothing but are not
// misleading. [Parse] reports every bad entry at once as [Errors], each with
// the index of the entry, so that a caller can name the field
// ("destination_domains[3]").
//
// Matching happens for every RCPT command, so a [List] is a map from domain
// to verdict: [List.Match] looks up the domain and then each parent domain,
// at most one lookup per label and without allocating for ASCII domains.
package domainlist

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ospreysec/osprey/pkg/listentry"
	"golang.org/x/net/idna"
)

// Errors that [Normalize], [Parse] and [RecipientDomain] wrap; match them
// with [errors.Is].
var (
	ErrEmpty       = errors.New("empty domain")
	ErrSpace       = errors.New("white space in domain")
	ErrAt          = errors.New("'@' in domain: give a domain, not an address")
	ErrWildcard    = errors.New("wildcards are not supported: a domain already covers its subdomains")
	ErrIPLiteral   = errors.New("IP addresses are not domains")
	ErrEmptyLabel  = errors.New("empty label")
	ErrLabelLength = errors.New("label longer than 63 octets")
	ErrNameLength  = errors.New("domain longer than 253 octets")
	ErrSingleLabel = errors.New("domain needs at least two labels")
	ErrNumericTLD  = errors.New("top-level label is numeric")
	ErrInvalid     = errors.New("invalid domain name")
	ErrNegation    = errors.New("only one '!' may precede a domain")
	ErrDuplicate   = errors.New("duplicate domain")
	ErrNoEffect    = errors.New("exclusion has no effect")
)

// EntryError is a problem with one entry of a list.
type EntryError = listentry.Error

// Errors is the error returned by [Parse]: one [EntryError] per bad entry,
// in the order of the entries.
type Errors = listentry.Errors[*EntryError]

// Normalize returns the canonical form of a domain: lower-case A-labels
// without a trailing dot. It fails for anything that is not a domain name
// with at least two labels; see the package comment.
func Normalize(s string) (string, error) {
	switch {
	case s == "":
		return "", ErrEmpty
	case strings.ContainsFunc(s, unicode.IsSpace):
		return "", ErrSpace
	case strings.Contains(s, "@"):
		return "", ErrAt
	case strings.Contains(s, "*"):
		return "", ErrWildcard
	case strings.HasPrefix(s, "["):
		return "", ErrIPLiteral
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: not UTF-8", ErrInvalid)
	}
	if looksLikeIP(s) {
		if _, err := netip.ParseAddr(strings.TrimSuffix(s, ".")); err == nil {
			return "", ErrIPLiteral
		}
	}
	a, ok := fastASCII(s)
	if !ok {
		var err error
		if a, err = idna.Lookup.ToASCII(s); err != nil {
			return "", fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	a = strings.TrimSuffix(a, ".")
	if err := checkLabels(a); err != nil {
		return "", err
	}
	return a, nil
}

// looksLikeIP reports whether s might parse as an IP address, so that
// Normalize calls netip.ParseAddr, which allocates on failure, only then.
func looksLikeIP(s string) bool {
	return strings.Contains(s, ":") || strings.Trim(s, "0123456789.") == ""
}

// fastASCII lower-cases s when IDNA would return it unchanged but for case:
// ASCII letters, digits, '.' and '-', no label starting or ending with '-'
// and none with "--" in third and fourth position (which IDNA reserves for
// A-labels and must check).
func fastASCII(s string) (string, bool) {
	upper := false
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			label := s[start:i]
			if label != "" && (label[0] == '-' || label[len(label)-1] == '-' ||
				len(label) >= 4 && label[2] == '-' && label[3] == '-') {
				return "", false
			}
			start = i + 1
			continue
		}
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
		case 'A' <= c && c <= 'Z':
			upper = true
		default:
			return "", false
		}
	}
	if upper {
		return strings.ToLower(s), true
	}
	return s, true
}

func checkLabels(a string) error {
	if a == "" {
		return ErrEmpty
	}
	if len(a) > 253 {
		return ErrNameLength
	}
	labels := 0
	last := ""
	for label := range strings.SplitSeq(a, ".") {
		switch {
		case label == "":
			return ErrEmptyLabel
		case len(label) > 63:
			return ErrLabelLength
		}
		labels++
		last = label
	}
	if labels < 2 {
		return ErrSingleLabel
	}
	if strings.Trim(last, "0123456789") == "" {
		return ErrNumericTLD
	}
	return nil
}

// List is a parsed destination-domain list. The zero value and nil are the
// empty list, which matches every domain. A List is immutable and safe for
// concurrent use.
type List struct {
	verdict   map[string]bool // domain → included (true) or excluded (false)
	inclusion bool            // the list has at least one inclusion
	entries   []string        // normalised, in input order, "!" marking exclusions
}

// Parse parses a list of entries; see the package comment for the rules.
// On error it returns [Errors] listing every bad entry.
func Parse(entries []string) (*List, error) {
	var errs Errors
	bad := func(i int, err error) {
		errs = append(errs, &EntryError{Index: i, Entry: entries[i], Err: err})
	}
	l := &List{verdict: make(map[string]bool, len(entries))}
	index := make(map[string]int, len(entries))
	for i, s := range entries {
		include := true
		if strings.HasPrefix(s, "!") {
			include = false
			s = s[1:]
			if strings.HasPrefix(s, "!") {
				bad(i, ErrNegation)
				continue
			}
		}
		d, err := Normalize(s)
		if err != nil {
			bad(i, err)
			continue
		}
		if j, ok := index[d]; ok {
			how := "same as"
			if l.verdict[d] != include {
				how = "conflicts with"
			}
			bad(i, fmt.Errorf("%w: %s entry %d %q", ErrDuplicate, how, j, entries[j]))
			continue
		}
		index[d] = i
		l.verdict[d] = include
		l.inclusion = l.inclusion || include
		l.entries = append(l.entries, format(d, include))
	}
	// Whether an exclusion has an effect depends on the other entries:
	// judge it only once all are well-formed.
	if len(errs) == 0 && l.inclusion {
		for _, e := range l.entries {
			d, ok := strings.CutPrefix(e, "!")
			if ok && !l.covered(d) {
				bad(index[d], fmt.Errorf("%w: no inclusion covers %s", ErrNoEffect, d))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return l, nil
}

// covered reports whether an inclusion covers a strict parent of d.
func (l *List) covered(d string) bool {
	for {
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return false
		}
		d = d[i+1:]
		if l.verdict[d] {
			return true
		}
	}
}

func format(d string, include bool) string {
	if include {
		return d
	}
	return "!" + d
}

// Match reports whether a recipient domain is in scope: the most specific
// entry that covers it decides, and a domain no entry covers is in scope
// only when the list has no inclusions. The domain is normalised as entries
// are; a domain that does not normalise never matches, even with an empty
// list.
func (l *List) Match(domain string) bool {
	d, err := Normalize(domain)
	if err != nil {
		return false
	}
	return l.matchNormalized(d)
}

func (l *List) matchNormalized(d string) bool {
	if l == nil {
		return true
	}
	for {
		if v, ok := l.verdict[d]; ok {
			return v
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return !l.inclusion
		}
		d = d[i+1:]
	}
}

// Empty reports whether the list has no entries (and so matches any domain).
func (l *List) Empty() bool {
	return l == nil || len(l.entries) == 0
}

// Entries returns the list's entries in normalised form, in the order given:
// "example.com", "!hr.example.com". Parse(l.Entries()) yields an equal list.
func (l *List) Entries() []string {
	if l == nil {
		return nil
	}
	return append([]string(nil), l.entries...)
}

// String returns the entries joined by ", ".
func (l *List) String() string {
	return strings.Join(l.Entries(), ", ")
}
