package sensorrpc

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Bounds of a queue listing's parameters.
const (
	MaxQueueLimit = 1000
	maxQueueText  = 256
)

// QueueListRequest reads the listing of a gateway's queue from its query
// parameters, as the API (GET /api/v1/sensors/{id}/queue) and the UI's
// filter name them: state, sender, recipient, next_hop, min_age and
// max_age (durations such as "15m"), limit and page_token. A parameter
// that cannot be read is a field error naming it; every one is reported.
func QueueListRequest(v url.Values) (*ospreyv1.QueueListRequest, validate.Errors) {
	var errs validate.Errors
	bad := func(field, msg string) { errs = append(errs, validate.FieldError{Field: field, Message: msg}) }
	req := &ospreyv1.QueueListRequest{Sender: v.Get("sender"), Recipient: v.Get("recipient"), NextHop: v.Get("next_hop"), PageToken: v.Get("page_token")}
	state, err := convert.QueueStateToProto(api.QueueState(v.Get("state")))
	if err != nil {
		bad("state", err.Error())
	}
	req.State = state
	for _, f := range []struct{ field, text string }{
		{"sender", req.Sender}, {"recipient", req.Recipient}, {"next_hop", req.NextHop}, {"page_token", req.PageToken},
	} {
		if len(f.text) > maxQueueText {
			bad(f.field, fmt.Sprintf("must be at most %d bytes long", maxQueueText))
		}
	}
	for _, f := range []struct {
		field string
		dst   **durationpb.Duration
	}{{"min_age", &req.MinAge}, {"max_age", &req.MaxAge}} {
		text := v.Get(f.field)
		if text == "" {
			continue
		}
		d, err := time.ParseDuration(text)
		if err != nil || d < 0 {
			bad(f.field, `must be a duration such as "90s", "15m" or "4h"`)
			continue
		}
		*f.dst = durationpb.New(d)
	}
	if req.MinAge != nil && req.MaxAge != nil && req.MaxAge.AsDuration() < req.MinAge.AsDuration() {
		bad("max_age", "must not be less than min_age")
	}
	if text := v.Get("limit"); text != "" {
		n, err := strconv.Atoi(text)
		if err != nil || n < 1 || n > MaxQueueLimit {
			bad("limit", fmt.Sprintf("must be a number from 1 to %d", MaxQueueLimit))
		}
		req.Limit = uint32(min(max(n, 0), MaxQueueLimit))
	}
	return req, errs
}
