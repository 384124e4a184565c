package delivery

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// This file is the callout of recipient verification: the SMTP
// conversation of a delivery, stopped after RCPT (Postfix's verify(8) has
// its smtp(8) do the same). The route, the next hops in order, EHLO and
// STARTTLS are a delivery's; what to make of the answer is the caller's
// (package rcptverify).

// ProbeResult is what one probe learnt of a recipient.
type ProbeResult struct {
	// AtRcpt says that Reply is the next hop's reply to RCPT TO: the only
	// answer that speaks of the recipient. Otherwise Reply is why the
	// probe did not get that far, in the class the failure has (a
	// connection refused, no MX, MAIL FROM:<> refused), as for a delivery.
	AtRcpt bool
	Reply  RcptResult
	// Host is the next hop that answered last ("mx1.example.com
	// [192.0.2.1]:25"), "" when none was reached; TLS names the session's
	// TLS, "" for plaintext.
	Host, TLS string
	// Took is how long the probe took, waits at Gate included.
	Took time.Duration
}

// Gate bounds the probes to one next hop: Probe calls it with the
// address it is about to connect to ("192.0.2.1:25") and waits for it; it
// returns the function that frees the slot, or an error (ctx ended while
// waiting), which ends the probe with a temporary failure.
type Gate func(ctx context.Context, addr string) (release func(), err error)

// Probe asks the next hop of rcpt whether it would take mail for it, as
// Deliver would reach it: the route's hosts or the domain's MX hosts in
// preference order, the next address on a failure before the transaction
// (no connection, a greeting or EHLO refused, a TLS requirement not met,
// MAIL FROM refused). With the first host that answers MAIL FROM:<> (the
// null sender, so that no bounce can follow, RFC 5321 §4.5.5) it sends
// RCPT TO:<rcpt>, then RSET and QUIT: no message is sent. gate, when not
// nil, is called before each connection. ctx bounds the whole probe.
func (c *Client) Probe(ctx context.Context, rcpt string, gate Gate) (res ProbeResult) {
	start := time.Now()
	defer func() {
		res.Took = time.Since(start)
		c.log.Debug("probe", "rcpt", rcpt, "host", res.Host, "at_rcpt", res.AtRcpt, "code", res.Reply.Code,
			"status", res.Reply.Enhanced, "text", res.Reply.Text, "took", res.Took)
	}()
	fail := func(f failure) ProbeResult {
		res.Reply = f.rcpt(rcpt)
		return res
	}
	cc := c.cfg.Load()
	if cc == nil {
		return fail(tempFail("4.3.5", "delivery is not configured yet"))
	}
	rd, err := parseRcptDomain(rcpt)
	if err == nil && strings.ContainsAny(rcpt, "\r\n") {
		err = fmt.Errorf("recipient %q has a line break", rcpt)
	}
	if err != nil {
		return fail(permFail(553, "5.1.3", "%v", err))
	}
	requireTLS := rd.name != "" && cc.tlsRequired(rd.name)
	targets, f := c.targets(ctx, cc, rd)
	if f != nil {
		return fail(*f)
	}
	last := tempFail("4.4.1", "no host to try")
	for i, t := range targets {
		if i == maxAddresses {
			break
		}
		if err := ctx.Err(); err != nil {
			last = tempFail("4.4.2", "probe interrupted: %v", context.Cause(ctx))
			break
		}
		out, f := c.probeHost(ctx, cc, t, requireTLS, rcpt, gate, &res)
		if out != nextHost {
			if out == final {
				return fail(f)
			}
			return res
		}
		c.log.Debug("next hop failed the probe", "rcpt", rcpt, "host", t.label(), "code", f.code, "status", f.enhanced, "text", f.text)
		last = f
	}
	return fail(last)
}

// probeHost runs the probe with one address, on a session of its own:
// the connection cache is for messages, and a probe's session ends with
// it.
func (c *Client) probeHost(ctx context.Context, cc *compiled, t target, requireTLS bool, rcpt string, gate Gate, res *ProbeResult) (outcome, failure) {
	if gate != nil {
		release, err := gate(ctx, t.addr.String())
		if err != nil {
			return final, tempFail("4.4.5", "too many probes at once to %s: %v", t.label(), err)
		}
		defer release()
	}
	s, f := c.open(ctx, cc, t, requireTLS, false)
	if f != nil {
		return nextHost, *f
	}
	res.Host, res.TLS = s.host, s.tls
	stop := context.AfterFunc(ctx, func() { s.raw.Conn.Close() })
	defer func() {
		if !stop() {
			s.broken = true
		}
		s.quit()
	}()
	utf8OK, _ := s.c.Extension("SMTPUTF8")
	if !isASCII(rcpt) && !utf8OK {
		return final, permFail(553, "5.6.7", "SMTPUTF8 is required, but was not offered by host %s", s.host)
	}
	if err := s.c.Mail("", &smtp.MailOptions{UTF8: !isASCII(rcpt)}); err != nil {
		if _, refused := refusal(err); !refused {
			s.broken = true
		}
		return nextHost, sessionFailure(ctx, t, "MAIL FROM", err)
	}
	err := s.c.Rcpt(rcpt, nil)
	if err == nil {
		res.AtRcpt, res.Reply = true, RcptResult{Rcpt: rcpt, Code: 250, Enhanced: "2.1.5", Text: "recipient accepted by " + s.host}
		c.rset(s)
		return delivered, failure{}
	}
	r, refused := refusal(err)
	if !refused || r.code == 421 {
		s.broken = true
		return nextHost, sessionFailure(ctx, t, "RCPT TO", err)
	}
	res.AtRcpt, res.Reply = true, replyResult(rcpt, r)
	c.rset(s)
	return delivered, failure{}
}
