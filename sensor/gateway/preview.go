package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode the usual charsets, not only UTF-8 and US-ASCII

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Bounds of a preview: it travels to the central as one reply.
const (
	previewMaxHeaders     = 100
	previewMaxHeaderValue = 1000
	previewMaxText        = 64 << 10
	previewMaxAttachments = 100
	previewMaxDepth       = 10
)

// preview reads what an operator may see of a message without opening
// it: its header fields (decoded), its first text part (text/plain
// before text/html; HTML as its source, for the central to show escaped,
// never rendered), and the name, type, size and SHA-256 of each
// attachment. Malformed MIME is read as far as it goes and noted.
func preview(body []byte) *ospreyv1.MessagePreview {
	p := &ospreyv1.MessagePreview{}
	e, err := message.Read(bytes.NewReader(body))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		p.Notes = append(p.Notes, "unreadable message: "+err.Error())
		if e == nil {
			return p
		}
	}
	fields := e.Header.Fields()
	for fields.Next() {
		if len(p.Headers) == previewMaxHeaders {
			p.Notes = append(p.Notes, fmt.Sprintf("more than %d header fields: the rest left out", previewMaxHeaders))
			break
		}
		v, err := fields.Text()
		if err != nil {
			v = fields.Value()
		}
		p.Headers = append(p.Headers, &ospreyv1.HeaderField{Name: fields.Key(), Value: clip(v, previewMaxHeaderValue)})
	}
	var html *ospreyv1.MessagePreview // the first text/html part, if no text/plain comes
	walkParts(e, 0, p, &html)
	if p.Text == "" && html != nil {
		p.Text, p.TextType, p.TextTruncated = html.Text, html.TextType, html.TextTruncated
	}
	return p
}

// walkParts visits the parts of e, depth first, filling p.
func walkParts(e *message.Entity, depth int, p *ospreyv1.MessagePreview, html **ospreyv1.MessagePreview) {
	if depth > previewMaxDepth {
		p.Notes = append(p.Notes, fmt.Sprintf("parts nested deeper than %d: left out", previewMaxDepth))
		return
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				p.Notes = append(p.Notes, "malformed multipart: "+err.Error())
				return
			}
			walkParts(part, depth+1, p, html)
		}
	}
	ctype, params, _ := e.Header.ContentType()
	disp, dparams, _ := e.Header.ContentDisposition()
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	if d, err := new(mime.WordDecoder).DecodeHeader(name); err == nil {
		name = d
	}
	isText := strings.HasPrefix(ctype, "text/") || ctype == ""
	if disp != "attachment" && name == "" && isText {
		if ctype == "" {
			ctype = "text/plain"
		}
		switch {
		case ctype == "text/plain" && p.Text == "":
			p.Text, p.TextTruncated = readText(e.Body)
			p.TextType = ctype
		case ctype == "text/html" && *html == nil:
			text, cut := readText(e.Body)
			*html = &ospreyv1.MessagePreview{Text: text, TextType: ctype, TextTruncated: cut}
		}
		return
	}
	if len(p.Attachments) == previewMaxAttachments {
		p.Notes = append(p.Notes, fmt.Sprintf("more than %d attachments: the rest left out", previewMaxAttachments))
		return
	}
	h := sha256.New()
	n, err := io.Copy(h, e.Body)
	if err != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("attachment %q: %v", name, err))
	}
	p.Attachments = append(p.Attachments, &ospreyv1.PreviewAttachment{
		Filename: clip(name, previewMaxHeaderValue), ContentType: ctype, Size: n, Sha256: hex.EncodeToString(h.Sum(nil)),
	})
}

// readText reads a text part, up to previewMaxText bytes, as valid UTF-8.
func readText(r io.Reader) (string, bool) {
	b, _ := io.ReadAll(io.LimitReader(r, previewMaxText+1))
	cut := len(b) > previewMaxText
	if cut {
		b = b[:previewMaxText]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), cut
}

// clip bounds s to n bytes of valid UTF-8.
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
