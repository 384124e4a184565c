package delivery

import (
	"crypto/x509"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ospreysec/osprey/pkg/domainlist"
	"github.com/ospreysec/osprey/pkg/validate"
)

// Config is what the client delivers by: its name, its routes and its TLS
// policy. The zero Config delivers everything by MX lookup to port 25,
// with opportunistic STARTTLS, as the host's name.
type Config struct {
	// HeloName is the name in EHLO (or HELO); "" means os.Hostname.
	HeloName string
	// Port is the port of the hosts found by MX lookup and of configured
	// hosts without their own; 0 means 25.
	Port uint16
	// Routes send the mail of some domains to configured hosts (SMG's
	// "Inbound Local Mail Delivery": local domains to internal servers).
	// A route's domain covers its subdomains; the most specific route wins.
	Routes []Route
	// Default routes every other domain: to its hosts (SMG's "Relay
	// non-local domain mail to the following hosts"), or by MX lookup of
	// the recipient's domain when it has none. Its Domain must be empty.
	Default Route
	// RequireTLS lists domains (each covering its subdomains) whose mail
	// goes only over STARTTLS with a certificate that verifies against
	// RootCAs for the next hop's name (the MX name, or the configured host
	// name). Every other domain gets opportunistic STARTTLS: used when
	// offered, certificate not checked, plaintext when the handshake fails.
	RequireTLS []string
	// RootCAs verifies the next hops of RequireTLS domains; nil means the
	// system's roots.
	RootCAs *x509.CertPool
	// ConnectTimeout bounds a TCP connect (default 30 s), CommandTimeout
	// each command's reply, the greeting and the TLS handshake (default
	// 2 min), DataTimeout the transfer of the message and the reply to its
	// final dot (default 5 min). RFC 5321 §4.5.3.2 recommends 5 to 10
	// minutes; a gateway with a queue behind it does better to try the
	// next host sooner.
	ConnectTimeout, CommandTimeout, DataTimeout time.Duration
}

// Route sends the mail of a domain to its hosts.
type Route struct {
	// Domain covers itself and its subdomains ("example.com" covers
	// "mail.example.com"); empty in Config.Default.
	Domain string
	// Hosts are tried by preference; none means MX lookup of the
	// recipient's domain.
	Hosts []Host
}

// Host is a configured next hop.
type Host struct {
	// Host is an IP address or a host name.
	Host string
	// Port is the host's SMTP port; 0 means Config.Port.
	Port uint16
	// MX looks up Host's MX records and delivers to them instead of to
	// Host's own addresses (Postfix's relayhost without brackets).
	MX bool
	// Preference orders the hosts, lowest first; hosts of equal preference
	// are tried in random order, so they share the load.
	Preference uint32
}

// Defaults of Config.
const (
	DefaultPort           = 25
	DefaultConnectTimeout = 30 * time.Second
	DefaultCommandTimeout = 2 * time.Minute
	DefaultDataTimeout    = 5 * time.Minute
)

// maxAddresses bounds the addresses one delivery tries, like Postfix's
// smtp_mx_address_limit.
const maxAddresses = 5

// Validate reports every problem of c at once as [validate.Errors], each
// with its field's path ("routes[1].hosts[0].host"). It has no side
// effects; an empty HeloName is checked when Apply resolves it.
func (c Config) Validate() error {
	var errs validate.Errors
	add := func(field, format string, args ...any) {
		errs = append(errs, validate.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if c.HeloName != "" && !validHostname(c.HeloName) {
		add("helo_name", "%q is not a host name", c.HeloName)
	}
	for name, d := range map[string]time.Duration{"connect_timeout": c.ConnectTimeout, "command_timeout": c.CommandTimeout, "data_timeout": c.DataTimeout} {
		if d < 0 {
			add(name, "must not be negative")
		}
	}
	seen := map[string]int{}
	for i, r := range c.Routes {
		field := fmt.Sprintf("routes[%d]", i)
		d, err := domainlist.Normalize(r.Domain)
		switch {
		case r.Domain == "":
			add(field+".domain", "required")
		case err != nil:
			add(field+".domain", "%v", err)
		default:
			if j, dup := seen[d]; dup {
				add(field+".domain", "%s is already routed by routes[%d]", d, j)
			}
			seen[d] = i
		}
		checkHosts(add, field, r.Hosts)
	}
	if c.Default.Domain != "" {
		add("default.domain", "must be empty: the default route covers every domain without a route")
	}
	checkHosts(add, "default", c.Default.Hosts)
	tlsSeen := map[string]int{}
	for i, s := range c.RequireTLS {
		field := fmt.Sprintf("require_tls[%d]", i)
		d, err := domainlist.Normalize(s)
		if err != nil {
			add(field, "%v", err)
			continue
		}
		if j, dup := tlsSeen[d]; dup {
			add(field, "%s is already listed as require_tls[%d]", d, j)
		}
		tlsSeen[d] = i
	}
	slices.SortStableFunc(errs, func(a, b validate.FieldError) int { return strings.Compare(fieldOrder(a.Field), fieldOrder(b.Field)) })
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// fieldOrder sorts the timeouts (checked from a map) in a stable order
// among the other fields, which are reported in the order of Config.
func fieldOrder(f string) string {
	switch f {
	case "connect_timeout":
		return "0a"
	case "command_timeout":
		return "0b"
	case "data_timeout":
		return "0c"
	}
	return "1"
}

func checkHosts(add func(field, format string, args ...any), field string, hosts []Host) {
	seen := map[string]int{}
	for j, h := range hosts {
		hf := fmt.Sprintf("%s.hosts[%d]", field, j)
		ip, ipErr := netip.ParseAddr(h.Host)
		switch {
		case h.Host == "":
			add(hf+".host", "required")
		case ipErr == nil && h.MX:
			add(hf+".mx", "an IP address has no MX records: turn mx off, or give a domain")
		case ipErr == nil && ip.Zone() != "":
			add(hf+".host", "%q: a zone is not allowed", h.Host)
		case ipErr != nil && !validHostname(h.Host):
			add(hf+".host", "%q is neither an IP address nor a host name", h.Host)
		default:
			key := fmt.Sprintf("%s:%d:%t", strings.ToLower(strings.TrimSuffix(h.Host, ".")), h.Port, h.MX)
			if k, dup := seen[key]; dup {
				add(hf+".host", "%s is already hosts[%d]", h.Host, k)
			}
			seen[key] = j
		}
	}
}

// validHostname accepts a DNS name of ASCII letters, digits and hyphens
// with at least one dot-free label, as EHLO and host names need.
func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := range len(label) {
			c := label[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return false
			}
		}
	}
	return true
}

// compiled is a validated Config ready for deliveries; it is never changed
// once built, so a delivery in flight keeps the one it started with.
type compiled struct {
	gen                            uint64 // which Apply made it
	helo                           string
	port                           uint16
	routes                         map[string]*route // by normalised domain
	def                            *route
	requireTLS                     map[string]bool
	roots                          *x509.CertPool
	connTimeout, cmdTimeout, dataT time.Duration
}

// route is a compiled Route: its destination key and its hosts.
type route struct {
	key   string // "route:example.com", "relay"; "" for MX lookup
	hosts []Host // sorted by preference
}

func compile(c Config, hostname func() (string, error)) (*compiled, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	helo := c.HeloName
	if helo == "" {
		h, err := hostname()
		if err != nil || !validHostname(h) {
			return nil, validate.Errors{{Field: "helo_name", Message: fmt.Sprintf("required: the host's name %q (%v) is not a valid EHLO name", h, err)}}
		}
		helo = h
	}
	cc := &compiled{
		helo:        strings.TrimSuffix(helo, "."),
		port:        c.Port,
		routes:      map[string]*route{},
		requireTLS:  map[string]bool{},
		roots:       c.RootCAs,
		connTimeout: or(c.ConnectTimeout, DefaultConnectTimeout),
		cmdTimeout:  or(c.CommandTimeout, DefaultCommandTimeout),
		dataT:       or(c.DataTimeout, DefaultDataTimeout),
	}
	if cc.port == 0 {
		cc.port = DefaultPort
	}
	for _, r := range c.Routes {
		d, _ := domainlist.Normalize(r.Domain)
		cr := &route{hosts: sortHosts(r.Hosts)}
		if len(cr.hosts) > 0 {
			cr.key = "route:" + d
		}
		cc.routes[d] = cr
	}
	cc.def = &route{hosts: sortHosts(c.Default.Hosts)}
	if len(cc.def.hosts) > 0 {
		cc.def.key = "relay"
	}
	for _, s := range c.RequireTLS {
		d, _ := domainlist.Normalize(s)
		cc.requireTLS[d] = true
	}
	return cc, nil
}

func sortHosts(hs []Host) []Host {
	out := slices.Clone(hs)
	slices.SortStableFunc(out, func(a, b Host) int { return cmpUint(a.Preference, b.Preference) })
	return out
}

func cmpUint(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func or(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// routeFor returns the route of a normalised recipient domain: the most
// specific configured route, else the default.
func (cc *compiled) routeFor(domain string) *route {
	for d := domain; ; {
		if r, ok := cc.routes[d]; ok {
			return r
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return cc.def
		}
		d = d[i+1:]
	}
}

// tlsRequired reports whether a normalised recipient domain is covered by
// Config.RequireTLS.
func (cc *compiled) tlsRequired(domain string) bool {
	for d := domain; ; {
		if cc.requireTLS[d] {
			return true
		}
		i := strings.IndexByte(d, '.')
		if i < 0 {
			return false
		}
		d = d[i+1:]
	}
}

// destination is the routing key of a recipient domain (see
// Client.Destination).
func (cc *compiled) destination(rd rcptDomain) string {
	if rd.literal.IsValid() {
		if r := cc.def; r.key != "" {
			return r.key
		}
		return "[" + rd.literal.String() + "]"
	}
	if r := cc.routeFor(rd.name); r.key != "" {
		if cc.tlsRequired(rd.name) {
			// Not in one transaction with mail that may go in plaintext.
			return r.key + "+tls"
		}
		return r.key
	}
	return rd.name
}
