package ioc

import (
	"context"
	"path"
	"strings"

	"github.com/ospreysec/osprey/central/scan/walk"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Name is the indicator engine's name.
const Name = "ioc"

// Engine matches a RuleSet. The zero value is ready to use.
type Engine struct{}

// Name returns "ioc".
func (Engine) Name() string { return Name }

// ScanPart matches the digests, name and extensions of an attachment or
// archive member (bodies have none).
func (Engine) ScanPart(_ context.Context, p *walk.Part, rules *RuleSet) ([]*ospreyv1.Match, error) {
	if rules == nil || p.Kind == walk.KindBody {
		return nil, nil
	}
	var out []*ospreyv1.Match
	where := p.Where()
	for _, h := range []struct {
		m      map[string][]*ospreyv1.Rule
		name   string
		digest string
	}{{rules.sha256, "SHA-256", p.SHA256}, {rules.sha1, "SHA-1", p.SHA1}, {rules.md5, "MD5", p.MD5}} {
		if h.digest == "" {
			continue
		}
		for _, r := range h.m[h.digest] {
			out = append(out, match(r, where, where+" has "+h.name+" "+h.digest))
		}
	}
	name := strings.ToLower(p.Filename)
	if name == "" {
		return out, nil
	}
	for _, r := range rules.names[name] {
		out = append(out, match(r, where, "name "+p.Filename+" matches "+r.GetValue()))
	}
	for _, g := range rules.globs {
		if ok, _ := path.Match(g.pattern, name); ok {
			out = append(out, match(g.rule, where, "name "+p.Filename+" matches "+g.rule.GetValue()))
		}
	}
	// Every dotted suffix: "a.tar.gz" has "gz" and "tar.gz".
	for i := len(name) - 1; i > 0; i-- {
		if name[i] != '.' {
			continue
		}
		for _, r := range rules.exts[name[i+1:]] {
			out = append(out, match(r, where, "name "+p.Filename+" has extension "+name[i+1:]))
		}
	}
	return out, nil
}

// ScanMessage matches the senders (envelope MAIL FROM and header From),
// the sender authentication results of a gateway's message and the URLs
// of the bodies.
func (Engine) ScanMessage(_ context.Context, m *walk.Message, env *ospreyv1.Envelope, rules *RuleSet) ([]*ospreyv1.Match, error) {
	if rules == nil {
		return nil, nil
	}
	var out []*ospreyv1.Match
	seen := map[*ospreyv1.Rule]bool{}
	add := func(r *ospreyv1.Rule, part, what string) {
		if !seen[r] {
			seen[r] = true
			out = append(out, match(r, part, what))
		}
	}
	senders := []struct{ addr, where string }{
		{strings.ToLower(strings.Trim(strings.TrimSpace(env.GetMailFrom()), "<>")), "envelope MAIL FROM"},
		{m.From, "header From"},
	}
	for _, s := range senders {
		if s.addr == "" {
			continue
		}
		for _, r := range rules.senders[s.addr] {
			add(r, s.where, "sender "+s.addr+" ("+s.where+")")
		}
		if i := strings.LastIndexByte(s.addr, '@'); i >= 0 {
			domainSuffixes(walk.NormalizeHost(s.addr[i+1:]), func(d string) bool {
				for _, r := range rules.senderDomains[d] {
					add(r, s.where, "sender "+s.addr+" ("+s.where+") is in domain "+d)
				}
				return true
			})
		}
	}
	if a := env.GetAuth(); a != nil && len(rules.auth) > 0 {
		for _, res := range authResults(a) {
			for _, r := range rules.auth[res.key] {
				add(r, "sender authentication", res.what)
			}
		}
	}
	if len(rules.urls) == 0 && len(rules.urlHosts) == 0 {
		return out, nil
	}
	for _, u := range m.URLs {
		for _, r := range rules.urls[u] {
			add(r, "body", "URL "+u)
		}
		if len(rules.urlHosts) == 0 {
			continue
		}
		domainSuffixes(walk.URLHost(u), func(d string) bool {
			for _, r := range rules.urlHosts[d] {
				add(r, "body", "URL "+u+" is on host "+d)
			}
			return true
		})
	}
	return out, nil
}

// authResult is one sender authentication result of a message: the key
// an auth_result rule has ("dkim=fail"), and what a match says of it.
type authResult struct{ key, what string }

// authResults lists the results of a gateway's checks: SPF, each DKIM
// signature, DMARC.
func authResults(a *ospreyv1.AuthResults) []authResult {
	var out []authResult
	if v := a.GetSpf(); v != "" {
		out = append(out, authResult{"spf=" + v, "SPF " + v + " for " + orNone(a.GetSpfDomain())})
	}
	for _, d := range a.GetDkim() {
		out = append(out, authResult{"dkim=" + d.GetResult(), "DKIM " + d.GetResult() + " for " + orNone(d.GetDomain()) + " (selector " + orNone(d.GetSelector()) + ")"})
	}
	if v := a.GetDmarc(); v != "" {
		what := "DMARC " + v + " for " + orNone(a.GetFromDomain())
		if p := a.GetDmarcPolicy(); p != "" {
			what += ", policy " + p
		}
		out = append(out, authResult{"dmarc=" + v, what})
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func match(r *ospreyv1.Rule, part, what string) *ospreyv1.Match {
	sev := r.GetSeverity()
	if sev == ospreyv1.Severity_SEVERITY_UNSPECIFIED {
		sev = ospreyv1.Severity_SEVERITY_MEDIUM
	}
	return &ospreyv1.Match{Engine: Name, RuleId: MatchID(r), Severity: sev, What: what, Part: part}
}

// GlobalPrefix starts the rule id of a global rule's match.
const GlobalPrefix = "global/"

// MatchID is the rule id a match of r names: its id, or for a global rule
// (which applies to every tenant) "global/<id>", so that an alert says
// which kind of rule it was and a tenant's rule never shares its name.
func MatchID(r *ospreyv1.Rule) string {
	if r.GetGlobal() {
		return GlobalPrefix + r.GetId()
	}
	return r.GetId()
}
