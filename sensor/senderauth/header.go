package senderauth

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// HeaderName is the name of the header field of RFC 8601.
const HeaderName = "Authentication-Results"

// Header returns the Authentication-Results header field of a message's
// results (env.Auth), under authservID, one result a line, CRLF
// terminated; "" when the message was not checked:
//
//	Authentication-Results: gw.example.com;
//		spf=pass smtp.mailfrom=alice@example.org;
//		dkim=pass header.d=example.org header.s=s1;
//		dmarc=pass (p=reject) header.from=example.org
func Header(authservID string, env *ospreyv1.Envelope) string {
	a := env.GetAuth()
	if a == nil {
		return ""
	}
	var parts []string
	add := func(r authres.Result, comment string) {
		s := strings.TrimSpace(strings.TrimPrefix(authres.Format("", []authres.Result{r}), "; "))
		if comment != "" {
			if method, rest, ok := strings.Cut(s, " "); ok {
				s = method + " " + comment + " " + rest
			} else {
				s += " " + comment
			}
		}
		parts = append(parts, s)
	}
	if a.GetSpf() != "" {
		r := &authres.SPFResult{Value: authres.ResultValue(a.GetSpf())}
		if env.GetMailFrom() == "" {
			r.Helo = a.GetSpfDomain()
		} else {
			r.From = env.GetMailFrom()
		}
		add(r, "")
	}
	for _, d := range a.GetDkim() {
		add(&authres.GenericResult{Method: "dkim", Value: authres.ResultValue(d.GetResult()),
			Params: map[string]string{"header.d": d.GetDomain(), "header.s": d.GetSelector()}}, "")
	}
	if len(a.GetDkim()) == 0 && a.GetDmarc() != "" {
		add(&authres.GenericResult{Method: "dkim", Value: authres.ResultNone}, "")
	}
	if a.GetDmarc() != "" {
		comment := ""
		if p := a.GetDmarcPolicy(); p != "" {
			comment = "(p=" + p + ")"
		}
		add(&authres.DMARCResult{Value: authres.ResultValue(a.GetDmarc()), From: a.GetFromDomain()}, comment)
	}
	if len(parts) == 0 {
		parts = []string{"none"}
	}
	return HeaderName + ": " + authservID + ";\r\n\t" + strings.Join(parts, ";\r\n\t") + "\r\n"
}

// IsOurs reports whether a header field (its name, colon and value, folded
// or not) is an Authentication-Results field with authservID as its
// authserv-id, compared ignoring case: one that a message arriving from
// outside has forged, and that RFC 8601 §5 has the gateway remove.
func IsOurs(field, authservID string) bool {
	name, value, ok := strings.Cut(field, ":")
	if !ok || !strings.EqualFold(strings.TrimSpace(name), HeaderName) {
		return false
	}
	id := servID(strings.NewReplacer("\r", "", "\n", "").Replace(value))
	return id != "" && strings.EqualFold(strings.TrimSuffix(id, "."), strings.TrimSuffix(authservID, "."))
}

// servID returns the authserv-id at the start of an Authentication-Results
// value, after any comments and spaces (CFWS); a quoted-string unquoted.
func servID(v string) string {
	v = skipCFWS(v)
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			switch v[i] {
			case '\\':
				if i+1 < len(v) {
					i++
					b.WriteByte(v[i])
				}
			case '"':
				return b.String()
			default:
				b.WriteByte(v[i])
			}
		}
		return ""
	}
	end := strings.IndexAny(v, " \t;(")
	if end < 0 {
		end = len(v)
	}
	return v[:end]
}

// skipCFWS drops the spaces and comments (nested, with quoted pairs) at
// the start of v.
func skipCFWS(v string) string {
	for {
		v = strings.TrimLeft(v, " \t")
		if !strings.HasPrefix(v, "(") {
			return v
		}
		depth := 0
		i := 0
	comment:
		for ; i < len(v); i++ {
			switch v[i] {
			case '\\':
				i++
			case '(':
				depth++
			case ')':
				depth--
				if depth == 0 {
					break comment
				}
			}
		}
		if i >= len(v) {
			return ""
		}
		v = v[i+1:]
	}
}
