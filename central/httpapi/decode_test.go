package httpapi_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/store"
)

// specBodyRoutes returns "METHOD /path" for every operation of
// api/openapi.yaml that takes a request body.
func specBodyRoutes(t *testing.T) []string {
	t.Helper()
	j, err := yaml.YAMLToJSON(api.OpenAPI())
	if err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(j, &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for path, item := range doc.Paths {
		for method, raw := range item {
			var op struct {
				RequestBody struct {
					Content map[string]json.RawMessage `json:"content"`
				} `json:"requestBody"`
			}
			// A JSON body (an import's is text).
			if json.Unmarshal(raw, &op) == nil && op.RequestBody.Content["application/json"] != nil {
				out = append(out, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out
}

// send makes a request as root with a raw body and returns the status and
// the decoded error body (zero for a success).
func (e *env) send(t *testing.T, method, path, body string) (int, api.Error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("root", testPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out api.Error
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("error body %q: %v", b, err)
		}
	}
	return resp.StatusCode, out
}

// TestBodyThatIsNotAnObjectChangesNothing sends every route that takes a
// body (as the contract lists them) bodies that are not one JSON object: each
// is a 400 that says so, and nothing is written: the etcd revision does not
// move, SMTP stays enabled and the POP3 password stays stored.
func TestBodyThatIsNotAnObjectChangesNothing(t *testing.T) {
	e := newEnv(t)
	ctx, root := t.Context(), e.client(t, "root")
	if _, _, err := root.PutSMTP(ctx, "s1", validSMTP(), 0); err != nil {
		t.Fatal(err)
	}
	const secret = "s3cret-Pa55word"
	if _, _, err := root.PutPOP3(ctx, "s1", &api.POP3Integration{
		Enabled: true, Server: "mail.example.com", Port: 995, IntervalSeconds: 60, TLS: true,
		Username: "u", Password: secret, TLSCertificate: api.TrustedOnly,
	}, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := root.PutExport(ctx, "default", &api.SyslogExport{Enabled: true, Address: "siem.example.com:6514"}, 0); err != nil {
		t.Fatal(err)
	}
	// The rule is named like the sensor, so that one path serves both {id}s.
	if _, err := root.CreateRule(ctx, "default", api.Rule{ID: "s1", Kind: api.RuleSenderDomain, Value: "evil.example", Severity: api.SeverityHigh}); err != nil {
		t.Fatal(err)
	}
	before, err := e.store.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}

	routes := specBodyRoutes(t)
	if !slices.Contains(routes, "PUT /api/v1/sensors/{id}/smtp") || len(routes) < 9 {
		t.Fatalf("routes with a body in openapi.yaml: %v", routes)
	}
	bodies := []struct{ body, want string }{
		{`null`, "want a JSON object, got null"},
		{` null `, "want a JSON object, got null"},
		{``, "want a JSON object, got nothing"},
		{`[]`, "want a JSON object, got a list"},
		{`[{"enabled":false}]`, "want a JSON object, got a list"},
		{`"off"`, "want a JSON object, got a string"},
		{`0`, "want a JSON object, got a number"},
		{`false`, "want a JSON object, got true or false"},
		{`{}{}`, "want one JSON object, got more data after it"},
		{`{"enabled":false} null`, "want one JSON object, got more data after it"},
		{`{"enabled":`, "invalid JSON"},
	}
	for _, route := range routes {
		method, pattern, _ := strings.Cut(route, " ")
		path := strings.NewReplacer("{id}", "s1", "{tenant}", "default", "{kind}", "inbound").Replace(pattern)
		for _, b := range bodies {
			t.Run(route+" "+b.body, func(t *testing.T) {
				status, body := e.send(t, method, path, b.body)
				if status != http.StatusBadRequest || !strings.Contains(body.Message, b.want) || len(body.Fields) != 0 {
					t.Errorf("got %d %+v, want 400 saying %q, without fields", status, body, b.want)
				}
			})
		}
	}

	if after, err := e.store.Revision(ctx); err != nil || after != before {
		t.Errorf("etcd revision after the refused writes: %d (%v), want %d: something was written", after, err, before)
	}
	smtp, _, err := e.store.GetSMTP(ctx, store.AllTenants(), "s1")
	if err != nil || !smtp.GetEnabled() || smtp.GetListen() != validSMTP().Listen {
		t.Errorf("SMTP after the refused writes: enabled %v, listen %q (%v); want it unchanged", smtp.GetEnabled(), smtp.GetListen(), err)
	}
	pop3, _, err := e.store.GetPOP3(ctx, store.AllTenants(), "s1")
	if err != nil || !pop3.GetEnabled() || pop3.GetPassword() != secret {
		t.Errorf("POP3 after the refused writes: enabled %v, password kept %v (%v); want both", pop3.GetEnabled(), pop3.GetPassword() == secret, err)
	}
}

// TestDecodeErrorsAreFieldErrors: a body that is an object but does not fit
// the route's type is answered like a validation error, every problem with
// its JSON path and a message for people, and nothing is written.
func TestDecodeErrorsAreFieldErrors(t *testing.T) {
	e := newEnv(t)
	before, err := e.store.Revision(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, body string
		want                     []api.FieldError
	}{
		{"negative size", "PUT", "/api/v1/sensors/s1/smtp", `{"enabled":true,"max_message_size":{"value":-3,"unit":"MB"}}`,
			[]api.FieldError{{Field: "max_message_size.value", Message: "must be a whole number of at least 0"}}},
		{"typo and a list entry of the wrong type", "PUT", "/api/v1/sensors/s1/smtp", `{"lisen":":25","clients":["10.0.0.0/8",7]}`,
			[]api.FieldError{
				{Field: "lisen", Message: `unknown field; did you mean "listen"?`},
				{Field: "clients[1]", Message: "must be a string, not a number"},
			}},
		{"overflow", "PUT", "/api/v1/sensors/s1/smtp", `{"limits":{"max_recipients":4294967296}}`,
			[]api.FieldError{{Field: "limits.max_recipients", Message: "must be a whole number of at most 4294967295"}}},
		{"wrong type", "PUT", "/api/v1/sensors/s1/smtp", `{"enabled":"yes"}`,
			[]api.FieldError{{Field: "enabled", Message: "must be true or false, not a string"}}},
		{"field given twice", "PUT", "/api/v1/sensors/s1/smtp", `{"enabled":false,"enabled":true}`,
			[]api.FieldError{{Field: "enabled", Message: "given more than once"}}},
		{"unknown nested field", "PUT", "/api/v1/sensors/s1/smtp", `{"tls":{"mode":"accept","cert":"x"}}`,
			[]api.FieldError{{Field: "tls.cert", Message: "unknown field; the fields here are mode, cert_pem, key_pem, key_set, client_cert, client_ca_pem"}}},
		{"pop3, a secret of the wrong type is not echoed", "PUT", "/api/v1/sensors/s1/pop3", `{"port":"995","password":12345}`,
			[]api.FieldError{
				{Field: "port", Message: "must be a whole number, not a string"},
				{Field: "password", Message: "must be a string, not a number"},
			}},
		{"tenant SMTP", "PUT", "/api/v1/tenants/default/smtp", `{"destination_domains":"example.com"}`,
			[]api.FieldError{{Field: "destination_domains", Message: "must be a list, not a string"}}},
		{"export", "PUT", "/api/v1/tenants/default/export", `{"facility":-1,"tls":"no"}`,
			[]api.FieldError{
				{Field: "facility", Message: "must be a whole number of at least 0"},
				{Field: "tls", Message: "must be true or false, not a string"},
			}},
		{"rule", "POST", "/api/v1/tenants/default/rules", `{"kind":"sender","value":"a@b.example","severity":"high","version":"7"}`,
			[]api.FieldError{{Field: "version", Message: "must be a whole number, not a string"}}},
		{"rule update", "PUT", "/api/v1/tenants/default/rules/r1", `{"kind":"sender","value":"a@b.example","severity":"high","disabled":"no"}`,
			[]api.FieldError{{Field: "disabled", Message: "must be true or false, not a string"}}},
		{"user", "POST", "/api/v1/users", `{"name":"carol","role":"auditor","password":"correct horse battery","created_at":"yesterday"}`,
			[]api.FieldError{{Field: "created_at", Message: `must be a date and time such as "2026-01-02T15:04:05Z" (RFC 3339)`}}},
		{"token", "POST", "/api/v1/tokens", `{"kind":"api","ttl_seconds":-60}`,
			[]api.FieldError{{Field: "ttl_seconds", Message: "must be a whole number of at least 0"}}},
		{"tenant", "POST", "/api/v1/tenants", `{"id":"globex","Name":"Globex"}`,
			[]api.FieldError{{Field: "Name", Message: `unknown field; did you mean "name"?`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.send(t, tt.method, tt.path, tt.body)
			if status != http.StatusBadRequest || body.Message != "invalid request body" {
				t.Errorf("got %d %q, want 400 invalid request body", status, body.Message)
			}
			if diff := cmp.Diff(tt.want, body.Fields); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
		})
	}
	if after, err := e.store.Revision(t.Context()); err != nil || after != before {
		t.Errorf("etcd revision after the refused writes: %d (%v), want %d: something was written", after, err, before)
	}
}

// TestCreateUserAnswersWhatWasStored: the answer to a create is the user as
// stored: its tenants sorted, a client's old single tenant and old role names
// read as what they mean now.
func TestCreateUserAnswersWhatWasStored(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tests := []struct {
		in   api.User
		want api.User
	}{
		{api.User{Name: "carol", Role: api.RoleSecurityOfficer, Tenants: []string{"default", "acme"}},
			api.User{Name: "carol", Role: api.RoleSecurityOfficer, Tenants: []string{"acme", "default"}}},
		{api.User{Name: "dave", Role: "auditor", Tenant: "acme"},
			api.User{Name: "dave", Role: api.RoleSecurityAuditor, Tenants: []string{"acme"}}},
		{api.User{Name: "erin", Role: "admin", AllTenants: true},
			api.User{Name: "erin", Role: api.RoleAdministrator, AllTenants: true}},
		{api.User{Name: "frank", Role: api.RoleLocalAdministrator, Tenants: []string{"default"}},
			api.User{Name: "frank", Role: api.RoleLocalAdministrator, Tenants: []string{"default"}}},
	}
	for _, tt := range tests {
		t.Run(tt.in.Name, func(t *testing.T) {
			tt.in.Password = testPassword
			got, err := e.client(t, "root").CreateUser(ctx, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			stored, _, err := e.store.GetUser(ctx, store.AllTenants(), tt.in.Name)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.CreatedAt = stored.GetCreatedAt().AsTime()
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, convert.UserFromProto(stored)); diff != "" {
				t.Errorf("stored (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCreateUserFieldErrors: a user without tenants, with the retired role,
// or with tenants that do not exist is refused with the field named.
func TestCreateUserFieldErrors(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tests := []struct {
		name   string
		in     api.User
		fields []string
		status int
	}{
		{"no tenants", api.User{Name: "u1", Role: api.RoleSecurityOfficer}, []string{"tenants"}, http.StatusBadRequest},
		{"retired role", api.User{Name: "u2", Role: api.RoleTenantAdmin, Tenants: []string{"acme"}}, []string{"role"}, http.StatusBadRequest},
		{"unknown role", api.User{Name: "u3", Role: "root", AllTenants: true}, []string{"role"}, http.StatusBadRequest},
		{"both", api.User{Name: "u4", Role: api.RoleSecurityOfficer, AllTenants: true, Tenants: []string{"acme"}}, []string{"tenants"}, http.StatusBadRequest},
		{"bad tenant", api.User{Name: "u5", Role: api.RoleSecurityOfficer, Tenants: []string{"acme", "Not An Id"}}, []string{"tenants[1]"}, http.StatusBadRequest},
		{"missing tenant", api.User{Name: "u6", Role: api.RoleSecurityOfficer, Tenants: []string{"acme", "nope"}}, nil, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Password = testPassword
			_, err := e.client(t, "root").CreateUser(ctx, tt.in)
			if got := statusOf(err); got != tt.status {
				t.Fatalf("got status %d (%v), want %d", got, err, tt.status)
			}
			var apiErr *api.Error
			errors.As(err, &apiErr)
			var fields []string
			for _, f := range apiErr.Fields {
				fields = append(fields, f.Field)
			}
			if diff := cmp.Diff(tt.fields, fields); diff != "" {
				t.Errorf("fields (-want +got):\n%s", diff)
			}
			if _, _, err := e.store.GetUser(ctx, store.AllTenants(), tt.in.Name); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("user stored: %v", err)
			}
		})
	}
}

// TestCreatedAtIsAFieldError: created_at is the server's to set; a create
// that sends it is refused with the field named.
func TestCreatedAtIsAFieldError(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/api/v1/tenants", "/api/v1/users"} {
		body := `{"name":"carol","role":"security-auditor","all_tenants":true,"password":"correct horse battery","created_at":"2026-01-02T15:04:05Z"}`
		if path == "/api/v1/tenants" {
			body = `{"id":"globex","name":"Globex","created_at":"2026-01-02T15:04:05Z"}`
		}
		status, got := e.send(t, "POST", path, body)
		want := []api.FieldError{{Field: "created_at", Message: "is set by the server; leave it out"}}
		if diff := cmp.Diff(want, got.Fields); status != http.StatusBadRequest || diff != "" {
			t.Errorf("POST %s: got %d, fields (-want +got):\n%s", path, status, diff)
		}
	}
}

// TestBodyOverOneMiBIsRefused: the decoder reads at most 1 MiB of a body.
func TestBodyOverOneMiBIsRefused(t *testing.T) {
	e := newEnv(t)
	before, err := e.store.Revision(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"enabled":false,"listen":"` + strings.Repeat("a", 1<<20) + `"}`
	status, got := e.send(t, "PUT", "/api/v1/sensors/s1/smtp", body)
	if status != http.StatusBadRequest || !strings.HasSuffix(got.Message, "body larger than 1048576 bytes") {
		t.Errorf("got %d %q, want 400 body larger than 1048576 bytes", status, got.Message)
	}
	if after, err := e.store.Revision(t.Context()); err != nil || after != before {
		t.Errorf("etcd revision after the refused write: %d (%v), want %d", after, err, before)
	}
}
