package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestScanRequests(t *testing.T) {
	type req struct {
		Method, Path, Query, IfMatch, Body string
	}
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		call func(ctx context.Context, c *Client) error
		body string
		want req
	}{
		{"list rules", func(ctx context.Context, c *Client) error { _, err := c.Rules(ctx, "acme"); return err },
			`{"rules":[]}`, req{Method: "GET", Path: "/api/v1/tenants/acme/rules"}},
		{"get rule escaped", func(ctx context.Context, c *Client) error { _, err := c.Rule(ctx, "a/b", "r 1"); return err },
			`{}`, req{Method: "GET", Path: "/api/v1/tenants/a%2Fb/rules/r%201"}},
		{"create rule", func(ctx context.Context, c *Client) error {
			_, err := c.CreateRule(ctx, "acme", Rule{Kind: RuleAttachmentExtension, Value: "exe", Severity: SeverityHigh})
			return err
		}, `{}`, req{Method: "POST", Path: "/api/v1/tenants/acme/rules", Body: `{"kind":"attachment_extension","value":"exe","severity":"high"}`}},
		{"update rule with a version", func(ctx context.Context, c *Client) error {
			_, err := c.UpdateRule(ctx, "acme", Rule{ID: "r1", Kind: RuleMD5, Value: "x", Severity: SeverityLow, Disabled: true}, 9)
			return err
		}, `{}`, req{Method: "PUT", Path: "/api/v1/tenants/acme/rules/r1", IfMatch: `"9"`,
			Body: `{"id":"r1","kind":"md5","value":"x","severity":"low","disabled":true}`}},
		{"delete rule", func(ctx context.Context, c *Client) error { return c.DeleteRule(ctx, "acme", "r1", 0) },
			`{}`, req{Method: "DELETE", Path: "/api/v1/tenants/acme/rules/r1"}},
		{"alerts with every filter", func(ctx context.Context, c *Client) error {
			_, err := c.Alerts(ctx, AlertQuery{Tenant: "acme", Severity: SeverityHigh, Since: since, Sensor: "s1", Q: "invoice zip", PageToken: "tok", Limit: 20})
			return err
		}, `{"alerts":[]}`, req{Method: "GET", Path: "/api/v1/alerts",
			Query: "limit=20&page_token=tok&q=invoice+zip&sensor=s1&severity=high&since=2026-01-02T03%3A04%3A05Z&tenant=acme"}},
		{"alerts", func(ctx context.Context, c *Client) error { _, err := c.Alerts(ctx, AlertQuery{}); return err },
			`{"alerts":[]}`, req{Method: "GET", Path: "/api/v1/alerts"}},
		{"alert", func(ctx context.Context, c *Client) error { _, err := c.Alert(ctx, "acme", "00-11"); return err },
			`{}`, req{Method: "GET", Path: "/api/v1/alerts/00-11", Query: "tenant=acme"}},
		{"messages", func(ctx context.Context, c *Client) error {
			_, err := c.Messages(ctx, MessageQuery{Sensor: "s1", Limit: 500})
			return err
		}, `{"messages":[]}`, req{Method: "GET", Path: "/api/v1/messages", Query: "limit=500&sensor=s1"}},
		{"get export", func(ctx context.Context, c *Client) error { _, _, err := c.Export(ctx, "acme"); return err },
			`{}`, req{Method: "GET", Path: "/api/v1/tenants/acme/export"}},
		{"put export", func(ctx context.Context, c *Client) error {
			_, _, err := c.PutExport(ctx, "acme", &SyslogExport{Enabled: true, Address: "siem:514"}, 3)
			return err
		}, `{}`, req{Method: "PUT", Path: "/api/v1/tenants/acme/export", IfMatch: `"3"`,
			Body: `{"enabled":true,"address":"siem:514","tls":false,"facility":0}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got req
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				q, _ := url.ParseQuery(r.URL.RawQuery)
				got = req{Method: r.Method, Path: r.URL.EscapedPath(), Query: q.Encode(), IfMatch: r.Header.Get("If-Match"), Body: string(b)}
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			c, err := NewClient(Config{Address: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.call(t.Context(), c); err != nil {
				t.Fatalf("call: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
	c, err := NewClient(Config{Address: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Rules(t.Context(), ""); err == nil {
		t.Error("empty tenant: no error")
	}
	if _, err := c.Rule(t.Context(), "acme", ".."); err == nil {
		t.Error("rule id '..': no error")
	}
	if _, err := c.UpdateRule(t.Context(), "acme", Rule{ID: "r1"}, -1); err == nil {
		t.Error("negative version: no error")
	}
}
