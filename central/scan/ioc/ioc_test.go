package ioc_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/central/scan/ioc"
	"github.com/ospreysec/osprey/central/scan/walk"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func r(id string, kind ospreyv1.RuleKind, value string) *ospreyv1.Rule {
	return &ospreyv1.Rule{Id: id, Kind: kind, Value: value}
}

func TestValidateRule(t *testing.T) {
	tests := []struct {
		kind  ospreyv1.RuleKind
		value string
		ok    bool
	}{
		{ospreyv1.RuleKind_RULE_KIND_SHA256, strings.Repeat("aB", 32), true},
		{ospreyv1.RuleKind_RULE_KIND_SHA256, strings.Repeat("a", 40), false},
		{ospreyv1.RuleKind_RULE_KIND_SHA1, strings.Repeat("0", 40), true},
		{ospreyv1.RuleKind_RULE_KIND_MD5, "xyz", false},
		{ospreyv1.RuleKind_RULE_KIND_SENDER, "a@example.com", true},
		{ospreyv1.RuleKind_RULE_KIND_SENDER, "example.com", false},
		{ospreyv1.RuleKind_RULE_KIND_SENDER_DOMAIN, "Example.COM.", true},
		{ospreyv1.RuleKind_RULE_KIND_SENDER_DOMAIN, "a@example.com", false},
		{ospreyv1.RuleKind_RULE_KIND_URL, "https://example.com/x", true},
		{ospreyv1.RuleKind_RULE_KIND_URL, "javascript:alert(1)", false},
		{ospreyv1.RuleKind_RULE_KIND_URL_HOST, "Example.com", true},
		{ospreyv1.RuleKind_RULE_KIND_URL_HOST, "*.example.com", false}, // a host covers its subdomains
		{ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_NAME, "*.pdf.exe", true},
		{ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_NAME, "[", false},
		{ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, ".EXE", true},
		{ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, "a/b", false},
		{ospreyv1.RuleKind_RULE_KIND_AUTH_RESULT, "DMARC=fail", true},
		{ospreyv1.RuleKind_RULE_KIND_AUTH_RESULT, "dmarc=bad", false},
		{ospreyv1.RuleKind_RULE_KIND_UNSPECIFIED, "x", false},
		{ospreyv1.RuleKind_RULE_KIND_SHA1, " ", false},
	}
	for _, tt := range tests {
		err := ioc.ValidateRule(r("x", tt.kind, tt.value))
		if (err == nil) != tt.ok {
			t.Errorf("ValidateRule(%v, %q): got %v, want ok=%v", tt.kind, tt.value, err, tt.ok)
		}
	}
}

func TestCompileKeepsValidRules(t *testing.T) {
	rs, err := ioc.Compile([]*ospreyv1.Rule{
		r("good", ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, "exe"),
		r("bad-1", ospreyv1.RuleKind_RULE_KIND_MD5, "nothex"),
		r("bad-2", ospreyv1.RuleKind_RULE_KIND_SENDER, "nobody"),
		{Id: "off", Kind: ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, Value: "js", Disabled: true},
		nil,
	})
	if err == nil || !strings.Contains(err.Error(), `"bad-1"`) || !strings.Contains(err.Error(), `"bad-2"`) {
		t.Errorf("error: got %v, want one naming bad-1 and bad-2", err)
	}
	if rs.Len() != 1 {
		t.Errorf("Len: got %d, want 1", rs.Len())
	}
	var nilSet *ioc.RuleSet
	if nilSet.Len() != 0 {
		t.Error("nil RuleSet has rules")
	}
}

func ids(ms []*ospreyv1.Match) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.GetRuleId())
	}
	slices.Sort(out)
	return out
}

func TestPartMatching(t *testing.T) {
	rs := ioc.MustCompile([]*ospreyv1.Rule{
		r("ext-gz", ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, "gz"),
		r("glob", ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_NAME, "backup-??.*"),
		r("exact", ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_NAME, "Backup-01.TAR.GZ"),
		r("sha", ospreyv1.RuleKind_RULE_KIND_SHA1, strings.Repeat("ab", 20)),
	})
	p := &walk.Part{Kind: walk.KindAttachment, Filename: "BACKUP-01.tar.gz", Names: []string{"BACKUP-01.tar.gz"}, SHA1: strings.Repeat("ab", 20)}
	ms, err := ioc.Engine{}.ScanPart(context.Background(), p, rs)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"exact", "ext-gz", "glob", "sha"}, ids(ms)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, m := range ms {
		if m.GetSeverity() != ospreyv1.Severity_SEVERITY_MEDIUM || m.GetEngine() != "ioc" || m.GetPart() != "attachment BACKUP-01.tar.gz" {
			t.Errorf("match %v: want engine ioc, default severity medium, part named", m)
		}
	}
	body := &walk.Part{Kind: walk.KindBody, Filename: "", SHA1: strings.Repeat("ab", 20)}
	if ms, _ := (ioc.Engine{}).ScanPart(context.Background(), body, rs); len(ms) != 0 {
		t.Errorf("bodies have no digests to match: got %v", ms)
	}
}

func TestMessageMatching(t *testing.T) {
	rs := ioc.MustCompile([]*ospreyv1.Rule{
		r("dom", ospreyv1.RuleKind_RULE_KIND_SENDER_DOMAIN, "example.net"),
		r("host", ospreyv1.RuleKind_RULE_KIND_URL_HOST, "bad.example"),
		r("url", ospreyv1.RuleKind_RULE_KIND_URL, "http://good.example/path"),
	})
	tests := []struct {
		name string
		from string
		env  string
		urls []string
		want []string
	}{
		{"subdomain sender", "a@mail.example.net", "", nil, []string{"dom"}},
		{"lookalike sender", "a@notexample.net", "", nil, nil},
		{"envelope sender", "", "<A@Example.NET>", nil, []string{"dom"}},
		{"both senders match once", "a@example.net", "b@example.net", nil, []string{"dom"}},
		{"url host", "", "", []string{"https://x.bad.example:8443/a"}, []string{"host"}},
		{"exact url only", "", "", []string{"http://good.example/path?q", "http://good.example/path"}, []string{"url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &walk.Message{From: tt.from, URLs: tt.urls}
			ms, err := ioc.Engine{}.ScanMessage(context.Background(), m, &ospreyv1.Envelope{MailFrom: tt.env}, rs)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ids(ms)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestAuthResultMatching(t *testing.T) {
	rs := ioc.MustCompile([]*ospreyv1.Rule{
		r("dmarc-fail", ospreyv1.RuleKind_RULE_KIND_AUTH_RESULT, "dmarc=fail"),
		r("spf-soft", ospreyv1.RuleKind_RULE_KIND_AUTH_RESULT, "SPF=softfail"),
		r("dkim-fail", ospreyv1.RuleKind_RULE_KIND_AUTH_RESULT, "dkim=fail"),
	})
	tests := []struct {
		name      string
		auth      *ospreyv1.AuthResults
		want      []string
		wantWhats []string
	}{
		{"not checked", nil, nil, nil},
		{"all pass", &ospreyv1.AuthResults{Spf: "pass", Dmarc: "pass", Dkim: []*ospreyv1.DkimResult{{Result: "pass"}}}, nil, nil},
		{
			"dmarc fail with policy", &ospreyv1.AuthResults{Spf: "softfail", SpfDomain: "example.net", Dmarc: "fail", DmarcPolicy: "reject", FromDomain: "example.org"},
			[]string{"dmarc-fail", "spf-soft"}, []string{"SPF softfail for example.net", "DMARC fail for example.org, policy reject"},
		},
		{
			"one failing signature of two matches once", &ospreyv1.AuthResults{Dkim: []*ospreyv1.DkimResult{{Result: "pass", Domain: "example.org"},
				{Result: "fail", Domain: "example.net", Selector: "s1"}, {Result: "fail", Domain: "example.com"}}},
			[]string{"dkim-fail"}, []string{"DKIM fail for example.net (selector s1)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := ioc.Engine{}.ScanMessage(t.Context(), &walk.Message{}, &ospreyv1.Envelope{Auth: tt.auth}, rs)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ids(ms)); diff != "" {
				t.Errorf("rules matched (-want +got):\n%s", diff)
			}
			var whats []string
			for _, m := range ms {
				whats = append(whats, m.GetWhat())
				if m.GetPart() != "sender authentication" {
					t.Errorf("part %q, want sender authentication", m.GetPart())
				}
			}
			if diff := cmp.Diff(tt.wantWhats, whats); diff != "" {
				t.Errorf("what the matches say (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStructure(t *testing.T) {
	tests := []struct {
		name      string
		filename  string
		detected  string
		inArchive bool
		want      []string
	}{
		{"plain pdf", "report.pdf", "application/pdf", false, nil},
		{"double extension", "Invoice.PDF.exe", "", false, []string{ioc.RuleDoubleExtension}},
		{"hidden by spaces", "photo.jpg      .scr", "", false, []string{ioc.RuleDoubleExtension}},
		{"version numbers are not decoys", "setup.1.2.exe", "", false, nil},
		{"executable by extension in archive", "run.js", "text/plain", true, []string{ioc.RuleExecutableInArchive}},
		{"executable by content in archive", "readme", walk.TypeWindowsExecutable, true, []string{ioc.RuleExecutableInArchive}},
		{"executable outside an archive", "tool.exe", walk.TypeWindowsExecutable, false, nil},
		{"right-to-left override", "invoice\u202efdp.exe", "", false, []string{ioc.RuleRightToLeftOverride}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &walk.Part{Kind: walk.KindAttachment, Filename: tt.filename, DetectedType: tt.detected, InArchive: tt.inArchive, Names: []string{tt.filename}}
			ms, err := ioc.Structure{}.ScanPart(context.Background(), p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ids(ms)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func BenchmarkScanPart(b *testing.B) {
	var rules []*ospreyv1.Rule
	for i := range 1000 {
		rules = append(rules, r("h", ospreyv1.RuleKind_RULE_KIND_SHA256, strings.Repeat("0", 60)+string(rune('a'+i%6))+"123"[:3]))
	}
	rs, _ := ioc.Compile(rules)
	p := &walk.Part{Kind: walk.KindAttachment, Filename: "a.pdf", SHA256: strings.Repeat("1", 64), Names: []string{"a.pdf"}}
	b.ReportAllocs()
	for b.Loop() {
		ioc.Engine{}.ScanPart(context.Background(), p, rs)
	}
}
