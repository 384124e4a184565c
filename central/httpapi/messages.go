package httpapi

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/pkg/validate"
)

// listMessages answers one page of the records of uploaded messages, with
// their verdicts and alert ids.
func (s *Server) listMessages(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	v, err := queryParams(r, "tenant", "sensor", "page_token", "limit")
	if err != nil {
		return err
	}
	limit, err := limitParam(v)
	if err != nil {
		return err
	}
	page, err := s.messages.ListMessages(r.Context(), scope(p), sqlstore.MessageQuery{
		Tenant: v.Get("tenant"), SensorID: v.Get("sensor"), PageToken: v.Get("page_token"), Limit: limit,
	})
	if err != nil {
		return err
	}
	out := api.MessageList{Messages: make([]api.MessageRecord, 0, len(page.Messages)), NextPageToken: page.NextPageToken}
	for _, m := range page.Messages {
		out.Messages = append(out.Messages, convert.MessageFromProto(m))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// queryParams returns the request's query parameters, refusing any not in
// known (a misspelt filter would otherwise be silently ignored) and any
// given twice.
func queryParams(r *http.Request, known ...string) (url.Values, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("query: %v", err)
	}
	var errs validate.Errors
	for name, vals := range v {
		switch {
		case !contains(known, name):
			errs = append(errs, validate.FieldError{Field: name, Message: "unknown query parameter"})
		case len(vals) > 1:
			errs = append(errs, validate.FieldError{Field: name, Message: "given more than once"})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return v, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// limitParam parses the limit parameter of a paged list (0 when absent).
func limitParam(v url.Values) (int, error) {
	s := v.Get("limit")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > sqlstore.MaxPageLimit {
		return 0, validate.Errors{{Field: "limit", Message: "must be a number from 1 to " + strconv.Itoa(sqlstore.MaxPageLimit)}}
	}
	return n, nil
}
