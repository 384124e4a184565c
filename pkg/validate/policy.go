package validate

import (
	"math"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults of a tenant's verdict policy (VerdictPolicy); the central's
// decisions, the API documentation and the UI take them from here.
const (
	DefaultDetectedAction         = ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE
	DefaultUnscannableLimitAction = ospreyv1.VerdictAction_VERDICT_ACTION_DELIVER
	DefaultUnscannableErrorAction = ospreyv1.VerdictAction_VERDICT_ACTION_DELIVER
	DefaultDMARCRejectAction      = ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE
	DefaultDMARCQuarantineAction  = ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE
	DefaultSubjectTag             = "[Osprey detect]"
	DefaultSpamSubjectTag         = "[SPAM]"
	DefaultSpamTagScore           = 6.0
	DefaultSpamQuarantineScore    = 15.0
	// MaxSubjectTagBytes bounds a subject tag.
	MaxSubjectTagBytes = 64
	// MaxTagHeaders bounds the headers a tag adds.
	MaxTagHeaders = 10
	// MaxTagHeaderBytes bounds one added header's name and value.
	MaxTagHeaderBytes = 998
)

// VerdictPolicy returns p with each unset field replaced by its default; p
// may be nil. It does not check the values.
func VerdictPolicy(p *ospreyv1.VerdictPolicy) *ospreyv1.VerdictPolicy {
	out := proto.CloneOf(p)
	if out == nil {
		out = new(ospreyv1.VerdictPolicy)
	}
	orDefault := func(a *ospreyv1.VerdictAction, def ospreyv1.VerdictAction) {
		if *a == ospreyv1.VerdictAction_VERDICT_ACTION_UNSPECIFIED {
			*a = def
		}
	}
	orDefault(&out.Detected, DefaultDetectedAction)
	orDefault(&out.UnscannableLimit, DefaultUnscannableLimitAction)
	orDefault(&out.UnscannableError, DefaultUnscannableErrorAction)
	orDefault(&out.DmarcReject, DefaultDMARCRejectAction)
	orDefault(&out.DmarcQuarantine, DefaultDMARCQuarantineAction)
	if out.SubjectTag == "" {
		out.SubjectTag = DefaultSubjectTag
	}
	if out.SpamSubjectTag == "" {
		out.SpamSubjectTag = DefaultSpamSubjectTag
	}
	if out.SpamTagScore == 0 {
		out.SpamTagScore = DefaultSpamTagScore
	}
	if out.SpamQuarantineScore == 0 {
		out.SpamQuarantineScore = DefaultSpamQuarantineScore
	}
	return out
}

// Policy validates a tenant's verdict policy: every action a known one
// (unset takes the default); subject tags at most 64 bytes of text; at most
// 10 tag headers, each a header field name (RFC 5322 printable characters
// but the colon) whose name and value fit a line and carry no line breaks,
// and not one of the fields a gateway owns (Received, X-Osprey-Verdict,
// Authentication-Results); spam scores finite, and the quarantine score
// above the tag score.
func Policy(p *ospreyv1.VerdictPolicy) error {
	var r report
	for _, a := range []struct {
		field string
		v     ospreyv1.VerdictAction
	}{
		{"detected", p.GetDetected()},
		{"unscannable_limit", p.GetUnscannableLimit()},
		{"unscannable_error", p.GetUnscannableError()},
		{"dmarc_reject", p.GetDmarcReject()},
		{"dmarc_quarantine", p.GetDmarcQuarantine()},
	} {
		verdictAction(&r, a.field, a.v)
	}
	r.text("subject_tag", p.GetSubjectTag(), MaxSubjectTagBytes)
	r.text("spam_subject_tag", p.GetSpamSubjectTag(), MaxSubjectTagBytes)
	if n := len(p.GetTagHeaders()); n > MaxTagHeaders {
		r.add("tag_headers", "at most %d headers, not %d", MaxTagHeaders, n)
	}
	for i, h := range p.GetTagHeaders() {
		field := "tag_headers[" + strconv.Itoa(i) + "]"
		name := h.GetName()
		switch {
		case name == "":
			r.add(field+".name", "required")
		case strings.ContainsFunc(name, func(c rune) bool { return c <= ' ' || c > '~' || c == ':' }):
			r.add(field+".name", "must be a header field name: printable ASCII without spaces or colons")
		case ownedHeader(name):
			r.add(field+".name", "%s is the gateway's own header", textproto.CanonicalMIMEHeaderKey(name))
		}
		if r.text(field+".value", h.GetValue(), MaxTagHeaderBytes) && len(name)+2+len(h.GetValue()) > MaxTagHeaderBytes {
			r.add(field+".value", "the field must fit one line of %d bytes", MaxTagHeaderBytes)
		}
	}
	tag, quar := p.GetSpamTagScore(), p.GetSpamQuarantineScore()
	for _, s := range []struct {
		field string
		v     float64
	}{{"spam_tag_score", tag}, {"spam_quarantine_score", quar}} {
		if math.IsNaN(s.v) || math.IsInf(s.v, 0) {
			r.add(s.field, "must be a number")
		}
	}
	eff := VerdictPolicy(p)
	if eff.GetSpamQuarantineScore() <= eff.GetSpamTagScore() {
		r.add("spam_quarantine_score", "must be above spam_tag_score (%g)", eff.GetSpamTagScore())
	}
	return r.err()
}

// verdictAction reports an action that is no known one.
func verdictAction(r *report, field string, a ospreyv1.VerdictAction) {
	if _, ok := ospreyv1.VerdictAction_name[int32(a)]; !ok {
		r.add(field, "unknown action %d", a)
	}
}

// ownedHeader says whether name is a header field the gateway writes
// itself, which a tag must not add.
func ownedHeader(name string) bool {
	switch strings.ToLower(name) {
	case "received", "x-osprey-verdict", "authentication-results", "subject":
		return true
	}
	return false
}

// MaxReleaseAddresses bounds the addresses a quarantined message is
// released to at once.
const MaxReleaseAddresses = 100

// ReleaseAddresses checks the addresses of a release of a quarantined
// message to other recipients (field "to"): 1 to 100 plain addresses
// local@domain, without display names or angle brackets.
func ReleaseAddresses(to []string) error {
	var r report
	if len(to) == 0 || len(to) > MaxReleaseAddresses {
		r.add("to", "want 1 to %d addresses, not %d", MaxReleaseAddresses, len(to))
	}
	for i, a := range to {
		if p, err := mail.ParseAddress(a); err != nil || p.Address != a || p.Name != "" || !strings.Contains(a, "@") {
			r.add("to["+strconv.Itoa(i)+"]", "%q is not an address local@domain", a)
		}
	}
	return r.err()
}
