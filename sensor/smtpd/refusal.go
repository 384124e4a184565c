package smtpd

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Refusal is one attempt the server refused, for the message audit log.
type Refusal struct {
	Time     time.Time
	ClientIP netip.Addr
	// Reason names why, as the server's counters do (see Stats.Rejected).
	Reason string
	// MailFrom is the sender of the transaction, when MAIL was accepted.
	MailFrom string
	// Rcpt is the recipient refused, for a refused RCPT.
	Rcpt string
	// Detail says more, when there is more: the TLS error, the size asked.
	Detail string
}

// RefusalSink receives every refusal; Refused must not block.
type RefusalSink interface {
	Refused(Refusal)
}

// RefusalFunc adapts a function to RefusalSink.
type RefusalFunc func(Refusal)

// Refused calls f.
func (f RefusalFunc) Refused(r Refusal) { f(r) }

// refused counts a refusal and hands it to the sink.
func (s *Server) refused(r reason, ip netip.Addr, from, rcpt, detail string) {
	s.stats.reject(r)
	if s.opts.Refusals != nil {
		s.opts.Refusals.Refused(Refusal{Time: s.now(), ClientIP: ip, Reason: r.String(), MailFrom: from, Rcpt: rcpt, Detail: detail})
	}
}

// mailFrom is the sender of the connection's transaction, if it has one.
func (c *conn) mailFrom() string {
	s := c.sess.Load()
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.mail {
		return ""
	}
	return s.from
}

// detailOf turns a refusal's log attributes (key, value pairs) into its
// detail, leaving out the sender and the recipient, which the refusal names
// on their own.
func detailOf(args []any) (from, rcpt, detail string) {
	var parts []string
	for i := 0; i+1 < len(args); i += 2 {
		key, _ := args[i].(string)
		switch key {
		case "from":
			from = fmt.Sprint(args[i+1])
		case "rcpt":
			rcpt = fmt.Sprint(args[i+1])
		default:
			parts = append(parts, fmt.Sprintf("%s=%v", key, args[i+1]))
		}
	}
	return from, rcpt, strings.Join(parts, " ")
}
