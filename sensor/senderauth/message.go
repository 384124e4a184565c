package senderauth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/mail"
	"regexp"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Message checks one message as it is written to it: the message as the
// client sent it, lines ended by CRLF. Write, Results and Close are called
// from one goroutine.
type Message struct {
	c      *Checker
	parent context.Context
	spf    *spfCheck

	hdr     []byte // the header so far, until it has ended
	started bool   // the header has ended and the checks run
	skip    bool   // the header is larger than MaxHeader: not checked

	ctx    context.Context // of the DKIM and DMARC check
	cancel context.CancelFunc

	sigs  []signature
	pw    *io.PipeWriter // to the DKIM verification; nil without signatures
	dkimC chan dkimOutcome
	dkim  *dkimOutcome

	from    string // the From domain, when it is one
	fromOK  bool
	recordC chan policyLookup
	record  *policyLookup

	res    *ospreyv1.AuthResults
	closed bool
}

// signature is what a DKIM-Signature field says of itself.
type signature struct{ domain, selector string }

type dkimOutcome struct {
	verifs []*dkim.Verification
	err    error
}

// Write takes the next bytes of the message. It never fails: a message
// that cannot be checked gets results that say so.
func (m *Message) Write(p []byte) (int, error) {
	switch {
	case m.closed || m.skip:
	case m.started:
		m.feed(p)
	default:
		from := max(0, len(m.hdr)-3)
		m.hdr = append(m.hdr, p...)
		end := -1
		if bytes.HasPrefix(m.hdr, []byte("\r\n")) {
			end = 2 // no header fields at all
		} else if i := bytes.Index(m.hdr[from:], []byte("\r\n\r\n")); i >= 0 {
			end = from + i + 4
		}
		if end > MaxHeader || end < 0 && len(m.hdr) > MaxHeader {
			m.skip, m.hdr = true, nil
		}
		if end < 0 || m.skip {
			break
		}
		m.start(m.hdr[:end])
		m.feed(m.hdr)
		m.hdr = nil
	}
	return len(p), nil
}

// feed passes bytes on to the DKIM verification. The pipe's write returns
// once the verification has read them; it waits at most for the
// verification's key lookups, which the check's context bounds.
func (m *Message) feed(p []byte) {
	if m.pw != nil {
		_, _ = m.pw.Write(p)
	}
}

// start parses the header, and starts the DMARC record lookup and, when
// the message has signatures, the DKIM verification.
func (m *Message) start(header []byte) {
	m.started = true
	m.ctx, m.cancel = context.WithTimeout(m.parent, m.c.cfg.CheckTimeout)
	var froms []string
	for _, f := range headerFields(header) {
		switch {
		case strings.EqualFold(f.name, "DKIM-Signature"):
			if len(m.sigs) < MaxSignatures {
				m.sigs = append(m.sigs, parseSignature(f.value))
			}
		case strings.EqualFold(f.name, "From"):
			froms = append(froms, f.value)
		}
	}
	m.from, m.fromOK = authorDomain(froms)
	if m.fromOK {
		m.recordC = make(chan policyLookup, 1)
		go func() { m.recordC <- m.c.lookupPolicy(m.ctx, m.from) }()
	}
	if len(m.sigs) > 0 {
		pr, pw := io.Pipe()
		m.pw, m.dkimC = pw, make(chan dkimOutcome, 1)
		go func() {
			verifs, err := dkim.VerifyWithOptions(pr, &dkim.VerifyOptions{LookupTXT: m.c.res.txt(m.ctx), MaxVerifications: MaxSignatures})
			// Verify may stop reading early; the writer must never block.
			_, _ = io.Copy(io.Discard, pr)
			m.dkimC <- dkimOutcome{verifs, err}
		}()
	}
}

// Results ends the message and returns its results, once every check has
// finished or run out of time. The message must have been written in full.
func (m *Message) Results() *ospreyv1.AuthResults {
	if m.res != nil || m.closed {
		return m.res
	}
	res := &ospreyv1.AuthResults{}
	res.Spf, res.SpfDomain = m.spf.wait()
	if !m.started && !m.skip {
		// No empty line: the message is all header.
		h := m.hdr
		m.start(h)
		m.feed(h)
		m.feed([]byte("\r\n"))
		m.hdr = nil
	}
	if m.skip {
		res.Dmarc = m.treat(PermError)
		m.res = res
		return res
	}
	if m.pw != nil {
		m.pw.Close()
		out := <-m.dkimC
		m.dkim = &out
		res.Dkim = dkimResults(m.sigs, out)
	}
	res.FromDomain = m.from
	if m.recordC != nil {
		rec := <-m.recordC
		m.record = &rec
	}
	res.Dmarc, res.DmarcPolicy = m.evaluate(res)
	m.res = res
	return res
}

// Close ends the checks that still run and waits for their goroutines.
// Results returns nil after a Close that came first.
func (m *Message) Close() {
	if m.closed {
		return
	}
	m.closed = true
	if m.cancel != nil {
		m.cancel()
	}
	m.spf.stop()
	if m.pw != nil && m.dkim == nil {
		m.pw.CloseWithError(errors.New("message abandoned"))
		<-m.dkimC
	}
	if m.recordC != nil && m.record == nil {
		<-m.recordC
	}
}

// dkimResults maps the verifications to results, one per signature.
func dkimResults(sigs []signature, out dkimOutcome) []*ospreyv1.DkimResult {
	broken := out.err != nil && !errors.Is(out.err, dkim.ErrTooManySignatures)
	res := make([]*ospreyv1.DkimResult, len(sigs))
	for i, s := range sigs {
		r := &ospreyv1.DkimResult{Domain: s.domain, Selector: s.selector}
		switch {
		case broken:
			// The message could not be read as one, or the verification
			// failed in a way it does not classify: nothing verified.
			r.Result = PermError
			if isTemporary(out.err) {
				r.Result = TempError
			}
		case i >= len(out.verifs):
			r.Result = PermError
		default:
			r.Result = dkimResult(out.verifs[i].Err)
		}
		res[i] = r
	}
	return res
}

func dkimResult(err error) string {
	switch {
	case err == nil:
		return Pass
	case dkim.IsTempFail(err):
		return TempError
	case dkim.IsPermFail(err):
		return PermError
	}
	return Fail
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// field is a header field: its name, and its value unfolded.
type field struct{ name, value string }

// headerFields splits a header (CRLF lines, up to the empty line) into its
// fields.
func headerFields(header []byte) []field {
	var out []field
	for line := range strings.SplitSeq(string(header), "\r\n") {
		switch {
		case line == "":
		case line[0] == ' ' || line[0] == '\t':
			if len(out) > 0 {
				out[len(out)-1].value += line
			}
		default:
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			out = append(out, field{name: strings.TrimSpace(name), value: value})
		}
	}
	return out
}

// parseSignature reads d= and s= from a DKIM-Signature's tag list.
func parseSignature(v string) signature {
	var s signature
	for tag := range strings.SplitSeq(v, ";") {
		k, val, ok := strings.Cut(tag, "=")
		if !ok {
			continue
		}
		val = strings.Join(strings.Fields(val), "")
		switch strings.TrimSpace(k) {
		case "d":
			s.domain, _ = cleanDomain(val)
		case "s":
			s.selector = cleanToken(val)
		}
	}
	return s
}

// addrDomain finds the domains of addresses in a From field that net/mail
// cannot parse.
var addrDomain = regexp.MustCompile(`@([^\s<>()\[\]",;:@]+)`)

// authorDomain returns the domain of the From field (RFC 7489 §6.6.1):
// one field, whose addresses share one domain.
func authorDomain(froms []string) (string, bool) {
	if len(froms) != 1 {
		return "", false
	}
	var domains []string
	if addrs, err := mail.ParseAddressList(froms[0]); err == nil {
		for _, a := range addrs {
			domains = append(domains, domainOf(a.Address))
		}
	} else {
		for _, m := range addrDomain.FindAllStringSubmatch(froms[0], -1) {
			domains = append(domains, m[1])
		}
	}
	if len(domains) == 0 {
		return "", false
	}
	d, ok := cleanDomain(domains[0])
	for _, o := range domains[1:] {
		if c, _ := cleanDomain(o); c != d {
			return "", false
		}
	}
	return d, ok
}
