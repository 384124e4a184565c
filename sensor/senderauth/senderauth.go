// Package senderauth checks who sent a message a gateway takes: SPF of the
// MAIL FROM domain (of the HELO name for a null sender) with the client's
// address (blitiri.com.ar/go/spf), every DKIM signature, and DMARC of the
// From domain with the policy it publishes and the alignment of RFC 7489
// (github.com/emersion/go-msgauth). It renders the results as an
// Authentication-Results header (RFC 8601) and recognises the headers of
// that name that carry our authserv-id, which a message arriving from
// outside can only have forged.
//
// # Design
//
// The checks run beside the SMTP transaction rather than in front of it.
// [Checker.Start], called when DATA begins, starts the SPF check on a
// goroutine and returns a [Message], an io.Writer that the SMTP server
// copies the message to as it reads it. Once the header has come (the
// first empty line), Message parses the DKIM-Signature and From fields,
// starts the DMARC record lookup of the From domain, and, when there are
// signatures, starts go-msgauth's verification on a goroutine that reads
// the rest of the message through a pipe as it arrives: nothing is
// buffered but the header, and a message without a signature costs a
// scan of its header. [Message.Results] ends the stream and collects the
// results; the SMTP server asks for them after the last byte and before
// the message is written durably, so they are on disk with the message
// before the 250.
//
// Every lookup goes through one Resolver (the sensor's caching
// dnscache.Resolver) and is bounded twice: by Config.LookupTimeout each,
// and all those of a check (SPF; DKIM with DMARC) by Config.CheckTimeout
// from the check's start. A lookup that runs out of time is a temporary
// failure, so a DNS server that does not answer delays a message by
// CheckTimeout at most and yields "temperror".
//
// # DMARC
//
// The From field must be one, and its addresses must share one domain;
// otherwise DMARC is "permerror" (RFC 7489 §6.6.1). The record is looked
// up at _dmarc.<From domain>, then at the organizational domain (the
// public suffix list's registrable domain, RFC 7489 §3.2), whose sp= then
// applies. DMARC passes when SPF passed for an aligned domain or a DKIM
// signature of an aligned d= verified (relaxed alignment: same
// organizational domain; strict: the same name, per the record's aspf=
// and adkim=). Otherwise it is "temperror" when an aligned check could
// not finish for a temporary failure, and "fail". A record that cannot
// be read for a temporary failure gives "temperror", a broken one
// "permerror", none "none". Config.TempError and Config.PermError say
// what the last two count as: as is (the default), "fail" or "none".
// pct= is not applied: the policy recorded is the one published.
package senderauth

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Results, as RFC 8601 names them.
const (
	Pass      = "pass"
	Fail      = "fail"
	SoftFail  = "softfail"
	Neutral   = "neutral"
	None      = "none"
	TempError = "temperror"
	PermError = "permerror"
)

// Bounds of what a message's results hold, so that they fit the spool's
// spool.SealRoom: at most MaxSignatures DKIM signatures are verified (the
// rest are left out), and every domain and selector is cut to 253 bytes.
const (
	MaxSignatures = 8
	maxName       = 253
)

// MaxHeader bounds the header of a message that is checked; a message
// with a larger header gets no DKIM results and DMARC "permerror".
const MaxHeader = 1 << 20

// Resolver is what the checks ask DNS; *dnscache.Resolver implements it.
// Its errors are *net.DNSError, not wrapped: the SPF and DKIM libraries
// tell a temporary failure from a missing name by asserting the type.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Config is how the checks run.
type Config struct {
	// LookupTimeout bounds one DNS lookup, CheckTimeout all the lookups
	// of one check.
	LookupTimeout, CheckTimeout time.Duration
	// TempError and PermError are what a DMARC "temperror" and
	// "permerror" count as.
	TempError, PermError ospreyv1.AuthErrorTreatment
}

// ConfigFrom reads a gateway's settings, defaults filled in (see
// validate.SenderAuth).
func ConfigFrom(s *ospreyv1.SenderAuthSettings) Config {
	s = validate.SenderAuth(s)
	return Config{
		LookupTimeout: time.Duration(s.GetLookupTimeoutMs()) * time.Millisecond,
		CheckTimeout:  time.Duration(s.GetCheckTimeoutMs()) * time.Millisecond,
		TempError:     s.GetDmarcTemperror(),
		PermError:     s.GetDmarcPermerror(),
	}
}

// Checker runs the checks of one configuration. It is safe for concurrent
// use.
type Checker struct {
	cfg Config
	res bounded
}

// New returns a checker that asks res.
func New(res Resolver, cfg Config) *Checker {
	return &Checker{cfg: cfg, res: bounded{r: res, timeout: cfg.LookupTimeout}}
}

// Start starts the checks of a message from a client at ip that said HELO
// helo and MAIL FROM from (empty for the null sender): SPF at once, on a
// goroutine; DKIM and DMARC as the message is written to the returned
// Message. ctx bounds the checks (the session's). The caller must Close
// the Message.
func (c *Checker) Start(ctx context.Context, ip netip.Addr, helo, from string) *Message {
	return &Message{c: c, parent: ctx, spf: c.startSPF(ctx, ip, helo, from)}
}

// bounded bounds each lookup of a Resolver by timeout.
type bounded struct {
	r       Resolver
	timeout time.Duration
}

func (b bounded) LookupTXT(ctx context.Context, name string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.r.LookupTXT(ctx, name)
}

func (b bounded) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.r.LookupMX(ctx, name)
}

func (b bounded) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.r.LookupIPAddr(ctx, host)
}

func (b bounded) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	return b.r.LookupAddr(ctx, addr)
}

// txt is a TXT lookup bound to ctx, as go-msgauth takes it.
func (b bounded) txt(ctx context.Context) func(string) ([]string, error) {
	return func(name string) ([]string, error) { return b.LookupTXT(ctx, name) }
}
