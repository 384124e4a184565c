package walk

import (
	"bufio"
	"io"
	"mime"
	"net/mail"
	"strings"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	gomail "github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Bounds of what a header summary keeps.
const (
	maxSummaryValues = 100
	maxSummaryValue  = 4096
)

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// headerLimiter bounds the header block: it passes at most n bytes until
// lifted, then everything.
type headerLimiter struct {
	r       io.Reader
	n       int
	lifted  bool
	tripped bool
}

func (l *headerLimiter) Read(p []byte) (int, error) {
	if l.lifted {
		return l.r.Read(p)
	}
	if l.n <= 0 {
		l.tripped = true
		return 0, errHeaderTooBig
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}

type headerError string

func (e headerError) Error() string { return string(e) }

const errHeaderTooBig = headerError("header block too big")

// readHeader reads a header block through a bounded buffered reader and
// returns the header and the reader of the body that follows. A malformed
// header keeps the fields read before the fault, and the body is what
// follows it.
func (w *walker) readHeader(r io.Reader) (textproto.Header, *bufio.Reader, *headerLimiter, error) {
	hl := &headerLimiter{r: r, n: w.lim.MaxHeaderBytes}
	br := bufio.NewReaderSize(hl, 4096)
	h, err := textproto.ReadHeader(br)
	hl.lifted = true
	return h, br, hl, err
}

// summarize builds the header summary of the top-level message.
func summarize(h textproto.Header) (*ospreyv1.HeaderSummary, string, []string) {
	mh := gomail.Header{Header: message.Header{Header: h}}
	var notes []string
	s := &ospreyv1.HeaderSummary{}
	var fromAddr string
	if from, addrs := addressList(&mh, "From"); len(addrs) > 0 {
		s.From = addrs[0]
		fromAddr = from
	} else if v := h.Get("From"); v != "" {
		s.From = clip(decodeText(v))
		if a := looseAddress(v); a != "" {
			fromAddr = a
		}
		notes = append(notes, "malformed From header")
	}
	_, s.To = addressList(&mh, "To")
	_, s.Cc = addressList(&mh, "Cc")
	s.Subject = clip(decodeText(h.Get("Subject")))
	if id, err := mh.MessageID(); err == nil && id != "" {
		s.MessageId = clip(id)
	} else {
		s.MessageId = clip(strings.Trim(strings.TrimSpace(h.Get("Message-Id")), "<>"))
	}
	if v := h.Get("Date"); v != "" {
		if t, err := mail.ParseDate(v); err == nil {
			s.Date = timestamppb.New(t)
		} else {
			notes = append(notes, "malformed Date header")
		}
	}
	s.Received = unfoldAll(h.Values("Received"))
	s.AuthenticationResults = unfoldAll(h.Values("Authentication-Results"))
	return s, fromAddr, notes
}

// addressList returns the first address (lower-case, bare) and every address
// formatted for people ("Name <addr>"). A list that does not parse is kept
// as its decoded text.
func addressList(h *gomail.Header, key string) (first string, formatted []string) {
	v := h.Get(key)
	if v == "" {
		return "", nil
	}
	addrs, err := h.AddressList(key)
	if err != nil || len(addrs) == 0 {
		return "", []string{clip(decodeText(v))}
	}
	for i, a := range addrs {
		if i == maxSummaryValues {
			break
		}
		f := a.Address
		if a.Name != "" {
			f = a.Name + " <" + a.Address + ">"
		}
		formatted = append(formatted, clip(f))
	}
	return strings.ToLower(addrs[0].Address), formatted
}

// looseAddress finds an address in a header that does not parse: the text
// between the last angle brackets, or the first word with an @.
func looseAddress(v string) string {
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			if a := strings.TrimSpace(v[i+1 : i+j]); strings.Contains(a, "@") {
				return strings.ToLower(a)
			}
		}
	}
	for _, f := range strings.Fields(v) {
		if strings.Contains(f, "@") {
			return strings.ToLower(strings.Trim(f, "<>\"',;()"))
		}
	}
	return ""
}

func decodeText(v string) string {
	d, err := wordDecoder.DecodeHeader(v)
	if err != nil {
		d = v
	}
	return strings.ToValidUTF8(unfold(d), "\uFFFD")
}

func unfoldAll(vs []string) []string {
	var out []string
	for i, v := range vs {
		if i == maxSummaryValues {
			break
		}
		out = append(out, clip(unfold(v)))
	}
	return out
}

// unfold joins folded lines and collapses runs of white space.
func unfold(v string) string { return strings.Join(strings.Fields(v), " ") }

func clip(v string) string {
	if len(v) <= maxSummaryValue {
		return v
	}
	v = v[:maxSummaryValue]
	return strings.ToValidUTF8(v, "")
}

// contentType parses Content-Type leniently: a header that mime rejects
// keeps its media type, and its boundary if one can be seen.
func contentType(h *textproto.Header) (mediaType string, params map[string]string, bad bool) {
	v := h.Get("Content-Type")
	if strings.TrimSpace(v) == "" {
		return "text/plain", map[string]string{}, false
	}
	mh := message.Header{Header: *h}
	t, p, err := mh.ContentType()
	if err == nil && t != "" {
		return strings.ToLower(t), p, false
	}
	t, _, _ = strings.Cut(v, ";")
	t = strings.ToLower(strings.TrimSpace(t))
	if !strings.Contains(t, "/") {
		t = "text/plain"
	}
	return t, looseParams(v), true
}

// looseParams reads name=value pairs from a header value that
// mime.ParseMediaType rejects (duplicate or malformed parameters).
func looseParams(v string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Split(v, ";")[1:] {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = strings.Trim(strings.TrimSpace(val), "\"")
		if _, dup := out[k]; !dup && k != "" {
			out[k] = val
		}
	}
	return out
}

// filename returns a part's file name from Content-Disposition (RFC 2231
// and RFC 2047 forms) or Content-Type's name, and whether the part is
// disposed as an attachment.
func filename(h *textproto.Header, ctParams map[string]string) (name string, attachment bool) {
	mh := message.Header{Header: *h}
	if v := h.Get("Content-Disposition"); v != "" {
		disp, p, err := mh.ContentDisposition()
		if err != nil {
			disp, _, _ = strings.Cut(v, ";")
			p = looseParams(v)
		}
		attachment = strings.EqualFold(strings.TrimSpace(disp), "attachment")
		name = p["filename"]
	}
	if name == "" {
		name = ctParams["name"]
	}
	if name != "" {
		name = decodeText(name)
		name = strings.ReplaceAll(name, "\x00", "")
		name = clip(name)
	}
	return name, attachment
}
