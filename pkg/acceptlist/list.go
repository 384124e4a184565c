package acceptlist

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// EntryError is a problem with one entry.
type EntryError struct {
	// Line is the 1-based line of an imported entry; 0 otherwise.
	Line int
	// Field names the list of strings the entry was given in, for an edit:
	// "add" or "remove"; "" for Parse.
	Field string
	// Index is the entry's position in the list of strings it was given
	// in; 0 for an import.
	Index int
	// Entry is the entry as given.
	Entry string
	Err   error
}

func (e *EntryError) Error() string {
	switch {
	case e.Line > 0:
		return fmt.Sprintf("line %d: %q: %v", e.Line, e.Entry, e.Err)
	case e.Field != "":
		return fmt.Sprintf("%s[%d] %q: %v", e.Field, e.Index, e.Entry, e.Err)
	}
	return fmt.Sprintf("entry %d %q: %v", e.Index, e.Entry, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// before reports whether e was given before o: on an earlier line, or
// earlier in the lists of an edit (remove, then add).
func (e *EntryError) before(o *EntryError) bool {
	return compareGiven(e, o) < 0
}

func compareGiven(a, b *EntryError) int {
	return cmp.Or(cmp.Compare(a.Line, b.Line), -strings.Compare(a.Field, b.Field), cmp.Compare(a.Index, b.Index))
}

// where names the entry in another entry's error.
func (e *EntryError) where() string {
	switch {
	case e.Line > 0:
		return fmt.Sprintf("line %d", e.Line)
	case e.Field != "":
		return fmt.Sprintf("%s[%d]", e.Field, e.Index)
	}
	return fmt.Sprintf("entry %d", e.Index)
}

// Errors is every bad entry of a list, an import or an edit, in the order
// given: the first MaxErrors of them, and the count of the others.
type Errors struct {
	Entries []*EntryError
	// Omitted counts the bad entries past MaxErrors, not listed.
	Omitted int
}

func (es *Errors) add(e *EntryError) {
	if len(es.Entries) >= MaxErrors {
		es.Omitted++
		return
	}
	es.Entries = append(es.Entries, e)
}

func (es *Errors) Error() string {
	msgs := make([]string, 0, len(es.Entries)+1)
	for _, e := range es.Entries {
		msgs = append(msgs, e.Error())
	}
	if es.Omitted > 0 {
		msgs = append(msgs, fmt.Sprintf("and %d more bad entries", es.Omitted))
	}
	return strings.Join(msgs, "; ")
}

// Unwrap lets errors.Is and errors.As see each entry's error.
func (es *Errors) Unwrap() []error {
	out := make([]error, len(es.Entries))
	for i, e := range es.Entries {
		out[i] = e
	}
	return out
}

// orNil returns es as an error, or nil when it lists nothing. It puts the
// entries in the order they were given: by line, then by field (remove,
// then add) and index.
func (es *Errors) orNil() error {
	if len(es.Entries) == 0 && es.Omitted == 0 {
		return nil
	}
	slices.SortStableFunc(es.Entries, compareGiven)
	return es
}

// List is a parsed acceptance list: canonical, sorted entries without
// duplicates. The zero value and nil are the empty list. A List is
// immutable and safe for concurrent use.
type List struct {
	entries []Entry
}

// Len returns the number of entries.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.entries)
}

// Entries returns the entries in canonical form, in order.
func (l *List) Entries() []string {
	if l == nil {
		return nil
	}
	out := make([]string, len(l.entries))
	for i, e := range l.entries {
		out[i] = e.String()
	}
	return out
}

// Parse parses a list of entries, in any order and form, into a list. Bad
// entries are reported all at once as [*Errors], each with its index.
func Parse(entries []string) (*List, error) {
	errs := &Errors{}
	return merge(nil, nil, parseAll("", entries, errs), errs)
}

// parseAll parses entries, given in field ("" for a list, "add" for an
// edit), recording the bad ones in errs.
func parseAll(field string, entries []string, errs *Errors) []sourced {
	out := make([]sourced, 0, len(entries))
	for i, s := range entries {
		src := &EntryError{Field: field, Index: i, Entry: s}
		e, err := ParseEntry(s)
		if err != nil {
			src.Err = err
			errs.add(src)
			continue
		}
		out = append(out, sourced{e, src})
	}
	return out
}

// Import parses a text file of entries delimited by commas, semicolons,
// spaces, tabs and line ends (LF or CRLF; a UTF-8 byte order mark at the
// start is ignored), and adds them to base (nil for a list of the file's
// entries only). Every bad entry is reported, with its line, as
// [*Errors]; then nothing is returned.
func Import(r io.Reader, base *List) (*List, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxBytes)
	var adds []sourced
	errs := &Errors{}
	for line := 1; sc.Scan(); line++ {
		text := sc.Bytes()
		if line == 1 {
			text = bytes.TrimPrefix(text, []byte("\uFEFF"))
		}
		for _, f := range bytes.FieldsFunc(text, isDelimiter) {
			src := &EntryError{Line: line, Entry: string(f)}
			e, err := ParseEntry(src.Entry)
			if err != nil {
				src.Err = err
				errs.add(src)
				continue
			}
			adds = append(adds, sourced{e, src})
			if len(adds) > MaxEntries {
				return nil, fmt.Errorf("import: more than %d entries: %w", MaxEntries, ErrTooMany)
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("import: a line longer than %d MiB: %w", MaxBytes>>20, ErrTooMany)
		}
		return nil, fmt.Errorf("import: %w", err)
	}
	return merge(base, nil, adds, errs)
}

func isDelimiter(r rune) bool {
	switch r {
	case ',', ';', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// Edit returns l with the entries of remove taken out and those of add put
// in; so an entry is changed by removing the old form and adding the new
// one. An entry of remove must be in l (in any form that reads the same);
// an entry of add already in l changes nothing. Bad entries are reported
// all at once as [*Errors], their Field "add" or "remove".
func (l *List) Edit(add, remove []string) (*List, error) {
	errs := &Errors{}
	removed := make([]bool, l.Len())
	for i, s := range remove {
		src := &EntryError{Field: "remove", Index: i, Entry: s}
		e, err := ParseEntry(s)
		if err == nil {
			if j, ok := l.find(e); ok {
				removed[j] = true
			} else {
				err = ErrNotListed
			}
		}
		if err != nil {
			src.Err = err
			errs.add(src)
		}
	}
	return merge(l, removed, parseAll("add", add, errs), errs)
}

// find returns the position of e in l.
func (l *List) find(e Entry) (int, bool) {
	if l == nil {
		return 0, false
	}
	return slices.BinarySearchFunc(l.entries, e, Compare)
}

// sourced is an entry with where it was given, for its errors.
type sourced struct {
	e   Entry
	src *EntryError
}

// merge returns base, less the entries removed marks, with adds put in.
// An added entry that another added entry or a kept entry of base holds
// with the opposite '!' is an error (on the one given later); a duplicate
// is dropped. errs holds the errors found so far: when it holds any, merge
// returns it.
//
// The adds are sorted (which costs nothing when they come sorted, as a
// stored list does), so that entries of one key are neighbours, and then
// merged with base, which is sorted already: no map, and one pass.
func merge(base *List, removed []bool, adds []sourced, errs *Errors) (*List, error) {
	if removed == nil {
		removed = make([]bool, base.Len())
	}
	bySort := func(a, b sourced) int { return cmp.Or(Compare(a.e, b.e), compareGiven(a.src, b.src)) }
	if !slices.IsSortedFunc(adds, bySort) {
		slices.SortFunc(adds, bySort)
	}
	fresh := make([]Entry, 0, len(adds))
	for i := 0; i < len(adds); {
		// adds[i:j] hold one key: the one given first decides, the
		// others repeat it or contradict it.
		j, first := i+1, adds[i]
		for ; j < len(adds) && adds[j].e.key() == adds[i].e.key(); j++ {
			if adds[j].src.before(first.src) {
				first = adds[j]
			}
		}
		for _, a := range adds[i:j] {
			if a.e.Exclude != first.e.Exclude {
				a.src.Err = fmt.Errorf("%w: %s %q says otherwise", ErrContradiction, first.src.where(), first.src.Entry)
				errs.add(a.src)
			}
		}
		i = j
		if !first.e.IsDomain() { // a domain is never excluded
			opposite := first.e
			opposite.Exclude = !opposite.Exclude
			if k, ok := base.find(opposite); ok && !removed[k] {
				first.src.Err = fmt.Errorf("%w: the list holds %q", ErrContradiction, opposite.String())
				errs.add(first.src)
				continue
			}
		}
		if k, ok := base.find(first.e); ok && !removed[k] {
			continue
		}
		fresh = append(fresh, first.e)
	}
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	out := make([]Entry, 0, base.Len()+len(fresh))
	k := 0 // next of base
	for _, e := range fresh {
		for ; k < base.Len() && Compare(base.entries[k], e) < 0; k++ {
			if !removed[k] {
				out = append(out, base.entries[k])
			}
		}
		out = append(out, e)
	}
	for ; k < base.Len(); k++ {
		if !removed[k] {
			out = append(out, base.entries[k])
		}
	}
	l := &List{entries: out}
	if err := l.checkSize(); err != nil {
		return nil, err
	}
	return l, nil
}

// checkSize refuses a list past MaxEntries or MaxBytes.
func (l *List) checkSize() error {
	if n := len(l.entries); n > MaxEntries {
		return fmt.Errorf("%d entries: %w", n, ErrTooMany)
	}
	size := 0
	var buf []byte
	for _, e := range l.entries {
		buf = e.appendTo(buf[:0])
		size += len(buf) + 1
	}
	if size > MaxBytes {
		return fmt.Errorf("%d bytes of entries: %w", size, ErrTooMany)
	}
	return nil
}

// Export writes entries one per line, each ended by a line feed: the form
// Import reads.
func Export(w io.Writer, entries []string) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	for _, e := range entries {
		if _, err := bw.WriteString(e); err != nil {
			return err
		}
		if err := bw.WriteByte('\n'); err != nil {
			return err
		}
	}
	return bw.Flush()
}
