// Package netlist matches SMTP client addresses against the "Clients" list of
// an SMTP integration: IPv4 and IPv6 addresses and CIDR prefixes, each of
// which may be prefixed with '!' to exclude it.
//
// Rules, chosen so that a list means what an administrator reading it
// expects and so that a list that cannot mean that is refused at validation:
//
//   - An exclusion wins over any inclusion, whatever the prefix lengths:
//     with "10.0.0.0/8, !10.1.0.0/16, 10.1.2.0/24", 10.1.2.3 is excluded.
//     An inclusion that lies wholly inside an exclusion therefore has no
//     effect, and Parse refuses it rather than let it look as if it did.
//   - An exclusion that overlaps no inclusion of a list that has inclusions
//     has no effect either (usually a typo) and is refused too. In a list of
//     exclusions only, each exclusion is kept: the caller decides what the
//     blank inclusion means (any client, or the sensor's own subnets; see
//     [List.WithDefault]).
//   - A prefix with host bits set ("10.0.0.1/8") is refused, naming the
//     prefix that was probably meant; an address is the same as its /32 or
//     /128 prefix.
//   - IPv6 zones ("fe80::1%eth0") are refused: a zone names an interface of
//     one machine and cannot be matched by a client address.
//   - IPv4-mapped IPv6 addresses and prefixes (::ffff:10.0.0.1,
//     ::ffff:10.0.0.0/104) are the IPv4 ones, in the list and when matched,
//     since a dual-stack listener reports IPv4 clients in that form.
//   - Duplicates after those conversions are refused, including the same
//     prefix both included and excluded.
//
// Entries are not trimmed: surrounding spaces are an error, as are empty
// entries. [Parse] reports every bad entry at once as [Errors], each with
// the index of the entry, so that a caller can name the field
// ("clients[3]").
package netlist

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/ospreysec/osprey/pkg/listentry"
)

// Errors an [EntryError] wraps; match them with [errors.Is].
var (
	ErrEmpty     = errors.New("empty entry")
	ErrSyntax    = errors.New("not an IP address or CIDR prefix")
	ErrZone      = errors.New("IPv6 zones are not allowed")
	ErrHostBits  = errors.New("host bits set")
	ErrDuplicate = errors.New("duplicate entry")
	ErrNoEffect  = errors.New("entry has no effect")
)

// EntryError is a problem with one entry of a list.
type EntryError = listentry.Error

// Errors is the error returned by [Parse]: one [EntryError] per bad entry,
// in the order of the entries.
type Errors = listentry.Errors[*EntryError]

// List is a parsed client list. The zero value and nil are empty lists. A
// List is immutable and safe for concurrent use.
type List struct {
	include []netip.Prefix
	exclude []netip.Prefix
	entries []string // normalised, in input order, "!" marking exclusions
}

type entry struct {
	index   int
	exclude bool
	prefix  netip.Prefix
}

// Parse parses a list of entries; see the package comment for the rules.
// On error it returns [Errors] listing every bad entry.
func Parse(entries []string) (*List, error) {
	var errs Errors
	bad := func(i int, err error) {
		errs = append(errs, &EntryError{Index: i, Entry: entries[i], Err: err})
	}
	parsed := make([]entry, 0, len(entries))
	seen := make(map[netip.Prefix]int, len(entries))
	for i, s := range entries {
		exclude := strings.HasPrefix(s, "!")
		p, err := ParsePrefix(strings.TrimPrefix(s, "!"))
		if err != nil {
			bad(i, err)
			continue
		}
		if j, ok := seen[p]; ok {
			bad(i, fmt.Errorf("%w: same as entry %d %q", ErrDuplicate, j, entries[j]))
			continue
		}
		seen[p] = i
		parsed = append(parsed, entry{index: i, exclude: exclude, prefix: p})
	}

	l := &List{}
	for _, e := range parsed {
		if e.exclude {
			l.exclude = append(l.exclude, e.prefix)
		} else {
			l.include = append(l.include, e.prefix)
		}
	}
	// Whether an entry has an effect depends on the others: judge it only
	// once every entry is well-formed, or fixing one typo could turn
	// another entry's error into a different one.
	if len(errs) == 0 {
		for _, e := range parsed {
			if err := l.effect(e, parsed); err != nil {
				bad(e.index, err)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	for _, e := range parsed {
		l.entries = append(l.entries, format(e.exclude, e.prefix))
	}
	return l, nil
}

// effect reports an entry that cannot change what the list matches.
func (l *List) effect(e entry, all []entry) error {
	if !e.exclude {
		for _, o := range all {
			if o.exclude && o.prefix.Bits() <= e.prefix.Bits() && o.prefix.Contains(e.prefix.Addr()) {
				return fmt.Errorf("%w: inside exclusion entry %d %q, and exclusions win", ErrNoEffect, o.index, format(true, o.prefix))
			}
		}
		return nil
	}
	if len(l.include) == 0 {
		return nil
	}
	for _, p := range l.include {
		if p.Overlaps(e.prefix) {
			return nil
		}
	}
	return fmt.Errorf("%w: excludes addresses that no inclusion covers", ErrNoEffect)
}

func format(exclude bool, p netip.Prefix) string {
	s := p.String()
	if p.IsSingleIP() {
		s = p.Addr().String()
	}
	if exclude {
		return "!" + s
	}
	return s
}

// ParsePrefix parses one address or CIDR prefix, without the '!' of an
// exclusion, into its canonical prefix: an address becomes a /32 or /128
// prefix and an IPv4-mapped IPv6 address or prefix becomes an IPv4 one.
func ParsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, ErrEmpty
	}
	if strings.Contains(s, "%") {
		return netip.Prefix{}, ErrZone
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, ErrSyntax
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, ErrSyntax
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%w, did you mean %s", ErrHostBits, m)
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			// Wider than ::ffff:0:0/96: not an IPv4 range, keep it as IPv6.
			return p, nil
		}
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96), nil
	}
	return p, nil
}

// FromPrefixes returns a list that includes the given prefixes (masked, and
// IPv4-mapped ones converted to IPv4), for instance the machine's own
// subnets from [LocalSubnets].
func FromPrefixes(prefixes []netip.Prefix) *List {
	l := &List{}
	seen := make(map[netip.Prefix]bool, len(prefixes))
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		p = p.Masked()
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		l.include = append(l.include, p)
		l.entries = append(l.entries, format(false, p))
	}
	return l
}

// Contains reports whether addr is included by the list and excluded by no
// exclusion. An IPv4-mapped IPv6 address is matched as IPv4. A list without
// inclusions (including an empty list) contains nothing: the caller decides
// what a blank list means, for instance with [List.WithDefault].
func (l *List) Contains(addr netip.Addr) bool {
	if l == nil || !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	if l.Excludes(addr) {
		return false
	}
	for _, p := range l.include {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Excludes reports whether addr is covered by one of the list's exclusions.
func (l *List) Excludes(addr netip.Addr) bool {
	if l == nil {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range l.exclude {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Empty reports whether the list has no entries at all.
func (l *List) Empty() bool {
	return l == nil || len(l.include)+len(l.exclude) == 0
}

// HasInclusions reports whether the list has at least one inclusion.
func (l *List) HasInclusions() bool {
	return l != nil && len(l.include) > 0
}

// WithDefault returns l itself when it has inclusions, and otherwise a list
// that includes defaults and keeps l's exclusions. This is how the SMTP
// integration's blank-list rule is applied: a list of exclusions only, or an
// empty one, means "the default clients except these".
func (l *List) WithDefault(defaults []netip.Prefix) *List {
	if l.HasInclusions() {
		return l
	}
	d := FromPrefixes(defaults)
	if l != nil {
		d.exclude = append(d.exclude, l.exclude...)
		for _, p := range l.exclude {
			d.entries = append(d.entries, format(true, p))
		}
	}
	return d
}

// Entries returns the list's entries in their canonical form, in the order
// given: "10.0.0.0/8", "!10.0.0.5", "2001:db8::/32". Parse(l.Entries())
// yields an equal list.
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

// Any is the list of inclusions that covers every IPv4 and IPv6 address.
var Any = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// LocalSubnets returns the subnets of the machine's network interfaces that
// are up (loopback included), as masked prefixes: an interface address
// 192.0.2.10/24 gives 192.0.2.0/24.
func LocalSubnets() ([]netip.Prefix, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	var out []netip.Prefix
	seen := make(map[netip.Prefix]bool)
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of interface %s: %w", ifc.Name, err)
		}
		for _, a := range addrs {
			ipnet, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			p, ok := prefixOf(ipnet)
			if !ok || seen[p] {
				continue
			}
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	if addr.Is4() && bits == 128 {
		ones -= 96
	}
	p, err := addr.Prefix(ones)
	if err != nil {
		return netip.Prefix{}, false
	}
	return p, true
}
