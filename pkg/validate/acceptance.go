package validate

import (
	"errors"
	"fmt"

	"github.com/ospreysec/osprey/pkg/acceptlist"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// AcceptanceList checks an acceptance list as a sensor is pushed it: a
// kind, and entries in canonical form, sorted, without repeats (see
// package acceptlist), within its bounds.
func AcceptanceList(l *ospreyv1.AcceptanceList) error {
	r := &report{}
	switch l.GetKind() {
	case ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND, ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND,
		ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_AUTH:
	default:
		r.add("kind", "must be inbound, outbound or auth")
	}
	parsed, err := acceptlist.Parse(l.GetEntries())
	if err != nil {
		if es, ok := AsErrors(AcceptanceErrors(err)); ok {
			r.errs = append(r.errs, es...)
		} else {
			r.add("entries", "%v", err)
		}
		return r.err()
	}
	given, canonical := l.GetEntries(), parsed.Entries()
	for i, e := range given {
		switch {
		case i == len(canonical):
			r.add(fmt.Sprintf("entries[%d]", i), "%q repeats an entry", e)
		case e != canonical[i]:
			r.add(fmt.Sprintf("entries[%d]", i), "%q is not in canonical order and form (want %q there)", e, canonical[i])
		default:
			continue
		}
		break
	}
	return r.err()
}

// AcceptanceErrors returns the error of a refused acceptance list, import
// or edit (package acceptlist) as field errors: "entries[3]" for an entry
// of a list, "add[0]" and "remove[2]" for an edit's, "line 7" for an
// imported one, and "entries" for a list past its bounds. Any other error
// is returned as it is, and nil as nil.
func AcceptanceErrors(err error) error {
	var es *acceptlist.Errors
	switch {
	case err == nil:
		return nil
	case errors.Is(err, acceptlist.ErrTooMany):
		return Errors{{Field: "entries", Message: err.Error()}}
	case !errors.As(err, &es):
		return err
	}
	out := make(Errors, 0, len(es.Entries)+1)
	for _, e := range es.Entries {
		field := fmt.Sprintf("entries[%d]", e.Index)
		switch {
		case e.Line > 0:
			field = fmt.Sprintf("line %d", e.Line)
		case e.Field != "":
			field = fmt.Sprintf("%s[%d]", e.Field, e.Index)
		}
		out = append(out, FieldError{Field: field, Message: fmt.Sprintf("%q: %v", e.Entry, e.Err)})
	}
	if es.Omitted > 0 {
		out = append(out, FieldError{Field: "entries", Message: fmt.Sprintf("and %d more bad entries", es.Omitted)})
	}
	return out
}
