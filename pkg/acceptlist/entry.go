// Package acceptlist is a mail gateway's acceptance lists (Symantec
// Messaging Gateway's "IP addresses and domains" lists of the inbound,
// outbound and authentication mail settings): which SMTP clients a
// listener takes mail from. An entry is an IPv4 or IPv6 address, a CIDR
// prefix, or a domain name; a domain matches a client whose reverse DNS
// name, confirmed forward, is the domain or under it.
//
// Design note. A list may hold 100,000 entries and is checked at every
// connection, so it is kept in three shapes:
//
//   - canonical text, the form stored and shown: IPv6 shortened, a /32 or
//     /128 prefix written as its address, IPv4-mapped IPv6 written as IPv4,
//     domains as lower-case A-labels; sorted (IPv4, then IPv6, numerically;
//     then domains) and without duplicates, so that two lists that mean the
//     same are the same text, a page of a list is a slice of it, and an
//     edit names an entry by that text;
//   - a [List], the parsed entries, which edits and imports merge into;
//   - a [Matcher], compiled for matching: the addresses as an
//     [netipx.IPSet] (sorted ranges, searched by bisection: a lookup costs
//     about log2 of the number of ranges, not a scan), and the domains as a
//     set that a client's name and each of its parent domains is looked up
//     in.
//
// Exclusions. An address or prefix written with a leading '!' is excluded,
// and an exclusion wins over any inclusion, whatever the prefix lengths, as
// in the monitor listener's client list (package netlist), so the trusted
// networks that an earlier version kept there mean the same as an outbound
// acceptance list: with "10.0.0.0/8, !10.1.0.0/16", 10.1.2.3 is not
// matched, not even through its name. A list without inclusions matches
// nothing. Domains cannot be excluded.
//
// Refused: a prefix with host bits set ("10.0.0.1/8", naming the prefix
// probably meant), IPv6 zones, one entry both included and excluded, and
// anything that is neither an address, a prefix, nor a domain name with at
// least two labels (see package domainlist, whose rules domains follow).
// Duplicates are dropped. A list holds at most [MaxEntries] entries and
// [MaxBytes] of text.
package acceptlist

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ospreysec/osprey/pkg/domainlist"
	"github.com/ospreysec/osprey/pkg/netlist"
)

// Bounds of one list. Three lists of a sensor go to it in one message of
// the configuration push, whose receive limit is set from them.
const (
	// MaxEntries is the most entries a list may hold.
	MaxEntries = 250_000
	// MaxBytes bounds a list's canonical text, one entry a line.
	MaxBytes = 8 << 20
	// MaxErrors is how many bad entries an error lists; past it, it counts
	// them.
	MaxErrors = 1000
)

// Errors an [EntryError] wraps; match them with [errors.Is].
var (
	ErrEmpty           = errors.New("empty entry")
	ErrDomainExclusion = errors.New("only addresses and prefixes can be excluded: leave the domain out of the list instead")
	ErrContradiction   = errors.New("the same entry is both included and excluded")
	ErrNotListed       = errors.New("not in the list")
	ErrTooMany         = fmt.Errorf("a list holds at most %d entries and %d MiB", MaxEntries, MaxBytes>>20)
)

// Entry is one parsed entry: an address or prefix (Prefix valid, an
// address being a /32 or /128 prefix), or a domain (Domain set).
type Entry struct {
	// Exclude marks an excluded address or prefix ('!').
	Exclude bool
	Prefix  netip.Prefix
	Domain  string
}

// ParseEntry parses one entry: "192.0.2.1", "2001:db8::/32",
// "!192.0.2.128/25", "mail.example.com". It does not trim white space.
func ParseEntry(s string) (Entry, error) {
	body, exclude := strings.CutPrefix(s, "!")
	if body == "" {
		return Entry{}, ErrEmpty
	}
	if looksLikeAddress(body) {
		p, err := netlist.ParsePrefix(body)
		if err != nil {
			return Entry{}, err
		}
		return Entry{Exclude: exclude, Prefix: p}, nil
	}
	d, err := domainlist.Normalize(body)
	if err != nil {
		return Entry{}, fmt.Errorf("not an IP address, CIDR prefix or domain: %w", err)
	}
	if exclude {
		return Entry{}, ErrDomainExclusion
	}
	return Entry{Domain: d}, nil
}

// looksLikeAddress reports whether s is meant as an address or a prefix
// rather than a domain: it holds ':', '/' or '%', or only digits and dots
// (a domain's last label is never numeric).
func looksLikeAddress(s string) bool {
	return strings.ContainsAny(s, ":/%") || strings.Trim(s, "0123456789.") == ""
}

// IsDomain reports whether e is a domain.
func (e Entry) IsDomain() bool { return e.Domain != "" }

// String returns the entry's canonical form.
func (e Entry) String() string {
	if e.IsDomain() {
		return e.Domain
	}
	return string(e.appendTo(make([]byte, 0, 44)))
}

// appendTo appends the entry's canonical form to b.
func (e Entry) appendTo(b []byte) []byte {
	if e.IsDomain() {
		return append(b, e.Domain...)
	}
	if e.Exclude {
		b = append(b, '!')
	}
	if e.Prefix.IsSingleIP() {
		return e.Prefix.Addr().AppendTo(b)
	}
	return e.Prefix.AppendTo(b)
}

// Compare orders entries as a list keeps them: IPv4, then IPv6, by address
// and then by prefix length (an inclusion before the exclusion of the same
// prefix), then domains by name. It returns -1, 0 or +1.
func Compare(a, b Entry) int {
	if c := kind(a) - kind(b); c != 0 {
		return sign(c)
	}
	if a.IsDomain() {
		return strings.Compare(a.Domain, b.Domain)
	}
	if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
		return c
	}
	if c := a.Prefix.Bits() - b.Prefix.Bits(); c != 0 {
		return sign(c)
	}
	switch {
	case a.Exclude == b.Exclude:
		return 0
	case b.Exclude:
		return -1
	}
	return 1
}

// kind is the group an entry sorts in: IPv4, IPv6, domains.
func kind(e Entry) int {
	switch {
	case e.IsDomain():
		return 2
	case e.Prefix.Addr().Is4():
		return 0
	}
	return 1
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// key identifies what an entry covers, with or without its '!'.
type key struct {
	prefix netip.Prefix
	domain string
}

func (e Entry) key() key { return key{e.Prefix, e.Domain} }
