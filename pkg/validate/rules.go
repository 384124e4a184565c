package validate

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ospreysec/osprey/pkg/domainlist"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Bounds of a scan rule.
const (
	// MaxRuleValueBytes bounds a rule's value (a URL is the longest kind).
	MaxRuleValueBytes = 2048
	// MaxRuleDescriptionBytes bounds a rule's description.
	MaxRuleDescriptionBytes = 512
	// maxAttachmentNameBytes bounds an attachment-name glob: file names are
	// at most 255 bytes on every common file system.
	maxAttachmentNameBytes = 255
)

var extension = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// Rule validates a scan rule (an indicator of compromise): id and tenant,
// when set, identifiers; kind and severity required and known; value
// required and well-formed for its kind (see [CanonicalRuleValue]);
// description at most 512 bytes without control characters.
//
// Values are checked in any case; the store keeps the canonical form that
// CanonicalRuleValue returns, so that an engine compares like with like.
func Rule(rule *ospreyv1.Rule) error {
	var r report
	if id := rule.GetId(); id != "" && !identifier.MatchString(id) {
		r.add("id", identifierRule)
	}
	if tenant := rule.GetTenant(); tenant != "" && !identifier.MatchString(tenant) {
		r.add("tenant", identifierRule)
	} else if tenant != "" && rule.GetGlobal() {
		r.add("tenant", "must be empty for a global rule, which applies to every tenant")
	}
	origin(&r, rule.GetOrigin())
	kind := rule.GetKind()
	switch {
	case kind == ospreyv1.RuleKind_RULE_KIND_UNSPECIFIED:
		r.add("kind", "required: %s", ruleKindChoices)
	case !knownRuleKind(kind):
		r.add("kind", "must be one of %s", ruleKindChoices)
	default:
		if _, err := CanonicalRuleValue(kind, rule.GetValue()); err != nil {
			r.add("value", "%v", err)
		}
	}
	switch sev := rule.GetSeverity(); {
	case sev == ospreyv1.Severity_SEVERITY_UNSPECIFIED:
		r.add("severity", "required: low, medium, high or critical")
	case !KnownSeverity(sev):
		r.add("severity", "must be low, medium, high or critical")
	}
	r.text("description", rule.GetDescription(), MaxRuleDescriptionBytes)
	verdictAction(&r, "action", rule.GetAction())
	if c := rule.GetCreatedAt(); c != nil && c.CheckValid() != nil {
		r.add("created_at", "not a valid time")
	}
	return r.err()
}

const ruleKindChoices = "sha256, sha1, md5, sender, sender_domain, url, url_host, attachment_name, attachment_extension or auth_result"

func knownRuleKind(k ospreyv1.RuleKind) bool {
	return k > ospreyv1.RuleKind_RULE_KIND_UNSPECIFIED && k <= ospreyv1.RuleKind_RULE_KIND_AUTH_RESULT
}

// KnownSeverity reports whether s is one of the four severities (not
// unspecified, not a value from a newer model).
func KnownSeverity(s ospreyv1.Severity) bool {
	return s >= ospreyv1.Severity_SEVERITY_LOW && s <= ospreyv1.Severity_SEVERITY_CRITICAL
}

// CanonicalRuleValue checks a rule's value for its kind and returns the
// form it is stored and compared in, or an error that says what is wrong
// (without the field name). Scan engines normalise what they find in a
// message with the same function, so that a rule matches whatever the case
// or spelling of either side:
//
//   - sha256, sha1, md5: 64, 40 or 32 hexadecimal digits, lower-cased;
//   - sender: one address local@domain (no display name, no angle
//     brackets), lower-cased, the domain as IDNA A-labels;
//   - sender_domain: a domain name as in destination domains (covers its
//     subdomains), IDNA A-labels in lower case, no trailing dot;
//   - url: an absolute http, https or ftp URL with a host; scheme and host
//     lower-cased, the default port dropped, the rest kept as written;
//   - url_host: a host name (covers its subdomains) as for sender_domain,
//     or an IP address in its canonical form;
//   - attachment_name: a glob in path.Match syntax, lower-cased (names are
//     compared case-insensitively), at most 255 bytes, no '/';
//   - attachment_extension: 1 to 16 letters and digits, without the dot
//     (a leading dot is dropped), lower-cased;
//   - auth_result: method=result, method spf, dkim or dmarc, result one of
//     AuthResultValues, lower-cased ("dmarc=fail").
//
// Every value is at most 2048 bytes of UTF-8 without control characters or
// leading or trailing spaces.
func CanonicalRuleValue(kind ospreyv1.RuleKind, v string) (string, error) {
	switch {
	case v == "":
		return "", errors.New("required")
	case !utf8.ValidString(v):
		return "", errors.New("must be valid UTF-8")
	case strings.ContainsFunc(v, unicode.IsControl):
		return "", errors.New("must not contain control characters")
	case len(v) > MaxRuleValueBytes:
		return "", fmt.Errorf("must be at most %d bytes long", MaxRuleValueBytes)
	case strings.TrimSpace(v) != v:
		return "", errors.New("must not start or end with spaces")
	}
	switch kind {
	case ospreyv1.RuleKind_RULE_KIND_SHA256:
		return hexDigest(v, 64, "SHA-256")
	case ospreyv1.RuleKind_RULE_KIND_SHA1:
		return hexDigest(v, 40, "SHA-1")
	case ospreyv1.RuleKind_RULE_KIND_MD5:
		return hexDigest(v, 32, "MD5")
	case ospreyv1.RuleKind_RULE_KIND_SENDER:
		return senderAddress(v)
	case ospreyv1.RuleKind_RULE_KIND_SENDER_DOMAIN:
		return ruleDomain(v)
	case ospreyv1.RuleKind_RULE_KIND_URL:
		return ruleURL(v)
	case ospreyv1.RuleKind_RULE_KIND_URL_HOST:
		return urlHost(v)
	case ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_NAME:
		return attachmentGlob(v)
	case ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION:
		ext := strings.ToLower(strings.TrimPrefix(v, "."))
		if !extension.MatchString(ext) {
			return "", errors.New("must be 1 to 16 letters and digits, such as exe")
		}
		return ext, nil
	case ospreyv1.RuleKind_RULE_KIND_AUTH_RESULT:
		return authResult(v)
	}
	return "", fmt.Errorf("unknown rule kind %d", kind)
}

// AuthResultMethods and AuthResultValues are what an auth_result rule
// names: the methods of a gateway's sender authentication, and their
// results as RFC 8601 names them.
var (
	AuthResultMethods = []string{"spf", "dkim", "dmarc"}
	AuthResultValues  = []string{"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"}
)

func authResult(v string) (string, error) {
	method, result, ok := strings.Cut(strings.ToLower(strings.ReplaceAll(v, " ", "")), "=")
	switch {
	case !ok:
		return "", errors.New("must be method=result, such as dmarc=fail")
	case !slices.Contains(AuthResultMethods, method):
		return "", fmt.Errorf("method %q: must be spf, dkim or dmarc", method)
	case !slices.Contains(AuthResultValues, result):
		return "", fmt.Errorf("result %q: must be pass, fail, softfail, neutral, none, temperror or permerror", result)
	}
	return method + "=" + result, nil
}

func hexDigest(v string, n int, name string) (string, error) {
	if len(v) != n || strings.Trim(v, "0123456789abcdefABCDEF") != "" {
		return "", fmt.Errorf("must be a %s digest: %d hexadecimal digits", name, n)
	}
	return strings.ToLower(v), nil
}

func senderAddress(v string) (string, error) {
	if strings.ContainsAny(v, "<>\" ,;") {
		return "", errors.New("must be a bare address such as user@example.com, without a name, quotes or angle brackets")
	}
	at := strings.LastIndexByte(v, '@')
	if at < 0 {
		return "", errors.New("must be an address such as user@example.com; for a whole domain use the kind sender_domain")
	}
	local, domain := v[:at], v[at+1:]
	switch {
	case local == "":
		return "", errors.New("the local part before '@' is empty")
	case len(local) > 64:
		return "", errors.New("the local part before '@' is longer than 64 bytes")
	case strings.Contains(local, "@"):
		return "", errors.New("more than one '@'")
	}
	d, err := domainlist.Normalize(domain)
	if err != nil {
		return "", fmt.Errorf("domain: %v", err)
	}
	return strings.ToLower(local) + "@" + d, nil
}

func ruleDomain(v string) (string, error) {
	if strings.HasPrefix(v, "!") {
		return "", errors.New("exclusions ('!') are not rules: delete or disable the rule instead")
	}
	d, err := domainlist.Normalize(v)
	if err != nil {
		return "", err
	}
	return d, nil
}

func urlHost(v string) (string, error) {
	if a, err := netip.ParseAddr(strings.Trim(v, "[]")); err == nil && a.Zone() == "" {
		return a.Unmap().String(), nil
	}
	if strings.Contains(v, "/") || strings.Count(v, ":") == 1 {
		return "", errors.New("must be a host name or an IP address, without scheme, port or path")
	}
	return ruleDomain(v)
}

// defaultPorts are the ports a URL rule drops, per scheme.
var defaultPorts = map[string]string{"http": "80", "https": "443", "ftp": "21"}

func ruleURL(v string) (string, error) {
	u, err := url.Parse(v)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("not a URL: %v", err)
	}
	scheme := strings.ToLower(u.Scheme)
	if _, ok := defaultPorts[scheme]; !ok || u.Opaque != "" {
		return "", errors.New("must be an absolute http, https or ftp URL, such as https://example.com/path")
	}
	host := u.Hostname()
	if host == "" {
		return "", errors.New("must have a host")
	}
	if _, err := urlHost(host); err != nil {
		return "", fmt.Errorf("host: %v", err)
	}
	u.Scheme = scheme
	port := u.Port()
	if port == defaultPorts[scheme] {
		port = ""
	}
	h := strings.ToLower(host)
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if port != "" {
		if !validPort(port) {
			return "", errors.New("port must be a number from 1 to 65535")
		}
		h += ":" + port
	}
	u.Host = h
	return u.String(), nil
}

func attachmentGlob(v string) (string, error) {
	switch {
	case len(v) > maxAttachmentNameBytes:
		return "", fmt.Errorf("must be at most %d bytes long", maxAttachmentNameBytes)
	case strings.Contains(v, "/"):
		return "", errors.New("must not contain '/': the glob matches file names, not paths")
	}
	if _, err := path.Match(v, ""); err != nil {
		return "", errors.New("not a valid glob: use *, ?, [abc] and [a-z], with '\\' to escape")
	}
	return strings.ToLower(v), nil
}
