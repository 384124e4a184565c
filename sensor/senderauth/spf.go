package senderauth

import (
	"context"
	"net"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"
	"golang.org/x/net/idna"
)

// spfCheck is an SPF check under way.
type spfCheck struct {
	done   chan struct{}
	cancel context.CancelFunc
	result string
	domain string
}

// startSPF checks the MAIL FROM domain of from, or for the null sender the
// HELO name (RFC 7208 §2.3, §2.4: as postmaster@helo), on a goroutine.
// A domain that is not a domain name (an address literal) is "none".
func (c *Checker) startSPF(ctx context.Context, ip netip.Addr, helo, from string) *spfCheck {
	s := &spfCheck{done: make(chan struct{})}
	sender, domain := from, domainOf(from)
	if from == "" {
		sender, domain = "postmaster@"+helo, helo
	}
	d, ok := cleanDomain(domain)
	if ok {
		s.domain = d
	}
	if !ok || !ip.IsValid() {
		s.result = None
		close(s.done)
		return s
	}
	ctx, s.cancel = context.WithTimeout(ctx, c.cfg.CheckTimeout)
	go func() {
		defer close(s.done)
		r, _ := spf.CheckHostWithSender(net.IP(ip.Unmap().AsSlice()), helo, sender, spf.WithContext(ctx), spf.WithResolver(c.res))
		s.result = string(r)
	}()
	return s
}

// wait returns the result and the domain checked.
func (s *spfCheck) wait() (result, domain string) {
	<-s.done
	return s.result, s.domain
}

// stop ends the check and waits for its goroutine.
func (s *spfCheck) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	<-s.done
}

// domainOf returns the domain of an address: what follows its last '@'.
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// cleanDomain returns a domain name in lower-case A-labels without the
// final dot, cut to 253 bytes, and whether it is one: only letters,
// digits, '-', '_' and '.' in labels of 1 to 63 bytes, two labels at
// least. What it returns is safe in a header and a log line either way
// (anything else is replaced by '?').
func cleanDomain(d string) (string, bool) {
	d = strings.TrimSuffix(strings.TrimSpace(d), ".")
	ok := d != ""
	if a, err := idna.Lookup.ToASCII(d); err == nil {
		d = a
	}
	d = strings.ToLower(d)
	if len(d) > maxName {
		d, ok = d[:maxName], false
	}
	d = strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		ok = false
		return '?'
	}, d)
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		ok = false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			ok = false
		}
	}
	return d, ok
}

// cleanToken is a DKIM selector made safe as cleanDomain makes a domain,
// without its checks.
func cleanToken(s string) string {
	if len(s) > maxName {
		s = s[:maxName]
	}
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '?'
	}, s)
}
