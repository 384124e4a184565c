package gateway

import (
	"strings"
	"testing"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestTagMessage(t *testing.T) {
	tests := []struct{ name, in, tag, want string }{
		{"a subject", "Subject: hi\r\n\r\nbody", "[x]", "Subject: [x] hi\r\n\r\nbody"},
		{"folded", "Subject:\r\n hi\r\nTo: b\r\n\r\nbody", "[x]", "Subject: [x]\r\n hi\r\nTo: b\r\n\r\nbody"},
		{"none", "To: b\r\n\r\nbody", "[x]", "To: b\r\nSubject: [x]\r\n\r\nbody"},
		{"no body", "To: b\r\n", "[x]", "To: b\r\nSubject: [x]\r\n"},
		{"non-ASCII tag", "Subject: hi\r\n\r\n", "[Vorsicht ⚠]", "Subject: =?utf-8?q?[Vorsicht_=E2=9A=A0]?= hi\r\n\r\n"},
		{"only the first subject", "Subject: a\r\nSubject: b\r\n\r\n", "[x]", "Subject: [x] a\r\nSubject: b\r\n\r\n"},
		{"a subject in the body stays", "To: b\r\n\r\nSubject: no\r\n", "[x]", "To: b\r\nSubject: [x]\r\n\r\nSubject: no\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tagMessage([]byte(tt.in), tt.tag, nil)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzTagMessage: tagging changes the header section only, and the tag
// reads back as the subject's start.
func FuzzTagMessage(f *testing.F) {
	f.Add("Subject: a\r\n\r\nbody\r\n", "[x]")
	f.Add("Subject:\r\n\ta\r\n\r\n", "[ü]")
	f.Fuzz(func(t *testing.T, in, tag string) {
		if strings.ContainsAny(tag, "\r\n") || tag == "" {
			return
		}
		out := string(tagMessage([]byte(in), tag, []*ospreyv1.HeaderField{{Name: "X-T", Value: "v"}}))
		if i := strings.Index(in, "\r\n\r\n"); i >= 0 && !strings.HasSuffix(out, in[i+2:]) {
			t.Errorf("the body of %q changed: %q", in, out)
		}
		if !strings.HasPrefix(out, "X-T: v\r\n") {
			t.Errorf("no added header first: %q", out)
		}
	})
}

// FuzzPreview: any input gives a preview within its bounds, never a panic.
func FuzzPreview(f *testing.F) {
	f.Add("Subject: a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\ntext\r\n--b--\r\n")
	f.Add("Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		p := preview([]byte(in))
		if len(p.GetText()) > previewMaxText || len(p.GetHeaders()) > previewMaxHeaders || len(p.GetAttachments()) > previewMaxAttachments {
			t.Errorf("preview past its bounds: %d bytes of text, %d headers, %d attachments", len(p.GetText()), len(p.GetHeaders()), len(p.GetAttachments()))
		}
	})
}
