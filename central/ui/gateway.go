package ui

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/pkg/validate"
)

// The gateway part of the SMTP page (docs/configuration.md, "Gateway mode").
// Listeners, the lists of networks and domains and the numbers are fields
// like the monitor listener's. The local domains and the relay hosts, lists
// of routes, are text, one entry a line, read and written here:
//
//	example.com  10.0.0.10:25 pref=10  10.0.0.11 pref=20
//	example.org  mx.example.org mx  require_tls
//	example.net
//
// A local domain's line is the domain, then its hosts (none: its MX hosts),
// and require_tls anywhere after the domain. A host is host[:port] (an IPv6
// address in brackets when a port follows), followed by its options: pref=N
// (its preference, lower first) and mx (deliver to the MX hosts of host).
// The relay hosts are hosts with their options, one or more a line. A word
// starting with # starts a comment, to the end of its line; blank lines are
// skipped. A validation error of a
// route names its line: the error of gateway.local_domains[1].hosts[0].port
// is shown under the text as "line 2, host 1: port: ...".

// gatewayForm is the gateway part of the SMTP form.
type gatewayForm struct {
	Inbound, Outbound listenerForm
	LocalDomains      string
	InboundAcceptance string // "all" or "listed"
	// LegacyTrusted are trusted networks an earlier version kept here that
	// no node could move into the outbound acceptance list: shown, and
	// dropped by the next apply.
	LegacyTrusted     []string
	RelayHosts        string
	RequireTLSDomains []string
	HeloName          string
	HoldTimeout       string
	OnTimeout         string
	Queue             []limitField
	SenderAuth        senderAuthForm
	Submission        submissionForm
	Verify            verifyForm
	Rates             []limitField
	// domainLines and relayLines are the line (from 1) of each local domain
	// and each relay host, for their errors.
	domainLines, relayLines []int
}

// Runs reports whether the form's mode is one of modes (separated by
// spaces); an empty mode is monitor.
func (f smtpForm) Runs(modes string) bool {
	mode := f.Mode
	if mode == "" {
		mode = string(api.SMTPMonitor)
	}
	return slices.Contains(strings.Fields(modes), mode)
}

// listenerForm is a listener in the form: a gateway direction's, or (Dir
// empty, only its TLS) the monitor listener's.
type listenerForm struct {
	Dir, Title       string // "inbound", "Inbound"
	path             string // the validation path of its fields; empty: "gateway." + Dir
	Listen, ListenV6 string
	TLSMode          string
	ClientCert       string
	CertPEM          string
	KeySet           bool
	ClientCAPEM      string
}

// TLSListener is the monitor listener's TLS, as the TLS fields show it.
func (f smtpForm) TLSListener() listenerForm {
	return listenerForm{TLSMode: f.TLSMode, ClientCert: f.ClientCert, CertPEM: f.CertPEM, KeySet: f.KeySet, ClientCAPEM: f.ClientCAPEM}
}

// ID is the id of the listener's input for field ("listen", "tls-mode").
func (l listenerForm) ID(field string) string {
	if l.Dir == "" {
		return "smtp-" + field
	}
	return "smtp-gw-" + l.Dir + "-" + field
}

// Name is the form name of the listener's input for field ("tls_mode").
func (l listenerForm) Name(field string) string {
	if l.Dir == "" {
		return field
	}
	return "gw_" + l.Dir + "_" + field
}

// Path is the validation path of the listener's field ("listen", "tls.mode").
func (l listenerForm) Path(field string) string {
	switch {
	case l.Dir == "":
		return field
	case l.path != "":
		return l.path + "." + field
	}
	return "gateway." + l.Dir + "." + field
}

// Modes are the SMTP modes that run the listener's direction.
func (l listenerForm) Modes() string { return l.Dir + " inbound_outbound" }

var queueDefs = []limitDef[api.DeliveryQueueSettings]{
	{"min_backoff_seconds", "First retry after", "seconds", validate.DefaultMinBackoffSeconds, func(q *api.DeliveryQueueSettings) *uint32 { return &q.MinBackoffSeconds }},
	{"max_backoff_seconds", "Longest wait between retries", "seconds", validate.DefaultMaxBackoffSeconds, func(q *api.DeliveryQueueSettings) *uint32 { return &q.MaxBackoffSeconds }},
	{"delay_warning_seconds", "Delay notice to the sender after", "seconds", validate.DefaultDelayWarningSeconds, func(q *api.DeliveryQueueSettings) *uint32 { return &q.DelayWarningSeconds }},
	{"max_lifetime_seconds", "Bounce to the sender after", "seconds", validate.DefaultMaxLifetimeSeconds, func(q *api.DeliveryQueueSettings) *uint32 { return &q.MaxLifetimeSeconds }},
	{"destination_concurrency", "Deliveries in parallel to one destination", "", validate.DefaultDestinationConcurrency, func(q *api.DeliveryQueueSettings) *uint32 { return &q.DestinationConcurrency }},
	{"concurrency", "Deliveries in parallel in all", "", validate.DefaultConcurrency, func(q *api.DeliveryQueueSettings) *uint32 { return &q.Concurrency }},
}

// addGatewayFields adds the gateway's field paths to the SMTP form's.
func addGatewayFields(m map[string]formField) {
	m["mode"] = formField{"Mode", "smtp-mode"}
	for _, l := range []listenerForm{{Dir: "inbound", Title: "Inbound"}, {Dir: "outbound", Title: "Outbound"}, submissionListener} {
		for path, f := range map[string]formField{
			"listen":            {"listen address (IPv4)", "listen"},
			"listen_v6":         {"listen address (IPv6)", "listen-v6"},
			"tls.mode":          {"TLS", "tls-mode"},
			"tls.cert_pem":      {"server certificate", "tls-cert"},
			"tls.key_pem":       {"private key", "tls-key"},
			"tls.client_cert":   {"client certificates", "tls-client-cert"},
			"tls.client_ca_pem": {"client CA certificates", "tls-client-ca"},
		} {
			m[l.Path(path)] = formField{l.Title + " " + f.label, l.ID(f.id)}
		}
	}
	m["gateway.local_domains"] = formField{"Local domains", "smtp-gw-domains"}
	m["gateway.inbound_acceptance"] = formField{"Accept inbound mail from", "smtp-gw-inbound-acceptance-all"}
	m["gateway.trusted_networks"] = formField{"Trusted networks", "smtp-gw-inbound-acceptance-all"}
	m["gateway.relay_hosts"] = formField{"Relay hosts", "smtp-gw-relay"}
	m["gateway.require_tls_domains"] = formField{"Require TLS to", "smtp-gw-require-tls"}
	m["gateway.helo_name"] = formField{"HELO name", "smtp-gw-helo"}
	m["gateway.hold_timeout_seconds"] = formField{"Hold for a verdict", "smtp-gw-hold-timeout"}
	m["gateway.on_timeout"] = formField{"Then", "smtp-gw-on-timeout"}
	for _, l := range limitFields("gateway.queue", queueDefs, nil) {
		m[l.Path()] = formField{l.Label, l.ID()}
	}
	addSenderAuthFields(m)
	addSubmissionFields(m)
	addLimitFields(m)
}

func gatewayFormFrom(g *api.SMTPGateway) gatewayForm {
	f := gatewayForm{
		Inbound:           listenerFormFrom("inbound", "Inbound", g.Inbound),
		Outbound:          listenerFormFrom("outbound", "Outbound", g.Outbound),
		InboundAcceptance: string(g.InboundAcceptance),
		LegacyTrusted:     g.TrustedNetworks, //lint:ignore SA1019 shown, to be dropped
		RequireTLSDomains: g.RequireTLSDomains,
		HeloName:          g.HeloName, OnTimeout: string(g.OnTimeout),
		Queue:      limitFields("gateway.queue", queueDefs, g.Queue),
		SenderAuth: senderAuthFormFrom(g.SenderAuth),
		Submission: submissionFormFrom(g.Submission),
		Verify:     verifyFormFrom(g.RecipientVerification),
		Rates:      limitFields("gateway.rate_limits", rateDefs, g.RateLimits),
	}
	f.LocalDomains, f.domainLines = formatLocalDomains(g.LocalDomains)
	var lines []string
	for i, h := range g.RelayHosts {
		lines = append(lines, formatNextHop(h))
		f.relayLines = append(f.relayLines, i+1)
	}
	f.RelayHosts = strings.Join(lines, "\n")
	if g.HoldTimeoutSeconds != 0 {
		f.HoldTimeout = strconv.FormatUint(uint64(g.HoldTimeoutSeconds), 10)
	}
	if f.OnTimeout == "" {
		f.OnTimeout = string(api.DeliverUnscanned)
	}
	if f.InboundAcceptance == "" {
		f.InboundAcceptance = string(api.AcceptanceAll)
	}
	return f
}

func listenerFormFrom(dir, title string, l *api.GatewayListener) listenerForm {
	return listenerFormOf(listenerForm{Dir: dir, Title: title}, l)
}

// listenerFormOf is f, a listener's names, with the settings of l.
func listenerFormOf(f listenerForm, l *api.GatewayListener) listenerForm {
	f.TLSMode, f.ClientCert = string(api.TLSOff), string(api.ClientCertOff)
	if l == nil {
		return f
	}
	f.Listen, f.ListenV6 = l.Listen, l.ListenV6
	if t := l.TLS; t != nil {
		if t.Mode != "" {
			f.TLSMode = string(t.Mode)
		}
		if t.ClientCert != "" {
			f.ClientCert = string(t.ClientCert)
		}
		f.CertPEM, f.KeySet, f.ClientCAPEM = t.CertPEM, t.KeySet, t.ClientCAPEM
	}
	return f
}

// parseGatewayForm reads the gateway part of the SMTP form: what it shows
// again, and what is written. Lines of the routes that do not parse are
// errors of their field.
func parseGatewayForm(fr *formReader) (gatewayForm, *api.SMTPGateway) {
	f := gatewayForm{
		Inbound:           readListener(fr, "inbound", "Inbound"),
		Outbound:          readListener(fr, "outbound", "Outbound"),
		LocalDomains:      fr.r.PostFormValue("gw_local_domains"),
		InboundAcceptance: fr.text("gw_inbound_acceptance"),
		RequireTLSDomains: fr.list("gateway.require_tls_domains"),
		RelayHosts:        fr.r.PostFormValue("gw_relay_hosts"),
		HeloName:          fr.text("gw_helo_name"), HoldTimeout: fr.text("gw_hold_timeout"), OnTimeout: fr.text("gw_on_timeout"),
	}
	g := &api.SMTPGateway{
		InboundAcceptance: api.AcceptanceMode(f.InboundAcceptance),
		RequireTLSDomains: f.RequireTLSDomains, HeloName: f.HeloName,
		HoldTimeoutSeconds: uint32(fr.uint("gw_hold_timeout", "gateway.hold_timeout_seconds", 32)),
		OnTimeout:          api.HoldTimeoutAction(f.OnTimeout),
		Queue:              &api.DeliveryQueueSettings{},
	}
	g.Inbound, g.Outbound = f.Inbound.read(fr), f.Outbound.read(fr)
	f.Queue = readLimits(fr, "gateway.queue", queueDefs, g.Queue)
	f.SenderAuth, g.SenderAuth = readSenderAuth(fr)
	f.Submission, g.Submission = readSubmission(fr)
	f.Verify, g.RecipientVerification = readVerify(fr)
	f.Rates, g.RateLimits = readRates(fr)

	var errs []lineError
	g.LocalDomains, f.domainLines, errs = parseLocalDomains(f.LocalDomains)
	for _, e := range errs {
		fr.errs = append(fr.errs, fieldError{Field: "gateway.local_domains", Message: e.Error()})
	}
	g.RelayHosts, f.relayLines, errs = parseRelayHosts(f.RelayHosts)
	for _, e := range errs {
		fr.errs = append(fr.errs, fieldError{Field: "gateway.relay_hosts", Message: e.Error()})
	}
	return f, g
}

func readListener(fr *formReader, dir, title string) listenerForm {
	return readListenerOf(fr, listenerForm{Dir: dir, Title: title})
}

// readListenerOf reads the fields of l, a listener's names, from the form.
func readListenerOf(fr *formReader, l listenerForm) listenerForm {
	l.Listen, l.ListenV6 = fr.text(l.Name("listen")), fr.text(l.Name("listen_v6"))
	l.TLSMode, l.ClientCert = fr.text(l.Name("tls_mode")), fr.text(l.Name("tls_client_cert"))
	l.CertPEM, l.ClientCAPEM = fr.text(l.Name("tls_cert_pem")), fr.text(l.Name("tls_client_ca_pem"))
	return l
}

// read returns the listener the form's fields say, as written.
func (l listenerForm) read(fr *formReader) *api.GatewayListener {
	return &api.GatewayListener{Listen: l.Listen, ListenV6: l.ListenV6, TLS: tlsOrNil(&api.SMTPTLS{
		Mode: api.TLSMode(l.TLSMode), CertPEM: l.CertPEM, KeyPEM: fr.text(l.Name("tls_key_pem")),
		ClientCert: api.ClientCertMode(l.ClientCert), ClientCAPEM: l.ClientCAPEM,
	})}
}

// routePath matches the path of a route's error: the list, the index, the rest.
var routePath = regexp.MustCompile(`^gateway\.(local_domains|relay_hosts)\[(\d+)\](?:\.(.*))?$`)

// lineErrors gives each error of a local domain or relay host (by the path
// validation names it with) to its text field, naming the line it is on.
func (f gatewayForm) lineErrors(errs []fieldError) []fieldError {
	out := make([]fieldError, 0, len(errs))
	for _, e := range errs {
		m := routePath.FindStringSubmatch(e.Field)
		if m == nil {
			out = append(out, e)
			continue
		}
		i, _ := strconv.Atoi(m[2])
		lines := f.domainLines
		if m[1] == "relay_hosts" {
			lines = f.relayLines
		}
		where := fmt.Sprintf("entry %d", i+1)
		if i < len(lines) {
			where = fmt.Sprintf("line %d", lines[i])
		}
		rest := m[3]
		if h := hostIndex.FindStringSubmatch(rest); h != nil { // hosts[1].port
			n, _ := strconv.Atoi(h[1])
			where += fmt.Sprintf(", host %d", n+1)
			rest = h[2]
		}
		msg := e.Message
		if rest != "" {
			msg = rest + ": " + msg
		}
		out = append(out, fieldError{Field: "gateway." + m[1], Message: where + ": " + msg})
	}
	return out
}

var hostIndex = regexp.MustCompile(`^hosts\[(\d+)\](?:\.(.*))?$`)

// lineError is a problem of one line of a route list.
type lineError struct {
	line int
	msg  string
}

func (e lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// parseLocalDomains reads the local domains, one a line (see the top of the
// file). It returns them with the line of each, and the lines' problems.
func parseLocalDomains(text string) ([]api.LocalDomain, []int, []lineError) {
	var (
		out   []api.LocalDomain
		lines []int
		errs  []lineError
	)
	for n, words := range routeLines(text) {
		d := api.LocalDomain{Domain: words[0], Hosts: []api.NextHop{}}
		rest := slices.DeleteFunc(slices.Clone(words[1:]), func(w string) bool {
			if strings.EqualFold(w, "require_tls") {
				d.RequireTLS = true
				return true
			}
			return false
		})
		hops, _, err := parseHops(rest, n)
		if err != nil {
			errs = append(errs, *err)
			continue
		}
		d.Hosts = hops
		out = append(out, d)
		lines = append(lines, n)
	}
	return out, lines, errs
}

// parseRelayHosts reads the relay hosts, one or more a line.
func parseRelayHosts(text string) ([]api.NextHop, []int, []lineError) {
	var (
		out   []api.NextHop
		lines []int
		errs  []lineError
	)
	for n, words := range routeLines(text) {
		hops, hopLines, err := parseHops(words, n)
		if err != nil {
			errs = append(errs, *err)
			continue
		}
		out = append(out, hops...)
		lines = append(lines, hopLines...)
	}
	return out, lines, errs
}

// routeLines yields the words of each line of text that holds any besides
// its comment, with its number (from 1).
func routeLines(text string) func(yield func(int, []string) bool) {
	return func(yield func(int, []string) bool) {
		for i, line := range strings.Split(text, "\n") {
			words := strings.Fields(line)
			if i := slices.IndexFunc(words, func(w string) bool { return strings.HasPrefix(w, "#") }); i >= 0 {
				words = words[:i] // a comment, to the end of the line
			}
			if len(words) == 0 {
				continue
			}
			if !yield(i+1, words) {
				return
			}
		}
	}
}

// parseHops reads hosts with their options from the words of line n.
func parseHops(words []string, n int) ([]api.NextHop, []int, *lineError) {
	hops := []api.NextHop{}
	var lines []int
	for _, w := range words {
		key, value, isOpt := strings.Cut(w, "=")
		lower := strings.ToLower(key)
		switch {
		case !isOpt && lower == "mx":
			if len(hops) == 0 {
				return nil, nil, &lineError{n, `"mx" must follow a host`}
			}
			hops[len(hops)-1].MXLookup = true
		case isOpt && lower == "pref":
			if len(hops) == 0 {
				return nil, nil, &lineError{n, fmt.Sprintf("%q must follow a host", w)}
			}
			p, err := strconv.ParseUint(value, 10, 32)
			if err != nil {
				return nil, nil, &lineError{n, fmt.Sprintf("%q: the preference must be a whole number", w)}
			}
			hops[len(hops)-1].Preference = uint32(p)
		case isOpt:
			return nil, nil, &lineError{n, fmt.Sprintf("unknown option %q; want pref=N or mx after a host", w)}
		case strings.EqualFold(w, "require_tls"):
			return nil, nil, &lineError{n, "require_tls belongs to a local domain"}
		default:
			h, err := parseHost(w)
			if err != nil {
				return nil, nil, &lineError{n, err.Error()}
			}
			hops = append(hops, h)
			lines = append(lines, n)
		}
	}
	return hops, lines, nil
}

// parseHost reads host, host:port, [ipv6]:port or a bare IPv6 address.
func parseHost(w string) (api.NextHop, error) {
	if !strings.HasPrefix(w, "[") && strings.Count(w, ":") != 1 {
		return api.NextHop{Host: w}, nil
	}
	host, port, err := net.SplitHostPort(w)
	if err != nil {
		return api.NextHop{}, fmt.Errorf("%q: want host, host:port or [IPv6]:port", w)
	}
	p, err := strconv.ParseUint(port, 10, 32)
	if err != nil || host == "" {
		return api.NextHop{}, fmt.Errorf("%q: want host, host:port or [IPv6]:port", w)
	}
	return api.NextHop{Host: host, Port: uint32(p)}, nil
}

// formatLocalDomains writes local domains one a line, as parseLocalDomains
// reads them, and returns the line of each.
func formatLocalDomains(ds []api.LocalDomain) (string, []int) {
	var (
		b     strings.Builder
		lines []int
	)
	for i, d := range ds {
		b.WriteString(d.Domain)
		for _, h := range d.Hosts {
			b.WriteString("  " + formatNextHop(h))
		}
		if d.RequireTLS {
			b.WriteString("  require_tls")
		}
		if i < len(ds)-1 {
			b.WriteByte('\n')
		}
		lines = append(lines, i+1)
	}
	return b.String(), lines
}

// formatNextHop writes a host with its options, as parseHops reads it.
func formatNextHop(h api.NextHop) string {
	s := h.Host
	if h.Port != 0 {
		s = net.JoinHostPort(h.Host, strconv.FormatUint(uint64(h.Port), 10))
	}
	if h.Preference != 0 {
		s += " pref=" + strconv.FormatUint(uint64(h.Preference), 10)
	}
	if h.MXLookup {
		s += " mx"
	}
	return s
}
