package rspamd

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// An answer of rspamd 3.4 to a message without Message-ID and Date.
const answer34 = `{"is_skipped":false,"score":3.400000,"required_score":15.0,"action":"no action","symbols":{` +
	`"ARC_NA":{"name":"ARC_NA","score":0.0,"metric_score":0.0,"description":"ARC signature absent"},` +
	`"MISSING_MID":{"name":"MISSING_MID","score":2.500000,"metric_score":2.500000,"description":"Message id is missing"},` +
	`"MISSING_DATE":{"name":"MISSING_DATE","score":1.0,"metric_score":1.0,"description":"Message date is missing"},` +
	`"MIME_GOOD":{"name":"MIME_GOOD","score":-0.100000,"metric_score":-0.100000,"description":"Known content-type","options":["text/plain"]}},` +
	`"messages":{},"message-id":"undef","time_real":0.067252,"milter":{"remove_headers":{"X-Spam":0}}}`

func TestResult(t *testing.T) {
	tests := []struct {
		name       string
		json       string
		maxSymbols int
		want       *ospreyv1.SpamResult
		wantErr    string
	}{
		{"all symbols, largest scores first", answer34, 10, &ospreyv1.SpamResult{Score: 3.4, RequiredScore: 15, Action: "no action",
			Symbols: []*ospreyv1.SpamSymbol{{Name: "MISSING_MID", Score: 2.5}, {Name: "MISSING_DATE", Score: 1}, {Name: "MIME_GOOD", Score: -0.1}, {Name: "ARC_NA"}}}, ""},
		{"bounded", answer34, 1, &ospreyv1.SpamResult{Score: 3.4, RequiredScore: 15, Action: "no action",
			Symbols: []*ospreyv1.SpamSymbol{{Name: "MISSING_MID", Score: 2.5}}}, ""},
		{"name from the key", `{"score":1,"required_score":15,"action":"no action","symbols":{"X":{"score":1}}}`, 10,
			&ospreyv1.SpamResult{Score: 1, RequiredScore: 15, Action: "no action", Symbols: []*ospreyv1.SpamSymbol{{Name: "X", Score: 1}}}, ""},
		{"long names cut", `{"action":"` + strings.Repeat("a", 300) + `","symbols":{"` + strings.Repeat("é", 100) + `":{}}}`, 10,
			&ospreyv1.SpamResult{Action: strings.Repeat("a", maxName), Symbols: []*ospreyv1.SpamSymbol{{Name: strings.Repeat("é", maxName/2)}}}, ""},
		{"not json", `<html>`, 10, nil, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := decode(strings.NewReader(tt.json))
			var got *ospreyv1.SpamResult
			if err == nil {
				got, err = result(a, tt.maxSymbols)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzAnswer: whatever rspamd (or whatever stands at its address)
// answers, decoding ends in an error or a bounded, finite result.
func FuzzAnswer(f *testing.F) {
	f.Add([]byte(answer34))
	f.Add([]byte(`{"score":15,"required_score":15,"action":"reject","symbols":{"GTUBE":{"name":"GTUBE","score":0}}}`))
	f.Add([]byte(`{"error":"bad request"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := decode(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		res, err := result(a, 5)
		if err != nil {
			return
		}
		if len(res.GetSymbols()) > 5 || len(res.GetAction()) > maxName {
			t.Fatalf("unbounded result: %d symbols, action of %d bytes", len(res.GetSymbols()), len(res.GetAction()))
		}
		for _, s := range res.GetSymbols() {
			if s.GetName() == "" || len(s.GetName()) > maxName || math.IsNaN(s.GetScore()) || math.IsInf(s.GetScore(), 0) {
				t.Fatalf("bad symbol %v", s)
			}
		}
	})
}
