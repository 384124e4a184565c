// Package ciphersuite turns an OpenSSL cipher list ("HIGH:!aNULL",
// "ECDHE+AESGCM:ECDHE+CHACHA20") into the TLS 1.0–1.2 cipher suites of Go's
// crypto/tls, for the "Cipher suite" setting of the POP3 integration, which
// administrators copy from OpenSSL-based tools.
//
// # Syntax
//
// The string is read as OpenSSL 3 reads it (see ciphers(1)): elements are
// separated by ':', ',', ';' or white space, and each element is a keyword
// (HIGH, aRSA, AESGCM, ...), a suite name (ECDHE-RSA-AES128-GCM-SHA256), or
// keywords joined by '+', which selects the suites that match all of them
// ("ECDHE+AESGCM"). An element may start with
//
//	(none)  add the matching suites to the end of the list
//	'-'     remove them (a later element may add them again)
//	'!'     remove them for good (no later element can add them)
//	'+'     move those already in the list to its end
//
// "@STRENGTH" sorts the list by symmetric key length, strongest first, and
// "@SECLEVEL=n" (n from 0 to 5) is accepted and ignored: Go has no security
// levels. "DEFAULT" is allowed only as the first element, where it stands
// for "ALL:!COMPLEMENTOFDEFAULT:!eNULL" as in OpenSSL. The suites start in
// OpenSSL's order (forward secrecy and AEAD first, then by strength), so a
// string yields the suites `openssl ciphers` prints for it, minus those Go
// lacks. The keywords are those of OpenSSL 3, listed in keywords.go; they
// and the suite names are case-sensitive. Besides OpenSSL's names, the IANA
// names that Go uses (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) are accepted.
//
// # Where it differs from OpenSSL
//
// OpenSSL ignores names it does not know as long as something else matched;
// here every problem is an error, reported all at once, naming the element:
//
//   - an unknown name ("HIHG") is [ErrUnknown];
//   - a name OpenSSL knows but Go does not implement, when it is added
//     ("DHE-RSA-AES128-GCM-SHA256", "CAMELLIA", "EDH+AESGCM"), is
//     [ErrUnsupported]; removing or moving such suites ("!CAMELLIA") is
//     fine, so the usual exclusion lists work;
//   - a string that selects no suite at all is [ErrNoSuites].
//
// Keywords that select nothing even in OpenSSL 3 (LOW, EXPORT, DES, kECDH,
// SSLv2, ...) are accepted and select nothing.
//
// # Insecure suites
//
// Go lists some suites it implements as insecure (tls.InsecureCipherSuites):
// RSA key exchange (no forward secrecy), RC4, 3DES, and CBC with SHA-256
// (not constant-time in Go). Refusing them outright would break the odd old
// mail server, so they are allowed, but only when asked for explicitly: an
// element adds an insecure suite only if it names the suite, or names every
// reason the suite is insecure (kRSA or RSA, RC4, 3DES, SHA256). Broad
// keywords such as ALL, HIGH, MEDIUM or AES never bring one in: "ALL" gives
// the secure suites; "ALL:kRSA" adds AES128-SHA and AES128-GCM-SHA256 but
// not RC4-SHA, which takes "kRSA+RC4" or its name; "ALL:SHA256" adds the
// ECDHE CBC-SHA256 suites but not AES128-SHA256 (RSA key exchange too).
// The insecure suites a string selected are reported in [Result.Insecure],
// so that the API can warn about them.
//
// # TLS 1.3
//
// TLS 1.3 suites are fixed by Go and cannot be configured: a cipher list
// only affects TLS 1.0–1.2, and the TLS 1.3 names that `openssl ciphers`
// prints (TLS_AES_256_GCM_SHA384, ...) are accepted and ignored. Go also
// ignores the order of [Result.Suites] and picks the suite by its own
// preference among those enabled; the order is kept for display.
package ciphersuite

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/ospreysec/osprey/pkg/listentry"
)

// Errors an [ElementError] wraps; match them with [errors.Is].
var (
	ErrUnknown     = errors.New("unknown cipher name")
	ErrUnsupported = errors.New("not supported by this implementation")
	ErrSyntax      = errors.New("syntax error")
	ErrNoSuites    = errors.New("cipher list selects no cipher suite")
)

// ElementError is a problem with one element of a cipher list.
type ElementError struct {
	Element string // the element as written, with its prefix
	Term    string // the name within the element at fault, if one is
	Err     error
}

func (e *ElementError) Error() string {
	if e.Term != "" && e.Term != strings.TrimLeft(e.Element, "!-+") {
		return fmt.Sprintf("%q in %q: %v", e.Term, e.Element, e.Err)
	}
	return fmt.Sprintf("%q: %v", e.Element, e.Err)
}

func (e *ElementError) Unwrap() error { return e.Err }

// Errors is the error returned by [Parse] when elements are at fault: one
// [ElementError] per bad element, in order.
type Errors = listentry.Errors[*ElementError]

// Result is what a cipher list selects.
type Result struct {
	// Suites are the selected suites' IDs, for tls.Config.CipherSuites, in
	// OpenSSL's order. Nil means Go's defaults (an empty cipher list).
	Suites []uint16
	// Insecure names, in OpenSSL's spelling, the selected suites that Go
	// lists as insecure.
	Insecure []string
}

// String returns the selected suites' OpenSSL names joined by ':', which
// Parse reads back to the same suites.
func (r Result) String() string {
	names := make([]string, len(r.Suites))
	for i, id := range r.Suites {
		names[i] = Name(id)
	}
	return strings.Join(names, ":")
}

// Name returns the OpenSSL name of a Go cipher suite
// ("ECDHE-RSA-AES128-GCM-SHA256" for
// tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256), or "" for a TLS 1.3 suite or
// an ID Go does not implement.
func Name(id uint16) string {
	if i, ok := byGoID[id]; ok {
		return table[i].name
	}
	return ""
}

// Parse reads an OpenSSL cipher list; see the package comment. A blank
// string selects Go's defaults: Result.Suites is nil.
func Parse(s string) (Result, error) {
	if strings.TrimFunc(s, isSeparator) == "" {
		return Result{}, nil
	}
	order, skipped, err := expand(s, true)
	if err != nil {
		return Result{}, err
	}
	var r Result
	for _, i := range order {
		if goID[i] == 0 {
			continue
		}
		r.Suites = append(r.Suites, goID[i])
		if goInsecure[i] {
			r.Insecure = append(r.Insecure, table[i].name)
		}
	}
	if len(r.Suites) == 0 {
		if skipped != "" {
			return Result{}, fmt.Errorf("%w: insecure suites such as %s are selected only by name or by naming their weaknesses (kRSA, RC4, 3DES, SHA256)", ErrNoSuites, skipped)
		}
		return Result{}, ErrNoSuites
	}
	return r, nil
}

func isSeparator(r rune) bool {
	return r == ':' || r == ',' || r == ';' || unicode.IsSpace(r)
}

// rule is one parsed element.
type rule struct {
	text  string
	op    byte // 0 (add), '-', '!', '+', or '@' for @STRENGTH
	terms []term
}

// matches reports whether table[i] matches every term of the rule.
func (r *rule) matches(i int) bool {
	for _, t := range r.terms {
		if !t.matches(i) {
			return false
		}
	}
	return len(r.terms) > 0
}

// explicit reports whether the rule asks for insecure suite i by name or by
// naming every one of its weaknesses.
func (r *rule) explicit(i int) bool {
	var named weakness
	for _, t := range r.terms {
		if t.suite == i+1 {
			return true
		}
		named |= t.weak
	}
	return weaknesses[i] != 0 && weaknesses[i]&^named == 0
}

// expand applies a cipher list to the table and returns the indexes of the
// selected suites in order. With policy set it enforces this package's
// rules (unsupported names are errors, insecure suites need asking for);
// without, it behaves as OpenSSL, which the tests compare it with. skipped
// names an insecure suite that an element would have added but for the
// policy, and that no later element removed for good.
func expand(s string, policy bool) (order []int, skipped string, err error) {
	elems := strings.FieldsFunc(s, isSeparator)
	if len(elems) > 0 && elems[0] == "DEFAULT" {
		elems = append([]string{"ALL", "!COMPLEMENTOFDEFAULT", "!eNULL"}, elems[1:]...)
	}
	var errs Errors
	rules := make([]rule, 0, len(elems))
	for _, e := range elems {
		r, err := parseElement(e, policy)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rules = append(rules, r)
	}
	if len(errs) > 0 {
		return nil, "", errs
	}

	st := newState()
	var held [len(table)]bool // insecure suites the policy kept out
	for _, r := range rules {
		switch r.op {
		case 0:
			allowed := func(i int) bool {
				if !policy || !goInsecure[i] || r.explicit(i) {
					return true
				}
				held[i] = true
				return false
			}
			st.add(func(i int) bool { return r.matches(i) && allowed(i) })
		case '-':
			st.remove(r.matches)
		case '!':
			st.kill(r.matches)
		case '+':
			st.moveToEnd(r.matches)
		case '@':
			st.sortByStrength()
		}
	}
	for _, i := range st.order {
		if held[i] && !st.active[i] {
			skipped = table[i].name
			break
		}
	}
	return st.selected(), skipped, nil
}

func parseElement(e string, policy bool) (rule, *ElementError) {
	fail := func(name string, err error) (rule, *ElementError) {
		return rule{}, &ElementError{Element: e, Term: name, Err: err}
	}
	if strings.HasPrefix(e, "@") {
		if e == "@STRENGTH" {
			return rule{text: e, op: '@'}, nil
		}
		if n, ok := strings.CutPrefix(e, "@SECLEVEL="); ok {
			if len(n) == 1 && n[0] >= '0' && n[0] <= '5' {
				return rule{text: e}, nil // no terms: selects nothing
			}
			return fail(e, fmt.Errorf("%w: security level must be 0 to 5", ErrSyntax))
		}
		return fail(e, ErrUnknown)
	}
	r := rule{text: e}
	body := e
	if e[0] == '-' || e[0] == '!' || e[0] == '+' {
		r.op, body = e[0], e[1:]
	}
	if body == "" {
		return fail("", fmt.Errorf("%w: %q must be followed by a name", ErrSyntax, string(e[0])))
	}
	names := strings.Split(body, "+")
	for _, name := range names {
		if name == "" {
			return fail("", fmt.Errorf("%w: empty name around '+'", ErrSyntax))
		}
		if name == "DEFAULT" {
			return fail(name, fmt.Errorf("%w: DEFAULT may only start the list", ErrSyntax))
		}
		t, ok := lookup(name)
		if !ok {
			if hint := suggest(name); hint != "" {
				return fail(name, fmt.Errorf("%w (names are case-sensitive: did you mean %s?)", ErrUnknown, hint))
			}
			return fail(name, ErrUnknown)
		}
		if (t.suite != 0 || t.tls13) && len(names) > 1 {
			return fail(name, fmt.Errorf("%w: a suite name cannot be combined with '+'", ErrSyntax))
		}
		if t.tls13 {
			return rule{text: e}, nil // TLS 1.3 suites are not configurable
		}
		r.terms = append(r.terms, t)
	}
	if r.op != 0 || !policy {
		return r, nil
	}
	// Adding suites that Go lacks is an error, naming the culprit.
	for _, t := range r.terms {
		anyKnown, anyGo := false, false
		for i := range table {
			if t.matches(i) {
				anyKnown = true
				anyGo = anyGo || goID[i] != 0
			}
		}
		if anyKnown && !anyGo {
			return fail(t.name, ErrUnsupported)
		}
	}
	var lacking []string
	for i := range table {
		if r.matches(i) {
			if goID[i] != 0 {
				return r, nil
			}
			lacking = append(lacking, table[i].name)
		}
	}
	if len(lacking) > 0 {
		if len(lacking) > 3 {
			lacking = append(lacking[:3], "...")
		}
		return fail("", fmt.Errorf("%w: selects only %s", ErrUnsupported, strings.Join(lacking, ", ")))
	}
	return r, nil
}

// state is the list OpenSSL keeps while it applies a cipher string: every
// suite not yet killed, in order, each active (selected) or not.
type state struct {
	order  []int
	active [len(table)]bool
}

func newState() *state {
	st := &state{order: make([]int, len(table))}
	for i := range st.order {
		st.order[i] = i
	}
	return st
}

// partition splits the list into the suites for which pick is false and
// those for which it is true, keeping the order of each.
func (st *state) partition(pick func(i int) bool) (rest, picked []int) {
	for _, i := range st.order {
		if pick(i) {
			picked = append(picked, i)
		} else {
			rest = append(rest, i)
		}
	}
	return rest, picked
}

// add activates the inactive suites that match, moving them to the end.
func (st *state) add(match func(i int) bool) {
	rest, picked := st.partition(func(i int) bool { return !st.active[i] && match(i) })
	for _, i := range picked {
		st.active[i] = true
	}
	st.order = append(rest, picked...)
}

// remove deactivates the active suites that match, moving them to the front
// as OpenSSL does.
func (st *state) remove(match func(i int) bool) {
	rest, picked := st.partition(func(i int) bool { return st.active[i] && match(i) })
	for _, i := range picked {
		st.active[i] = false
	}
	st.order = append(picked, rest...)
}

// kill drops the matching suites from the list altogether.
func (st *state) kill(match func(i int) bool) {
	rest, picked := st.partition(match)
	for _, i := range picked {
		st.active[i] = false
	}
	st.order = rest
}

// moveToEnd moves the active suites that match to the end.
func (st *state) moveToEnd(match func(i int) bool) {
	rest, picked := st.partition(func(i int) bool { return st.active[i] && match(i) })
	st.order = append(rest, picked...)
}

// sortByStrength moves the active suites to the end, strongest first,
// keeping the order of suites of equal strength.
func (st *state) sortByStrength() {
	rest, picked := st.partition(func(i int) bool { return st.active[i] })
	slices.SortStableFunc(picked, func(a, b int) int { return table[b].bits - table[a].bits })
	st.order = append(rest, picked...)
}

func (st *state) selected() []int {
	var out []int
	for _, i := range st.order {
		if st.active[i] {
			out = append(out, i)
		}
	}
	return out
}

// What crypto/tls implements, by table index; filled in by init.
var (
	goID       [len(table)]uint16
	goInsecure [len(table)]bool
	weaknesses [len(table)]weakness
	byGoID     = map[uint16]int{}
)

func init() {
	byStd := make(map[string]int, len(table))
	for i, s := range table {
		byStd[s.std] = i
	}
	register := func(suites []*tls.CipherSuite, insecure bool) {
		for _, cs := range suites {
			if slices.Equal(cs.SupportedVersions, []uint16{tls.VersionTLS13}) {
				continue
			}
			i, ok := byStd[cs.Name]
			if !ok {
				continue // a suite newer than the table: TestGoSuitesInTable fails
			}
			goID[i] = cs.ID
			goInsecure[i] = insecure
			byGoID[cs.ID] = i
			if insecure {
				weaknesses[i] = weaknessesOf(&table[i])
			}
		}
	}
	register(tls.CipherSuites(), false)
	register(tls.InsecureCipherSuites(), true)
}
