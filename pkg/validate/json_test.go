package validate_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/pkg/validate"
)

// sample has a field of every kind DecodeJSON supports.
type sample struct {
	Name    string        `json:"name"`
	Unit    sampleUnit    `json:"unit,omitempty"`
	On      bool          `json:"on"`
	Count   uint32        `json:"count"`
	Size    uint64        `json:"size"`
	Version int64         `json:"version"`
	Small   int8          `json:"small"`
	Ratio   float32       `json:"ratio"`
	List    []string      `json:"list"`
	Limit   *sampleLimit  `json:"limit,omitempty"`
	Inner   sampleLimit   `json:"inner"`
	Items   []sampleLimit `json:"items"`
	At      time.Time     `json:"at,omitzero"`
	When    *time.Time    `json:"when,omitempty"`
	Blob    []byte        `json:"blob,omitempty"`
	Addr    netip.Addr    `json:"addr,omitzero"`
	Ignored string        `json:"-"`
	NoTag   string
}

type sampleUnit string

type sampleLimit struct {
	Value uint64 `json:"value"`
	Unit  string `json:"unit"`
}

var sampleCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func TestDecodeJSONAcceptsWhatFits(t *testing.T) {
	data := `{
		"name": "n", "unit": "MB", "on": true, "count": 4294967295, "size": 18446744073709551615,
		"version": -9223372036854775808, "small": -128, "ratio": 0.5, "list": ["a", "b"],
		"limit": {"value": 25, "unit": "MB"}, "inner": {"value": 0}, "items": [{"unit": "KB"}],
		"at": "2026-01-02T15:04:05Z", "when": null, "blob": "aGk=", "addr": "192.0.2.1", "NoTag": "x"
	}`
	var got sample
	if err := validate.DecodeJSON([]byte(data), &got); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	want := sample{
		Name: "n", Unit: "MB", On: true, Count: 4294967295, Size: 18446744073709551615,
		Version: -9223372036854775808, Small: -128, Ratio: 0.5, List: []string{"a", "b"},
		Limit: &sampleLimit{Value: 25, Unit: "MB"}, Items: []sampleLimit{{Unit: "KB"}},
		At: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), Blob: []byte("hi"), Addr: netip.MustParseAddr("192.0.2.1"), NoTag: "x",
	}
	if diff := cmp.Diff(want, got, sampleCmp); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	// What the document leaves out is zero, whatever v held.
	got = sample{Name: "before", Count: 7}
	if err := validate.DecodeJSON([]byte(`{"count":3}`), &got); err != nil || !cmp.Equal(got, sample{Count: 3}, sampleCmp) {
		t.Errorf("decoding {\"count\":3} over a value: got %+v, %v; want only count set", got, err)
	}
	// null leaves any field unset; an empty object sets nothing.
	for _, data := range []string{`{}`, ` {} `, `{"name":null,"limit":null,"list":null,"at":null,"when":null,"blob":null,"addr":null,"inner":null,"count":null}`} {
		var got sample
		if err := validate.DecodeJSON([]byte(data), &got); err != nil {
			t.Errorf("%s: got %v, want nil", data, err)
		}
	}
}

func TestDecodeJSONRefusesWhatIsNotOneObject(t *testing.T) {
	tests := []struct{ data, want string }{
		{``, "want a JSON object, got nothing"},
		{" \n\t ", "want a JSON object, got nothing"},
		{`null`, "want a JSON object, got null"},
		{` null `, "want a JSON object, got null"},
		{`[]`, "want a JSON object, got a list (JSON array)"},
		{`[{"name":"x"}]`, "want a JSON object, got a list (JSON array)"},
		{`"x"`, "want a JSON object, got a string"},
		{`-3`, "want a JSON object, got a number"},
		{`false`, "want a JSON object, got true or false"},
		{`{}{}`, "want one JSON object, got more data after it at line 1, column 3"},
		{"{}\n  x", "want one JSON object, got more data after it at line 2, column 3"},
		{`{"name":`, "invalid JSON: the data ends inside a value"},
		{`{"name" "x"}`, "invalid JSON at line 1, column 9: invalid character '\"' after object key"},
		{"{\n \"name\": x}", "invalid JSON at line 2, column 10: invalid character 'x' looking for beginning of value"},
		{`enabled=true`, "invalid JSON at line 1, column 1: invalid character 'e' looking for beginning of value"},
	}
	for _, tt := range tests {
		t.Run(tt.data, func(t *testing.T) {
			got := sample{Name: "kept"}
			err := validate.DecodeJSON([]byte(tt.data), &got)
			if !errors.Is(err, validate.ErrNotJSONObject) {
				t.Fatalf("got %v, want an error matching ErrNotJSONObject", err)
			}
			if err.Error() != tt.want {
				t.Errorf("got %q, want %q", err, tt.want)
			}
			if got.Name != "kept" {
				t.Errorf("the value was changed: name %q", got.Name)
			}
		})
	}
}

func TestDecodeJSONFieldErrors(t *testing.T) {
	tests := []struct {
		name, data string
		want       validate.Errors
	}{
		{"negative into unsigned", `{"size":-3}`, validate.Errors{{Field: "size", Message: "must be a whole number of at least 0"}}},
		{"nested path", `{"limit":{"value":-3,"unit":"MB"}}`, validate.Errors{{Field: "limit.value", Message: "must be a whole number of at least 0"}}},
		{"overflow", `{"count":4294967296}`, validate.Errors{{Field: "count", Message: "must be a whole number of at most 4294967295"}}},
		{"overflow 64 bits", `{"size":18446744073709551616}`, validate.Errors{{Field: "size", Message: "must be a whole number of at most 18446744073709551615"}}},
		{"signed overflow", `{"small":-129}`, validate.Errors{{Field: "small", Message: "must be a whole number of at least -128"}}},
		{"signed overflow up", `{"version":9223372036854775808}`, validate.Errors{{Field: "version", Message: "must be a whole number of at most 9223372036854775807"}}},
		{"fraction", `{"count":1.5}`, validate.Errors{{Field: "count", Message: "must be a whole number, not 1.5"}}},
		{"exponent", `{"count":1e3}`, validate.Errors{{Field: "count", Message: "must be a whole number, not 1e3"}}},
		{"number as string", `{"count":"5"}`, validate.Errors{{Field: "count", Message: "must be a whole number, not a string"}}},
		{"float overflow", `{"ratio":1e39}`, validate.Errors{{Field: "ratio", Message: "must be a number from -3.4028234663852886e+38 to 3.4028234663852886e+38"}}},
		{"float as bool", `{"ratio":true}`, validate.Errors{{Field: "ratio", Message: "must be a number, not a boolean"}}},
		{"string as number", `{"name":5}`, validate.Errors{{Field: "name", Message: "must be a string, not a number"}}},
		{"named string as object", `{"unit":{"a":[1,{}]},"name":"after"}`, validate.Errors{{Field: "unit", Message: "must be a string, not an object"}}},
		{"bool as string", `{"on":"yes"}`, validate.Errors{{Field: "on", Message: "must be true or false, not a string"}}},
		{"list entries", `{"list":["a",2,{"x":1},null,false]}`, validate.Errors{
			{Field: "list[1]", Message: "must be a string, not a number"},
			{Field: "list[2]", Message: "must be a string, not an object"},
			{Field: "list[4]", Message: "must be a string, not a boolean"},
		}},
		{"list as string", `{"list":"a"}`, validate.Errors{{Field: "list", Message: "must be a list, not a string"}}},
		{"object as list", `{"limit":[1,[2]]}`, validate.Errors{{Field: "limit", Message: "must be an object, not a list"}}},
		{"typo in a list of objects", `{"items":[{"value":1},{"valeu":2}]}`, validate.Errors{{Field: "items[1].valeu", Message: `unknown field; did you mean "value"?`}}},
		{"wrong case", `{"Name":"x"}`, validate.Errors{{Field: "Name", Message: `unknown field; did you mean "name"?`}}},
		{"unknown", `{"inner":{"zzz":1}}`, validate.Errors{{Field: "inner.zzz", Message: "unknown field; the fields here are value, unit"}}},
		{"odd name", `{"a b":{"c":[1]}}`, validate.Errors{{Field: `"a b"`, Message: "unknown field; the fields here are name, unit, on, count, size, version, small, ratio, list, limit, inner, items, at, when, blob, addr, NoTag"}}},
		{"ignored field", `{"Ignored":"x"}`, validate.Errors{{Field: "Ignored", Message: "unknown field; the fields here are name, unit, on, count, size, version, small, ratio, list, limit, inner, items, at, when, blob, addr, NoTag"}}},
		{"twice", `{"name":"a","name":"b"}`, validate.Errors{{Field: "name", Message: "given more than once"}}},
		{"time", `{"at":"yesterday"}`, validate.Errors{{Field: "at", Message: `must be a date and time such as "2026-01-02T15:04:05Z" (RFC 3339)`}}},
		{"time pointer", `{"when":5}`, validate.Errors{{Field: "when", Message: `must be a date and time such as "2026-01-02T15:04:05Z" (RFC 3339)`}}},
		{"text unmarshaler", `{"addr":"192.0.2.300"}`, validate.Errors{{Field: "addr", Message: `invalid: ParseAddr("192.0.2.300"): IPv4 field has value >255`}}},
		{"text unmarshaler not a string", `{"addr":[1]}`, validate.Errors{{Field: "addr", Message: "must be a string, not a list"}}},
		{"base64", `{"blob":"!!"}`, validate.Errors{{Field: "blob", Message: "must be base64 (RFC 4648, with padding)"}}},
		{"every problem at once, in order", `{"lsit":1,"count":-1,"limit":{"value":"x","unit":2},"on":1}`, validate.Errors{
			{Field: "lsit", Message: `unknown field; did you mean "list"?`},
			{Field: "count", Message: "must be a whole number of at least 0"},
			{Field: "limit.value", Message: "must be a whole number, not a string"},
			{Field: "limit.unit", Message: "must be a string, not a number"},
			{Field: "on", Message: "must be true or false, not a number"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sample{Name: "kept"}
			err := validate.DecodeJSON([]byte(tt.data), &got)
			errs, ok := validate.AsErrors(err)
			if !ok {
				t.Fatalf("got %v, want field errors", err)
			}
			if diff := cmp.Diff(tt.want, errs); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if got.Name != "kept" {
				t.Errorf("the value was changed: name %q", got.Name)
			}
		})
	}
}

func TestDecodeJSONBoundsTheErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 1000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"f%d":[{"x":1}]`, i)
	}
	b.WriteString("}")
	var v sample
	errs, ok := validate.AsErrors(validate.DecodeJSON([]byte(b.String()), &v))
	if !ok || len(errs) != validate.MaxJSONFieldErrors {
		t.Fatalf("got %d errors, want %d", len(errs), validate.MaxJSONFieldErrors)
	}
	if last := errs[len(errs)-1]; last.Field != "" || !strings.Contains(last.Message, "more problems not listed") {
		t.Errorf("the last error is %+v, want one saying there are more", last)
	}
}

func TestDecodeJSONUnsupportedTypes(t *testing.T) {
	type embedded struct{ sampleLimit }
	type withMap struct {
		M map[string]string `json:"m"`
	}
	type withString struct {
		N int `json:"n,string"`
	}
	type twice struct {
		A string // named "A" by encoding/json, as B is by its tag
		B string `json:"A"`
	}
	for _, v := range []any{&embedded{}, &withMap{}, &withString{}, &twice{}, sample{}, (*sample)(nil), new(int)} {
		err := validate.DecodeJSON([]byte(`{}`), v)
		if _, isFields := validate.AsErrors(err); err == nil || isFields || errors.Is(err, validate.ErrNotJSONObject) {
			t.Errorf("%T: got %v, want an error that is neither field errors nor ErrNotJSONObject", v, err)
		}
	}
}

func ExampleDecodeJSON() {
	var limit struct {
		Unlimited bool   `json:"unlimited"`
		Value     uint64 `json:"value"`
		Unit      string `json:"unit"`
	}
	err := validate.DecodeJSON([]byte(`{"value": -3, "Unit": "MB", "unlimted": false}`), &limit)
	fmt.Println(err)
	err = validate.DecodeJSON([]byte(`null`), &limit)
	fmt.Println(err)
	// Output:
	// value: must be a whole number of at least 0; Unit: unknown field; did you mean "unit"?; unlimted: unknown field; did you mean "unlimited"?
	// want a JSON object, got null
}

// FuzzDecodeJSON holds DecodeJSON to encoding/json: what it accepts,
// encoding/json accepts too and decodes to the same value; what it refuses
// with field errors while encoding/json accepts is only a name in the wrong
// case or given twice, where it is stricter on purpose.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"name":"n","count":3,"list":["a"],"limit":{"value":1}}`,
		`{"size":-3}`, `{"count":4294967296}`, `{"Name":"x"}`, `{"name":"a","name":"b"}`,
		`{"at":"2026-01-02T15:04:05Z","when":null,"blob":"aGk=","addr":"::1"}`,
		`{"items":[{"value":1},{"valeu":2}]}`, `{"ratio":1e39}`, `{} x`, `{"name":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := sample{}
		err := validate.DecodeJSON(data, &got)
		var want sample
		stdErr := strictDecode(data, &want)
		errs, isFields := validate.AsErrors(err)
		switch {
		case err == nil:
			if stdErr != nil {
				t.Fatalf("DecodeJSON accepted %q, which encoding/json refuses: %v", data, stdErr)
			}
			if diff := cmp.Diff(want, got, sampleCmp); diff != "" {
				t.Fatalf("DecodeJSON and encoding/json decode %q differently (-json +DecodeJSON):\n%s", data, diff)
			}
		case errors.Is(err, validate.ErrNotJSONObject):
			if stdErr == nil && string(bytes.Trim(data, " \t\r\n")) != "null" {
				t.Fatalf("DecodeJSON refused %q as not an object (%v); encoding/json decodes it", data, err)
			}
		case isFields:
			if len(errs) == 0 || len(errs) > validate.MaxJSONFieldErrors {
				t.Fatalf("%d field errors", len(errs))
			}
			if stdErr != nil {
				return
			}
			for _, e := range errs {
				if e.Message != "given more than once" && !strings.HasPrefix(e.Message, "unknown field; did you mean ") {
					t.Fatalf("DecodeJSON refused %q (%v: %s); encoding/json decodes it", data, e.Field, e.Message)
				}
			}
		default:
			t.Fatalf("DecodeJSON(%q): an error of neither kind: %v", data, err)
		}
	})
}

// strictDecode is encoding/json at its strictest: one value, no unknown
// fields, nothing after it.
func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if len(bytes.TrimLeft(data[dec.InputOffset():], " \t\r\n")) > 0 {
		return errors.New("data after the value")
	}
	return nil
}
