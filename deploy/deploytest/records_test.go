package deploytest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/internal/testwait"
)

// record is what the test reads of a central's message record.
type record struct {
	MessageID  string
	SensorID   string
	Node       string
	MailFrom   string
	UploadedAt time.Time
}

// apiRecord decodes a MessageRecord of GET /api/v1/messages, in protojson's
// lowerCamelCase names or the proto names.
type apiRecord struct {
	MessageID   string    `json:"messageId"`
	MessageID2  string    `json:"message_id"`
	SensorID    string    `json:"sensorId"`
	SensorID2   string    `json:"sensor_id"`
	Node        string    `json:"node"`
	UploadedAt  time.Time `json:"uploadedAt"`
	UploadedAt2 time.Time `json:"uploaded_at"`
	Envelope    struct {
		MailFrom  string `json:"mailFrom"`
		MailFrom2 string `json:"mail_from"`
	} `json:"envelope"`
}

func (r apiRecord) record() record {
	or := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	at := r.UploadedAt
	if at.IsZero() {
		at = r.UploadedAt2
	}
	return record{MessageID: or(r.MessageID, r.MessageID2), SensorID: or(r.SensorID, r.SensorID2), Node: r.Node,
		MailFrom: or(r.Envelope.MailFrom, r.Envelope.MailFrom2), UploadedAt: at}
}

// records pages through GET /api/v1/messages?tenant=default on central n:
// every message record of the cluster, which the nodes keep in the
// PostgreSQL they share.
func (c *cluster) records(ctx context.Context, n string) ([]record, error) {
	var out []record
	token := ""
	for {
		q := url.Values{"tenant": {"default"}, "limit": {"500"}}
		if token != "" {
			q.Set("page_token", token)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+c.hqIP(n)+":8443/api/v1/messages?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Accept", "application/json")
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, err
		}
		var page struct {
			Messages       []apiRecord `json:"messages"`
			NextPageToken  string      `json:"nextPageToken"`
			NextPageToken2 string      `json:"next_page_token"`
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("GET /api/v1/messages on %s: %s", n, resp.Status)
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("GET /api/v1/messages on %s: %w", n, err)
		}
		for _, m := range page.Messages {
			out = append(out, m.record())
		}
		if token = page.NextPageToken + page.NextPageToken2; token == "" {
			return out, nil
		}
	}
}

// delivery is what a scenario's senders delivered, as the cluster recorded it.
type delivery struct {
	accepted, failedTries, failedRecorded int
	late                                  int // recorded more than 10 s after the 250
	median, p99, max                      time.Duration
}

// checkRecorded waits until every try the senders got a 250 for is
// recorded, then checks that each is recorded exactly once, that a try
// without a 250 is recorded at most once (its data may have reached a
// spool before the answer was lost), and that nothing else carries the
// senders' prefixes.
func (c *cluster) checkRecorded(t *testing.T, via string, senders ...*sender) delivery {
	t.Helper()
	accepted := map[string]time.Time{}
	failed := map[string]string{}
	for _, s := range senders {
		s.mu.Lock()
		for k, v := range s.accepted {
			accepted[k] = v
		}
		for k, v := range s.failed {
			failed[k] = v
		}
		s.mu.Unlock()
	}
	mine := func(from string) bool {
		return slices.ContainsFunc(senders, func(s *sender) bool { return strings.HasPrefix(from, s.run+"-") })
	}
	var byFrom map[string][]record
	var missing []string
	var err error
	defer func() {
		if err != nil || len(missing) > 0 {
			t.Logf("records through %s: the last read: %v; answered 250 but not recorded: %v", via, err, missing)
		}
	}()
	testwait.For(t, fmt.Sprintf("the %d tries answered 250 recorded through %s", len(accepted), via), func() bool {
		var recs []record
		if recs, err = c.records(t.Context(), via); err != nil {
			return false
		}
		byFrom = map[string][]record{}
		for _, r := range recs {
			if mine(r.MailFrom) {
				byFrom[r.MailFrom] = append(byFrom[r.MailFrom], r)
			}
		}
		missing = missing[:0]
		for from := range accepted {
			if len(byFrom[from]) == 0 {
				missing = append(missing, from)
			}
		}
		return len(missing) == 0
	})
	var d delivery
	var delays []time.Duration
	for from, at := range accepted {
		d.accepted++
		switch rs := byFrom[from]; len(rs) {
		case 0:
			t.Errorf("%s was answered 250 but never recorded", from)
		case 1:
			delay := rs[0].UploadedAt.Sub(at)
			delays = append(delays, delay)
			if delay > 10*time.Second {
				d.late++
			}
		default:
			t.Errorf("%s was answered 250 once and recorded %d times: %+v", from, len(rs), rs)
		}
	}
	for from, why := range failed {
		d.failedTries++
		switch n := len(byFrom[from]); {
		case n == 1:
			d.failedRecorded++
			t.Logf("%s (no 250: %s) was recorded: its data reached a spool before the answer was lost", from, why)
		case n > 1:
			t.Errorf("%s (no 250) recorded %d times", from, n)
		}
	}
	for from := range byFrom {
		if _, ok := accepted[from]; !ok {
			if _, ok := failed[from]; !ok {
				t.Errorf("%s recorded, but the client never sent it", from)
			}
		}
	}
	if len(delays) > 0 {
		slices.Sort(delays)
		d.median, d.p99, d.max = delays[len(delays)/2], delays[min(len(delays)-1, len(delays)*99/100)], delays[len(delays)-1]
	}
	return d
}

func (d delivery) String() string {
	return fmt.Sprintf("%d accepted (250) and recorded once; %d tries refused or cut (%d of them recorded); 250 → recorded: median %v, p99 %v, max %v; %d later than 10 s",
		d.accepted, d.failedTries, d.failedRecorded, d.median.Round(time.Millisecond), d.p99.Round(time.Millisecond), d.max.Round(time.Millisecond), d.late)
}
