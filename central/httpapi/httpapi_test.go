package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/httpapi"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// env is an API server over a real embedded etcd with two tenants, a sensor in
// each, and a user of every role.
type env struct {
	url   string
	store *store.Store
	db    *sqlstore.Store
	// nodesErr, when it holds an error, is the error of the Nodes lister.
	nodesErr atomic.Pointer[error]
}

const testPassword = "correct horse battery"

// users of the test env: an administrator of all tenants (root), one of each
// tenant (alice, bob), and one user of each other role in tenant default.
var testUsers = []*ospreyv1.User{
	{Name: "root", Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true},
	{Name: "alice", Role: ospreyv1.Role_ROLE_ADMIN, Tenants: []string{"default"}},
	{Name: "bob", Role: ospreyv1.Role_ROLE_ADMIN, Tenants: []string{"acme"}},
	{Name: "audrey", Role: ospreyv1.Role_ROLE_AUDITOR, Tenants: []string{"default"}},
	{Name: "lena", Role: ospreyv1.Role_ROLE_LOCAL_ADMIN, Tenants: []string{"default"}},
	{Name: "sam", Role: ospreyv1.Role_ROLE_SENIOR_OFFICER, Tenants: []string{"default"}},
	{Name: "otto", Role: ospreyv1.Role_ROLE_OFFICER, Tenants: []string{"default"}},
}

func newEnv(t testing.TB) *env {
	t.Helper()
	st := store.New(etcdtest.Client(t))
	ctx := t.Context()
	all := store.AllTenants()
	for _, tenant := range []string{"default", "acme"} {
		if _, err := st.CreateTenant(ctx, all, &ospreyv1.Tenant{Id: tenant, Name: tenant}); err != nil {
			t.Fatal(err)
		}
	}
	// The lowest bcrypt cost keeps the test fast; each hash carries its own cost.
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range testUsers {
		u := proto.Clone(u).(*ospreyv1.User)
		u.PasswordHash = hash
		if _, err := st.CreateUser(ctx, all, u); err != nil {
			t.Fatal(err)
		}
	}
	for id, tenant := range map[string]string{"s1": "default", "s2": "acme"} {
		sn := &ospreyv1.Sensor{Id: id, Tenant: tenant, Name: id, State: ospreyv1.SensorState_SENSOR_STATE_PENDING}
		if _, err := st.CreateSensor(ctx, all, sn); err != nil {
			t.Fatal(err)
		}
	}
	a, err := auth.NewAuthenticator(auth.Options{
		Users: auth.UsersFunc(func(ctx context.Context, name string) (*ospreyv1.User, error) {
			u, _, err := st.GetUser(ctx, all, name)
			return u, err
		}),
		Tokens: auth.TokensFunc(func(ctx context.Context, id string) (*ospreyv1.Token, error) {
			tok, _, err := st.GetToken(ctx, all, id)
			return tok, err
		}),
		NotFound: []error{store.ErrNotFound, store.ErrInvalidID},
	})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlstore.Open(ctx, sqlstore.Options{URL: filepath.Join(t.TempDir(), "osprey.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{store: st, db: db}
	nodes := func(context.Context) (*api.NodeList, error) {
		if err := e.nodesErr.Load(); err != nil {
			return nil, *err
		}
		return testNodes(), nil
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Store: st, Messages: db, Auth: a, Nodes: nodes}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func (e *env) client(t testing.TB, user string) *api.Client {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: e.url, Username: user, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func statusOf(err error) int {
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode
	}
	return 0
}

func validSMTP() *api.SMTPIntegration {
	return &api.SMTPIntegration{
		Enabled:            true,
		Listen:             "127.0.0.1:2525",
		DestinationDomains: []string{"example.com", "!hr.example.com"},
		Clients:            []string{"10.0.0.0/8", "!10.0.0.5", "2001:db8::/32"},
		MaxMessageSize:     &api.SizeLimit{Value: 25, Unit: api.MB},
	}
}

// TestEveryAPIRouteNeedsCredentials sends every route no credentials and a
// bad bearer token; the password cases, which cost a bcrypt comparison each
// (a quarter of a second, more under -race), go through the same middleware
// and are sent to the first route only.
func TestEveryAPIRouteNeedsCredentials(t *testing.T) {
	e := newEnv(t)
	first := true
	for _, rt := range httpapi.Routes() {
		if rt.Pattern == "/healthz" || rt.Pattern == "/readyz" {
			continue
		}
		path := strings.ReplaceAll(rt.Pattern, "{id}", "s1")
		creds := []struct {
			name string
			set  func(*http.Request)
		}{
			{"none", func(*http.Request) {}},
			{"bad bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer osp_0123456789abcdef_xxx") }},
		}
		if first {
			first = false
			creds = append(creds, []struct {
				name string
				set  func(*http.Request)
			}{
				{"wrong password", func(r *http.Request) { r.SetBasicAuth("root", "wrong") }},
				{"unknown user", func(r *http.Request) { r.SetBasicAuth("nobody", testPassword) }},
			}...)
		}
		for _, cred := range creds {
			t.Run(rt.Method+" "+path+" "+cred.name, func(t *testing.T) {
				req, err := http.NewRequestWithContext(t.Context(), rt.Method, e.url+path, strings.NewReader("{}"))
				if err != nil {
					t.Fatal(err)
				}
				cred.set(req)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("got %d, want 401", resp.StatusCode)
				}
				if got := resp.Header.Get("Content-Type"); got != "application/json" {
					t.Errorf("Content-Type: got %q, want application/json", got)
				}
			})
		}
	}
}

// TestBasicAuthThrottled: after five wrong passwords for a user, HTTP
// Basic gets 429 with Retry-After, even with the right password.
func TestBasicAuthThrottled(t *testing.T) {
	e := newEnv(t)
	get := func(password string) *http.Response {
		req, err := http.NewRequestWithContext(t.Context(), "GET", e.url+"/api/v1/tenants", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("root", password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range 5 {
		if resp := get("wrong"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: got %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp := get(testPassword)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("right password after 5 failures: got %d with Retry-After %q, want 429 with one", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestRolesAndTenants(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tests := []struct {
		name string
		user string
		call func(c *api.Client) error
		want int // 0 = success
	}{
		{"admin creates a tenant", "root", func(c *api.Client) error {
			_, err := c.CreateTenant(ctx, api.Tenant{ID: "globex", Name: "Globex"})
			return err
		}, 0},
		{"tenant admin creates a tenant", "alice", func(c *api.Client) error {
			_, err := c.CreateTenant(ctx, api.Tenant{ID: "initech"})
			return err
		}, http.StatusForbidden},
		{"auditor writes SMTP", "audrey", func(c *api.Client) error {
			_, _, err := c.PutSMTP(ctx, "s1", validSMTP(), 0)
			return err
		}, http.StatusForbidden},
		{"auditor reads SMTP", "audrey", func(c *api.Client) error {
			_, _, err := c.SMTP(ctx, "s1")
			return err
		}, 0},
		{"auditor approves a sensor", "audrey", func(c *api.Client) error {
			_, err := c.ApproveSensor(ctx, "s1")
			return err
		}, http.StatusForbidden},
		{"tenant admin writes own sensor", "alice", func(c *api.Client) error {
			_, _, err := c.PutSMTP(ctx, "s1", validSMTP(), 0)
			return err
		}, 0},
		// Another tenant's sensor is reported as absent: its existence is not leaked.
		{"tenant admin reads other tenant's sensor", "bob", func(c *api.Client) error {
			_, err := c.Sensor(ctx, "s1")
			return err
		}, http.StatusNotFound},
		{"tenant admin writes other tenant's SMTP", "bob", func(c *api.Client) error {
			_, _, err := c.PutSMTP(ctx, "s1", validSMTP(), 0)
			return err
		}, http.StatusNotFound},
		{"tenant admin approves other tenant's sensor", "bob", func(c *api.Client) error {
			_, err := c.ApproveSensor(ctx, "s1")
			return err
		}, http.StatusNotFound},
		{"tenant admin creates a user in another tenant", "bob", func(c *api.Client) error {
			_, err := c.CreateUser(ctx, api.User{Name: "eve", Role: api.RoleAdministrator, Tenants: []string{"default"}, Password: testPassword})
			return err
		}, http.StatusForbidden},
		{"tenant admin creates an admin", "bob", func(c *api.Client) error {
			_, err := c.CreateUser(ctx, api.User{Name: "eve", Role: api.RoleAdministrator, AllTenants: true, Password: testPassword})
			return err
		}, http.StatusForbidden},
		// Users are managed by administrators of all tenants only.
		{"tenant admin creates a user in own tenant", "bob", func(c *api.Client) error {
			_, err := c.CreateUser(ctx, api.User{Name: "carol", Role: api.RoleSecurityAuditor, Tenants: []string{"acme"}, Password: testPassword})
			return err
		}, http.StatusForbidden},
		{"admin creates a user of two tenants", "root", func(c *api.Client) error {
			_, err := c.CreateUser(ctx, api.User{Name: "carol", Role: api.RoleSecurityAuditor, Tenants: []string{"acme", "default"}, Password: testPassword})
			return err
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(e.client(t, tt.user))
			if got := statusOf(err); got != tt.want {
				t.Errorf("got status %d (%v), want %d", got, err, tt.want)
			}
		})
	}
}

func TestListsAreScopedToTheCallersTenant(t *testing.T) {
	e := newEnv(t)
	ids := func(user string) []string {
		ss, err := e.client(t, user).Sensors(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range ss {
			out = append(out, s.ID)
		}
		slices.Sort(out)
		return out
	}
	for user, want := range map[string][]string{"root": {"s1", "s2"}, "alice": {"s1"}, "bob": {"s2"}, "audrey": {"s1"}, "sam": {"s1"}} {
		if diff := cmp.Diff(want, ids(user)); diff != "" {
			t.Errorf("sensors seen by %s (-want +got):\n%s", user, diff)
		}
	}
	tenants, err := e.client(t, "bob").Tenants(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(tenants) != 1 || tenants[0].ID != "acme" {
		t.Errorf("tenants seen by bob: got %v, want only acme", tenants)
	}
	users, err := e.client(t, "bob").Users(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.AllTenants || !slices.Equal(u.Tenants, []string{"acme"}) {
			t.Errorf("bob sees user %s of tenants %q (all: %v)", u.Name, u.Tenants, u.AllTenants)
		}
	}
}

func TestSMTPValidationNamesEveryFieldAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "root")
	ctx := t.Context()
	_, v1, err := c.PutSMTP(ctx, "s1", validSMTP(), 0)
	if err != nil {
		t.Fatal(err)
	}
	bad := validSMTP()
	bad.Listen = "127.0.0.1:99999"
	bad.DestinationDomains = []string{"example.com", "*.evil.com"}
	bad.Clients = []string{"10.0.0.0/8", "10.0.0.1/8"}
	bad.MaxMessageSize = &api.SizeLimit{Value: 0, Unit: "PB"}
	_, _, err = c.PutSMTP(ctx, "s1", bad, 0)
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
		t.Fatalf("got %v, want a 400 api.Error", err)
	}
	var fields []string
	for _, f := range apiErr.Fields {
		fields = append(fields, f.Field)
	}
	for _, want := range []string{"listen", "destination_domains[1]", "clients[1]", "max_message_size.unit"} {
		if !contains(fields, want) {
			t.Errorf("field errors %v: missing %q", fields, want)
		}
	}
	got, v2, err := c.SMTP(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if v2 != v1 {
		t.Errorf("version after a refused write: got %d, want %d", v2, v1)
	}
	if diff := cmp.Diff(validSMTP().Clients, got.Clients); diff != "" {
		t.Errorf("stored clients changed (-want +got):\n%s", diff)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestStaleETagIsAConflict(t *testing.T) {
	e := newEnv(t)
	alice, root := e.client(t, "alice"), e.client(t, "root")
	ctx := t.Context()
	_, v1, err := root.PutSMTP(ctx, "s1", validSMTP(), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Both read v1; root writes first; alice's write at v1 is refused.
	changed := validSMTP()
	changed.Listen = "127.0.0.1:2526"
	if _, _, err := root.PutSMTP(ctx, "s1", changed, v1); err != nil {
		t.Fatal(err)
	}
	stale := validSMTP()
	stale.Listen = "127.0.0.1:2527"
	_, _, err = alice.PutSMTP(ctx, "s1", stale, v1)
	if got := statusOf(err); got != http.StatusConflict {
		t.Fatalf("stale write: got %d (%v), want 409", got, err)
	}
	got, _, err := root.SMTP(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Listen != "127.0.0.1:2526" {
		t.Errorf("listen after the refused stale write: got %q, want the first writer's 127.0.0.1:2526", got.Listen)
	}
}

func TestUnchangedWriteKeepsTheVersion(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "root")
	_, v1, err := c.PutSMTP(t.Context(), "s1", validSMTP(), 0)
	if err != nil {
		t.Fatal(err)
	}
	_, v2, err := c.PutSMTP(t.Context(), "s1", validSMTP(), v1)
	if err != nil {
		t.Fatal(err)
	}
	if v2 != v1 {
		t.Errorf("version after writing the same value: got %d, want %d", v2, v1)
	}
}

func TestPOP3PasswordIsNeverReturned(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "root")
	ctx := t.Context()
	const secret = "s3cret-Pa55word"
	in := &api.POP3Integration{
		Enabled: true, Server: "mail.example.com", Port: 995, IntervalSeconds: 60, TLS: true,
		Username: "u", Password: secret, TLSCertificate: api.TrustedOnly, CipherSuite: "HIGH:!aNULL",
	}
	out, v1, err := c.PutPOP3(ctx, "s1", in, 0)
	if err != nil {
		t.Fatal(err)
	}
	if out.Password != "" || !out.PasswordSet {
		t.Errorf("PUT response: password %q, password_set %v; want empty and true", out.Password, out.PasswordSet)
	}
	// The raw bodies of every read, not only the decoded fields, must not hold it.
	for _, path := range []string{"/api/v1/sensors/s1/pop3", "/api/v1/sensors/s1", "/api/v1/sensors"} {
		body := rawGet(t, e.url+path, "root")
		if strings.Contains(body, secret) {
			t.Errorf("GET %s returned the password: %s", path, body)
		}
	}
	// A write without the password keeps it; the sensor still gets it.
	in.Password = ""
	in.IntervalSeconds = 120
	if _, _, err := c.PutPOP3(ctx, "s1", in, v1); err != nil {
		t.Fatal(err)
	}
	stored, _, err := e.store.GetPOP3(ctx, store.AllTenants(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if stored.GetPassword() != secret {
		t.Errorf("stored password after a write without one: got %q, want it kept", stored.GetPassword())
	}
	// Pointing the mailbox at another server drops it: the old password is not sent there.
	in.Server = "attacker.example.net"
	if _, _, err := c.PutPOP3(ctx, "s1", in, 0); err == nil {
		stored, _, _ := e.store.GetPOP3(ctx, store.AllTenants(), "s1")
		if stored.GetPassword() == secret {
			t.Error("the stored password followed the mailbox to another server")
		}
	}
}

func rawGet(t *testing.T, url, user string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, testPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMalformedBodies(t *testing.T) {
	e := newEnv(t)
	tests := []struct{ name, body string }{
		{"unknown field", `{"enabled":true,"listen":"127.0.0.1:25","bogus":1}`},
		{"not JSON", `enabled=true`},
		{"two objects", `{"enabled":false}{"enabled":true}`},
		{"empty", ``},
		{"wrong type", `{"enabled":"yes"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, e.url+"/api/v1/sensors/s1/smtp", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.SetBasicAuth("root", testPassword)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("got %d, want 400", resp.StatusCode)
			}
		})
	}
	if _, v, err := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1"); err != nil || v != 0 {
		t.Errorf("after refused writes: version %d, err %v; want nothing stored", v, err)
	}
}

func TestAPITokenActsAsItsUser(t *testing.T) {
	e := newEnv(t)
	tok, err := e.client(t, "bob").CreateToken(t.Context(), api.TokenRequest{Kind: api.TokenAPI})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Secret, "osp_") {
		t.Fatalf("token secret %q: want an osp_ bearer token", tok.Secret)
	}
	c, err := api.NewClient(api.Config{Address: e.url, Token: tok.Secret})
	if err != nil {
		t.Fatal(err)
	}
	ss, err := c.Sensors(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 || ss[0].ID != "s2" {
		t.Errorf("sensors seen with bob's token: got %v, want only s2", ss)
	}
	// Join tokens are for enrollment only and need the cluster CA, which this
	// API server was not given.
	_, err = c.CreateToken(t.Context(), api.TokenRequest{Kind: api.TokenJoin, Tenant: "acme", TTLSeconds: 60})
	if got := statusOf(err); got != http.StatusBadRequest {
		t.Errorf("join token without a CA: got %d (%v), want 400", got, err)
	}
}

func TestApproveAndRevoke(t *testing.T) {
	e := newEnv(t)
	c := e.client(t, "alice")
	s, err := c.ApproveSensor(t.Context(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if s.State != api.SensorApproved {
		t.Errorf("after approve: got %q, want approved", s.State)
	}
	s, err = c.RevokeSensor(t.Context(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if s.State != api.SensorRevoked {
		t.Errorf("after revoke: got %q, want revoked", s.State)
	}
}

func TestUnknownAPIPathIsJSON404(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.url + "/api/v1/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("got %d %q, want a JSON 404", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestApplySMTPToATenant(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	bob := e.client(t, "bob")
	res, err := bob.ApplySMTP(ctx, "acme", validSMTP())
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed != 1 || res.Version == 0 {
		t.Errorf("got %+v, want one sensor changed", res)
	}
	got, _, err := bob.SMTP(ctx, "s2")
	if err != nil || got.Listen != validSMTP().Listen {
		t.Errorf("s2 after apply: %+v, %v", got, err)
	}
	if _, err := bob.ApplySMTP(ctx, "default", validSMTP()); statusOf(err) != http.StatusForbidden {
		t.Errorf("apply to another tenant: got %v, want 403", err)
	}
	if _, err := e.client(t, "audrey").ApplySMTP(ctx, "default", validSMTP()); statusOf(err) != http.StatusForbidden {
		t.Errorf("auditor applies: got %v, want 403", err)
	}
	bad := validSMTP()
	bad.Clients = []string{"10.0.0.1/8"}
	if _, err := bob.ApplySMTP(ctx, "acme", bad); statusOf(err) != http.StatusBadRequest {
		t.Errorf("invalid apply: got %v, want 400", err)
	}
}
