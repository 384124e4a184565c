package sensorrpc

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestQueueListRequest(t *testing.T) {
	for _, c := range []struct {
		name  string
		query string
		want  *ospreyv1.QueueListRequest
		// errs are the fields named by the errors, in order.
		errs []string
	}{
		{name: "nothing", query: "", want: &ospreyv1.QueueListRequest{}},
		{
			name:  "everything",
			query: "state=held&sender=alice@&recipient=bob@&next_hop=route:example.com&min_age=15m&max_age=4h&limit=50&page_token=abc",
			want: &ospreyv1.QueueListRequest{State: ospreyv1.QueueState_QUEUE_STATE_HELD, Sender: "alice@", Recipient: "bob@",
				NextHop: "route:example.com", MinAge: durationpb.New(15 * time.Minute), MaxAge: durationpb.New(4 * time.Hour),
				Limit: 50, PageToken: "abc"},
		},
		{
			name:  "every field wrong",
			query: "state=stuck&sender=" + strings.Repeat("a", 257) + "&min_age=soon&max_age=-1s&limit=1001",
			errs:  []string{"state", "sender", "min_age", "max_age", "limit"},
		},
		{name: "max below min", query: "min_age=4h&max_age=15m", errs: []string{"max_age"}},
		{name: "limit zero", query: "limit=0", errs: []string{"limit"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, err := url.ParseQuery(c.query)
			if err != nil {
				t.Fatal(err)
			}
			got, errs := QueueListRequest(v)
			var fields []string
			for _, e := range errs {
				fields = append(fields, e.Field)
			}
			if diff := cmp.Diff(c.errs, fields); diff != "" {
				t.Errorf("fields in error (-want +got):\n%s\n%v", diff, errs)
			}
			if c.want != nil {
				if diff := cmp.Diff(c.want, got, protocmp.Transform()); diff != "" {
					t.Errorf("request (-want +got):\n%s", diff)
				}
			}
		})
	}
}
