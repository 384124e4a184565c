package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
)

// maxBody bounds every request body; configurations are a few KB.
const maxBody = 1 << 20

// errBadRequest marks errors in what the client sent (malformed JSON, a bad
// header); their message is safe to show.
var errBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// decodeJSON reads a request body, at most maxBody bytes, into v through
// validate.DecodeJSON: the one decoder of every route that takes a body. A
// body that is not one JSON object (empty, null, an array, malformed,
// followed by more data) is a bad request that says what it is; fields that
// do not fit v (unknown, of the wrong type, out of range) are a bodyError
// that names each. Either way v is left as it was, so a handler that returns
// the error writes nothing.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	_, err := readJSON(w, r, v)
	return err
}

// readJSON is decodeJSON that also returns the body it read.
func readJSON(w http.ResponseWriter, r *http.Request, v any) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, badRequest("body larger than %d bytes", maxBody)
		}
		return nil, fmt.Errorf("read request body: %w", err)
	}
	return data, decodeBody(data, v)
}

func decodeBody(data []byte, v any) error {
	err := validate.DecodeJSON(data, v)
	if errors.Is(err, validate.ErrNotJSONObject) {
		return badRequest("request body: %v", err)
	}
	if verrs, ok := validate.AsErrors(err); ok {
		return &bodyError{fields: verrs}
	}
	return err
}

// bodyError lists the fields of a request body that do not fit the
// request's type; it is answered like a validation error.
type bodyError struct {
	fields validate.Errors
}

func (e *bodyError) Error() string { return "invalid request body: " + e.fields.Error() }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v) // The client went away; nothing useful to do.
}

// writeError is the one place where errors become HTTP responses.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := s.errorResponse(err)
	switch status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="osprey", charset="UTF-8"`)
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "60")
	}
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, body)
}

func (s *Server) errorResponse(err error) (int, api.Error) {
	var (
		berr  *bodyError
		verrs validate.Errors
		serr  *sensorError
	)
	switch {
	case errors.As(err, &serr):
		return serr.status, api.Error{Message: serr.msg}
	case errors.As(err, &berr):
		return http.StatusBadRequest, api.Error{Message: "invalid request body", Fields: apiFields(berr.fields)}
	case errors.As(err, &verrs):
		return http.StatusBadRequest, api.Error{Message: "invalid configuration", Fields: apiFields(verrs)}
	case errors.Is(err, errBadRequest):
		return http.StatusBadRequest, api.Error{Message: err.Error()}
	case errors.Is(err, auth.ErrThrottled):
		return http.StatusTooManyRequests, api.Error{Message: "too many failed sign-ins for this user or from this address: try again in a minute"}
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized, api.Error{Message: "authentication required"}
	case errors.Is(err, errForbidden), errors.Is(err, store.ErrForbidden):
		return http.StatusForbidden, api.Error{Message: "forbidden: outside your role or tenant"}
	case errors.Is(err, store.ErrInvalidID):
		return http.StatusBadRequest, api.Error{Message: "invalid id: use lower-case letters, digits, '-', '_' and '.', at most 63"}
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, api.Error{Message: "not found"}
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, api.Error{Message: "version conflict: the resource changed since it was read; read it again"}
	case errors.Is(err, store.ErrExists):
		return http.StatusConflict, api.Error{Message: "already exists"}
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable, api.Error{Message: "the configuration store has no quorum (too few etcd members reachable): retry later, or through another node"}
	case errors.Is(err, sqlstore.ErrUnavailable):
		return http.StatusServiceUnavailable, api.Error{Message: "the message store (SQL database) is unreachable: retry later"}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, api.Error{Message: "the configuration store did not answer in time (is the etcd quorum reachable?)"}
	default:
		return http.StatusInternalServerError, api.Error{Message: "internal error"}
	}
}

func apiFields(verrs validate.Errors) []api.FieldError {
	fields := make([]api.FieldError, 0, len(verrs))
	for _, fe := range verrs {
		fields = append(fields, api.FieldError{Field: fe.Field, Message: fe.Message})
	}
	return fields
}

// errForbidden is a role check failing in a handler (the store checks tenants).
var errForbidden = errors.New("forbidden")
