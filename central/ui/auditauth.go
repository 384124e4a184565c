package ui

import (
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// authView is a gateway's sender authentication of a message, one row a
// check: SPF, each DKIM signature, DMARC.
type authView struct {
	Rows []authRow
}

// authRow is one check: its method, result (with its badge's class) and
// what it checked.
type authRow struct {
	Method, Result, Class, Detail string
}

func newAuthView(a *ospreyv1.AuthResults) *authView {
	if a == nil {
		return nil
	}
	v := &authView{}
	add := func(method, result, detail string) {
		if result != "" {
			v.Rows = append(v.Rows, authRow{Method: method, Result: display(result), Class: authClass(result), Detail: display(detail)})
		}
	}
	add("SPF", a.GetSpf(), orDash(a.GetSpfDomain()))
	for _, d := range a.GetDkim() {
		add("DKIM", d.GetResult(), orDash(d.GetDomain())+", selector "+orDash(d.GetSelector()))
	}
	if len(a.GetDkim()) == 0 && a.GetDmarc() != "" {
		add("DKIM", "none", "no signature")
	}
	policy := "publishes no policy"
	if p := a.GetDmarcPolicy(); p != "" {
		policy = "policy " + p
	}
	add("DMARC", a.GetDmarc(), "From "+orDash(a.GetFromDomain())+", "+policy)
	return v
}

// authClass is the class of a result's badge: pass reads as clean, fail as
// detected, softfail as a warning, the rest as neutral.
func authClass(result string) string {
	switch result {
	case "pass":
		return "verdict-clean"
	case "fail":
		return "verdict-detected"
	case "softfail":
		return "verdict-unscannable"
	}
	return "verdict-other"
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
