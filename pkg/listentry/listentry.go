// Package listentry is the error of a list of entries parsed at once (the
// domains and client networks of an SMTP integration, the elements of a
// cipher list): one error per bad entry, each with its position, so that a refused list names every bad
// entry, and errors.Is sees the reason of each.
package listentry

import (
	"fmt"
	"strings"
)

// Error is a problem with one entry of a list.
type Error struct {
	Index int    // position of the entry in the list given to the parser
	Entry string // the entry as given
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("entry %d %q: %v", e.Index, e.Entry, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errors is one error per bad entry, in the order of the entries: an
// *Error, or a parser's own kind of entry error (a cipher list's elements).
type Errors[E error] []E

func (es Errors[E]) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Unwrap lets errors.Is and errors.As see each entry's error.
func (es Errors[E]) Unwrap() []error {
	errs := make([]error, len(es))
	for i, e := range es {
		errs[i] = e
	}
	return errs
}
