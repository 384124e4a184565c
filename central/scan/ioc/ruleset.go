// Package ioc matches a tenant's indicators of compromise (file digests,
// sender addresses and domains, URLs and URL hosts, attachment names and
// extensions, a gateway's sender authentication results) against scanned
// messages, and finds the structural signs of
// malicious attachments that need no rule (double extensions, executables
// in archives, right-to-left override characters in names).
//
// Rules are compiled once into a RuleSet of maps, so matching one item
// costs a few map look-ups whatever the number of rules; only name globs
// with wildcards are tried one by one.
package ioc

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/ospreysec/osprey/central/scan/walk"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// RuleSet is a tenant's enabled rules, compiled for matching. A nil
// *RuleSet matches nothing. It is safe for concurrent use.
type RuleSet struct {
	sha256, sha1, md5 map[string][]*ospreyv1.Rule
	senders           map[string][]*ospreyv1.Rule
	senderDomains     map[string][]*ospreyv1.Rule
	urls              map[string][]*ospreyv1.Rule
	urlHosts          map[string][]*ospreyv1.Rule
	names             map[string][]*ospreyv1.Rule // name globs without wildcards
	globs             []glob
	exts              map[string][]*ospreyv1.Rule
	auth              map[string][]*ospreyv1.Rule // "dmarc=fail"
	n                 int
}

type glob struct {
	pattern string
	rule    *ospreyv1.Rule
}

// Compile compiles the enabled rules. A rule that fails ValidateRule is
// left out, and the error returned names every such rule; the RuleSet is
// usable either way.
func Compile(rules []*ospreyv1.Rule) (*RuleSet, error) {
	s := &RuleSet{
		sha256: map[string][]*ospreyv1.Rule{}, sha1: map[string][]*ospreyv1.Rule{}, md5: map[string][]*ospreyv1.Rule{},
		senders: map[string][]*ospreyv1.Rule{}, senderDomains: map[string][]*ospreyv1.Rule{},
		urls: map[string][]*ospreyv1.Rule{}, urlHosts: map[string][]*ospreyv1.Rule{},
		names: map[string][]*ospreyv1.Rule{}, exts: map[string][]*ospreyv1.Rule{}, auth: map[string][]*ospreyv1.Rule{},
	}
	var errs []error
	for _, r := range rules {
		if r == nil || r.GetDisabled() {
			continue
		}
		key, err := normalize(r.GetKind(), r.GetValue())
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %q: %w", r.GetId(), err))
			continue
		}
		s.n++
		var m map[string][]*ospreyv1.Rule
		switch r.GetKind() {
		case ospreyv1.RuleKind_RULE_KIND_SHA256:
			m = s.sha256
		case ospreyv1.RuleKind_RULE_KIND_SHA1:
			m = s.sha1
		case ospreyv1.RuleKind_RULE_KIND_MD5:
			m = s.md5
		case ospreyv1.RuleKind_RULE_KIND_SENDER:
			m = s.senders
		case ospreyv1.RuleKind_RULE_KIND_SENDER_DOMAIN:
			m = s.senderDomains
		case ospreyv1.RuleKind_RULE_KIND_URL:
			m = s.urls
		case ospreyv1.RuleKind_RULE_KIND_URL_HOST:
			m = s.urlHosts
		case ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION:
			m = s.exts
		case ospreyv1.RuleKind_RULE_KIND_AUTH_RESULT:
			m = s.auth
		case ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_NAME:
			if strings.ContainsAny(key, `*?[\`) {
				s.globs = append(s.globs, glob{key, r})
				continue
			}
			m = s.names
		}
		m[key] = append(m[key], r)
	}
	return s, errors.Join(errs...)
}

// MustCompile is Compile for rules known to be valid; it panics otherwise.
// It is meant for tests and examples.
func MustCompile(rules []*ospreyv1.Rule) *RuleSet {
	s, err := Compile(rules)
	if err != nil {
		panic(err)
	}
	return s
}

// Len is the number of rules compiled.
func (s *RuleSet) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// ValidateRule reports whether Compile takes a rule: its value must pass
// pkg/validate's rule validation (the one the API applies before storing a
// rule) and have a matching form.
func ValidateRule(r *ospreyv1.Rule) error {
	_, err := normalize(r.GetKind(), r.GetValue())
	return err
}

// normalize returns the form of a rule value that matching compares with:
// the canonical value of pkg/validate, in the form the walk gives what it
// finds in a message.
func normalize(kind ospreyv1.RuleKind, v string) (string, error) {
	v, err := validate.CanonicalRuleValue(kind, strings.TrimSpace(v))
	if err != nil {
		return "", fmt.Errorf("value: %w", err)
	}
	switch kind {
	case ospreyv1.RuleKind_RULE_KIND_SHA256:
		return hexDigest(v, 32, "SHA-256")
	case ospreyv1.RuleKind_RULE_KIND_SHA1:
		return hexDigest(v, 20, "SHA-1")
	case ospreyv1.RuleKind_RULE_KIND_MD5:
		return hexDigest(v, 16, "MD5")
	case ospreyv1.RuleKind_RULE_KIND_SENDER:
		a := strings.ToLower(strings.Trim(v, "<>"))
		if i := strings.LastIndexByte(a, '@'); i <= 0 || i == len(a)-1 || strings.ContainsAny(a, " \t") {
			return "", fmt.Errorf("value: %q is not an address like user@example.com", v)
		}
		return a, nil
	case ospreyv1.RuleKind_RULE_KIND_SENDER_DOMAIN, ospreyv1.RuleKind_RULE_KIND_URL_HOST:
		h := walk.NormalizeHost(strings.TrimPrefix(strings.TrimPrefix(v, "*."), "."))
		if h == "" || strings.ContainsAny(h, "@/ \t:") {
			return "", fmt.Errorf("value: %q is not a domain like example.com", v)
		}
		return h, nil
	case ospreyv1.RuleKind_RULE_KIND_URL:
		u, ok := walk.NormalizeURL(v)
		if !ok {
			return "", fmt.Errorf("value: %q is not an http, https or ftp URL with a host", v)
		}
		return u, nil
	case ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_NAME:
		g := strings.ToLower(v)
		if _, err := path.Match(g, ""); err != nil {
			return "", fmt.Errorf("value: %q is not a valid glob: %w", v, err)
		}
		return g, nil
	case ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION:
		e := strings.ToLower(strings.TrimPrefix(v, "."))
		if e == "" || strings.ContainsAny(e, "/\\ \t") {
			return "", fmt.Errorf("value: %q is not an extension like exe", v)
		}
		return e, nil
	case ospreyv1.RuleKind_RULE_KIND_AUTH_RESULT:
		return v, nil
	}
	return "", fmt.Errorf("kind: %v is not a rule kind", kind)
}

func hexDigest(v string, size int, name string) (string, error) {
	v = strings.ToLower(v)
	b, err := hex.DecodeString(v)
	if err != nil || len(b) != size {
		return "", fmt.Errorf("value: %q is not a hex %s digest (%d hex digits)", v, name, 2*size)
	}
	return v, nil
}

// domainSuffixes calls f with host and each parent domain of it, most
// specific first, until f returns false.
func domainSuffixes(host string, f func(string) bool) {
	for host != "" {
		if !f(host) {
			return
		}
		i := strings.IndexByte(host, '.')
		if i < 0 {
			return
		}
		host = host[i+1:]
	}
}
