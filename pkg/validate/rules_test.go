package validate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func validRule() *ospreyv1.Rule {
	return &ospreyv1.Rule{
		Id:       "r1",
		Tenant:   "acme",
		Kind:     ospreyv1.RuleKind_RULE_KIND_SHA256,
		Value:    strings.Repeat("ab", 32),
		Severity: ospreyv1.Severity_SEVERITY_HIGH,
	}
}

func TestRule(t *testing.T) {
	tests := []struct {
		name       string
		edit       func(r *ospreyv1.Rule)
		wantFields []string
		wantText   string
	}{
		{name: "valid", edit: func(r *ospreyv1.Rule) {}},
		{name: "no id", edit: func(r *ospreyv1.Rule) { r.Id, r.Tenant = "", "" }},
		{name: "bad id", edit: func(r *ospreyv1.Rule) { r.Id = "R/1" }, wantFields: []string{"id"}},
		{name: "bad tenant", edit: func(r *ospreyv1.Rule) { r.Tenant = "Acme" }, wantFields: []string{"tenant"}},
		{name: "no kind", edit: func(r *ospreyv1.Rule) { r.Kind = 0 }, wantFields: []string{"kind"}, wantText: "required"},
		{name: "unknown kind", edit: func(r *ospreyv1.Rule) { r.Kind = 42 }, wantFields: []string{"kind"}},
		{name: "no severity", edit: func(r *ospreyv1.Rule) { r.Severity = 0 }, wantFields: []string{"severity"}},
		{name: "unknown severity", edit: func(r *ospreyv1.Rule) { r.Severity = 9 }, wantFields: []string{"severity"}},
		{name: "no value", edit: func(r *ospreyv1.Rule) { r.Value = "" }, wantFields: []string{"value"}, wantText: "required"},
		{name: "description", edit: func(r *ospreyv1.Rule) { r.Description = "Emotet dropper, seen 2026-01" }},
		{name: "description too long", edit: func(r *ospreyv1.Rule) { r.Description = strings.Repeat("x", 513) }, wantFields: []string{"description"}},
		{name: "description control", edit: func(r *ospreyv1.Rule) { r.Description = "a\nb" }, wantFields: []string{"description"}},
		{name: "sha1 length", edit: func(r *ospreyv1.Rule) { r.Kind = ospreyv1.RuleKind_RULE_KIND_SHA1 }, wantFields: []string{"value"}, wantText: "40 hexadecimal"},
		{name: "everything at once", edit: func(r *ospreyv1.Rule) { *r = ospreyv1.Rule{Id: "-", Description: "\x00"} },
			wantFields: []string{"id", "kind", "severity", "description"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRule()
			tt.edit(r)
			before := proto.Clone(r)
			err := Rule(r)
			if diff := cmp.Diff(tt.wantFields, fields(t, err)); diff != "" {
				t.Fatalf("Rule() = %v, fields mismatch (-want +got):\n%s", err, diff)
			}
			if tt.wantText != "" {
				if es, _ := AsErrors(err); !strings.Contains(es[0].Message, tt.wantText) {
					t.Errorf("message %q, want it to contain %q", es[0].Message, tt.wantText)
				}
			}
			if !proto.Equal(before, r) {
				t.Error("Rule modified its argument")
			}
		})
	}
}

func TestCanonicalRuleValue(t *testing.T) {
	const (
		sha256 = ospreyv1.RuleKind_RULE_KIND_SHA256
		sha1   = ospreyv1.RuleKind_RULE_KIND_SHA1
		md5    = ospreyv1.RuleKind_RULE_KIND_MD5
		sender = ospreyv1.RuleKind_RULE_KIND_SENDER
		domain = ospreyv1.RuleKind_RULE_KIND_SENDER_DOMAIN
		urlK   = ospreyv1.RuleKind_RULE_KIND_URL
		host   = ospreyv1.RuleKind_RULE_KIND_URL_HOST
		name   = ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_NAME
		ext    = ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION
		auth   = ospreyv1.RuleKind_RULE_KIND_AUTH_RESULT
	)
	tests := []struct {
		name    string
		kind    ospreyv1.RuleKind
		in      string
		want    string // "" means an error
		wantErr string
	}{
		{"sha256", sha256, strings.Repeat("AB", 32), strings.Repeat("ab", 32), ""},
		{"sha256 short", sha256, strings.Repeat("ab", 31), "", "64 hexadecimal"},
		{"sha256 not hex", sha256, strings.Repeat("zz", 32), "", "64 hexadecimal"},
		{"sha1", sha1, strings.Repeat("0F", 20), strings.Repeat("0f", 20), ""},
		{"md5", md5, "D41D8CD98F00B204E9800998ECF8427E", "d41d8cd98f00b204e9800998ecf8427e", ""},
		{"md5 is not sha1", md5, strings.Repeat("0f", 20), "", "32 hexadecimal"},
		{"leading space", md5, " d41d8cd98f00b204e9800998ecf8427e", "", "spaces"},

		{"auth result", auth, "DMARC=Fail", "dmarc=fail", ""},
		{"auth result spaced", auth, "spf = softfail", "spf=softfail", ""},
		{"auth result dkim", auth, "dkim=permerror", "dkim=permerror", ""},
		{"auth result no result", auth, "dmarc", "", "method=result"},
		{"auth result unknown method", auth, "arc=fail", "", "spf, dkim or dmarc"},
		{"auth result unknown result", auth, "spf=hardfail", "", "must be pass"},

		{"sender", sender, "Billing@Evil.Example.", "billing@evil.example", ""},
		{"sender idna", sender, "info@bücher.de", "info@xn--bcher-kva.de", ""},
		{"sender display name", sender, "Bob <bob@example.com>", "", "bare address"},
		{"sender no at", sender, "example.com", "", "sender_domain"},
		{"sender empty local", sender, "@example.com", "", "local part"},
		{"sender two ats", sender, "a@b@example.com", "", "more than one"},
		{"sender bad domain", sender, "a@localhost", "", "domain"},

		{"domain", domain, "Evil.Example.", "evil.example", ""},
		{"domain wildcard", domain, "*.evil.example", "", "wildcard"},
		{"domain exclusion", domain, "!evil.example", "", "exclusions"},
		{"domain ip", domain, "192.0.2.1", "", "IP"},

		{"url", urlK, "HTTPS://Evil.Example:443/Login?a=B", "https://evil.example/Login?a=B", ""},
		{"url port kept", urlK, "http://evil.example:8080/x", "http://evil.example:8080/x", ""},
		{"url http default port", urlK, "http://evil.example:80", "http://evil.example", ""},
		{"url ftp", urlK, "ftp://files.evil.example/a.exe", "ftp://files.evil.example/a.exe", ""},
		{"url ipv6", urlK, "http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x", ""},
		{"url relative", urlK, "/login", "", "absolute"},
		{"url scheme", urlK, "javascript:alert(1)", "", "absolute"},
		{"url mailto", urlK, "mailto:a@example.com", "", "absolute"},
		{"url no host", urlK, "http:///x", "", "host"},
		{"url bad host", urlK, "http://exa mple.com/", "", "URL"},
		{"url bad port", urlK, "http://evil.example:99999/", "", "port"},

		{"host", host, "Login.Evil.Example", "login.evil.example", ""},
		{"host ipv4", host, "192.0.2.1", "192.0.2.1", ""},
		{"host ipv6", host, "2001:DB8::1", "2001:db8::1", ""},
		{"host with port", host, "evil.example:8080", "", "without scheme"},
		{"host url", host, "http://evil.example/", "", "without scheme"},

		{"name", name, "Invoice*.PDF.exe", "invoice*.pdf.exe", ""},
		{"name class", name, "[a-c]?.js", "[a-c]?.js", ""},
		{"name bad glob", name, "[a-", "", "glob"},
		{"name slash", name, "dir/*.exe", "", "'/'"},

		{"extension", ext, "EXE", "exe", ""},
		{"extension dot", ext, ".js", "js", ""},
		{"extension double", ext, "pdf.exe", "", "letters and digits"},
		{"extension long", ext, strings.Repeat("a", 17), "", "letters and digits"},

		{"too long", urlK, "https://evil.example/" + strings.Repeat("a", MaxRuleValueBytes), "", "2048"},
		{"control", urlK, "https://evil.example/\x01", "", "control"},
		{"not utf-8", name, "\xff.exe", "", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalRuleValue(tt.kind, tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("CanonicalRuleValue(%q) = %q, want an error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("CanonicalRuleValue(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("CanonicalRuleValue(%q) = %q, want %q", tt.in, got, tt.want)
			}
			// The canonical form is a fixed point.
			if again, err := CanonicalRuleValue(tt.kind, got); err != nil || again != got {
				t.Errorf("CanonicalRuleValue(%q) = %q, %v; want it unchanged", got, again, err)
			}
		})
	}
}
