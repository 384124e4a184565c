package acceptlist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"go4.org/netipx"

	"github.com/ospreysec/osprey/pkg/domainlist"
)

// Matcher is a list compiled for matching clients. nil matches nothing. A
// Matcher is immutable and safe for concurrent use.
type Matcher struct {
	in      *netipx.IPSet // the inclusions less the exclusions
	out     *netipx.IPSet // the exclusions
	domains map[string]struct{}
	n       int
}

// Compile parses entries (as Parse does) and compiles them.
func Compile(entries []string) (*Matcher, error) {
	l, err := Parse(entries)
	if err != nil {
		return nil, err
	}
	return l.Matcher(), nil
}

// Matcher compiles l.
func (l *List) Matcher() *Matcher {
	var in, out netipx.IPSetBuilder
	m := &Matcher{n: l.Len()}
	for _, e := range l.entriesOrNil() {
		switch {
		case e.IsDomain():
			if m.domains == nil {
				m.domains = map[string]struct{}{}
			}
			m.domains[e.Domain] = struct{}{}
		case e.Exclude:
			out.AddPrefix(e.Prefix)
		default:
			in.AddPrefix(e.Prefix)
		}
	}
	// Every prefix added is valid, so the sets build without error.
	m.out, _ = out.IPSet()
	in.RemoveSet(m.out)
	m.in, _ = in.IPSet()
	return m
}

func (l *List) entriesOrNil() []Entry {
	if l == nil {
		return nil
	}
	return l.entries
}

// Len returns the number of entries compiled.
func (m *Matcher) Len() int {
	if m == nil {
		return 0
	}
	return m.n
}

// Contains reports whether addr is matched by address: included by an
// entry and excluded by none. An IPv4-mapped IPv6 address is matched as
// IPv4; a zone is ignored.
func (m *Matcher) Contains(addr netip.Addr) bool {
	if m == nil {
		return false
	}
	return m.in.Contains(addr.Unmap().WithZone(""))
}

// Excludes reports whether addr is covered by an exclusion: then neither
// its address nor its name matches.
func (m *Matcher) Excludes(addr netip.Addr) bool {
	if m == nil {
		return false
	}
	return m.out.Contains(addr.Unmap().WithZone(""))
}

// HasDomains reports whether the list holds domains: whether a client's
// name can match it.
func (m *Matcher) HasDomains() bool {
	return m != nil && len(m.domains) > 0
}

// NeedsName reports whether the client at addr matches only through its
// name: the list has domains, and addr is neither matched nor excluded.
func (m *Matcher) NeedsName(addr netip.Addr) bool {
	return m.HasDomains() && !m.Contains(addr) && !m.Excludes(addr)
}

// MatchName reports whether name (a host name, in any case, with or
// without its trailing dot) or one of its parent domains is in the list.
func (m *Matcher) MatchName(name string) bool {
	if !m.HasDomains() {
		return false
	}
	d, err := domainlist.Normalize(name)
	if err != nil {
		return false
	}
	for {
		if _, ok := m.domains[d]; ok {
			return true
		}
		_, parent, ok := strings.Cut(d, ".")
		if !ok {
			return false
		}
		d = parent
	}
}

// Match reports whether the client at addr, whose forward-confirmed names
// are names (see [ConfirmedNames]), is matched: by its address, or, when
// the address is not excluded, by one of its names.
func (m *Matcher) Match(addr netip.Addr, names []string) bool {
	if m.Contains(addr) {
		return true
	}
	if len(names) == 0 || !m.HasDomains() || m.Excludes(addr) {
		return false
	}
	for _, n := range names {
		if m.MatchName(n) {
			return true
		}
	}
	return false
}

// Resolver is the DNS a forward-confirmed reverse lookup asks; a
// *net.Resolver is one.
type Resolver interface {
	LookupAddr(ctx context.Context, addr string) ([]string, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// maxNames bounds the PTR names of one address that are looked up forward.
const maxNames = 10

// ConfirmedNames returns the names of addr that its PTR records give and
// that resolve back to it (forward-confirmed reverse DNS), among those
// that want accepts (nil: all); want spares the forward lookup of a name
// that no list could match. An address without names (NXDOMAIN, no PTR
// record) has none, which is no error; a failed lookup is an error, unless
// a name was confirmed nonetheless.
func ConfirmedNames(ctx context.Context, r Resolver, addr netip.Addr, want func(name string) bool) ([]string, error) {
	addr = addr.Unmap().WithZone("")
	ptrs, err := r.LookupAddr(ctx, addr.String())
	if err != nil {
		if notFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reverse lookup of %s: %w", addr, err)
	}
	var (
		out   []string
		fails []error
	)
	for _, name := range ptrs[:min(len(ptrs), maxNames)] {
		if want != nil && !want(name) {
			continue
		}
		ips, err := r.LookupIPAddr(ctx, name)
		if err != nil {
			if !notFound(err) {
				fails = append(fails, fmt.Errorf("lookup of %s, the name of %s: %w", name, addr, err))
			}
			continue
		}
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip.IP); ok && a.Unmap() == addr {
				out = append(out, strings.TrimSuffix(name, "."))
				break
			}
		}
	}
	if len(out) == 0 && len(fails) > 0 {
		return nil, errors.Join(fails...)
	}
	return out, nil
}

// notFound reports whether a lookup error says the name has no such
// record, which is an answer, not a failure.
func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
