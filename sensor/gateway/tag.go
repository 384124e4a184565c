package gateway

import (
	"bytes"
	"mime"
	"strings"
	"unicode/utf8"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// tagMessage returns body with tag put before its subject (a Subject field
// made when it has none) and headers added at the top of its header
// section. Non-ASCII text is written as RFC 2047 encoded words; the rest
// of the message is untouched.
func tagMessage(body []byte, tag string, headers []*ospreyv1.HeaderField) []byte {
	var out bytes.Buffer
	out.Grow(len(body) + len(tag) + 64)
	for _, h := range headers {
		out.WriteString(h.GetName() + ": " + encodeText(h.GetValue()) + "\r\n")
	}
	if tag == "" {
		out.Write(body)
		return out.Bytes()
	}
	fields, rest := headerFields(body)
	tagged := false
	for _, f := range fields {
		if tagged || !named(f, "Subject") {
			out.Write(f)
			continue
		}
		value := f[len("Subject:"):]
		sep := " "
		if len(value) > 0 && (value[0] == ' ' || value[0] == '\t' || value[0] == '\r' || value[0] == '\n') {
			sep = ""
		}
		out.WriteString("Subject: " + encodeText(tag) + sep)
		out.Write(value)
		tagged = true
	}
	if !tagged {
		out.WriteString("Subject: " + encodeText(tag) + "\r\n")
	}
	out.Write(rest)
	return out.Bytes()
}

// encodeText returns s fit for a header field: as it is when it is
// printable ASCII, else as RFC 2047 encoded words.
func encodeText(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf || s[i] < ' ' && s[i] != '\t' {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// subjectOf returns the decoded Subject of a message, for people.
func subjectOf(body []byte) string {
	fields, _ := headerFields(body)
	var s string
	for _, f := range fields {
		if named(f, "Subject") {
			// Unfolded: the line ends go, the continuations' blanks stay.
			s = strings.TrimSpace(strings.NewReplacer("\r", "", "\n", "").Replace(string(f[len("Subject:"):])))
			break
		}
	}
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err == nil {
		s = d
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
