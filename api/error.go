package api

import (
	"fmt"
	"strconv"
	"strings"
)

// FieldError is one problem with one field of a request, named by its JSON path
// ("clients[1]", "max_message_size.unit").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the body of every error response: {"error": "...", "fields": [...]}, with Fields
// only for validation errors. The client returns it, with the response's status code, for
// every response that is not a success, so callers can use errors.As:
//
//	var apiErr *api.Error
//	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusConflict { ... }
type Error struct {
	// StatusCode is the HTTP status of the response; it is not part of the JSON body.
	StatusCode int          `json:"-"`
	Message    string       `json:"error"`
	Fields     []FieldError `json:"fields,omitempty"`
}

// Error returns the message, then each field error, then the status code when it is known.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field)
		b.WriteString(": ")
		b.WriteString(f.Message)
	}
	if e.StatusCode != 0 {
		b.WriteString(" (status ")
		b.WriteString(strconv.Itoa(e.StatusCode))
		b.WriteString(")")
	}
	return b.String()
}

// FormatETag returns the ETag of a configuration version: the etcd revision as a quoted string.
func FormatETag(version int64) string {
	return `"` + strconv.FormatInt(version, 10) + `"`
}

// ParseETag returns the version in an ETag made by [FormatETag].
func ParseETag(etag string) (int64, error) {
	s, ok := strings.CutPrefix(etag, `"`)
	if ok {
		s, ok = strings.CutSuffix(s, `"`)
	}
	if !ok {
		return 0, fmt.Errorf("etag %q is not a quoted version", etag)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("etag %q is not a quoted version", etag)
	}
	return v, nil
}
