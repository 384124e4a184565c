package walk

import (
	"bytes"
	"io"
	"net"
	"net/url"
	"regexp"
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

var textURL = regexp.MustCompile(`(?i)\b(?:https?|ftp)://[^\s<>"'\x60{}|\\^\[\]]+`)

// urlsInText finds http, https and ftp URLs in plain text.
func urlsInText(text []byte, add func(string)) {
	for _, m := range textURL.FindAll(text, -1) {
		add(string(bytes.TrimRight(m, ".,;:!?)'\"")))
	}
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
