package api

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// spec is the part of an OpenAPI 3.0 document that the tests look at.
type spec struct {
	OpenAPI    string                                `json:"openapi"`
	Security   []map[string][]string                 `json:"security"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `json:"type"`
			Scheme string `json:"scheme"`
		} `json:"securitySchemes"`
		Schemas map[string]schema `json:"schemas"`
	} `json:"components"`

	ops map[string]operation // by "METHOD path"
}

type operation struct {
	OperationID string                     `json:"operationId"`
	Security    *[]map[string][]string     `json:"security"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

type schema struct {
	Type                 string            `json:"type"`
	AdditionalProperties json.RawMessage   `json:"additionalProperties"` // false, or the schema of a map's values
	Properties           map[string]schema `json:"properties"`
	Ref                  string            `json:"$ref"`
	ReadOnly             bool              `json:"readOnly"`
	WriteOnly            bool              `json:"writeOnly"`
}

func loadSpec(t *testing.T) spec {
	t.Helper()
	j, err := yaml.YAMLToJSONStrict(openapiYAML)
	if err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	var s spec
	if err := json.Unmarshal(j, &s); err != nil {
		t.Fatalf("decode openapi.yaml: %v", err)
	}
	s.ops = map[string]operation{}
	for p, item := range s.Paths {
		for m, raw := range item {
			if m == "parameters" || m == "summary" || m == "description" {
				continue
			}
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("decode %s %s: %v", m, p, err)
			}
			s.ops[strings.ToUpper(m)+" "+p] = op
		}
	}
	return s
}

// routes returns "METHOD path" for every operation in s, sorted.
func (s spec) routes() []string {
	return slices.Sorted(maps.Keys(s.ops))
}

func TestOpenAPIRoutes(t *testing.T) {
	s := loadSpec(t)
	if s.OpenAPI != "3.0.3" {
		t.Errorf("openapi: got %q, want 3.0.3", s.OpenAPI)
	}
	want := []string{
		"DELETE /api/v1/rules/{id}",
		"DELETE /api/v1/sensors/{id}/acceptance/{kind}",
		"DELETE /api/v1/sensors/{id}/quarantine/{msg}",
		"DELETE /api/v1/sensors/{id}/queue/{msg}",
		"DELETE /api/v1/tenants/{tenant}/rules/{id}",
		"DELETE /api/v1/users/{name}",
		"GET /api/v1/alerts",
		"GET /api/v1/alerts/{id}",
		"GET /api/v1/audit",
		"GET /api/v1/messages",
		"GET /api/v1/nodes",
		"GET /api/v1/pcn",
		"GET /api/v1/pcn/sensor-management",
		"GET /api/v1/quarantine",
		"GET /api/v1/rules",
		"GET /api/v1/rules/{id}",
		"GET /api/v1/sensors",
		"GET /api/v1/sensors/{id}",
		"GET /api/v1/sensors/{id}/acceptance/{kind}",
		"GET /api/v1/sensors/{id}/acceptance/{kind}/export",
		"GET /api/v1/sensors/{id}/pop3",
		"GET /api/v1/sensors/{id}/quarantine/{msg}",
		"GET /api/v1/sensors/{id}/quarantine/{msg}/eml",
		"GET /api/v1/sensors/{id}/queue",
		"GET /api/v1/sensors/{id}/queue/{msg}",
		"GET /api/v1/sensors/{id}/smtp",
		"GET /api/v1/servers",
		"GET /api/v1/servers/{id}/sensors",
		"GET /api/v1/servers/{id}/sensors/{sensor}/pop3",
		"GET /api/v1/servers/{id}/sensors/{sensor}/smtp",
		"GET /api/v1/tenants",
		"GET /api/v1/tenants/{tenant}/export",
		"GET /api/v1/tenants/{tenant}/policy",
		"GET /api/v1/tenants/{tenant}/rules",
		"GET /api/v1/tenants/{tenant}/rules/{id}",
		"GET /api/v1/users",
		"GET /healthz",
		"GET /metrics",
		"GET /readyz",
		"POST /api/v1/pcn/fingerprint",
		"POST /api/v1/pcn/join",
		"POST /api/v1/pcn/login",
		"POST /api/v1/rules",
		"POST /api/v1/sensors/{id}/acceptance/{kind}",
		"POST /api/v1/sensors/{id}/approve",
		"POST /api/v1/sensors/{id}/gateway/flush",
		"POST /api/v1/sensors/{id}/gateway/resume-receiving",
		"POST /api/v1/sensors/{id}/gateway/resume-sending",
		"POST /api/v1/sensors/{id}/gateway/stop-receiving",
		"POST /api/v1/sensors/{id}/gateway/stop-sending",
		"POST /api/v1/sensors/{id}/quarantine/{msg}/release",
		"POST /api/v1/sensors/{id}/queue/{msg}/hold",
		"POST /api/v1/sensors/{id}/queue/{msg}/release",
		"POST /api/v1/sensors/{id}/queue/{msg}/retry",
		"POST /api/v1/sensors/{id}/revoke",
		"POST /api/v1/sensors/{id}/smtp/apply-to-tenant",
		"POST /api/v1/servers/{id}/accept",
		"POST /api/v1/servers/{id}/disconnect",
		"POST /api/v1/servers/{id}/reject",
		"POST /api/v1/tenants",
		"POST /api/v1/tenants/{tenant}/rules",
		"POST /api/v1/tokens",
		"POST /api/v1/users",
		"PUT /api/v1/pcn/sensor-management",
		"PUT /api/v1/rules/{id}",
		"PUT /api/v1/sensors/{id}/acceptance/{kind}",
		"PUT /api/v1/sensors/{id}/pop3",
		"PUT /api/v1/sensors/{id}/smtp",
		"PUT /api/v1/servers/{id}/sensors/{sensor}/pop3",
		"PUT /api/v1/servers/{id}/sensors/{sensor}/smtp",
		"PUT /api/v1/tenants/{tenant}/export",
		"PUT /api/v1/tenants/{tenant}/policy",
		"PUT /api/v1/tenants/{tenant}/rules/{id}",
		"PUT /api/v1/tenants/{tenant}/smtp",
	}
	if diff := cmp.Diff(want, s.routes()); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
}

func TestOpenAPISecurity(t *testing.T) {
	s := loadSpec(t)
	for name, scheme := range map[string]string{"basic": "basic", "bearer": "bearer"} {
		got := s.Components.SecuritySchemes[name]
		if got.Type != "http" || got.Scheme != scheme {
			t.Errorf("security scheme %s: got %+v, want type http, scheme %s", name, got, scheme)
		}
	}
	wantGlobal := []map[string][]string{{"basic": {}}, {"bearer": {}}}
	if diff := cmp.Diff(wantGlobal, s.Security); diff != "" {
		t.Errorf("global security (-want +got):\n%s", diff)
	}
	ids := map[string]bool{}
	for route, op := range s.ops {
		_, p, _ := strings.Cut(route, " ")
		if op.OperationID == "" || ids[op.OperationID] {
			t.Errorf("%s: operationId %q is empty or not unique", route, op.OperationID)
		}
		ids[op.OperationID] = true
		public := op.Security != nil && len(*op.Security) == 0
		if probe := p == "/healthz" || p == "/readyz"; probe != public {
			t.Errorf("%s: public is %v, want %v", route, public, probe)
		}
		if public {
			continue
		}
		for _, code := range []string{"401", "default"} {
			if _, ok := op.Responses[code]; !ok {
				t.Errorf("%s: no %s response", route, code)
			}
		}
	}
}

// TestOpenAPIRefs checks that every $ref points at a component that exists.
func TestOpenAPIRefs(t *testing.T) {
	j, err := yaml.YAMLToJSONStrict(openapiYAML)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(j, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	n := 0
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if k == "$ref" {
					n++
					ref, _ := e.(string)
					if resolve(doc, ref) == nil {
						t.Errorf("$ref %q does not resolve", ref)
					}
					continue
				}
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	if n == 0 {
		t.Error("no $ref found; the walk is broken")
	}
}

func resolve(doc any, ref string) any {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	cur := doc
	for _, part := range strings.Split(p, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// TestOpenAPISchemasMatchTypes checks that each schema has the JSON fields of its Go type,
// that the bodies the server decodes strictly say additionalProperties: false, and that
// write-only and read-only fields are marked.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	s := loadSpec(t)
	tests := []struct {
		schema string
		typ    any
		strict bool // a request body: the server refuses unknown fields
	}{
		{"Error", Error{}, false},
		{"FieldError", FieldError{}, false},
		{"Tenant", Tenant{}, true},
		{"TenantList", TenantList{}, false},
		{"ApplyResult", ApplyResult{}, false},
		{"Sensor", Sensor{}, false},
		{"SensorList", SensorList{}, false},
		{"IntegrationStatus", IntegrationStatus{}, false},
		{"SpoolStatus", SpoolStatus{}, false},
		{"GatewayStatus", GatewayStatus{}, false},
		{"QueueList", QueueList{}, false},
		{"QueuedMessage", QueuedMessage{}, false},
		{"QueuedRecipient", QueuedRecipient{}, false},
		{"Problem", Problem{}, false},
		{"SizeLimit", SizeLimit{}, true},
		{"SMTPIntegration", SMTPIntegration{}, true},
		{"SMTPTLS", SMTPTLS{}, true},
		{"SMTPLimits", SMTPLimits{}, true},
		{"SMTPGateway", SMTPGateway{}, true},
		{"GatewayListener", GatewayListener{}, true},
		{"LocalDomain", LocalDomain{}, true},
		{"NextHop", NextHop{}, true},
		{"DeliveryQueueSettings", DeliveryQueueSettings{}, true},
		{"QuarantineSettings", QuarantineSettings{}, true},
		{"SenderAuthSettings", SenderAuthSettings{}, true},
		{"SubmissionSettings", SubmissionSettings{}, true},
		{"LDAPAuth", LDAPAuth{}, true},
		{"SMTPForwardAuth", SMTPForwardAuth{}, true},
		{"RecipientVerification", RecipientVerification{}, true},
		{"RateLimits", RateLimits{}, true},
		{"SMTPApplyResult", SMTPApplyResult{}, false},
		{"SensorApplyResult", SensorApplyResult{}, false},
		{"POP3Integration", POP3Integration{}, true},
		{"User", User{}, true},
		{"UserList", UserList{}, false},
		{"TokenRequest", TokenRequest{}, true},
		{"Token", Token{}, false},
		{"NodeHealth", NodeHealth{}, false},
		{"Node", Node{}, false},
		{"DNSRecord", DNSRecord{}, false},
		{"ClusterDNS", ClusterDNS{}, false},
		{"NodeList", NodeList{}, false},
		{"Rule", Rule{}, true},
		{"RuleList", RuleList{}, false},
		{"Envelope", Envelope{}, false},
		{"AuthResults", AuthResults{}, false},
		{"DKIMResult", DKIMResult{}, false},
		{"HeaderSummary", HeaderSummary{}, false},
		{"Match", Match{}, false},
		{"Attachment", Attachment{}, false},
		{"Alert", Alert{}, false},
		{"AlertList", AlertList{}, false},
		{"MessageRecord", MessageRecord{}, false},
		{"SpamResult", SpamResult{}, false},
		{"SpamSymbol", SpamSymbol{}, false},
		{"MessageList", MessageList{}, false},
		{"AuditEvent", AuditEvent{}, false},
		{"AuditRefusal", AuditRefusal{}, false},
		{"AuditDeliveryAttempt", AuditDeliveryAttempt{}, false},
		{"AuditDeliveryRecipient", AuditDeliveryRecipient{}, false},
		{"AuditList", AuditList{}, false},
		{"SyslogExport", SyslogExport{}, true},
		{"VerdictPolicy", VerdictPolicy{}, true},
		{"HeaderField", HeaderField{}, true},
		{"QuarantinedMessage", QuarantinedMessage{}, false},
		{"QuarantineEvent", QuarantineEvent{}, false},
		{"AuditQuarantineStep", AuditQuarantineStep{}, false},
		{"MessagePreview", MessagePreview{}, false},
		{"PreviewAttachment", PreviewAttachment{}, false},
		{"QuarantineList", QuarantineList{}, false},
		{"Server", Server{}, false},
		{"ServerDown", ServerDown{}, false},
		{"ServerList", ServerList{}, false},
		{"AcceptServer", AcceptServer{}, true},
		{"Hierarchy", Hierarchy{}, false},
		{"PCNAddress", PCNAddress{}, true},
		{"PCNFingerprint", PCNFingerprint{}, false},
		{"JoinPCN", JoinPCN{}, true},
		{"PCNLogin", PCNLogin{}, true},
		{"ServerSensors", ServerSensors{}, false},
		{"RemoteSensor", RemoteSensor{}, false},
		{"SensorManagement", SensorManagement{}, true},
		{"QuarantineRelease", QuarantineRelease{}, true},
		{"QuarantineActionResult", QuarantineActionResult{}, false},
		{"AcceptancePage", AcceptancePage{}, false},
		{"AcceptanceEdit", AcceptanceEdit{}, true},
		{"AcceptanceResult", AcceptanceResult{}, false},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.schema, func(t *testing.T) {
			seen[tt.schema] = true
			sc, ok := s.Components.Schemas[tt.schema]
			if !ok {
				t.Fatalf("no schema %s", tt.schema)
			}
			var props []string
			for p := range sc.Properties {
				props = append(props, p)
			}
			sort.Strings(props)
			if diff := cmp.Diff(jsonFields(reflect.TypeOf(tt.typ)), props); diff != "" {
				t.Errorf("properties (-Go type +schema):\n%s", diff)
			}
			strict := string(sc.AdditionalProperties) == "false"
			if strict != tt.strict {
				t.Errorf("additionalProperties false: got %v, want %v", strict, tt.strict)
			}
		})
	}
	for name := range s.Components.Schemas {
		if !seen[name] && !slices.Contains([]string{"SensorState", "Role", "TokenKind", "Health", "NodeState", "NodeRole", "Severity", "RuleKind", "MailSource", "VerdictAction", "QuarantineState"}, name) {
			t.Errorf("schema %s has no Go type in this test", name)
		}
	}

	secrets := []struct{ schema, field string }{
		{"SMTPTLS", "key_pem"},
		{"POP3Integration", "password"},
		{"User", "password"},
	}
	for _, f := range secrets {
		if !s.Components.Schemas[f.schema].Properties[f.field].WriteOnly {
			t.Errorf("%s.%s: not writeOnly", f.schema, f.field)
		}
	}
	for _, f := range []struct{ schema, field string }{
		{"SMTPTLS", "key_set"},
		{"POP3Integration", "password_set"},
		{"Tenant", "created_at"},
		{"User", "created_at"},
		{"Rule", "tenant"},
		{"Rule", "created_at"},
		{"Rule", "version"},
		{"Rule", "global"},
		{"Rule", "origin"},
		{"User", "origin"},
	} {
		if !s.Components.Schemas[f.schema].Properties[f.field].ReadOnly {
			t.Errorf("%s.%s: not readOnly", f.schema, f.field)
		}
	}
}

// jsonFields returns the sorted JSON names of t's fields.
func jsonFields(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIStatusCodes checks each operation's success codes: 201 for the POSTs that
// create something, 200 and 202 for the quarantine's actions (202: waiting for an offline
// sensor), 200 for the rest.
func TestOpenAPIStatusCodes(t *testing.T) {
	s := loadSpec(t)
	created := map[string]bool{"POST /api/v1/tenants": true, "POST /api/v1/users": true, "POST /api/v1/tokens": true,
		"POST /api/v1/tenants/{tenant}/rules": true, "POST /api/v1/rules": true}
	for route, op := range s.ops {
		want := []string{"200"}
		if created[route] {
			want = []string{"201"}
		}
		if route == "POST /api/v1/sensors/{id}/quarantine/{msg}/release" || route == "DELETE /api/v1/sensors/{id}/quarantine/{msg}" {
			want = []string{"200", "202"}
		}
		var got []string
		for code := range op.Responses {
			if strings.HasPrefix(code, "2") {
				got = append(got, code)
			}
		}
		sort.Strings(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: success codes (-want +got):\n%s", route, diff)
		}
	}
}
