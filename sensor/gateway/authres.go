package gateway

import (
	"bytes"

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
	for len(msg) > 0 {
		// One field: its first line and the lines that continue it.
		end := lineEnd(msg, 0)
		if len(bytes.TrimRight(msg[:end], "\r\n")) == 0 {
			break // the empty line that ends the header section
		}
		for end < len(msg) && (msg[end] == ' ' || msg[end] == '\t') {
			end = lineEnd(msg, end)
		}
		if !senderauth.IsOurs(string(msg[:end]), authservID) {
			dst = append(dst, msg[:end]...)
		}
		msg = msg[end:]
	}
	return append(dst, msg...)
}

// lineEnd returns the offset just past the line of b that starts at i.
func lineEnd(b []byte, i int) int {
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(b)
}
