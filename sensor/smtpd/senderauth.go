package smtpd

import (
	"errors"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/senderauth"
)

// senderAuth returns the checker of a gateway's sender authentication for
// the server's listener: nil unless it is an inbound listener of a gateway
// whose sender_auth is enabled. Outbound mail comes from the trusted
// networks, whose senders the gateway does not check.
func (s *Server) senderAuth(cfg *ospreyv1.SmtpIntegration) (*senderauth.Checker, error) {
	sa := cfg.GetGateway().GetSenderAuth()
	if s.opts.Role.Direction != ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND || !sa.GetEnabled() {
		return nil, nil
	}
	if s.opts.Resolver == nil {
		return nil, errors.New("gateway.sender_auth: the sensor has no DNS resolver (set --dns-server, or nameservers in /etc/resolv.conf)")
	}
	return senderauth.New(s.opts.Resolver, senderauth.ConfigFrom(sa)), nil
}
