package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

func TestNewClient(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		wantBase string
		wantErr  string
	}{
		{name: "https URL", cfg: Config{Address: "https://central.example.com:8443"}, wantBase: "https://central.example.com:8443"},
		{name: "no scheme means https", cfg: Config{Address: "central.example.com:8443"}, wantBase: "https://central.example.com:8443"},
		{name: "http with prefix", cfg: Config{Address: "http://127.0.0.1:8080/osprey/"}, wantBase: "http://127.0.0.1:8080/osprey"},
		{name: "token", cfg: Config{Address: "h", Token: "osp_x"}, wantBase: "https://h"},
		{name: "basic", cfg: Config{Address: "h", Username: "u", Password: "p"}, wantBase: "https://h"},
		{name: "no address", cfg: Config{}, wantErr: "no address"},
		{name: "other scheme", cfg: Config{Address: "ftp://h"}, wantErr: "scheme must be http, https or dns"},
		{name: "dns name", cfg: Config{Address: "dns:///central.example:8443"}, wantBase: "https://central.example:8443"},
		{name: "dns name and server", cfg: Config{Address: "dns://10.0.0.53/central.example:8443"}, wantBase: "https://central.example:8443"},
		{name: "dns without port", cfg: Config{Address: "dns:///central.example"}, wantErr: "want dns:///name:port"},
		{name: "dns without name", cfg: Config{Address: "dns://10.0.0.53"}, wantErr: "want dns:///name:port"},
		{name: "dns server and resolver", cfg: Config{Address: "dns://10.0.0.53/c:1", Resolver: &net.Resolver{}}, wantErr: "give one"},
		{name: "resolver with HTTPClient", cfg: Config{Address: "h", Resolver: &net.Resolver{}, HTTPClient: &http.Client{}}, wantErr: "leave HTTPClient nil"},
		{name: "query", cfg: Config{Address: "https://h/?a=b"}, wantErr: "want scheme://host"},
		{name: "user in URL", cfg: Config{Address: "https://u:p@h"}, wantErr: "want scheme://host"},
		{name: "token and username", cfg: Config{Address: "h", Token: "t", Username: "u"}, wantErr: "not both"},
		{name: "password alone", cfg: Config{Address: "h", Password: "p"}, wantErr: "password without a username"},
		{name: "TLSConfig with HTTPClient", cfg: Config{Address: "h", HTTPClient: &http.Client{}, TLSConfig: &tls.Config{}}, wantErr: "TLSConfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if c.base != tt.wantBase {
				t.Errorf("base: got %q, want %q", c.base, tt.wantBase)
			}
		})
	}
}

func TestNewClientTLSConfig(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"tenants":[{"id":"default","name":"Default"}]}`)
	}))
	t.Cleanup(srv.Close)
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	c, err := NewClient(Config{Address: srv.URL, Username: "u", Password: "p", TLSConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Tenants(t.Context())
	if err != nil {
		t.Fatalf("Tenants: %v", err)
	}
	if diff := cmp.Diff([]Tenant{{ID: "default", Name: "Default"}}, got); diff != "" {
		t.Errorf("Tenants (-want +got):\n%s", diff)
	}
}

// request is what the test server saw of one request.
type request struct {
	Method      string
	Path        string // escaped
	Auth        string
	IfMatch     string
	ContentType string
	Accept      string
	Body        string
}

func TestRequests(t *testing.T) {
	smtp := &SMTPIntegration{
		Enabled:            true,
		Listen:             "127.0.0.1:2525",
		DestinationDomains: []string{"example.com", "!hr.example.com"},
		Clients:            []string{"10.0.0.0/8"},
		MaxMessageSize:     &SizeLimit{Value: 25, Unit: MB},
	}
	pop3 := &POP3Integration{Enabled: true, Server: "mail.example.com", Port: 995, Username: "u", Password: "s3cret"}
	tests := []struct {
		name   string
		cfg    Config // Address is filled in
		call   func(ctx context.Context, c *Client) error
		status int
		header map[string]string
		body   string
		want   request
	}{
		{
			name:   "list tenants with basic auth",
			cfg:    Config{Username: "admin", Password: "pw"},
			call:   func(ctx context.Context, c *Client) error { _, err := c.Tenants(ctx); return err },
			status: 200,
			body:   `{"tenants":[]}`,
			want:   request{Method: "GET", Path: "/api/v1/tenants", Auth: "Basic YWRtaW46cHc=", Accept: "application/json"},
		},
		{
			name: "create tenant with a token",
			cfg:  Config{Token: "osp_0123456789abcdef_secret"},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateTenant(ctx, Tenant{ID: "acme", Name: "Acme"})
				return err
			},
			status: 201,
			body:   `{"id":"acme","name":"Acme"}`,
			want: request{
				Method: "POST", Path: "/api/v1/tenants", Auth: "Bearer osp_0123456789abcdef_secret",
				ContentType: "application/json", Accept: "application/json",
				Body: `{"id":"acme","name":"Acme"}`,
			},
		},
		{
			name:   "sensor id is escaped",
			call:   func(ctx context.Context, c *Client) error { _, err := c.Sensor(ctx, "a/b c"); return err },
			status: 200,
			body:   `{"id":"a/b c"}`,
			want:   request{Method: "GET", Path: "/api/v1/sensors/a%2Fb%20c", Accept: "application/json"},
		},
		{
			name:   "list sensors",
			call:   func(ctx context.Context, c *Client) error { _, err := c.Sensors(ctx); return err },
			status: 200,
			body:   `{"sensors":[]}`,
			want:   request{Method: "GET", Path: "/api/v1/sensors", Accept: "application/json"},
		},
		{
			name: "put smtp with a version",
			call: func(ctx context.Context, c *Client) error {
				_, _, err := c.PutSMTP(ctx, "s1", smtp, 123)
				return err
			},
			status: 200,
			header: map[string]string{"ETag": `"124"`},
			body:   `{}`,
			want: request{
				Method: "PUT", Path: "/api/v1/sensors/s1/smtp", IfMatch: `"123"`,
				ContentType: "application/json", Accept: "application/json",
				Body: `{"enabled":true,"listen":"127.0.0.1:2525","destination_domains":["example.com","!hr.example.com"],` +
					`"clients":["10.0.0.0/8"],"max_message_size":{"unlimited":false,"value":25,"unit":"MB"}}`,
			},
		},
		{
			name: "put pop3 without a version",
			call: func(ctx context.Context, c *Client) error {
				_, _, err := c.PutPOP3(ctx, "s1", pop3, 0)
				return err
			},
			status: 200,
			body:   `{}`,
			want: request{
				Method: "PUT", Path: "/api/v1/sensors/s1/pop3",
				ContentType: "application/json", Accept: "application/json",
				Body: `{"enabled":true,"server":"mail.example.com","port":995,"interval_seconds":0,"tls":false,` +
					`"username":"u","password":"s3cret","password_set":false,"tls_certificate":""}`,
			},
		},
		{
			name:   "get pop3",
			call:   func(ctx context.Context, c *Client) error { _, _, err := c.POP3(ctx, "s1"); return err },
			status: 200,
			body:   `{}`,
			want:   request{Method: "GET", Path: "/api/v1/sensors/s1/pop3", Accept: "application/json"},
		},
		{
			name:   "approve",
			call:   func(ctx context.Context, c *Client) error { _, err := c.ApproveSensor(ctx, "s1"); return err },
			status: 200,
			body:   `{"id":"s1","state":"approved"}`,
			want:   request{Method: "POST", Path: "/api/v1/sensors/s1/approve", Accept: "application/json"},
		},
		{
			name:   "revoke",
			call:   func(ctx context.Context, c *Client) error { _, err := c.RevokeSensor(ctx, "s1"); return err },
			status: 200,
			body:   `{"id":"s1","state":"revoked"}`,
			want:   request{Method: "POST", Path: "/api/v1/sensors/s1/revoke", Accept: "application/json"},
		},
		{
			name:   "apply a sensor's smtp to its tenant",
			call:   func(ctx context.Context, c *Client) error { _, err := c.ApplySMTPToTenant(ctx, "s1"); return err },
			status: 200,
			body:   `{"source":"s1","tenant":"default","sensors":[{"sensor":"s2","result":"applied","version":7}]}`,
			want:   request{Method: "POST", Path: "/api/v1/sensors/s1/smtp/apply-to-tenant", Accept: "application/json"},
		},
		{
			name:   "list users",
			call:   func(ctx context.Context, c *Client) error { _, err := c.Users(ctx); return err },
			status: 200,
			body:   `{"users":[]}`,
			want:   request{Method: "GET", Path: "/api/v1/users", Accept: "application/json"},
		},
		{
			name: "create user",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateUser(ctx, User{Name: "eve", Role: RoleSecurityAuditor, Tenants: []string{"default"}, Password: "pw"})
				return err
			},
			status: 201,
			body:   `{"name":"eve","role":"security-auditor","tenants":["default"]}`,
			want: request{
				Method: "POST", Path: "/api/v1/users", ContentType: "application/json", Accept: "application/json",
				Body: `{"name":"eve","role":"security-auditor","tenants":["default"],"password":"pw"}`,
			},
		},
		{
			name: "create join token",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.CreateToken(ctx, TokenRequest{Kind: TokenJoin, Tenant: "default", TTLSeconds: 3600})
				return err
			},
			status: 201,
			body:   `{"id":"0123456789abcdef","kind":"join","secret":"osp_0123456789abcdef_x"}`,
			want: request{
				Method: "POST", Path: "/api/v1/tokens", ContentType: "application/json", Accept: "application/json",
				Body: `{"kind":"join","tenant":"default","ttl_seconds":3600}`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got request
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got = request{
					Method:      r.Method,
					Path:        r.URL.EscapedPath(),
					Auth:        r.Header.Get("Authorization"),
					IfMatch:     r.Header.Get("If-Match"),
					ContentType: r.Header.Get("Content-Type"),
					Accept:      r.Header.Get("Accept"),
					Body:        string(b),
				}
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			cfg := tt.cfg
			cfg.Address = srv.URL
			c, err := NewClient(cfg)
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
}

func TestInvalidSensorID(t *testing.T) {
	c, err := NewClient(Config{Address: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", ".", ".."} {
		if _, err := c.Sensor(t.Context(), id); err == nil || !strings.Contains(err.Error(), "invalid sensor id") {
			t.Errorf("Sensor(%q): got error %v, want invalid sensor id", id, err)
		}
	}
}

func TestVersions(t *testing.T) {
	tests := []struct {
		name    string
		etag    string
		want    int64
		wantErr bool
	}{
		{name: "quoted revision", etag: `"42"`, want: 42},
		{name: "no etag", etag: "", want: 0},
		{name: "unquoted", etag: "42", wantErr: true},
		{name: "weak", etag: `W/"42"`, wantErr: true},
		{name: "not a number", etag: `"abc"`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.etag != "" {
					w.Header().Set("ETag", tt.etag)
				}
				io.WriteString(w, `{"enabled":true,"listen":"127.0.0.1:2525"}`)
			}))
			t.Cleanup(srv.Close)
			c, err := NewClient(Config{Address: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			got, v, err := c.SMTP(t.Context(), "s1")
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got version %d, want an error", v)
				}
				return
			}
			if err != nil {
				t.Fatalf("SMTP: %v", err)
			}
			if v != tt.want {
				t.Errorf("version: got %d, want %d", v, tt.want)
			}
			if !got.Enabled || got.Listen != "127.0.0.1:2525" {
				t.Errorf("SMTP: got %+v, want enabled on 127.0.0.1:2525", got)
			}
		})
	}
}

func TestPutNegativeVersion(t *testing.T) {
	c, err := NewClient(Config{Address: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.PutSMTP(t.Context(), "s1", &SMTPIntegration{}, -1); err == nil {
		t.Error("PutSMTP with version -1: got no error, want one")
	}
}

func TestErrorDecoding(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        *Error
		wantString  string
	}{
		{
			name:   "validation error",
			status: http.StatusBadRequest,
			body:   `{"error":"invalid smtp integration","fields":[{"field":"clients[1]","message":"not an IP address or CIDR"},{"field":"max_message_size.unit","message":"unknown unit \"TB\""}]}`,
			want: &Error{StatusCode: 400, Message: "invalid smtp integration", Fields: []FieldError{
				{Field: "clients[1]", Message: "not an IP address or CIDR"},
				{Field: "max_message_size.unit", Message: `unknown unit "TB"`},
			}},
			wantString: `invalid smtp integration: clients[1]: not an IP address or CIDR; max_message_size.unit: unknown unit "TB" (status 400)`,
		},
		{
			name:       "stale version",
			status:     http.StatusConflict,
			body:       `{"error":"version 7 is not current","extra":true}`,
			want:       &Error{StatusCode: 409, Message: "version 7 is not current"},
			wantString: "version 7 is not current (status 409)",
		},
		{
			name:        "plain text from a proxy",
			status:      http.StatusBadGateway,
			contentType: "text/plain",
			body:        "upstream down\n",
			want:        &Error{StatusCode: 502, Message: "Bad Gateway: upstream down"},
			wantString:  "Bad Gateway: upstream down (status 502)",
		},
		{
			name:       "empty body",
			status:     http.StatusUnauthorized,
			want:       &Error{StatusCode: 401, Message: "Unauthorized"},
			wantString: "Unauthorized (status 401)",
		},
		{
			name:       "JSON without a message",
			status:     http.StatusForbidden,
			body:       `{}`,
			want:       &Error{StatusCode: 403, Message: "Forbidden: {}"},
			wantString: "Forbidden: {} (status 403)",
		},
		{
			name:       "binary body",
			status:     http.StatusInternalServerError,
			body:       "\xff\xfe",
			want:       &Error{StatusCode: 500, Message: "Internal Server Error"},
			wantString: "Internal Server Error (status 500)",
		},
		{
			name:       "long body is cut",
			status:     599,
			body:       strings.Repeat("é", 150),
			want:       &Error{StatusCode: 599, Message: "unexpected status: " + strings.Repeat("é", 100) + "…"},
			wantString: "unexpected status: " + strings.Repeat("é", 100) + "… (status 599)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.contentType != "" {
					w.Header().Set("Content-Type", tt.contentType)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			c, err := NewClient(Config{Address: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Sensors(t.Context())
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("got error %v (%T), want an *Error", err, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if got.Error() != tt.wantString {
				t.Errorf("Error(): got %q, want %q", got.Error(), tt.wantString)
			}
		})
	}
}

func TestResponseTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, io.LimitReader(zeros{}, maxResponseBytes+2))
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sensors(t.Context()); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("got error %v, want response larger than the limit", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestLenientDecoding checks that fields the client does not know are ignored.
func TestLenientDecoding(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"sensors":[{"id":"s1","name":"branch-1","tenant":"default","state":"approved",`+
			`"online":true,"config_version":12,"applied_version":11,"future_field":{"x":1}}],"next":"abc"}`)
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Sensors(t.Context())
	if err != nil {
		t.Fatalf("Sensors: %v", err)
	}
	want := []Sensor{{ID: "s1", Name: "branch-1", Tenant: "default", State: SensorApproved, Online: true, ConfigVersion: 12, AppliedVersion: 11}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Sensors (-want +got):\n%s", diff)
	}
}

// TestJSONShape decodes the request bodies of the API's documentation strictly, so a
// renamed JSON tag fails here.
func TestJSONShape(t *testing.T) {
	tests := []struct {
		name string
		json string
		into any
		want any
	}{
		{
			name: "smtp",
			json: `{"enabled":true,"listen":"127.0.0.1:2525","destination_domains":["example.com","!hr.example.com"],` +
				`"clients":["10.0.0.0/8","!10.0.0.5","2001:db8::/32"],"max_message_size":{"unlimited":false,"value":25,"unit":"MB"},` +
				`"tls":{"mode":"require","cert_pem":"C","key_pem":"K","key_set":false,"client_cert":"request","client_ca_pem":"CA"},` +
				`"limits":{"max_recipients":100,"max_connections":50,"max_connections_per_client":5,"command_timeout_seconds":60,` +
				`"data_timeout_seconds":300,"session_timeout_seconds":600,"max_errors":10}}`,
			into: &SMTPIntegration{},
			want: &SMTPIntegration{
				Enabled:            true,
				Listen:             "127.0.0.1:2525",
				DestinationDomains: []string{"example.com", "!hr.example.com"},
				Clients:            []string{"10.0.0.0/8", "!10.0.0.5", "2001:db8::/32"},
				MaxMessageSize:     &SizeLimit{Value: 25, Unit: MB},
				TLS:                &SMTPTLS{Mode: TLSRequire, CertPEM: "C", KeyPEM: "K", ClientCert: ClientCertRequest, ClientCAPEM: "CA"},
				Limits: &SMTPLimits{
					MaxRecipients: 100, MaxConnections: 50, MaxConnectionsPerClient: 5,
					CommandTimeoutSeconds: 60, DataTimeoutSeconds: 300, SessionTimeoutSeconds: 600, MaxErrors: 10,
				},
			},
		},
		{
			name: "smtp gateway",
			json: `{"enabled":true,"listen":"","destination_domains":[],"clients":[],"mode":"inbound_outbound","gateway":{` +
				`"inbound":{"listen":"0.0.0.0:25","listen_v6":"[::]:25","tls":{"mode":"accept","key_set":false,"client_cert":"off"}},` +
				`"outbound":{"listen":"10.0.0.2:587","listen_v6":""},` +
				`"local_domains":[{"domain":"example.com","hosts":[{"host":"10.0.0.10","port":25,"mx_lookup":false,"preference":10}],"require_tls":true}],` +
				`"inbound_acceptance":"listed","relay_hosts":[{"host":"example.net","port":0,"mx_lookup":true,"preference":0}],` +
				`"require_tls_domains":["bank.example"],"helo_name":"gw.example.com","hold_timeout_seconds":300,"on_timeout":"keep_holding",` +
				`"queue":{"min_backoff_seconds":60,"max_backoff_seconds":3600,"max_lifetime_seconds":86400,"delay_warning_seconds":7200,` +
				`"destination_concurrency":5,"concurrency":50}}}`,
			into: &SMTPIntegration{},
			want: &SMTPIntegration{
				Enabled: true, DestinationDomains: []string{}, Clients: []string{}, Mode: SMTPInboundOutbound,
				Gateway: &SMTPGateway{
					Inbound:           &GatewayListener{Listen: "0.0.0.0:25", ListenV6: "[::]:25", TLS: &SMTPTLS{Mode: TLSAccept, ClientCert: ClientCertOff}},
					Outbound:          &GatewayListener{Listen: "10.0.0.2:587"},
					LocalDomains:      []LocalDomain{{Domain: "example.com", Hosts: []NextHop{{Host: "10.0.0.10", Port: 25, Preference: 10}}, RequireTLS: true}},
					InboundAcceptance: AcceptanceListed,
					RelayHosts:        []NextHop{{Host: "example.net", MXLookup: true}},
					RequireTLSDomains: []string{"bank.example"}, HeloName: "gw.example.com", HoldTimeoutSeconds: 300, OnTimeout: KeepHolding,
					Queue: &DeliveryQueueSettings{MinBackoffSeconds: 60, MaxBackoffSeconds: 3600, MaxLifetimeSeconds: 86400,
						DelayWarningSeconds: 7200, DestinationConcurrency: 5, Concurrency: 50},
				},
			},
		},
		{
			name: "pop3",
			json: `{"enabled":true,"server":"mail.example.com","port":995,"interval_seconds":60,"tls":true,"tls_mode":"implicit",` +
				`"username":"u","password":"p","tls_certificate":"trusted_only","cipher_suite":"HIGH:!aNULL","ca_pem":"CA"}`,
			into: &POP3Integration{},
			want: &POP3Integration{
				Enabled: true, Server: "mail.example.com", Port: 995, IntervalSeconds: 60, TLS: true, TLSMode: POP3Implicit,
				Username: "u", Password: "p", TLSCertificate: TrustedOnly, CipherSuite: "HIGH:!aNULL", CAPEM: "CA",
			},
		},
		{
			name: "join token request",
			json: `{"kind":"join","tenant":"default","ttl_seconds":3600,"max_uses":3,"description":"branch"}`,
			into: &TokenRequest{},
			want: &TokenRequest{Kind: TokenJoin, Tenant: "default", TTLSeconds: 3600, MaxUses: 3, Description: "branch"},
		},
		{
			name: "user",
			json: `{"name":"ops","role":"administrator","tenants":["acme"],"password":"pw"}`,
			into: &User{},
			want: &User{Name: "ops", Role: RoleAdministrator, Tenants: []string{"acme"}, Password: "pw"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec := json.NewDecoder(strings.NewReader(tt.json))
			dec.DisallowUnknownFields()
			if err := dec.Decode(tt.into); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, tt.into); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSecretsNotMarshalled checks that empty write-only fields are left out of a body, so
// that a read written back does not send them.
func TestSecretsNotMarshalled(t *testing.T) {
	tests := []struct {
		name string
		v    any
		not  []string
	}{
		{name: "pop3", v: POP3Integration{PasswordSet: true}, not: []string{`"password"`}},
		{name: "smtp tls", v: SMTPTLS{KeySet: true}, not: []string{`"key_pem"`}},
		{name: "user", v: User{Name: "u"}, not: []string{`"password"`}},
		{name: "token", v: Token{ID: "x"}, not: []string{`"secret"`, `"expires_at"`, `"created_at"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.not {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("got %s, want no %s", b, s)
				}
			}
		})
	}
}

func TestETag(t *testing.T) {
	if got := FormatETag(123); got != `"123"` {
		t.Errorf("FormatETag(123): got %s, want \"123\"", got)
	}
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: `"123"`, want: 123},
		{in: `"9223372036854775807"`, want: 9223372036854775807},
		{in: `"0"`, wantErr: true},
		{in: `"-1"`, wantErr: true},
		{in: `"9223372036854775808"`, wantErr: true},
		{in: `123`, wantErr: true},
		{in: `"123`, wantErr: true},
		{in: `""`, wantErr: true},
		{in: `"`, wantErr: true},
		{in: ``, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseETag(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseETag(%s): got error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseETag(%s): got %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

// TestDNSAddressFailsOver resolves a dns: address through a DNS server that
// answers first with an address where nothing listens, then with the API's:
// the client skips the dead one.
func TestDNSAddressFailsOver(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"nodes":[{"name":"n1","state":"alive","roles":["central"],"gossip_addr":"127.0.0.1:7946","health":{"etcd":true,"grpc":true,"http":true,"smtp":false,"spool":true}}],"dns":{"zone":"cluster.test.","addr":"127.0.0.1:53","ttl_seconds":5,"quorum":true,"records":[]}}`)
	}))
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// 127.0.0.2 on the server's port: nothing listens there, so it refuses.
	dnsAddr := fakeDNS(t, "central.cluster.test.", "127.0.0.2", "127.0.0.1")
	c, err := NewClient(Config{Address: "dns://" + dnsAddr + "/central.cluster.test:" + port, Username: "u", Password: "p",
		TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := c.Nodes(t.Context())
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	if len(nodes.Nodes) != 1 || nodes.Nodes[0].State != NodeAlive || !nodes.DNS.Quorum {
		t.Errorf("Nodes: got %+v", nodes)
	}
}

// fakeDNS answers A queries for name with ips, in order, over UDP on
// loopback, and returns its address.
func fakeDNS(t *testing.T, name string, ips ...string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		if q := req.Question[0]; q.Qtype == dns.TypeA && strings.EqualFold(q.Name, name) {
			for _, ip := range ips {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.ParseIP(ip)})
			}
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}
