package senderauth

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// policyLookup is the outcome of the DMARC record lookup of a From domain.
type policyLookup struct {
	rec *dmarc.Record
	// policy is the one that applies: p=, or sp= when the record is the
	// organizational domain's and the From domain is below it.
	policy string
	// result is set when there is no record to apply: None, TempError or
	// PermError.
	result string
}

// lookupPolicy finds the DMARC record of domain (RFC 7489 §6.6.3): at
// _dmarc.<domain>, then at _dmarc.<organizational domain>.
func (c *Checker) lookupPolicy(ctx context.Context, domain string) policyLookup {
	p := c.record(ctx, domain)
	if p.result == None {
		if org := orgDomain(domain); org != domain {
			p = c.record(ctx, org)
			if p.rec != nil && p.rec.SubdomainPolicy != "" {
				p.policy = string(p.rec.SubdomainPolicy)
			}
		}
	}
	return p
}

// record reads the DMARC record at _dmarc.<domain>: the one TXT record
// that starts with "v=DMARC1" (none when there are several, §6.6.3).
func (c *Checker) record(ctx context.Context, domain string) policyLookup {
	txts, err := c.res.LookupTXT(ctx, "_dmarc."+domain)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return policyLookup{result: None}
		}
		return policyLookup{result: TempError}
	}
	var found []string
	for _, t := range txts {
		if v, _, _ := strings.Cut(t, ";"); strings.TrimSpace(v) == "v=DMARC1" {
			found = append(found, t)
		}
	}
	if len(found) != 1 {
		return policyLookup{result: None}
	}
	rec, err := dmarc.Parse(found[0])
	if err != nil {
		return policyLookup{result: PermError}
	}
	return policyLookup{rec: rec, policy: string(rec.Policy)}
}

// evaluate returns the DMARC result of the message, and the policy its
// From domain publishes.
func (m *Message) evaluate(res *ospreyv1.AuthResults) (result, policy string) {
	if !m.fromOK {
		return m.treat(PermError), ""
	}
	p := m.record
	if p.result != "" {
		return m.treat(p.result), ""
	}
	spfAligned := aligned(res.GetSpfDomain(), m.from, p.rec.SPFAlignment)
	if res.GetSpf() == Pass && spfAligned {
		return Pass, p.policy
	}
	temp := res.GetSpf() == TempError && spfAligned
	for _, d := range res.GetDkim() {
		if !aligned(d.GetDomain(), m.from, p.rec.DKIMAlignment) {
			continue
		}
		switch d.GetResult() {
		case Pass:
			return Pass, p.policy
		case TempError:
			temp = true
		}
	}
	if temp {
		if r := m.treat(TempError); r != None {
			return r, p.policy
		}
		return None, ""
	}
	return Fail, p.policy
}

// treat is what a DMARC temperror or permerror counts as.
func (m *Message) treat(result string) string {
	t := m.c.cfg.TempError
	if result == PermError {
		t = m.c.cfg.PermError
	}
	switch {
	case result != TempError && result != PermError:
		return result
	case t == ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_FAIL:
		return Fail
	case t == ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_NONE:
		return None
	}
	return result
}

// aligned reports whether domain a is aligned with the From domain from
// (RFC 7489 §3.1): the same name in strict mode, the same organizational
// domain in relaxed mode.
func aligned(a, from string, mode dmarc.AlignmentMode) bool {
	if a == "" {
		return false
	}
	if a == from {
		return true
	}
	return mode != dmarc.AlignmentStrict && orgDomain(a) == orgDomain(from)
}

// orgDomain is the organizational domain of d: its registrable domain by
// the public suffix list, or d itself when it has none.
func orgDomain(d string) string {
	if o, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return o
	}
	return d
}
