package smtpd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/ospreysec/osprey/pkg/acceptlist"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Lists are a gateway's acceptance lists, compiled once for all its
// listeners. A nil Matcher is a list without entries: it matches nothing.
//
//   - Inbound: the clients the inbound listeners take mail from, when
//     gateway.inbound_acceptance is LISTED.
//   - Outbound: the clients that may relay to any domain (the trusted
//     networks): the outbound listeners take mail from them only, and the
//     inbound listeners take mail for other domains than the local ones
//     from them.
//   - Auth: the clients the submission listener takes authenticated mail
//     from, when its acceptance is LISTED.
type Lists struct {
	Inbound, Outbound, Auth *acceptlist.Matcher
}

// CompileLists compiles the acceptance lists of a configuration. A
// configuration that still holds the trusted networks (an earlier
// central's, or one a sensor stored before its central moved them) and
// no outbound list gets them as its outbound list.
func CompileLists(cfg *ospreyv1.SmtpIntegration, lists []*ospreyv1.AcceptanceList) (Lists, error) {
	var out Lists
	seen := map[ospreyv1.AcceptanceListKind]bool{}
	for _, l := range lists {
		var dst **acceptlist.Matcher
		switch l.GetKind() {
		case ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND:
			dst = &out.Inbound
		case ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND:
			dst = &out.Outbound
		case ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_AUTH:
			dst = &out.Auth
		default:
			return Lists{}, fmt.Errorf("acceptance list of unknown kind %d", l.GetKind())
		}
		if seen[l.GetKind()] {
			return Lists{}, fmt.Errorf("two %s acceptance lists", kindName(l.GetKind()))
		}
		seen[l.GetKind()] = true
		m, err := acceptlist.Compile(l.GetEntries())
		if err != nil {
			return Lists{}, fmt.Errorf("%s acceptance list: %w", kindName(l.GetKind()), err)
		}
		*dst = m
	}
	//lint:ignore SA1019 a configuration from before the move is still run as it says
	if trusted := cfg.GetGateway().GetTrustedNetworks(); out.Outbound == nil && len(trusted) > 0 {
		m, err := acceptlist.Compile(trusted)
		if err != nil {
			return Lists{}, fmt.Errorf("gateway.trusted_networks: %w", err)
		}
		out.Outbound = m
	}
	return out, nil
}

// kindName names a list as its API path does ("inbound").
func kindName(k ospreyv1.AcceptanceListKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "ACCEPTANCE_LIST_KIND_"))
}

// lookupTimeout bounds the reverse and forward lookups of a client's name
// at connect.
const lookupTimeout = 10 * time.Second

// peer is what the policy knows of a connecting client: its address, and
// its forward-confirmed names when a list it is checked against holds
// domains.
type peer struct {
	ip    netip.Addr
	names []string
}

// admission is the decision at connect for a client.
type admission int

const (
	admitted admission = iota
	refusedByList
	needsNames // the lists decide once the client's names are known
)

// admit applies the listener's acceptance to c. Without names, it answers
// needsNames when a list could match c by a name: see lookupNames.
func (p *policy) admit(c peer, named bool) admission {
	if p.direction == ospreyv1.MailDirection_MAIL_DIRECTION_UNSPECIFIED {
		if p.clients.Contains(c.ip) {
			return admitted
		}
		return refusedByList
	}
	if !named && p.wantsNames(c.ip) {
		return needsNames
	}
	if p.acceptAny || p.accept.Match(c.ip, c.names) {
		return admitted
	}
	return refusedByList
}

// wantsNames reports whether a list the listener checks at connect or at
// RCPT may match the client at ip by its name, and by nothing else.
func (p *policy) wantsNames(ip netip.Addr) bool {
	if !p.acceptAny && !p.accept.Contains(ip) && !p.accept.NeedsName(ip) {
		return false // refused by address whatever its name
	}
	return (!p.acceptAny && p.accept.NeedsName(ip)) ||
		(p.direction == ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND && p.lists.Outbound.NeedsName(ip))
}

// trusted reports whether c is in the outbound acceptance list: it may
// relay to any domain.
func (p *policy) trusted(c peer) bool {
	return p.lists.Outbound.Match(c.ip, c.names)
}

// lookupNames returns the forward-confirmed names of the client at ip that
// the listener's lists could match, within lookupTimeout. A failure is
// counted and returned: the client then matches by its address only.
func (s *Server) lookupNames(ctx context.Context, pol *policy, ip netip.Addr) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	want := func(name string) bool {
		return pol.accept.MatchName(name) || pol.lists.Outbound.MatchName(name)
	}
	names, err := acceptlist.ConfirmedNames(ctx, s.opts.Resolver, ip, want)
	if err != nil {
		s.stats.lookupFailed(s.now(), err)
	}
	return names, err
}

// checkResolver refuses a policy whose lists hold domains when the server
// has no resolver to look names up with.
func (s *Server) checkResolver(pol *policy) error {
	if s.opts.Resolver != nil || pol.direction == ospreyv1.MailDirection_MAIL_DIRECTION_UNSPECIFIED {
		return nil
	}
	if (!pol.acceptAny && pol.accept.HasDomains()) ||
		(pol.direction == ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND && pol.lists.Outbound.HasDomains()) {
		return errors.New("an acceptance list holds domains, and the sensor has no DNS resolver to look clients' names up with (set --dns-server, or nameservers in /etc/resolv.conf)")
	}
	return nil
}
