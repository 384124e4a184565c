package ui

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/central/auth"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestDisplayText(t *testing.T) {
	for _, c := range []struct {
		name, in, want string
	}{
		{"lines and tabs kept", "one\r\ntwo\n\tthree", "one\ntwo\n\tthree"},
		{"bidi override escaped", "pay\u202egnp.exe", `pay\u202egnp.exe`},
		{"bare CR escaped", "a\rb", `a\u000db`},
		{"invalid UTF-8 replaced", "a\xffb", "a\uFFFDb"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := displayText(c.in); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestPreviewShowsHTMLAsText: a preview's HTML part, header values and
// attachment names are text in the page, the HTML in a <pre> as its
// source; nothing of them becomes markup.
func TestPreviewShowsHTMLAsText(t *testing.T) {
	p := mustParsePages()
	d := quarantineMessageData{Held: true, Preview: newPreviewView(&ospreyv1.MessagePreview{
		Headers:     []*ospreyv1.HeaderField{{Name: "Subject", Value: `<script>alert("subject")</script>`}},
		Text:        "<p>Hello <b>Bob</b></p>\r\n<script>alert(1)</script>\r\n<img src=x onerror=alert(2)>",
		TextType:    "text/html",
		Attachments: []*ospreyv1.PreviewAttachment{{Filename: `<svg onload=alert(3)>.exe`, ContentType: "application/octet-stream", Size: 68, Sha256: "ab12"}},
	})}
	user := auth.Principal{Name: "alice", Role: ospreyv1.Role_ROLE_ADMIN, Tenants: []string{"default"}}
	var buf bytes.Buffer
	if err := p.byName["quarantinemsg"].ExecuteTemplate(&buf, "layout", page{User: &user, Data: d}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, markup := range []string{"<b>Bob", "<script>alert", "<img src=x", "<svg onload"} {
		if strings.Contains(out, markup) {
			t.Errorf("the page has %q as markup", markup)
		}
	}
	want := `<pre class="qm-text" id="qm-text">&lt;p&gt;Hello &lt;b&gt;Bob&lt;/b&gt;&lt;/p&gt;` + "\n" + `&lt;script&gt;alert(1)&lt;/script&gt;` + "\n" +
		`&lt;img src=x onerror=alert(2)&gt;</pre>`
	if !strings.Contains(out, want) {
		t.Errorf("the text part is not shown as its source in a <pre>:\n%s", out)
	}
	if !strings.Contains(out, "text/html, shown as its source") || !strings.Contains(out, "&lt;svg onload=alert(3)&gt;.exe") {
		t.Error("the page does not say the HTML is shown as its source, or lacks the attachment's name")
	}
}
