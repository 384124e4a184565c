package smtpd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/ospreysec/osprey/pkg/domainlist"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/ratelimit"
	"github.com/ospreysec/osprey/sensor/rcptverify"
)

// This file is the gateway's access control past the relay rules: recipient
// verification (package rcptverify) and the rate limits with the harvest
// guard (package ratelimit), on the inbound listeners. Both leave alone
// the clients that may relay (the gateway's outbound acceptance list, the
// trusted networks), as Kaspersky Secure Mail Gateway skips verification for them; the
// outbound listener takes only those clients.
//
// The replies are Postfix's. Its anvil-based limits answer
// "421 4.7.0 <host> Error: too many connections from <addr>" at connect,
// "450 4.7.1 Error: too much mail from <addr>" to MAIL and
// "450 4.7.1 Error: too many recipients from <addr>" to RCPT (smtpd.c,
// smtpd_client_*_rate_limit); reject_unverified_recipient answers with
// unverified_recipient_reject_code (550 here, as KSMG configures it) and
// 5.1.1 when the next hop refused the recipient, and with
// unverified_recipient_defer_code, 450 4.1.1, when it could not be asked.
// The harvest guard defers the client with 421 4.7.0 and closes the
// connection, as Symantec Messaging Gateway's directory harvest attack
// prevention defers a sender.

// RecipientVerifier asks the next hop of a local domain whether a
// recipient exists. *rcptverify.Verifier implements it.
type RecipientVerifier interface {
	Verify(ctx context.Context, rcpt string) rcptverify.Result
}

// gatewayAccess sets which of verification and the rate limits pol, a
// policy of cfg for the server's listener, applies: an inbound listener's
// when the gateway enables them. It fails when they are enabled and the
// server lacks what enforces them.
func (s *Server) gatewayAccess(cfg *ospreyv1.SmtpIntegration, pol *policy) error {
	if s.opts.Role.Direction != ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND {
		return nil
	}
	g := cfg.GetGateway()
	if g.GetRecipientVerification().GetEnabled() {
		if s.opts.Verifier == nil {
			return errors.New("gateway.recipient_verification: this server has no recipient verifier")
		}
		pol.verify = true
	}
	if l := g.GetRateLimits(); l.GetConnectionsPerMinute() != 0 || l.GetMessagesPerMinute() != 0 ||
		l.GetRecipientsPerMinute() != 0 || l.GetHarvestUnknownRecipients() != 0 {
		if s.opts.Limiter == nil {
			return errors.New("gateway.rate_limits: this server has no rate limiter")
		}
		pol.limited = true
	}
	return nil
}

// limits reports whether the rate limits apply to a client: not to one
// that may relay through the inbound listener (trusted: in the outbound
// acceptance list), which verification leaves alone too.
func (p *policy) limits(trusted bool) bool { return p.limited && !trusted }

// admitRate applies the harvest guard and connections_per_minute at
// connect. It returns the refusal's reason, the reply to turn the client
// away with and what the audit log says of it; an empty reply admits the
// client.
func (s *Server) admitRate(ip netip.Addr, pol *policy) (reason, string, string) {
	// At connect only the address is known: a client the outbound list
	// takes by its name alone is counted here, and exempt from MAIL on.
	if !pol.limits(pol.lists.Outbound.Contains(ip)) {
		return 0, "", ""
	}
	switch s.opts.Limiter.Connect(ip) {
	case ratelimit.Blocked:
		until, _ := s.opts.Limiter.Blocked(ip)
		return reasonHarvestGuard, "421 4.7.0 " + s.hostname + " Error: too many unknown recipients from " + ip.String() + ", try again later\r\n",
			"blocked until " + until.UTC().Format(time.RFC3339)
	case ratelimit.RateLimited:
		return reasonRateLimitConnections, "421 4.7.0 " + s.hostname + " Error: too many connections from " + ip.String() + "\r\n",
			"over connections_per_minute"
	}
	return 0, "", ""
}

// harvestBlock is the reply to a client the harvest guard blocks: 421, and
// the connection closes after it.
func (s *session) harvestBlock(until time.Time) (*rejection, string) {
	s.c.hangUp.Store(true)
	return reject(reasonHarvestGuard, 421, smtp.EnhancedCode{4, 7, 0}, "Error: too many unknown recipients from your address, closing connection"),
		"blocked until " + until.UTC().Format(time.RFC3339)
}

// limitMail applies the harvest guard and messages_per_minute to MAIL.
func (s *session) limitMail() (*rejection, string) {
	return s.limit((*ratelimit.Limiter).Message, reasonRateLimitMessages, "Error: too much mail from ", "messages_per_minute")
}

// limitRcpt applies the harvest guard and recipients_per_minute to RCPT:
// every RCPT counts, as anvil counts them, whatever the answer.
func (s *session) limitRcpt() (*rejection, string) {
	return s.limit((*ratelimit.Limiter).Recipient, reasonRateLimitRecipients, "Error: too many recipients from ", "recipients_per_minute")
}

// limit applies the harvest guard, then counts one event of the client
// with count, which reports whether it is within the limit named field;
// past it, the reply is 450 4.7.1 with text and the client's address.
func (s *session) limit(count func(*ratelimit.Limiter, netip.Addr) bool, r reason, text, field string) (*rejection, string) {
	ip := s.c.ip
	if !s.c.pol.limits(s.c.trusted) {
		return nil, ""
	}
	l := s.srv.opts.Limiter
	if until, blocked := l.Blocked(ip); blocked {
		return s.harvestBlock(until)
	}
	if !count(l, ip) {
		return reject(r, 450, smtp.EnhancedCode{4, 7, 1}, text+ip.String()), "over " + field
	}
	return nil, ""
}

// verify asks the next hop of a local domain whether to exists, unless the
// client may relay; it returns the reply to refuse to with, nil to accept
// it. A recipient the next hop refused counts toward the harvest guard;
// the one that trips it is answered 421 and the connection closed.
func (s *session) verify(to string) error {
	p, ip := s.c.pol, s.c.ip
	if !p.verify || s.c.trusted {
		return nil
	}
	if d, err := domainlist.RecipientDomain(to); err != nil || !p.domains.Match(d) {
		return nil // relayed, or refused by the relay rules already
	}
	r := s.srv.opts.Verifier.Verify(s.ctx, to)
	detail := fmt.Sprintf("%s (cached: %t)", r.Reply, r.Cached)
	switch r.Status {
	case rcptverify.Exists:
		return nil
	case rcptverify.Unknown:
		rej := reject(reasonRecipientUnknown, 550, smtp.EnhancedCode{5, 1, 1}, "Recipient address rejected: undeliverable address: "+printableReply(r.Reply))
		if !p.limits(s.c.trusted) || !s.srv.opts.Limiter.Unknown(ip) {
			return s.refuse(rej, "rcpt", to, "reply", detail)
		}
		// This unknown recipient trips the guard: it goes to the audit log
		// as what it is, and the client is deferred.
		s.srv.refused(rej.reason, ip, s.c.mailFrom(), to, "reply="+detail)
		until, _ := s.srv.opts.Limiter.Blocked(ip)
		block, why := s.harvestBlock(until)
		return s.refuse(block, "rcpt", to, "guard", why)
	default:
		// Not the client's doing: it does not count toward max_errors.
		s.c.noCount.Store(true)
		return s.refuse(reject(reasonVerifyTempfail, 450, smtp.EnhancedCode{4, 1, 1},
			"Recipient address rejected: unverified address: the domain's mail server cannot be asked now, try again later"),
			"rcpt", to, "reply", detail)
	}
}

// printableReply makes a next hop's reply text safe and short enough to
// pass on in a reply line of our own.
func printableReply(s string) string {
	const max = 200
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c > '~' {
			b[i] = '?'
		}
	}
	if len(b) > max {
		b = append(b[:max], "..."...)
	}
	return string(b)
}
