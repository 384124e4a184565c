package smtpd

import (
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Role is which listener of a sensor's SMTP integration a Server runs. The
// monitor listener (the zero Role) takes copies on listen; a gateway runs
// up to six more, one per direction and address family and the submission
// listener's two, each a Server of its own, so that every listener has its
// own policy, limits and counters.
type Role struct {
	// Direction is the gateway direction; UNSPECIFIED is the monitor
	// listener.
	Direction ospreyv1.MailDirection
	// IPv6 selects the direction's listen_v6 instead of its listen.
	IPv6 bool
	// Submission is the submission listener (direction OUTBOUND): clients
	// that authenticate with SMTP AUTH relay to any domain.
	Submission bool
}

// Roles lists every listener a sensor runs a Server for.
var Roles = []Role{
	{},
	{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND},
	{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND, IPv6: true},
	{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND},
	{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND, IPv6: true},
	{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND, Submission: true},
	{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND, Submission: true, IPv6: true},
}

// String names the role in logs and in the "listener" label of the
// metrics: monitor, inbound, inbound_v6, outbound, outbound_v6,
// submission, submission_v6.
func (r Role) String() string {
	name := "monitor"
	switch {
	case r.Submission:
		name = "submission"
	case r.Direction == ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND:
		name = "inbound"
	case r.Direction == ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND:
		name = "outbound"
	}
	if r.IPv6 {
		name += "_v6"
	}
	return name
}

// listener returns the address and TLS settings cfg gives the role; an
// empty address when the role has no listener in cfg's mode.
func (r Role) listener(cfg *ospreyv1.SmtpIntegration) (string, *ospreyv1.SmtpTls) {
	mode := cfg.GetMode()
	var l *ospreyv1.GatewayListener
	switch r.Direction {
	case ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND:
		if !validate.Inbound(mode) {
			return "", nil
		}
		l = cfg.GetGateway().GetInbound()
	case ospreyv1.MailDirection_MAIL_DIRECTION_OUTBOUND:
		if !validate.Outbound(mode) {
			return "", nil
		}
		l = cfg.GetGateway().GetOutbound()
		if r.Submission {
			sub := cfg.GetGateway().GetSubmission()
			if !sub.GetEnabled() {
				return "", nil
			}
			l = validate.Submission(sub).GetListener() // listen ":587" when empty
		}
	default:
		if validate.Gateway(mode) || r.IPv6 {
			return "", nil
		}
		return cfg.GetListen(), cfg.GetTls()
	}
	if r.IPv6 {
		return l.GetListenV6(), l.GetTls()
	}
	return l.GetListen(), l.GetTls()
}
