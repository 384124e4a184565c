package delivery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/ospreysec/osprey/pkg/domainlist"
)

// Resolver looks up the next hops; *net.Resolver satisfies it.
type Resolver interface {
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// rcptDomain is where a recipient's mail goes: a normalised domain name, or
// the address of an address literal ("user@[192.0.2.1]").
type rcptDomain struct {
	name    string
	literal netip.Addr
}

// parseRcptDomain returns the domain of an envelope recipient: the text
// after its last '@', normalised (lower-case A-labels, no trailing dot), or
// the address of an address literal (RFC 5321 §4.1.3: "[192.0.2.1]",
// "[IPv6:2001:db8::1]").
func parseRcptDomain(rcpt string) (rcptDomain, error) {
	i := strings.LastIndexByte(rcpt, '@')
	if i <= 0 || i == len(rcpt)-1 {
		return rcptDomain{}, fmt.Errorf("recipient %q has no domain", rcpt)
	}
	d := rcpt[i+1:]
	if lit, ok := strings.CutPrefix(d, "["); ok {
		lit, ok = strings.CutSuffix(lit, "]")
		if !ok {
			return rcptDomain{}, fmt.Errorf("recipient %q: unterminated address literal", rcpt)
		}
		v6, isV6 := cutPrefixFold(lit, "IPv6:")
		if isV6 {
			lit = v6
		}
		a, err := netip.ParseAddr(lit)
		if err != nil || a.Zone() != "" || a.Is4() == isV6 || a.Is4In6() {
			return rcptDomain{}, fmt.Errorf("recipient %q: bad address literal", rcpt)
		}
		return rcptDomain{literal: a}, nil
	}
	n, err := domainlist.Normalize(d)
	if err != nil {
		return rcptDomain{}, fmt.Errorf("recipient %q: %w", rcpt, err)
	}
	return rcptDomain{name: n}, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// target is one address to try.
type target struct {
	name   string // the host's name as found: MX name, configured host, "[192.0.2.1]"
	addr   netip.AddrPort
	verify string // the name (or IP) a required certificate must match
}

// label is how logs and results name a target: "mx1.example.com
// [192.0.2.1]:25".
func (t target) label() string {
	return fmt.Sprintf("%s [%s]:%d", t.name, t.addr.Addr(), t.addr.Port())
}

// failure is the outcome of an attempt that did not reach a transaction:
// a code and status of ours in the class the failure has.
type failure struct {
	code     int
	enhanced string
	text     string
}

func (f failure) permanent() bool { return f.code >= 500 }

func tempFail(enhanced, format string, args ...any) failure {
	return failure{code: 451, enhanced: enhanced, text: fmt.Sprintf(format, args...)}
}

func permFail(code int, enhanced, format string, args ...any) failure {
	return failure{code: code, enhanced: enhanced, text: fmt.Sprintf(format, args...)}
}

// targets lists the addresses to try for a recipient domain, in order: the
// route's hosts by preference, or the domain's MX hosts by preference (equal
// preferences shuffled), each host's addresses in the resolver's order,
// without duplicates. It fails when no address is found.
func (c *Client) targets(ctx context.Context, cc *compiled, rd rcptDomain) ([]target, *failure) {
	r := cc.def
	if !rd.literal.IsValid() {
		r = cc.routeFor(rd.name)
	}
	var out []target
	add := func(ts ...target) {
		for _, t := range ts {
			if !slices.ContainsFunc(out, func(o target) bool { return o.addr == t.addr }) {
				out = append(out, t)
			}
		}
	}
	switch {
	case len(r.hosts) > 0:
		var lastErr *failure
		for _, h := range shuffleEqual(r.hosts, func(h Host) uint32 { return h.Preference }) {
			port := h.Port
			if port == 0 {
				port = cc.port
			}
			if ip, err := netip.ParseAddr(h.Host); err == nil {
				add(target{name: ip.String(), addr: netip.AddrPortFrom(ip.Unmap(), port), verify: ip.String()})
				continue
			}
			var ts []target
			var f *failure
			if h.MX {
				ts, f = c.mxTargets(ctx, strings.TrimSuffix(h.Host, "."), port)
			} else {
				ts, f = c.hostTargets(ctx, strings.TrimSuffix(h.Host, "."), port)
			}
			add(ts...)
			if f != nil {
				lastErr = f
			}
		}
		if len(out) == 0 {
			// A configured host that is not found is the gateway's
			// problem, not the sender's: mail waits for the fix.
			f := tempFail("4.4.4", "no address found for the configured hosts")
			if lastErr != nil {
				f.text = lastErr.text
				if !lastErr.permanent() {
					f.enhanced = lastErr.enhanced
				}
			}
			return nil, &f
		}
		return out, nil
	case rd.literal.IsValid():
		return []target{{name: "[" + rd.literal.String() + "]", addr: netip.AddrPortFrom(rd.literal, cc.port), verify: rd.literal.String()}}, nil
	default:
		return c.mxTargets(ctx, rd.name, cc.port)
	}
}

// mxTargets resolves a domain's MX hosts (RFC 5321 §5.1): by preference,
// the domain itself when it has no MX records, nothing and a permanent
// failure for a null MX (RFC 7505) or a domain that does not exist.
func (c *Client) mxTargets(ctx context.Context, domain string, port uint16) ([]target, *failure) {
	mxs, err := c.resolver.LookupMX(ctx, domain)
	if err != nil {
		if !isNotFound(err) {
			f := tempFail("4.4.3", "Host or domain name lookup failed: %s type=MX: %v", domain, err)
			return nil, &f
		}
		// No MX records: the domain is its own mail host.
		ts, f := c.hostTargets(ctx, domain, port)
		if f != nil && f.enhanced == "5.4.4" {
			ff := permFail(550, "5.1.2", "Host or domain name not found: %s: no MX and no A/AAAA records", domain)
			return nil, &ff
		}
		return ts, f
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		f := permFail(556, "5.1.10", "Domain %s does not accept mail (null MX)", domain)
		return nil, &f
	}
	mxs = slices.DeleteFunc(slices.Clone(mxs), func(mx *net.MX) bool { return mx.Host == "." || mx.Host == "" })
	slices.SortStableFunc(mxs, func(a, b *net.MX) int { return int(a.Pref) - int(b.Pref) })
	var out []target
	var lastErr *failure
	for _, mx := range shuffleEqual(mxs, func(mx *net.MX) uint32 { return uint32(mx.Pref) }) {
		ts, f := c.hostTargets(ctx, strings.TrimSuffix(mx.Host, "."), port)
		if f != nil {
			lastErr = f
		}
		for _, t := range ts {
			if !slices.ContainsFunc(out, func(o target) bool { return o.addr == t.addr }) {
				out = append(out, t)
			}
		}
		if len(out) >= maxAddresses {
			break
		}
	}
	if len(out) == 0 {
		return nil, lastErr
	}
	return out, nil
}

// hostTargets resolves one host name to its addresses.
func (c *Client) hostTargets(ctx context.Context, host string, port uint16) ([]target, *failure) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []target{{name: host, addr: netip.AddrPortFrom(ip.Unmap(), port), verify: host}}, nil
	}
	addrs, err := c.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		if isNotFound(err) {
			f := permFail(550, "5.4.4", "Host or domain name not found: %s type=A/AAAA", host)
			return nil, &f
		}
		f := tempFail("4.4.3", "Host or domain name lookup failed: %s type=A/AAAA: %v", host, err)
		return nil, &f
	}
	var out []target
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.IsUnspecified() {
			continue
		}
		out = append(out, target{name: host, addr: netip.AddrPortFrom(ip.Unmap(), port), verify: host})
	}
	if len(out) == 0 {
		f := permFail(550, "5.4.4", "Host or domain name not found: %s has no usable address", host)
		return nil, &f
	}
	return out, nil
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// shuffleEqual returns xs (sorted by pref) with each run of equal
// preferences in random order.
func shuffleEqual[T any](xs []T, pref func(T) uint32) []T {
	out := slices.Clone(xs)
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && pref(out[j]) == pref(out[i]) {
			j++
		}
		run := out[i:j]
		rand.Shuffle(len(run), func(a, b int) { run[a], run[b] = run[b], run[a] })
		i = j
	}
	return out
}
