package validate

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/ospreysec/osprey/pkg/domainlist"
	"github.com/ospreysec/osprey/pkg/sizeunit"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults and bounds of a gateway (SmtpGateway). Zero in the configuration
// means the default. The delivery queue's defaults are Symantec Messaging
// Gateway's: the first retry after 15 minutes, growing, a delay notice after
// 4 hours, a bounce after 5 days; the concurrencies are Postfix's.
const (
	DefaultHoldTimeoutSeconds = 600
	MinHoldTimeoutSeconds     = 10
	MaxHoldTimeoutSeconds     = 86400

	DefaultMinBackoffSeconds   = 900
	DefaultMaxBackoffSeconds   = 3600
	MinBackoffSeconds          = 10
	MaxBackoffSeconds          = 86400
	DefaultMaxLifetimeSeconds  = 5 * 86400
	MinLifetimeSeconds         = 60
	MaxLifetimeSeconds         = 30 * 86400
	DefaultDelayWarningSeconds = 4 * 3600

	DefaultDestinationConcurrency = 20
	DefaultConcurrency            = 100
	MaxConcurrency                = 1000

	// MaxNextHops bounds the hosts of one route, MaxLocalDomains the
	// local domains of a gateway.
	MaxNextHops     = 32
	MaxLocalDomains = 10000

	// The quarantine's bounds: at most this many messages and bytes by
	// default; MaxQuarantineMessages bounds the setting.
	DefaultQuarantineMessages = 10000
	DefaultQuarantineBytes    = 1 << 30
	MaxQuarantineMessages     = 1000000
)

// QuarantineBounds returns the bounds of a gateway's quarantine: messages,
// and bytes (0: unlimited), with the defaults for what q leaves at zero.
// It does not check the values.
func QuarantineBounds(q *ospreyv1.QuarantineSettings) (messages int, bytes int64) {
	messages = int(q.GetMaxMessages())
	if messages == 0 {
		messages = DefaultQuarantineMessages
	}
	l := q.GetMaxSize()
	switch {
	case l.GetUnlimited():
		return messages, 0
	case l.GetValue() == 0:
		return messages, DefaultQuarantineBytes
	}
	u, err := sizeunit.FromProto(l.GetUnit())
	if err != nil {
		return messages, DefaultQuarantineBytes
	}
	b, err := sizeunit.Bytes(l.GetValue(), u)
	if err != nil {
		return messages, DefaultQuarantineBytes
	}
	return messages, b
}

// Gateway reports whether mode relays mail (any mode but MONITOR).
func Gateway(mode ospreyv1.SmtpMode) bool {
	switch mode {
	case ospreyv1.SmtpMode_SMTP_MODE_INBOUND, ospreyv1.SmtpMode_SMTP_MODE_OUTBOUND, ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND:
		return true
	}
	return false
}

// Inbound and Outbound report whether mode runs that direction.
func Inbound(mode ospreyv1.SmtpMode) bool {
	return mode == ospreyv1.SmtpMode_SMTP_MODE_INBOUND || mode == ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND
}

// Outbound reports whether mode relays mail from the clients of the
// outbound acceptance list.
func Outbound(mode ospreyv1.SmtpMode) bool {
	return mode == ospreyv1.SmtpMode_SMTP_MODE_OUTBOUND || mode == ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND
}

// DeliveryQueue returns q with each zero field replaced by its default; q
// may be nil. It does not check the values.
func DeliveryQueue(q *ospreyv1.DeliveryQueueSettings) *ospreyv1.DeliveryQueueSettings {
	orDefault := func(v, def uint32) uint32 {
		if v == 0 {
			return def
		}
		return v
	}
	return &ospreyv1.DeliveryQueueSettings{
		MinBackoffSeconds:      orDefault(q.GetMinBackoffSeconds(), DefaultMinBackoffSeconds),
		MaxBackoffSeconds:      orDefault(q.GetMaxBackoffSeconds(), DefaultMaxBackoffSeconds),
		MaxLifetimeSeconds:     orDefault(q.GetMaxLifetimeSeconds(), DefaultMaxLifetimeSeconds),
		DelayWarningSeconds:    orDefault(q.GetDelayWarningSeconds(), DefaultDelayWarningSeconds),
		DestinationConcurrency: orDefault(q.GetDestinationConcurrency(), DefaultDestinationConcurrency),
		Concurrency:            orDefault(q.GetConcurrency(), DefaultConcurrency),
	}
}

// smtpGateway checks the gateway part of an SMTP integration (field
// "gateway"). What only a running direction needs (its listener, the local
// domains of inbound) is required only when the integration is enabled in
// a mode that runs it. The clients that may relay are not here: they are
// the sensor's outbound acceptance list, kept on its own.
//
//   - inbound.listen and outbound.listen: an IPv4 address (or none, for
//     every IPv4 address) and a port; listen_v6 likewise with an IPv6
//     address in brackets. No two listeners share an address and port.
//   - local_domains[i].domain: a domain name, once; hosts: next hops.
//   - next hops: host a host name or an IP address, port 0 (25) to 65535.
//   - trusted_networks: refused (an earlier version's; see AcceptanceList).
//   - inbound_acceptance: ALL or LISTED (the INBOUND acceptance list).
//   - require_tls_domains: domain names.
//   - helo_name: a host name.
//   - hold_timeout_seconds, queue: see the constants; 0 means the default.
//   - sender_auth: see senderAuth; submission: see submission.
//   - recipient_verification, rate_limits: see recipientVerification and
//     rateLimits.
func smtpGateway(r *report, g *ospreyv1.SmtpGateway, mode ospreyv1.SmtpMode, enabled bool) {
	const f = "gateway."
	in, out := enabled && Inbound(mode), enabled && Outbound(mode)

	seen := map[string]string{} // listen address → field
	gatewayListener(r, f+"inbound", g.GetInbound(), in, seen)
	gatewayListener(r, f+"outbound", g.GetOutbound(), out, seen)
	submission(r, f+"submission.", g.GetSubmission(), mode, enabled, seen)

	if in && len(g.GetLocalDomains()) == 0 {
		r.add(f+"local_domains", "required: the domains the gateway takes inbound mail for")
	}
	if n := len(g.GetLocalDomains()); n > MaxLocalDomains {
		r.add(f+"local_domains", "at most %d domains, not %d", MaxLocalDomains, n)
	}
	domains := map[string]int{}
	for i, d := range g.GetLocalDomains() {
		field := fmt.Sprintf("%slocal_domains[%d]", f, i)
		if name, ok := gatewayDomain(r, field+".domain", d.GetDomain()); ok {
			if j, dup := domains[name]; dup {
				r.add(field+".domain", "%s is also local_domains[%d]", name, j)
			}
			domains[name] = i
		}
		nextHops(r, field+".hosts", d.GetHosts())
	}

	//lint:ignore SA1019 read to refuse it: no write may set it any more
	if len(g.GetTrustedNetworks()) > 0 {
		r.add(f+"trusted_networks", "no longer set here: the clients that may relay are the sensor's outbound acceptance list "+
			"(/api/v1/sensors/{id}/acceptance/outbound, osprey ctl acceptance, the gateway's Outbound acceptance page)")
	}
	if _, ok := ospreyv1.AcceptanceMode_name[int32(g.GetInboundAcceptance())]; !ok {
		r.add(f+"inbound_acceptance", "must be ALL or LISTED")
	}
	nextHops(r, f+"relay_hosts", g.GetRelayHosts())
	for i, d := range g.GetRequireTlsDomains() {
		gatewayDomain(r, fmt.Sprintf("%srequire_tls_domains[%d]", f, i), d)
	}
	if h := g.GetHeloName(); h != "" {
		if _, err := netip.ParseAddr(h); err == nil {
			r.add(f+"helo_name", "must be a host name, not an address")
		} else {
			host(r, f+"helo_name", h)
		}
	}
	if t := g.GetHoldTimeoutSeconds(); t != 0 && (t < MinHoldTimeoutSeconds || t > MaxHoldTimeoutSeconds) {
		r.add(f+"hold_timeout_seconds", "must be %d to %d seconds (0 for %d)", MinHoldTimeoutSeconds, MaxHoldTimeoutSeconds, DefaultHoldTimeoutSeconds)
	}
	if _, ok := ospreyv1.HoldTimeoutAction_name[int32(g.GetOnTimeout())]; !ok {
		r.add(f+"on_timeout", "must be DELIVER_UNSCANNED or KEEP_HOLDING")
	}
	deliveryQueue(r, f+"queue.", g.GetQueue())
	if n := g.GetQuarantine().GetMaxMessages(); n > MaxQuarantineMessages {
		r.add(f+"quarantine.max_messages", "must be at most %d (0 for %d)", MaxQuarantineMessages, DefaultQuarantineMessages)
	}
	if l := g.GetQuarantine().GetMaxSize(); l != nil {
		sizeLimit(r, f+"quarantine.max_size", l, false)
	}
	senderAuth(r, f+"sender_auth.", g.GetSenderAuth())
	recipientVerification(r, f+"recipient_verification.", g.GetRecipientVerification())
	rateLimits(r, f+"rate_limits.", g.GetRateLimits(), !in || g.GetRecipientVerification().GetEnabled())
}

func gatewayListener(r *report, field string, l *ospreyv1.GatewayListener, required bool, seen map[string]string) {
	family := func(sub, v string, v6 bool) {
		if v == "" {
			return
		}
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			return // listen reported it
		}
		if host != "" {
			if a, err := netip.ParseAddr(host); err == nil && a.Is4() == v6 {
				if v6 {
					r.add(field+"."+sub, "must be an IPv6 address in brackets, such as [::]:25")
				} else {
					r.add(field+"."+sub, "must be an IPv4 address, such as 0.0.0.0:25 (IPv6 goes in listen_v6)")
				}
				return
			}
		} else if v6 {
			r.add(field+"."+sub, "must name an IPv6 address, such as [::]:25")
			return
		}
		key := host + ":" + port
		if other, dup := seen[key]; dup {
			r.add(field+"."+sub, "%s is also %s", v, other)
		}
		seen[key] = field + "." + sub
	}
	listen(r, field+".listen", l.GetListen(), required)
	family("listen", l.GetListen(), false)
	listen(r, field+".listen_v6", l.GetListenV6(), false)
	family("listen_v6", l.GetListenV6(), true)
	smtpTLS(r, field+".tls", l.GetTls())
}

// gatewayDomain checks one domain name and returns it normalised.
func gatewayDomain(r *report, field, v string) (string, bool) {
	if strings.HasPrefix(v, "!") {
		r.add(field, "must be a domain name; exclusions ('!') belong to destination_domains")
		return "", false
	}
	d, err := domainlist.Normalize(v)
	if err != nil {
		r.add(field, "%v", err)
		return "", false
	}
	return d, true
}

func nextHops(r *report, field string, hops []*ospreyv1.NextHop) {
	if len(hops) > MaxNextHops {
		r.add(field, "at most %d hosts, not %d", MaxNextHops, len(hops))
	}
	for i, h := range hops {
		hf := fmt.Sprintf("%s[%d]", field, i)
		if h.GetHost() == "" {
			r.add(hf+".host", "required")
		} else {
			host(r, hf+".host", h.GetHost())
			if _, err := netip.ParseAddr(h.GetHost()); err == nil && h.GetMxLookup() {
				r.add(hf+".mx_lookup", "needs a host name, not an address")
			}
		}
		if h.GetPort() > 65535 {
			r.add(hf+".port", "must be 1 to 65535 (0 for 25)")
		}
	}
}

func deliveryQueue(r *report, f string, q *ospreyv1.DeliveryQueueSettings) {
	between := func(field string, v, min, max uint32) {
		if v != 0 && (v < min || v > max) {
			r.add(f+field, "must be %d to %d (0 for the default)", min, max)
		}
	}
	between("min_backoff_seconds", q.GetMinBackoffSeconds(), MinBackoffSeconds, MaxBackoffSeconds)
	between("max_backoff_seconds", q.GetMaxBackoffSeconds(), MinBackoffSeconds, MaxBackoffSeconds)
	between("max_lifetime_seconds", q.GetMaxLifetimeSeconds(), MinLifetimeSeconds, MaxLifetimeSeconds)
	between("delay_warning_seconds", q.GetDelayWarningSeconds(), MinBackoffSeconds, MaxLifetimeSeconds)
	between("destination_concurrency", q.GetDestinationConcurrency(), 1, MaxConcurrency)
	between("concurrency", q.GetConcurrency(), 1, MaxConcurrency)
	eff := DeliveryQueue(q)
	if eff.GetMaxBackoffSeconds() < eff.GetMinBackoffSeconds() && q.GetMaxBackoffSeconds() != 0 {
		r.add(f+"max_backoff_seconds", "must not be shorter than min_backoff_seconds (%d)", eff.GetMinBackoffSeconds())
	}
	if eff.GetDestinationConcurrency() > eff.GetConcurrency() && q.GetDestinationConcurrency() != 0 {
		r.add(f+"destination_concurrency", "must not exceed concurrency (%d)", eff.GetConcurrency())
	}
}
