package scan_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/ospreysec/osprey/central/scan"
	"github.com/ospreysec/osprey/central/scan/ioc"
	"github.com/ospreysec/osprey/central/scan/scantest"
	"github.com/ospreysec/osprey/central/scan/walk"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	hdr      = scantest.Headers("Alice <alice@example.com>", "Bob <bob@example.org>", "Quarterly report")
	pdf      = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
	png      = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00")
	badFile  = []byte("a file our tenant knows is bad\n")
	badZipIn = []byte("a member our tenant knows by its md5\n")
)

func hexSHA256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func hexMD5(b []byte) string    { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

func rule(id string, kind ospreyv1.RuleKind, value string) *ospreyv1.Rule {
	return &ospreyv1.Rule{Id: id, Kind: kind, Value: value, Severity: ospreyv1.Severity_SEVERITY_HIGH}
}

func tenantRules(t testing.TB) *ioc.RuleSet {
	rules := []*ospreyv1.Rule{
		rule("url-1", ospreyv1.RuleKind_RULE_KIND_URL, "HTTP://Phish.Example.NET:80/login"),
		rule("host-1", ospreyv1.RuleKind_RULE_KIND_URL_HOST, "malware.example"),
		rule("sha-1", ospreyv1.RuleKind_RULE_KIND_SHA256, strings.ToUpper(hexSHA256(badFile))),
		rule("md5-1", ospreyv1.RuleKind_RULE_KIND_MD5, hexMD5(badZipIn)),
		rule("sender-1", ospreyv1.RuleKind_RULE_KIND_SENDER, "Boss@Spoofed.example"),
		rule("domain-1", ospreyv1.RuleKind_RULE_KIND_SENDER_DOMAIN, "evil.example"),
		rule("name-1", ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_NAME, "invoice_*.js"),
		rule("ext-1", ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, ".iso"),
		{Id: "off-1", Kind: ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, Value: "txt", Disabled: true},
	}
	rs, err := ioc.Compile(rules)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// nest wraps an entity in depth multipart/mixed levels.
func nestMultipart(depth int, inner string) string {
	e := inner
	for i := range depth {
		e = scantest.Multipart("mixed", fmt.Sprintf("n%d", i), e)
	}
	return e
}

// nestMessages wraps a message in depth message/rfc822 attachments.
func nestMessages(depth int, inner []byte) []byte {
	m := inner
	for i := range depth {
		m = scantest.Message(scantest.Headers("a@example.com", "b@example.com", fmt.Sprintf("level %d", i)),
			scantest.Multipart("mixed", fmt.Sprintf("m%d", i), scantest.Text("see attached"), scantest.Attached("fwd.eml", m)))
	}
	return m
}

type testCase struct {
	name    string
	msg     []byte
	env     *ospreyv1.Envelope
	verdict string
	// matches are "engine/rule_id @ part".
	matches []string
	limits  []string
	// notes are substrings expected among Result.Notes.
	notes []string
	// attachments are the expected attachment paths, when set.
	attachments []string
	urls        []string
}

func corpus() []testCase {
	eicarFile := scantest.EICAR()
	innerMsg := scantest.Message(scantest.Headers("carol@example.com", "dan@example.com", "inner"),
		scantest.Multipart("mixed", "inner-b", scantest.Text("inner body"),
			scantest.Attachment("inner.zip", "application/zip", scantest.Zip(scantest.File{Name: "eicar.txt", Data: eicarFile}))))
	return []testCase{
		{
			name:    "plain",
			msg:     scantest.Message(hdr, scantest.Text("Hello Bob,\r\nthe report is late.\r\n")),
			verdict: scan.VerdictClean,
		},
		{
			name: "multipart alternative with URLs",
			msg: scantest.Message(hdr, scantest.Multipart("alternative", "alt",
				scantest.Text("Read it at https://Docs.Example.COM:443/q?id=1#top, or http://example.org."),
				scantest.HTML(`<p><a href="HTTPS://docs.example.com/q?id=1">report</a><img src="http://img.example.net:8080/a.png"></p>`))),
			verdict: scan.VerdictClean,
			urls:    []string{"https://docs.example.com/q?id=1", "http://example.org/", "http://img.example.net:8080/a.png"},
		},
		{
			name: "multipart mixed with attachments",
			msg: scantest.Message(hdr, scantest.Multipart("mixed", "mix",
				scantest.Multipart("alternative", "alt", scantest.Text("see attached"), scantest.HTML("<p>see attached</p>")),
				scantest.Attachment("report.pdf", "application/pdf", pdf),
				scantest.Attachment("logo.png", "image/png", png))),
			verdict:     scan.VerdictClean,
			attachments: []string{"report.pdf", "logo.png"},
		},
		{
			name: "nested message",
			msg: scantest.Message(hdr, scantest.Multipart("mixed", "mix", scantest.Text("forwarding"),
				scantest.Attached("fwd.eml", scantest.Message(scantest.Headers("x@example.com", "y@example.com", "orig"),
					scantest.Multipart("mixed", "inner", scantest.Text("original"), scantest.Attachment("report.pdf", "application/pdf", pdf)))))),
			verdict:     scan.VerdictClean,
			attachments: []string{"fwd.eml", "fwd.eml/report.pdf"},
		},
		{
			name: "zip inside message inside zip, EICAR at the bottom",
			msg: scantest.Message(hdr, scantest.Multipart("mixed", "mix", scantest.Text("nested"),
				scantest.Attachment("outer.zip", "application/zip", scantest.Zip(scantest.File{Name: "mail/inner.eml", Data: innerMsg})))),
			verdict:     scan.VerdictDetected,
			matches:     []string{"eicar/EICAR-Test-File @ attachment outer.zip > mail/inner.eml > inner.zip > eicar.txt"},
			attachments: []string{"outer.zip", "outer.zip/mail/inner.eml", "outer.zip/mail/inner.eml/inner.zip", "outer.zip/mail/inner.eml/inner.zip/eicar.txt"},
		},
		{
			name: "EICAR attachment",
			msg: scantest.Message(hdr, scantest.Multipart("mixed", "mix", scantest.Text("test"),
				scantest.Attachment("eicar.txt", "text/plain", append(eicarFile, "\r\n"...)))),
			verdict: scan.VerdictDetected,
			matches: []string{"eicar/EICAR-Test-File @ attachment eicar.txt"},
		},
		{
			name:    "EICAR body",
			msg:     scantest.Message(hdr, scantest.Text(string(eicarFile)+"\r\n")),
			verdict: scan.VerdictDetected,
			matches: []string{"eicar/EICAR-Test-File @ text body"},
		},
		{
			name: "EICAR with more text is not the test file",
			msg: scantest.Message(hdr, scantest.Multipart("mixed", "mix",
				scantest.Attachment("notes.txt", "text/plain", append(eicarFile, " and more words"...)))),
			verdict: scan.VerdictClean,
		},
		{
			name: "EICAR in a zip",
			msg: scantest.Message(hdr, scantest.Multipart("mixed", "mix", scantest.Text("test"),
				scantest.Attachment("test.zip", "application/zip", scantest.Zip(scantest.File{Name: "docs/eicar.txt", Data: eicarFile})))),
			verdict: scan.VerdictDetected,
			matches: []string{"eicar/EICAR-Test-File @ attachment test.zip > docs/eicar.txt"},
		},
		{
			name: "URL indicator",
			msg: scantest.Message(hdr, scantest.Multipart("alternative", "alt", scantest.Text("log in"),
				scantest.HTML(`<a href="http://PHISH.example.net/login">log in</a>`))),
			verdict: scan.VerdictDetected,
			matches: []string{"ioc/url-1 @ body"},
		},
		{
			name:    "URL host indicator covers subdomains",
			msg:     scantest.Message(hdr, scantest.Text("get it from https://cdn.malware.example/x.exe now")),
			verdict: scan.VerdictDetected,
			matches: []string{"ioc/host-1 @ body"},
		},
		{
			name:    "URL host indicator is not a suffix match",
			msg:     scantest.Message(hdr, scantest.Text("get it from https://notmalware.example/x now")),
			verdict: scan.VerdictClean,
		},
		{
			name: "hash indicators",
			msg: scantest.Message(hdr, scantest.Multipart("mixed", "mix", scantest.Text("files"),
				scantest.Attachment("data.bin", "application/octet-stream", badFile),
				scantest.Attachment("pack.zip", "application/zip", scantest.Zip(scantest.File{Name: "in.dat", Data: badZipIn})))),
			verdict: scan.VerdictDetected,
			matches: []string{"ioc/sha-1 @ attachment data.bin", "ioc/md5-1 @ attachment pack.zip > in.dat"},
		},
		{
			name:    "sender indicator on the envelope",
			msg:     scantest.Message(hdr, scantest.Text("hi")),
			env:     &ospreyv1.Envelope{MailFrom: "boss@spoofed.example"},
			verdict: scan.VerdictDetected,
			matches: []string{"ioc/sender-1 @ envelope MAIL FROM"},
		},
		{
			name: "sender domain indicator on header From covers subdomains",
			msg: scantest.Message(scantest.Headers("Eve <eve@mail.EVIL.example>", "bob@example.org", "hello"),
				scantest.Text("hi")),
			env:     &ospreyv1.Envelope{MailFrom: "bounce@example.com"},
			verdict: scan.VerdictDetected,
			matches: []string{"ioc/domain-1 @ header From"},
		},
		{
			name: "attachment name and extension indicators",
			msg: scantest.Message(hdr, scantest.Multipart("mixed", "mix", scantest.Text("files"),
				scantest.Attachment("INVOICE_2026.JS", "application/javascript", []byte("var x;")),
				scantest.Attachment("disk.iso", "application/octet-stream", []byte("CD001")),
				scantest.Attachment("readme.txt", "text/plain", []byte("disabled rule")))),
			verdict: scan.VerdictDetected,
			matches: []string{"ioc/name-1 @ attachment INVOICE_2026.JS", "ioc/ext-1 @ attachment disk.iso"},
		},
		{
			name: "double extension and executable in archive",
			msg: scantest.Message(hdr, scantest.Multipart("mixed", "mix", scantest.Text("files"),
				scantest.Attachment("invoice.pdf.exe", "application/octet-stream", []byte("MZ\x90\x00")),
				scantest.Attachment("tools.zip", "application/zip", scantest.Zip(
					scantest.File{Name: "setup.bin", Data: []byte("MZ\x90\x00 a PE by its header")},
					scantest.File{Name: "run.bat", Data: []byte("echo")})))),
			verdict: scan.VerdictDetected,
			matches: []string{
				"structure/Double-Extension @ attachment invoice.pdf.exe",
				"structure/Executable-In-Archive @ attachment tools.zip > setup.bin",
				"structure/Executable-In-Archive @ attachment tools.zip > run.bat",
			},
		},
		{
			name: "malformed: boundary never used",
			msg: scantest.Message(hdr, "Content-Type: multipart/mixed; boundary=\"declared\"\r\n\r\n"+
				"--other\r\nContent-Type: text/plain\r\n\r\nvisit http://malware.example/ now\r\n--other--\r\n"),
			verdict: scan.VerdictDetected,
			matches: []string{"ioc/host-1 @ body"},
			notes:   []string{"multipart without delimiters"},
		},
		{
			name: "malformed: bad base64 still decoded",
			msg: scantest.Message(hdr, scantest.Multipart("mixed", "mix", scantest.Text("x"),
				"Content-Type: application/octet-stream; name=\"e.txt\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
					strings.Replace(scantest.Base64Lines(eicarFile), "\r\n", "!!\r\n", 1))),
			verdict: scan.VerdictDetected,
			matches: []string{"eicar/EICAR-Test-File @ attachment e.txt"},
			notes:   []string{"invalid characters in base64"},
		},
		{
			name: "malformed: broken header line",
			msg: []byte("From: alice@example.com\r\nThis line has no colon\r\nSubject: x\r\n\r\n" +
				"body with http://malware.example/p\r\n"),
			verdict: scan.VerdictDetected,
			matches: []string{"ioc/host-1 @ body"},
			notes:   []string{"malformed header"},
		},
		{
			name: "malformed: no close delimiter, LF line ends",
			msg: []byte(strings.ReplaceAll(string(scantest.Message(hdr,
				"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n"+
					scantest.Attachment("eicar.txt", "text/plain", eicarFile))), "\r\n", "\n")),
			verdict: scan.VerdictDetected,
			matches: []string{"eicar/EICAR-Test-File @ attachment eicar.txt"},
			notes:   []string{"without close delimiter"},
		},
		{
			name: "malformed: multipart without boundary, garbage Content-Type",
			msg: scantest.Message(hdr, "Content-Type: multipart/mixed;;; charset==\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"+
				"some text\r\n"),
			verdict: scan.VerdictClean,
			notes:   []string{"multipart without boundary"},
		},
		{
			name: "zip bomb (10 GiB from a few KB)",
			msg: scantest.Message(hdr, scantest.Multipart("mixed", "mix", scantest.Text("bomb"),
				scantest.Attachment("bomb.zip", "application/zip", scantest.ZipBomb(4, 10, 1<<20)))),
			verdict: scan.VerdictUnscannableLimit,
			limits:  []string{walk.LimitRatio},
		},
		{
			name:    "deep multipart nesting bomb",
			msg:     scantest.Message(hdr, nestMultipart(2000, scantest.Text("deep"))),
			verdict: scan.VerdictUnscannableLimit,
			limits:  []string{walk.LimitDepth},
		},
		{
			name:    "deep message nesting bomb",
			msg:     nestMessages(40, scantest.Message(hdr, scantest.Text("deep"))),
			verdict: scan.VerdictUnscannableLimit,
			limits:  []string{walk.LimitDepth},
		},
		{
			name: "detected wins over a limit",
			msg: scantest.Message(hdr, scantest.Multipart("mixed", "mix", scantest.Text("both"),
				scantest.Attachment("eicar.txt", "text/plain", eicarFile),
				scantest.Attachment("bomb.zip", "application/zip", scantest.ZipBomb(4, 10, 1<<20)))),
			verdict: scan.VerdictDetected,
			matches: []string{"eicar/EICAR-Test-File @ attachment eicar.txt"},
			limits:  []string{walk.LimitRatio},
		},
	}
}

func matchStrings(ms []*ospreyv1.Match) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.GetEngine()+"/"+m.GetRuleId()+" @ "+m.GetPart())
	}
	slices.Sort(out)
	return out
}

func TestCorpus(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := scan.New(scan.Options{Registerer: reg, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rules := tenantRules(t)
	for _, tt := range corpus() {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Scan(t.Context(), bytes.NewReader(tt.msg), tt.env, rules)
			if err != nil {
				t.Fatalf("Scan: %v", err)
			}
			if res.Verdict != tt.verdict {
				t.Errorf("verdict: got %q, want %q\nmatches %v\nlimits %v\nnotes %v", res.Verdict, tt.verdict, matchStrings(res.Matches), res.Limits, res.Notes)
			}
			want := slices.Clone(tt.matches)
			slices.Sort(want)
			if diff := cmp.Diff(want, matchStrings(res.Matches)); diff != "" {
				t.Errorf("matches (-want +got):\n%s", diff)
			}
			for _, l := range tt.limits {
				if !slices.Contains(res.Limits, l) {
					t.Errorf("limits: got %v, want %q among them", res.Limits, l)
				}
			}
			if len(tt.limits) == 0 && len(res.Limits) > 0 {
				t.Errorf("limits: got %v, want none", res.Limits)
			}
			for _, n := range tt.notes {
				if !slices.ContainsFunc(res.Notes, func(s string) bool { return strings.Contains(s, n) }) {
					t.Errorf("notes: got %q, want one containing %q", res.Notes, n)
				}
			}
			if tt.attachments != nil {
				var got []string
				for _, a := range res.Attachments {
					got = append(got, a.GetPath())
				}
				if diff := cmp.Diff(tt.attachments, got); diff != "" {
					t.Errorf("attachments (-want +got):\n%s", diff)
				}
			}
			if tt.urls != nil {
				if diff := cmp.Diff(tt.urls, res.URLs); diff != "" {
					t.Errorf("urls (-want +got):\n%s", diff)
				}
			}
			if res.Size != int64(len(tt.msg)) || res.SHA256 != hexSHA256(tt.msg) {
				t.Errorf("raw size/digest: got %d %s, want %d %s", res.Size, res.SHA256, len(tt.msg), hexSHA256(tt.msg))
			}
		})
	}
	if got := testutil.ToFloat64(prometheusCounter(t, reg, "osprey_scan_messages_total", scan.VerdictDetected)); got == 0 {
		t.Errorf("osprey_scan_messages_total{verdict=detected}: got 0")
	}
}

// prometheusCounter returns the counter of name with the given label value
// ("" for a counter without labels), as gathered from reg.
func prometheusCounter(t *testing.T, reg *prometheus.Registry, name, label string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == "" && len(m.GetLabel()) == 0
			for _, lp := range m.GetLabel() {
				match = match || lp.GetValue() == label
			}
			if match {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
				c.Add(m.GetCounter().GetValue())
				return c
			}
		}
	}
	t.Fatalf("metric %s{%q} not gathered", name, label)
	return nil
}

func TestHeaderSummary(t *testing.T) {
	msg := []byte("Received: from mx2.example.org by mx1.example.com;\r\n\tMon, 2 Mar 2026 10:00:02 +0000\r\n" +
		"Received: from client by mx2.example.org; Mon, 2 Mar 2026 10:00:01 +0000\r\n" +
		"Authentication-Results: mx1.example.com; spf=pass smtp.mailfrom=example.com\r\n" +
		"From: =?utf-8?q?J=C3=BCrgen?= <Juergen@Example.COM>\r\n" +
		"To: a@example.org, \"B, Bee\" <b@example.org>\r\n" +
		"Cc: c@example.org\r\n" +
		"Subject: =?iso-8859-1?q?R=E9sum=E9?=\r\n" +
		"Message-ID: <abc.123@example.com>\r\n" +
		"Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nhello\r\n")
	s, err := scan.New(scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Scan(t.Context(), bytes.NewReader(msg), nil, ioc.MustCompile([]*ospreyv1.Rule{
		rule("d", ospreyv1.RuleKind_RULE_KIND_SENDER, "juergen@example.com"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	h := res.Headers
	got := []string{h.GetFrom(), strings.Join(h.GetTo(), "|"), strings.Join(h.GetCc(), "|"), h.GetSubject(), h.GetMessageId(),
		h.GetDate().AsTime().UTC().Format(time.RFC3339), strings.Join(h.GetReceived(), "|"), strings.Join(h.GetAuthenticationResults(), "|")}
	want := []string{"Jürgen <Juergen@Example.COM>", "a@example.org|B, Bee <b@example.org>", "c@example.org", "Résumé", "abc.123@example.com",
		"2026-03-02T10:00:00Z",
		"from mx2.example.org by mx1.example.com; Mon, 2 Mar 2026 10:00:02 +0000|from client by mx2.example.org; Mon, 2 Mar 2026 10:00:01 +0000",
		"mx1.example.com; spf=pass smtp.mailfrom=example.com"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("header summary (-want +got):\n%s", diff)
	}
	if res.Verdict != scan.VerdictDetected {
		t.Errorf("sender rule on a header From with a display name: got %q, want detected", res.Verdict)
	}
}

func TestLimits(t *testing.T) {
	many := make([]string, 30)
	for i := range many {
		many[i] = scantest.Attachment(fmt.Sprintf("f%d.txt", i), "text/plain", []byte("x"))
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	tests := []struct {
		name   string
		limits walk.Limits
		msg    []byte
		limit  string
	}{
		{"parts", walk.Limits{MaxParts: 10}, scantest.Message(hdr, scantest.Multipart("mixed", "mix", many...)), walk.LimitParts},
		{"part bytes", walk.Limits{MaxPartBytes: 100 << 10}, scantest.Message(hdr, scantest.Multipart("mixed", "mix",
			scantest.Attachment("big.bin", "application/octet-stream", big))), walk.LimitPartBytes},
		{"member bytes", walk.Limits{MaxPartBytes: 100 << 10, MaxTotalBytes: 1 << 30}, scantest.Message(hdr, scantest.Multipart("mixed", "mix",
			scantest.Attachment("a.zip", "application/zip", scantest.Zip(scantest.File{Name: "big.bin", Data: big[:200<<10]})))), walk.LimitPartBytes},
		{"total bytes", walk.Limits{MaxTotalBytes: 1500 << 10}, scantest.Message(hdr, scantest.Multipart("mixed", "mix",
			scantest.Attachment("a.bin", "application/octet-stream", big), scantest.Attachment("b.bin", "application/octet-stream", big))), walk.LimitTotalBytes},
		{"header bytes", walk.Limits{MaxHeaderBytes: 1024}, scantest.Message("Subject: "+strings.Repeat("x", 4096)+"\r\n", scantest.Text("hi")), walk.LimitHeaderBytes},
		{"urls", walk.Limits{MaxURLs: 3}, scantest.Message(hdr, scantest.Text("http://a.example/ http://b.example/ http://c.example/ http://d.example/")), walk.LimitURLs},
		{"depth", walk.Limits{MaxDepth: 2}, scantest.Message(hdr, nestMultipart(3, scantest.Text("x"))), walk.LimitDepth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := scan.New(scan.Options{Limits: tt.limits, TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Scan(t.Context(), bytes.NewReader(tt.msg), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != scan.VerdictUnscannableLimit || !slices.Contains(res.Limits, tt.limit) {
				t.Errorf("got verdict %q limits %v, want %q with %q", res.Verdict, res.Limits, scan.VerdictUnscannableLimit, tt.limit)
			}
			if res.Size != int64(len(tt.msg)) {
				t.Errorf("the whole message is read for its digest: got size %d, want %d", res.Size, len(tt.msg))
			}
		})
	}
}

// TestZipBombMemory expands a 10 GiB zip bomb with the compression ratio
// check turned off, so only the byte bounds stop it, and checks that the
// heap stays small while hundreds of megabytes stream through.
func TestZipBombMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("expands 256 MiB")
	}
	bomb := scantest.ZipBomb(4, 10, 1<<20)
	if len(bomb) > 8<<10 {
		t.Fatalf("bomb is %d bytes, want a few KB", len(bomb))
	}
	msg := scantest.Message(hdr, scantest.Multipart("mixed", "mix", scantest.Text("bomb"),
		scantest.Attachment("bomb.zip", "application/zip", bomb)))
	const total = 256 << 20
	s, err := scan.New(scan.Options{
		Limits:  walk.Limits{MaxCompressionRatio: 1 << 30, MaxTotalBytes: total, MaxParts: 1 << 20},
		TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var peak atomic.Uint64
	ctx, stop := context.WithCancel(t.Context())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	res, err := s.Scan(t.Context(), bytes.NewReader(msg), nil, nil)
	stop()
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != scan.VerdictUnscannableLimit || !slices.Contains(res.Limits, walk.LimitTotalBytes) {
		t.Errorf("got verdict %q limits %v, want %q with %q", res.Verdict, res.Limits, scan.VerdictUnscannableLimit, walk.LimitTotalBytes)
	}
	const bound = 64 << 20
	t.Logf("expanded up to %d MiB; peak live heap %.1f MiB", total>>20, float64(peak.Load())/(1<<20))
	if p := peak.Load(); p > bound {
		t.Errorf("peak live heap %d MiB, want under %d MiB", p>>20, bound>>20)
	}
}

// errReader fails after n bytes.
type errReader struct {
	r   io.Reader
	n   int
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, e.err
	}
	if len(p) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= n
	return n, err
}

func TestScanErrors(t *testing.T) {
	s, err := scan.New(scan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg := scantest.Message(hdr, scantest.Multipart("mixed", "mix", scantest.Text("x"),
		scantest.Attachment("a.bin", "application/octet-stream", bytes.Repeat([]byte("a"), 100<<10))))
	t.Run("read error", func(t *testing.T) {
		boom := errors.New("connection reset")
		_, err := s.Scan(t.Context(), &errReader{r: bytes.NewReader(msg), n: 5000, err: boom}, nil, nil)
		if !errors.Is(err, boom) {
			t.Errorf("got %v, want %v", err, boom)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := s.Scan(ctx, bytes.NewReader(msg), nil, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
	t.Run("engine error", func(t *testing.T) {
		failing := scan.NewEngine("failing", func(context.Context, *walk.Part, *ioc.RuleSet) ([]*ospreyv1.Match, error) {
			return nil, errors.New("down")
		})
		s, err := scan.New(scan.Options{Engines: append(scan.DefaultEngines(), failing)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Scan(t.Context(), bytes.NewReader(msg), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Verdict != scan.VerdictUnscannableError || len(res.Errors) == 0 {
			t.Errorf("got %q %v, want %q with errors", res.Verdict, res.Errors, scan.VerdictUnscannableError)
		}
	})
	t.Run("engine panics", func(t *testing.T) {
		panicking := scan.NewEngine("panicking", func(context.Context, *walk.Part, *ioc.RuleSet) ([]*ospreyv1.Match, error) {
			panic("index out of range")
		})
		reg := prometheus.NewRegistry()
		s, err := scan.New(scan.Options{Engines: append(scan.DefaultEngines(), panicking), Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Scan(t.Context(), bytes.NewReader(msg), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Verdict != scan.VerdictUnscannableError || len(res.Errors) != 1 || !strings.Contains(res.Errors[0], "index out of range") {
			t.Errorf("got %q %v, want %q with the panic as its error", res.Verdict, res.Errors, scan.VerdictUnscannableError)
		}
		if got := testutil.ToFloat64(prometheusCounter(t, reg, "osprey_scan_panics_total", "")); got != 1 {
			t.Errorf("osprey_scan_panics_total = %v, want 1", got)
		}
		// The scanner goes on scanning.
		if _, err := s.Scan(t.Context(), bytes.NewReader(msg), nil, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		_, err := scan.New(scan.Options{Limits: walk.Limits{MaxDepth: -1, MaxParts: -2}, Engines: []scan.Engine{nil, ioc.Engine{}, ioc.Engine{}}})
		if err == nil {
			t.Fatal("got nil, want errors")
		}
		for _, want := range []string{"max_depth", "max_parts", "engines[0]", "engines[2]"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		}
	})
}
