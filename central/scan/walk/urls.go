package walk

import (
	"bytes"
	"io"
	"net"
	"net/url"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/idna"
)

// NormalizeURL returns the form in which URLs are collected and compared:
// scheme and host lower-case (international hosts in their ASCII form),
// the default port and a trailing dot of the host dropped, user
// information and fragment dropped, an empty path made "/". Only http,
// https and ftp URLs with a host are kept; for anything else ok is false.
func NormalizeURL(raw string) (norm string, ok bool) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	var defPort string
	switch scheme {
	case "http":
		defPort = "80"
	case "https":
		defPort = "443"
	case "ftp":
		defPort = "21"
	default:
		return "", false
	}
	host, port := u.Hostname(), u.Port()
	host = NormalizeHost(host)
	if host == "" {
		return "", false
	}
	if port == defPort {
		port = ""
	}
	u.Scheme = scheme
	u.User = nil
	u.Fragment = ""
	u.RawFragment = ""
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	u.Host = host
	if u.Path == "" && u.RawPath == "" {
		u.Path = "/"
	}
	return u.String(), true
}

// NormalizeHost lower-cases a host name, drops a trailing dot and turns an
// international name into its ASCII (punycode) form.
func NormalizeHost(host string) string {
	host = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(host)), ".")
	if net.ParseIP(host) != nil {
		return host
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			if a, err := idna.Lookup.ToASCII(host); err == nil {
				return a
			}
			break
		}
	}
	return host
}

// URLHost returns the host of a normalized URL, without port or brackets.
func URLHost(norm string) string {
	u, err := url.Parse(norm)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// urlsInText finds http, https and ftp URLs in plain text: at each "://"
// it looks back for the scheme and forward to the first character that
// cannot be in a URL, then trims trailing punctuation.
func urlsInText(text []byte, add func(string)) {
	for off := 0; ; {
		i := bytes.Index(text[off:], []byte("://"))
		if i < 0 {
			return
		}
		i += off
		off = i + 3
		start := i
		for start > 0 && isSchemeByte(text[start-1]) {
			start--
		}
		scheme := text[start:i]
		if !bytes.EqualFold(scheme, []byte("http")) && !bytes.EqualFold(scheme, []byte("https")) && !bytes.EqualFold(scheme, []byte("ftp")) {
			continue
		}
		end := off
		for end < len(text) && isURLByte(text[end]) {
			end++
		}
		u := bytes.TrimRight(text[start:end], ".,;:!?)'\"")
		if len(u) > len(scheme)+3 {
			add(string(u))
		}
		off = end
	}
}

func isSchemeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// isURLByte reports whether c may appear in a URL written in text.
func isURLByte(c byte) bool {
	if c <= ' ' || c == 0x7f {
		return false
	}
	switch c {
	case '<', '>', '"', '\'', '`', '{', '}', '|', '\\', '^', '[', ']':
		return false
	}
	return true
}

// urlAttrs are the HTML attributes that hold a URL.
var urlAttrs = map[string]bool{
	"href": true, "src": true, "action": true, "formaction": true,
	"background": true, "poster": true, "data": true, "cite": true,
}

// urlsInHTML finds URLs in the URL attributes of an HTML body and in its
// text.
func urlsInHTML(r io.Reader, add func(string)) {
	z := html.NewTokenizer(r)
	z.SetMaxBuf(1 << 20)
	for {
		switch z.Next() {
		case html.ErrorToken:
			return
		case html.TextToken:
			urlsInText(z.Text(), add)
		case html.StartTagToken, html.SelfClosingTagToken:
			_, more := z.TagName()
			for more {
				var k, v []byte
				k, v, more = z.TagAttr()
				if urlAttrs[string(k)] {
					add(string(v))
				}
			}
		}
	}
}
