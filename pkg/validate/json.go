package validate

// DecodeJSON is here, beside the validation of what it decodes, because the
// two answer the same question for the same readers: what is wrong with this
// field. encoding/json alone stops at the first problem and names it in Go
// terms ("cannot unmarshal number -3 into Go struct field SizeLimit.
// max_message_size.value of type uint64"), and it takes a document that is
// not an object at all (null, an empty array) as "nothing to set", which
// turns a PUT of null into a PUT of the zero value. So DecodeJSON first
// checks that the data is one JSON object, then walks the document token by
// token beside the Go type, collecting every value that does not fit with
// its path, and only when nothing is wrong lets encoding/json fill the value.
// The walk follows encoding/json's rules for what fits (FuzzDecodeJSON holds
// the two together), except that it is stricter about names: a field must be
// spelled exactly, and only once.

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ErrNotJSONObject is matched (errors.Is) by the error of [DecodeJSON] for
// data that is not exactly one well-formed JSON object: empty, another JSON
// value (null, an array, a string, a number, true or false), malformed, or
// followed by more data. Its message says which, and where.
var ErrNotJSONObject = errors.New("not a JSON object")

// notObjectError is a DecodeJSON error that matches ErrNotJSONObject.
type notObjectError struct{ msg string }

func (e *notObjectError) Error() string        { return e.msg }
func (e *notObjectError) Is(target error) bool { return target == ErrNotJSONObject }

func notObject(format string, args ...any) error {
	return &notObjectError{msg: fmt.Sprintf(format, args...)}
}

// MaxJSONFieldErrors bounds the field errors DecodeJSON reports for one
// document, so that a hostile body of a million unknown fields does not get
// an answer a million lines long. When there are more, the last error says so.
const MaxJSONFieldErrors = 100

// DecodeJSON decodes data, which must be one JSON object, into v, a pointer to
// a struct, as encoding/json's Decoder does with DisallowUnknownFields, but
// into a zero value: a field the document leaves out is zero in *v whatever
// it held before. *v is set only when DecodeJSON returns nil.
//
// Data that is not one well-formed JSON object is an error matching
// [ErrNotJSONObject]. Otherwise every value that does not fit v's type is a
// [FieldError], in document order, with its path in the syntax of the other
// validation errors ("max_message_size.value", "clients[2]"):
//
//   - a field the type does not have: names must match exactly, case
//     included; the message suggests the nearest known name when one is
//     close, or lists the known names;
//   - a field given twice;
//   - a value of the wrong JSON type ("must be a string, not a number");
//   - a number that does not fit: a fraction or exponent, or a negative
//     number, where a whole number or one of at least 0 is wanted, or a number
//     beyond the type's range.
//
// null is accepted for any field and, as with encoding/json, leaves it
// unset. At most [MaxJSONFieldErrors] field errors are reported.
//
// v's type may hold booleans, numbers, strings, byte slices (base64), slices,
// structs, pointers to these, and types that implement json.Unmarshaler
// (such as time.Time) or encoding.TextUnmarshaler; a struct field may not be
// embedded or use the ",string" option. Any other type is a programming error,
// reported as an error that is neither of the above.
func DecodeJSON(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("validate.DecodeJSON: want a non-nil pointer to a struct, got %T", v)
	}
	if err := supported(rv.Elem().Type()); err != nil {
		return fmt.Errorf("validate.DecodeJSON: %w", err)
	}
	if err := oneObject(data); err != nil {
		return err
	}
	c := &jsonChecker{dec: json.NewDecoder(bytes.NewReader(data))}
	c.dec.UseNumber()
	c.value(rv.Elem().Type(), "")
	if c.err != nil {
		return c.err
	}
	if len(c.errs) > 0 {
		return c.errs
	}
	fresh := reflect.New(rv.Elem().Type())
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(fresh.Interface()); err != nil {
		// The walk found nothing wrong, so this is a disagreement between it
		// and encoding/json (FuzzDecodeJSON looks for those): refuse the
		// data rather than use what encoding/json made of it.
		return notObject("invalid JSON: %v", err)
	}
	rv.Elem().Set(fresh.Elem())
	return nil
}

// oneObject checks that data is exactly one JSON object and says what it is
// when it is not.
func oneObject(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var syn *json.SyntaxError
		switch {
		case errors.Is(err, io.EOF):
			return notObject("want a JSON object, got nothing")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return notObject("invalid JSON: the data ends inside a value")
		case errors.As(err, &syn):
			line, col := position(data, syn.Offset)
			return notObject("invalid JSON at line %d, column %d: %v", line, col, syn)
		default:
			return notObject("invalid JSON: %v", err)
		}
	}
	raw = bytes.TrimLeft(raw, jsonSpace)
	if len(raw) == 0 || raw[0] != '{' {
		return notObject("want a JSON object, got %s", kindOf(raw))
	}
	off := dec.InputOffset()
	if rest := data[off:]; len(bytes.TrimLeft(rest, jsonSpace)) > 0 {
		off += int64(len(rest) - len(bytes.TrimLeft(rest, jsonSpace)))
		line, col := position(data, off+1)
		return notObject("want one JSON object, got more data after it at line %d, column %d", line, col)
	}
	return nil
}

const jsonSpace = " \t\r\n"

// kindOf names the JSON value that raw starts.
func kindOf(raw []byte) string {
	switch {
	case len(raw) == 0:
		return "nothing"
	case raw[0] == 'n':
		return "null"
	case raw[0] == '[':
		return "a list (JSON array)"
	case raw[0] == '"':
		return "a string"
	case raw[0] == 't' || raw[0] == 'f':
		return "true or false"
	default:
		return "a number"
	}
}

// position returns the line and column (both from 1, the column in
// characters) of the byte before offset, which is where encoding/json's
// SyntaxError points.
func position(data []byte, offset int64) (line, col int) {
	end := int(min(max(offset-1, 0), int64(len(data))))
	before := data[:end]
	line = bytes.Count(before, []byte{'\n'}) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}

// jsonChecker walks a document that oneObject accepted, beside a Go type.
type jsonChecker struct {
	dec  *json.Decoder
	errs Errors
	err  error // the decoder failed (it cannot after oneObject): stop
	full bool  // MaxJSONFieldErrors reached: stop
}

func (c *jsonChecker) stopped() bool { return c.err != nil || c.full }

func (c *jsonChecker) add(path, format string, args ...any) {
	if c.full {
		return
	}
	if len(c.errs) == MaxJSONFieldErrors-1 {
		c.errs = append(c.errs, FieldError{Message: fmt.Sprintf("more problems not listed: only the first %d are", MaxJSONFieldErrors-1)})
		c.full = true
		return
	}
	c.errs = append(c.errs, FieldError{Field: path, Message: fmt.Sprintf(format, args...)})
}

func (c *jsonChecker) token() (json.Token, bool) {
	tok, err := c.dec.Token()
	if err != nil {
		c.err = notObject("invalid JSON: %v", err)
		return nil, false
	}
	return tok, true
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	timeType        = reflect.TypeFor[time.Time]()
)

// value checks the next value of the document against t.
func (c *jsonChecker) value(t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(jsonUnmarshaler) {
		c.unmarshaler(t, path)
		return
	}
	tok, ok := c.token()
	if !ok || tok == nil { // null leaves the field unset
		return
	}
	switch {
	case pt.Implements(textUnmarshaler):
		s, ok := tok.(string)
		if !ok {
			c.mismatch(path, "a string", tok)
			return
		}
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			c.add(path, "invalid: %v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if tok != json.Delim('{') {
			c.mismatch(path, "an object", tok)
			return
		}
		c.object(t, path)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			c.bytes(path, tok)
			return
		}
		if tok != json.Delim('[') {
			c.mismatch(path, "a list", tok)
			return
		}
		for i := 0; !c.stopped() && c.dec.More(); i++ {
			c.value(t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
		if !c.stopped() {
			c.token() // ]
		}
	case reflect.String:
		if _, ok := tok.(string); !ok {
			c.mismatch(path, "a string", tok)
		}
	case reflect.Bool:
		if _, ok := tok.(bool); !ok {
			c.mismatch(path, "true or false", tok)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		c.integer(t, path, tok)
	case reflect.Float32, reflect.Float64:
		n, ok := tok.(json.Number)
		if !ok {
			c.mismatch(path, "a number", tok)
			return
		}
		if _, err := strconv.ParseFloat(string(n), t.Bits()); err != nil {
			c.add(path, "must be a number from -%g to %g", maxFloat(t.Bits()), maxFloat(t.Bits()))
		}
	}
}

func maxFloat(bits int) float64 {
	if bits == 32 {
		return math.MaxFloat32
	}
	return math.MaxFloat64
}

// integer checks a whole number against t's range, as encoding/json does:
// a fraction or an exponent is refused even when the value is whole.
func (c *jsonChecker) integer(t reflect.Type, path string, tok json.Token) {
	n, ok := tok.(json.Number)
	if !ok {
		c.mismatch(path, "a whole number", tok)
		return
	}
	s := string(n)
	if strings.ContainsAny(s, ".eE") {
		c.add(path, "must be a whole number, not %s", short(s))
		return
	}
	bits := t.Bits()
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if strings.HasPrefix(s, "-") {
			c.add(path, "must be a whole number of at least 0")
			return
		}
		if _, err := strconv.ParseUint(s, 10, bits); err != nil {
			c.add(path, "must be a whole number of at most %d", uint64(1)<<bits-1)
		}
	default:
		if _, err := strconv.ParseInt(s, 10, bits); err != nil {
			if strings.HasPrefix(s, "-") {
				c.add(path, "must be a whole number of at least %d", -int64(1)<<(bits-1))
			} else {
				c.add(path, "must be a whole number of at most %d", int64(1)<<(bits-1)-1)
			}
		}
	}
}

// bytes checks a []byte, which JSON carries as a base64 string.
func (c *jsonChecker) bytes(path string, tok json.Token) {
	s, ok := tok.(string)
	if !ok {
		c.mismatch(path, "a base64 string", tok)
		return
	}
	if _, err := base64.StdEncoding.DecodeString(s); err != nil {
		c.add(path, "must be base64 (RFC 4648, with padding)")
	}
}

// unmarshaler checks a value of a type that decodes itself (time.Time).
func (c *jsonChecker) unmarshaler(t reflect.Type, path string) {
	var raw json.RawMessage
	if err := c.dec.Decode(&raw); err != nil {
		c.err = notObject("invalid JSON: %v", err)
		return
	}
	if string(raw) == "null" { // leaves the field unset, as for any type
		return
	}
	err := reflect.New(t).Interface().(json.Unmarshaler).UnmarshalJSON(raw)
	switch {
	case err == nil:
	case t == timeType:
		c.add(path, "must be a date and time such as \"2026-01-02T15:04:05Z\" (RFC 3339)")
	default:
		c.add(path, "invalid: %v", err)
	}
}

// mismatch reports a value of the wrong JSON type and skips the rest of it.
// The message names the type it got, never the value, which may be a
// secret sent in the wrong form.
func (c *jsonChecker) mismatch(path, want string, tok json.Token) {
	var got string
	switch tok := tok.(type) {
	case json.Delim:
		if tok == '{' {
			got = "an object"
		} else {
			got = "a list"
		}
		c.skip()
	case string:
		got = "a string"
	case bool:
		got = "a boolean"
	case json.Number:
		got = "a number"
	}
	c.add(path, "must be %s, not %s", want, got)
}

// skip consumes the rest of an object or list whose opening token was read.
func (c *jsonChecker) skip() {
	for depth := 1; depth > 0; {
		tok, ok := c.token()
		if !ok {
			return
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
}

// skipValue consumes the next value, whatever it is.
func (c *jsonChecker) skipValue() {
	tok, ok := c.token()
	if ok && (tok == json.Delim('{') || tok == json.Delim('[')) {
		c.skip()
	}
}

// object checks the members of an object whose '{' was read against struct t.
func (c *jsonChecker) object(t reflect.Type, path string) {
	info := fieldsOf(t)
	seen := map[string]bool{}
	for !c.stopped() && c.dec.More() {
		tok, ok := c.token()
		if !ok {
			return
		}
		key, _ := tok.(string) // object keys are strings
		field := joinPath(path, key)
		ft, known := info.types[key]
		switch {
		case !known:
			if s := suggest(key, info.names); s != "" {
				c.add(field, "unknown field; did you mean %q?", s)
			} else {
				c.add(field, "unknown field; the fields here are %s", strings.Join(info.names, ", "))
			}
			c.skipValue()
		case seen[key]:
			c.add(field, "given more than once")
			c.skipValue()
		default:
			seen[key] = true
			c.value(ft, field)
		}
	}
	if !c.stopped() {
		c.token() // }
	}
}

// joinPath appends a member's name to a path; a name that is not a plain
// identifier, or is long, is quoted (and cut), so the path stays readable.
func joinPath(path, key string) string {
	plain := key != "" && len(key) <= 64 && strings.IndexFunc(key, func(r rune) bool {
		return !(r == '_' || r == '-' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0
	if !plain {
		key = strconv.Quote(short(key))
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// short cuts s to 64 bytes (at a character boundary), marking the cut.
func short(s string) string {
	if len(s) <= 64 {
		return s
	}
	cut := 64
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// suggest returns the known name closest to key, if one is close enough to
// be a slip of the keyboard or of case: one edit for names of up to five
// letters, two for longer ones.
func suggest(key string, names []string) string {
	if len(key) > 64 {
		return ""
	}
	lower := strings.ToLower(key)
	best, bestDist := "", 3
	for _, n := range names {
		if strings.EqualFold(key, n) {
			return n
		}
		if d := editDistance(lower, n); d < bestDist && d <= max(1, min(2, len(n)/3)) {
			best, bestDist = n, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b, in
// bytes: insertions, deletions, substitutions and swaps of neighbours.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// structFields is what DecodeJSON knows of a struct type: the JSON name of
// each field and its type, and the names in field order.
type structFields struct {
	types map[string]reflect.Type
	names []string
}

var fieldCache sync.Map // reflect.Type → *structFields

// fieldsOf returns the fields of a struct type that supported accepted.
func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{types: map[string]reflect.Type{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		name, ok := jsonName(sf)
		if !ok {
			continue
		}
		f.types[name] = sf.Type
		f.names = append(f.names, name)
	}
	fieldCache.Store(t, f)
	return f
}

// jsonName returns the name encoding/json gives a struct field, and false
// for a field it ignores.
func jsonName(sf reflect.StructField) (string, bool) {
	if !sf.IsExported() {
		return "", false
	}
	tag := sf.Tag.Get("json")
	if tag == "-" {
		return "", false
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		name = sf.Name
	}
	return name, true
}

var supportedCache sync.Map // reflect.Type → error (nil: supported)

// supported reports whether DecodeJSON can check values of type t against
// encoding/json's rules; see DecodeJSON for what it can.
func supported(t reflect.Type) error {
	if err, ok := supportedCache.Load(t); ok {
		if err == nil {
			return nil
		}
		return err.(error)
	}
	err := checkSupported(t, map[reflect.Type]bool{})
	supportedCache.Store(t, err)
	return err
}

func checkSupported(t reflect.Type, visiting map[reflect.Type]bool) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if pt := reflect.PointerTo(t); pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler) {
		return nil
	}
	if t == reflect.TypeFor[json.Number]() { // a string that encoding/json also fills from a number
		return fmt.Errorf("type %v is not supported", t)
	}
	if visiting[t] {
		return nil
	}
	visiting[t] = true
	switch t.Kind() {
	case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return nil
	case reflect.Slice:
		return checkSupported(t.Elem(), visiting)
	case reflect.Struct:
		names := map[string]bool{}
		for i := range t.NumField() {
			sf := t.Field(i)
			if sf.Anonymous {
				return fmt.Errorf("%v: embedded field %s is not supported", t, sf.Name)
			}
			name, ok := jsonName(sf)
			if !ok {
				continue
			}
			if names[name] {
				return fmt.Errorf("%v: two fields are named %q", t, name)
			}
			names[name] = true
			if _, opts, _ := strings.Cut(sf.Tag.Get("json"), ","); strings.Contains(","+opts+",", ",string,") {
				return fmt.Errorf("%v: field %s: the ,string option is not supported", t, sf.Name)
			}
			if err := checkSupported(sf.Type, visiting); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("type %v is not supported", t)
}
