package smtpd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/pkg/acceptlist"
	"github.com/ospreysec/osprey/pkg/domainlist"
	"github.com/ospreysec/osprey/pkg/netlist"
	"github.com/ospreysec/osprey/pkg/sizeunit"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/senderauth"
)

// Limits that the configuration does not set. The configurable ones
// (recipients, connections, timeouts, errors) default to the validate
// package's Default* constants.
const (
	// MaxCommandLine is the longest command line accepted, CRLF included.
	// RFC 5321 §4.5.3.1.4 sets 512 octets and lets extensions raise it;
	// 2048 leaves room for every parameter we advertise (SIZE, BODY,
	// SMTPUTF8) on the longest paths (§4.5.3.1.3) and is Postfix's
	// line_length_limit. A longer line gets "500 5.5.2 Line too long" and
	// the session is closed.
	MaxCommandLine = 2048
	// MaxTextLine is the longest line of message data, CRLF included.
	// RFC 5321 §4.5.3.1.6 sets 1000 octets, but senders that exceed it
	// exist and the mail servers that feed a sensor accept them (Postfix
	// splits such lines), and a copy the sensor refuses is a message it
	// never scans; the data is streamed, so a long line costs no memory.
	// Past 64 KiB the sender is broken or hostile: "500 5.5.2 Line too
	// long" and the session is closed.
	MaxTextLine = 64 << 10
	// HardCeiling is the size limit that an "unlimited" message size
	// stands for: sizeunit.HardCeiling (1 GiB). EHLO then advertises SIZE
	// without a number (RFC 1870), and a message past the ceiling is
	// refused like one past a configured limit (552 5.3.4).
	HardCeiling = sizeunit.HardCeiling
	// tlsHandshakeTimeout bounds a STARTTLS handshake (and the command
	// timeout, if shorter, bounds it too).
	tlsHandshakeTimeout = 30 * time.Second
)

// policy is one applied configuration, compiled for the checks that run on
// every connection and every RCPT. It is immutable; the server swaps the
// whole policy on Apply, and a session keeps the policy it started with.
type policy struct {
	listen         string
	direction      ospreyv1.MailDirection // the gateway direction; UNSPECIFIED for the monitor listener
	clients        *netlist.List          // the monitor listener's, effective: the blank-list rule applied
	acceptAny      bool                   // a gateway listener takes mail from every client ...
	accept         *acceptlist.Matcher    // ... or from those it matches (nil: none)
	lists          Lists                  // a gateway's acceptance lists; Outbound may relay to any domain
	domains        *domainlist.List       // the destination domains; a gateway's local domains
	maxSize        int64                  // bytes; HardCeiling when unlimited
	unlimited      bool
	maxRecipients  int
	maxConns       int
	maxPerClient   int
	maxErrors      int
	commandTimeout time.Duration
	dataTimeout    time.Duration
	sessionTimeout time.Duration
	tls            *tls.Config // nil: STARTTLS is not offered
	requireTLS     bool
	clientCAs      *x509.CertPool      // nil: client certificates are not asked for
	auth           *senderauth.Checker // nil: senders are not checked
	submission     *submissionPolicy   // nil: not the submission listener
	verify         bool                // recipient verification of the local domains (see access.go)
	limited        bool                // the rate limits and the harvest guard apply (see access.go)
}

// compile checks cfg and builds the policy of role's listener, with the
// gateway's acceptance lists; nil, with no error, when cfg gives that
// listener nothing to do (the integration is disabled, its mode does not
// run the role, or the role's address is not set). localSubnets is
// consulted only for the blank-clients rule of the monitor listener; cert
// returns the certificate to serve when cfg has none.
func compile(cfg *ospreyv1.SmtpIntegration, lists Lists, role Role, localSubnets func() ([]netip.Prefix, error), cert func() (tls.Certificate, error)) (*policy, error) {
	if err := validateConfig(cfg); err != nil {
		return nil, err
	}
	listen, tlsCfg := role.listener(cfg)
	if !cfg.GetEnabled() || listen == "" {
		return nil, nil
	}
	p := &policy{listen: listen, direction: role.Direction, lists: lists}
	var err error
	switch g := cfg.GetGateway(); role.Direction {
	case ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND:
		// Local domains from every client, or those of the inbound
		// acceptance list; anything else only from the outbound one
		// (Postfix's permit_mynetworks, reject_unauth_destination).
		p.acceptAny = g.GetInboundAcceptance() != ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED
		p.accept = lists.Inbound
		local := make([]string, len(g.GetLocalDomains()))
		for i, d := range g.GetLocalDomains() {
			local[i] = d.GetDomain()
		}
		if p.domains, err = domainlist.Parse(local); err != nil {
			return nil, fmt.Errorf("gateway.local_domains: %w", err)
		}
	case ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND:
		if role.Submission {
			p.compileSubmission(g.GetSubmission(), lists)
			break
		}
		// The outbound acceptance list only, to any domain.
		p.accept = lists.Outbound
		p.domains = mustList(domainlist.Parse(nil))
	default:
		if err := p.compileMonitor(cfg, localSubnets); err != nil {
			return nil, err
		}
	}

	if p.maxSize, err = sizeunit.Limit(cfg.GetMaxMessageSize()); err != nil {
		return nil, fmt.Errorf("max_message_size: %w", err)
	}
	p.unlimited = cfg.GetMaxMessageSize() == nil || cfg.GetMaxMessageSize().GetUnlimited()

	l := validate.SMTPLimits(cfg.GetLimits())
	p.maxRecipients = int(l.GetMaxRecipients())
	p.maxConns = int(l.GetMaxConnections())
	p.maxPerClient = int(l.GetMaxConnectionsPerClient())
	p.maxErrors = int(l.GetMaxErrors())
	p.commandTimeout = time.Duration(l.GetCommandTimeoutSeconds()) * time.Second
	p.dataTimeout = time.Duration(l.GetDataTimeoutSeconds()) * time.Second
	p.sessionTimeout = time.Duration(l.GetSessionTimeoutSeconds()) * time.Second

	if err := p.compileTLS(tlsCfg, cert); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return p, nil
}

// compileMonitor compiles the monitor listener's clients and destination
// domains.
func (p *policy) compileMonitor(cfg *ospreyv1.SmtpIntegration, localSubnets func() ([]netip.Prefix, error)) error {
	var err error
	if p.domains, err = domainlist.Parse(cfg.GetDestinationDomains()); err != nil {
		return fmt.Errorf("destination_domains: %w", err)
	}
	clients, err := netlist.Parse(cfg.GetClients())
	if err != nil {
		return fmt.Errorf("clients: %w", err)
	}
	// The blank-clients rule: a list without inclusions means any client
	// when destination domains scope the mail, and the sensor's own
	// subnets otherwise. A domain list of exclusions only does not scope
	// anything, so it counts as no domains.
	switch {
	case clients.HasInclusions():
		p.clients = clients
	case hasInclusion(cfg.GetDestinationDomains()):
		p.clients = clients.WithDefault(netlist.Any)
	default:
		local, err := localSubnets()
		if err != nil {
			return fmt.Errorf("clients: blank, and the sensor's own subnets are unknown: %w", err)
		}
		p.clients = clients.WithDefault(local)
	}
	return nil
}

// mustList returns the list that parsing no entries gives.
func mustList[L any](l L, err error) L {
	if err != nil {
		panic(err)
	}
	return l
}

// validateConfig is validate.SMTPIntegration, except that it lets port 0
// through in every listen address: validate refuses it since an operator
// has no use for it, but tests and in-process setups bind it, and
// Server.Addr tells the port. It lets the trusted networks through too,
// which validate refuses in a write: CompileLists runs them.
func validateConfig(cfg *ospreyv1.SmtpIntegration) error {
	if cfg == nil {
		cfg = &ospreyv1.SmtpIntegration{}
	}
	cfg = proto.CloneOf(cfg)
	if g := cfg.GetGateway(); g != nil {
		//lint:ignore SA1019 see above
		g.TrustedNetworks = nil
	}
	n := 0 // each its own port, as two listeners may not share one
	anyPort := func(addr *string) {
		if host, port, err := net.SplitHostPort(*addr); err == nil && port == "0" {
			n++
			*addr = net.JoinHostPort(host, strconv.Itoa(n))
		}
	}
	anyPort(&cfg.Listen)
	for _, l := range []*ospreyv1.GatewayListener{cfg.GetGateway().GetInbound(), cfg.GetGateway().GetOutbound(), cfg.GetGateway().GetSubmission().GetListener()} {
		if l != nil {
			anyPort(&l.Listen)
			anyPort(&l.ListenV6)
		}
	}
	return validate.SMTPIntegration(cfg)
}

func hasInclusion(entries []string) bool {
	for _, e := range entries {
		if !strings.HasPrefix(e, "!") {
			return true
		}
	}
	return false
}

// recipient applies the destination-domains rule to a RCPT TO path, as
// go-smtp passes it (angle brackets and any source route removed, quotes
// of a quoted local part removed), from a client that is in the outbound
// acceptance list or not (trusted). It returns nil when the recipient is
// in scope.
//
// domainlist.RecipientDomain refuses every form that could make a next hop
// deliver elsewhere than the domain checked here: '%' and '!' routing in
// the local part, more than one '@' (which is also what a quoted local
// part holding '@' becomes once go-smtp has removed the quotes), address
// literals; the domain is normalised (case, IDNA, one trailing dot). A
// source route is not seen here: go-smtp drops it, as RFC 5321 §C allows,
// and the check applies to the final domain, the only one a message to
// that path could reach.
//
// A gateway's inbound listener takes its local domains from the clients it
// admitted and other domains only from the clients of the outbound
// acceptance list (554 5.7.1 otherwise: no open relay); its outbound
// listener admitted only those at connect and takes any domain.
func (p *policy) recipient(to string, trusted bool) *rejection {
	d, err := domainlist.RecipientDomain(to)
	inbound := p.direction == ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND
	switch {
	case inbound && err == nil && !p.domains.Match(d) && !trusted:
		return errRelayDenied("Relay access denied: " + d + " is not a local domain of this gateway")
	case inbound && errors.Is(err, domainlist.ErrNoDomain):
		return errRelayDenied("Relay access denied: the recipient has no domain")
	case inbound:
		if err != nil {
			return errRelay("Relaying denied: " + err.Error())
		}
		return nil
	case errors.Is(err, domainlist.ErrNoDomain):
		// "postmaster" and other local names: in scope only when any
		// recipient is.
		if p.domains.Empty() {
			return nil
		}
		return errRelay("Relaying denied: the recipient has no domain")
	case err != nil:
		return errRelay("Relaying denied: " + err.Error())
	case !p.domains.Match(d):
		return errRelay("Relaying denied: " + d + " is not a destination domain of this sensor")
	}
	return nil
}
