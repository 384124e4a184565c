package delivery

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Request is one attempt to hand a message to one destination: the
// recipients of one message that share a route (see [Config.Destination]).
type Request struct {
	// ID names the queued message in logs and in the Received header's id.
	ID string
	// Destination is the routing key every recipient shares, as
	// [Client.Destination] returned it.
	Destination string
	// From is the envelope sender; "" is the null sender (a DSN).
	From  string
	Rcpts []string
	// Body is the message as it goes on the wire, headers the gateway adds
	// (Received, the verdict) included; Size is its length in bytes.
	Body io.Reader
	Size int64
	// EightBit and SMTPUTF8 say what the message needs, as the client that
	// sent it to the gateway declared (BODY=8BITMIME, SMTPUTF8). SMTPUTF8
	// is passed on when the next hop offers it; a message that needs it
	// for a non-ASCII envelope address fails permanently (5.6.7) with a
	// next hop that does not offer it. BODY=8BITMIME goes to every next
	// hop that offers 8BITMIME, whatever EightBit says (go-smtp's client
	// declares it always); an 8-bit message goes as it is to one that
	// does not, as Postfix sends it.
	EightBit bool
	SMTPUTF8 bool
}

// RcptResult is what the next hop answered for one recipient, or what the
// attempt ended with before it got that far (a connection refused, no MX):
// then Code and Enhanced are ours, in the class the failure has.
type RcptResult struct {
	Rcpt     string
	Code     int    // the SMTP reply code: 250, 451, 550, ...
	Enhanced string // the RFC 3463 status code: "2.0.0", "4.4.1", "5.1.1"
	Text     string // the reply's text, or our description of the failure
}

// OK reports whether the next hop took the message for this recipient.
func (r RcptResult) OK() bool { return r.Code >= 200 && r.Code < 300 }

// Permanent reports whether the failure is final (5xx): the message bounces
// for this recipient instead of waiting for another try.
func (r RcptResult) Permanent() bool { return r.Code >= 500 }

func (r RcptResult) String() string {
	return fmt.Sprintf("%s: %d %s %s", r.Rcpt, r.Code, r.Enhanced, r.Text)
}

// Result is the outcome of one Request.
type Result struct {
	// Host is the next hop that answered last ("mx1.example.com
	// [192.0.2.1]:25"), or "" when none was reached.
	Host string
	// TLS names the TLS the session had ("TLS 1.3
	// TLS_AES_128_GCM_SHA256"), "" for a plaintext session.
	TLS string
	// Rcpts has one result per recipient of the request, in its order.
	Rcpts []RcptResult
	// Took is how long the attempt took, connection included.
	Took time.Duration
}

// HostName is the name of the next hop that answered ("mx1.example.com"
// from "mx1.example.com [192.0.2.1]:25"), for a DSN's Remote-MTA.
func (r Result) HostName() string {
	name, _, _ := strings.Cut(r.Host, " ")
	return name
}
