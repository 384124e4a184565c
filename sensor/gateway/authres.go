package gateway

import (
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/senderauth"
)

// authSettings are the gateway's sender authentication, as delivery needs
// it: whether it is on, and the name of the gateway in the
// Authentication-Results header.
type authSettings struct {
	enabled    bool
	authservID string
}

// compileAuth reads gw's sender_auth; the authserv-id defaults to helo,
// the gateway's HELO name.
func compileAuth(gw *ospreyv1.SmtpGateway, helo string) authSettings {
	sa := gw.GetSenderAuth()
	id := sa.GetAuthservId()
	if id == "" {
		id = helo
	}
	return authSettings{enabled: sa.GetEnabled(), authservID: id}
}

// authHeaders returns the message to deliver, body being the spooled one,
// when the gateway checks senders: with the Authentication-Results header
// of env's results on top (RFC 8601 §5), and without any header of that
// name that carries the gateway's authserv-id, which only a forger can have
// put there. A message the gateway did not check (received before the
// checks were on, or outbound) keeps no such header either. With the
// checks off, body is returned as it is.
func (g *Gateway) authHeaders(body []byte, env *ospreyv1.Envelope) []byte {
	a := g.set.Load().auth
	if !a.enabled {
		return body
	}
	ar := senderauth.Header(a.authservID, env)
	out := make([]byte, 0, len(ar)+len(body))
	out = append(out, ar...)
	return appendWithoutOurs(out, body, a.authservID)
}

// appendWithoutOurs appends msg to dst, leaving out of its header section
// every Authentication-Results field (continuation lines included) with
// authservID.
func appendWithoutOurs(dst, msg []byte, authservID string) []byte {
	fields, rest := headerFields(msg)
	for _, f := range fields {
		if !senderauth.IsOurs(string(f), authservID) {
			dst = append(dst, f...)
		}
	}
	return append(dst, rest...)
}
