// Package api is the Go client of Osprey's REST API, and the JSON types of that API.
//
// The types are the API's contract, which openapi.yaml next to this file describes; the
// server uses the same types. The client reads leniently: it ignores fields it does not know,
// so an older client keeps working against a newer server. Refusing unknown fields is the
// server's job, and it does so for every request body.
//
// Write-only fields (a POP3 password, an SMTP private key) are never returned by a read; a
// read says whether one is stored (password_set, key_set) instead, and a write that leaves
// them empty keeps the stored secret. Writes of a sensor's configuration are conditional on
// a version: pass the version a read returned and the server answers 409 Conflict if
// someone else wrote in between.
package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultTimeout bounds a whole request of a client that NewClient builds itself.
const DefaultTimeout = time.Minute

// maxResponseBytes bounds the response bodies the client reads.
const maxResponseBytes = 16 << 20

// Config configures a Client.
type Config struct {
	// Address is the base URL of a central node's API, like "https://central.example.com:8443".
	// Without a scheme, https is assumed.
	//
	// "dns:///central.cluster.example:8443" (as gRPC writes it) is the HTTPS API of every node
	// the name resolves to, as the cluster's DNS answers it: each connection tries the
	// addresses in turn until one answers, so a dead node is skipped. "dns://10.0.0.53:53/name:port"
	// asks that DNS server instead of the system's resolver. TLS checks the certificate
	// against the name, so each node's certificate must cover it.
	Address string
	// Resolver, when set, resolves the host of Address (for a dns: address, or any other)
	// instead of the system's resolver. It needs the client's own transport: leave
	// HTTPClient nil.
	Resolver *net.Resolver

	// Username and Password authenticate with HTTP Basic.
	Username string
	Password string
	// Token is an API token ("osp_<id>_<secret>") sent as Authorization: Bearer. Set either
	// Token or Username, not both.
	Token string

	// HTTPClient sends the requests. If nil, the client uses one with DefaultTimeout and
	// TLSConfig.
	HTTPClient *http.Client
	// TLSConfig configures TLS when HTTPClient is nil (for a private CA, say). With an
	// HTTPClient, configure TLS on its transport instead.
	TLSConfig *tls.Config
	// TLSFingerprints, when set, pins the server's certificate: a connection is made when
	// the SHA-256 fingerprint of the certificate the server presents is one of these
	// (see [ParseFingerprint] for the forms taken), whatever its chain and the names it
	// covers, and fails with a *[FingerprintError] otherwise. A central node prints its
	// API certificate's fingerprint at start. It replaces the usual verification; it
	// needs the client's own transport, so leave HTTPClient nil.
	TLSFingerprints []string
}

// Client calls the REST API of a central node. It is safe for concurrent use.
type Client struct {
	base     string // scheme://host[/prefix], without a trailing slash
	hc       *http.Client
	username string
	password string
	token    string
}

// NewClient returns a client for cfg.
func NewClient(cfg Config) (*Client, error) {
	base, dnsServer, err := parseAddress(cfg.Address)
	if err != nil {
		return nil, err
	}
	resolver := cfg.Resolver
	switch {
	case dnsServer != "" && resolver != nil:
		return nil, errors.New("api: a dns://server/ address and a Resolver: give one")
	case dnsServer != "":
		resolver = dnsResolver(dnsServer)
	}
	if resolver != nil && cfg.HTTPClient != nil {
		return nil, errors.New("api: a Resolver or a dns://server/ address needs the client's own transport; leave HTTPClient nil")
	}
	if cfg.Token != "" && cfg.Username != "" {
		return nil, errors.New("api: set a token or a username, not both")
	}
	if cfg.Username == "" && cfg.Password != "" {
		return nil, errors.New("api: password without a username")
	}
	hc := cfg.HTTPClient
	switch {
	case hc != nil && cfg.TLSConfig != nil:
		return nil, errors.New("api: TLSConfig is only used without an HTTPClient; set it on the HTTPClient's transport")
	case hc != nil && len(cfg.TLSFingerprints) > 0:
		return nil, errors.New("api: TLSFingerprints needs the client's own transport; leave HTTPClient nil")
	case hc == nil:
		hc = &http.Client{Timeout: DefaultTimeout}
		tlsConfig := cfg.TLSConfig
		if len(cfg.TLSFingerprints) > 0 {
			if tlsConfig, err = pinnedTLS(cfg.TLSConfig, cfg.TLSFingerprints); err != nil {
				return nil, err
			}
		}
		if tlsConfig != nil || resolver != nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			if tlsConfig != nil {
				tr.TLSClientConfig = tlsConfig.Clone()
			}
			if resolver != nil {
				// The dialer resolves the name and tries each address in turn,
				// giving each a share of the timeout (at least 2 s).
				tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second, Resolver: resolver}).DialContext
			}
			hc.Transport = tr
		}
	}
	return &Client{
		base:     base,
		hc:       hc,
		username: cfg.Username,
		password: cfg.Password,
		token:    cfg.Token,
	}, nil
}

// dialTimeout bounds one connection, over every address a name resolves to.
const dialTimeout = 10 * time.Second

// parseAddress returns the base URL of addr and, for "dns://server/name:port",
// the DNS server to ask.
func parseAddress(addr string) (base, dnsServer string, err error) {
	if addr == "" {
		return "", "", errors.New("api: no address")
	}
	if rest, ok := strings.CutPrefix(addr, "dns://"); ok {
		server, target, ok := strings.Cut(rest, "/")
		if !ok || target == "" || strings.ContainsAny(target, "/?#@") {
			return "", "", fmt.Errorf("api: address %q: want dns:///name:port or dns://server:port/name:port", addr)
		}
		if _, _, err := net.SplitHostPort(target); err != nil {
			return "", "", fmt.Errorf("api: address %q: want dns:///name:port: %w", addr, err)
		}
		if server != "" {
			if _, _, err := net.SplitHostPort(server); err != nil {
				server = net.JoinHostPort(server, "53")
			}
		}
		return "https://" + target, server, nil
	}
	if !strings.Contains(addr, "://") {
		addr = "https://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", "", fmt.Errorf("api: address: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", "", fmt.Errorf("api: address %q: scheme must be http, https or dns", addr)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("api: address %q: want scheme://host[:port][/prefix]", addr)
	}
	return strings.TrimSuffix(u.String(), "/"), "", nil
}

// dnsResolver is a resolver that asks the DNS server at addr (host:port).
func dnsResolver(addr string) *net.Resolver {
	d := &net.Dialer{Timeout: 2 * time.Second}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}
}

// Tenants lists the tenants the caller may see.
func (c *Client) Tenants(ctx context.Context) ([]Tenant, error) {
	var out TenantList
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/tenants", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Tenants, nil
}

// CreateTenant creates a tenant and returns it as stored.
func (c *Client) CreateTenant(ctx context.Context, t Tenant) (*Tenant, error) {
	var out Tenant
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/tenants", nil, t, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApplySMTP applies one SMTP integration to every sensor of tenant.
func (c *Client) ApplySMTP(ctx context.Context, tenant string, cfg *SMTPIntegration) (*ApplyResult, error) {
	var out ApplyResult
	if _, err := c.do(ctx, http.MethodPut, "/api/v1/tenants/"+url.PathEscape(tenant)+"/smtp", nil, cfg, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Sensors lists the sensors the caller may see, with their status.
func (c *Client) Sensors(ctx context.Context) ([]Sensor, error) {
	var out SensorList
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/sensors", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Sensors, nil
}

// Sensor returns one sensor with its status.
func (c *Client) Sensor(ctx context.Context, id string) (*Sensor, error) {
	p, err := sensorPath(id, "")
	if err != nil {
		return nil, err
	}
	var out Sensor
	if _, err := c.do(ctx, http.MethodGet, p, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ApproveSensor approves a pending (or revoked) sensor and returns it.
func (c *Client) ApproveSensor(ctx context.Context, id string) (*Sensor, error) {
	return c.sensorAction(ctx, id, "approve")
}

// RevokeSensor revokes a sensor and returns it.
func (c *Client) RevokeSensor(ctx context.Context, id string) (*Sensor, error) {
	return c.sensorAction(ctx, id, "revoke")
}

func (c *Client) sensorAction(ctx context.Context, id, action string) (*Sensor, error) {
	p, err := sensorPath(id, action)
	if err != nil {
		return nil, err
	}
	var out Sensor
	if _, err := c.do(ctx, http.MethodPost, p, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SMTP returns a sensor's SMTP integration and its version, for a later PutSMTP.
func (c *Client) SMTP(ctx context.Context, id string) (*SMTPIntegration, int64, error) {
	var out SMTPIntegration
	v, err := c.getVersioned(ctx, id, "smtp", &out)
	if err != nil {
		return nil, 0, err
	}
	return &out, v, nil
}

// PutSMTP replaces a sensor's SMTP integration and returns it as stored, with its new
// version. If version is not 0, the write happens only if the stored version is still
// version; otherwise it fails with an *Error of status 409.
func (c *Client) PutSMTP(ctx context.Context, id string, cfg *SMTPIntegration, version int64) (*SMTPIntegration, int64, error) {
	var out SMTPIntegration
	v, err := c.putVersioned(ctx, id, "smtp", cfg, version, &out)
	if err != nil {
		return nil, 0, err
	}
	return &out, v, nil
}

// ApplySMTPToTenant applies sensor id's SMTP integration to every other sensor of its
// tenant ("Apply above settings to all scanners"), except what belongs to each host: the
// listen addresses and the TLS certificates and keys, which each sensor keeps. Each
// sensor is written, left unchanged, or refused with its errors, as the result says.
func (c *Client) ApplySMTPToTenant(ctx context.Context, id string) (*SMTPApplyResult, error) {
	p, err := sensorPath(id, "smtp/apply-to-tenant")
	if err != nil {
		return nil, err
	}
	var out SMTPApplyResult
	if _, err := c.do(ctx, http.MethodPost, p, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// POP3 returns a sensor's POP3 integration and its version, for a later PutPOP3. The
// password is never returned; PasswordSet says whether one is stored.
func (c *Client) POP3(ctx context.Context, id string) (*POP3Integration, int64, error) {
	var out POP3Integration
	v, err := c.getVersioned(ctx, id, "pop3", &out)
	if err != nil {
		return nil, 0, err
	}
	return &out, v, nil
}

// PutPOP3 replaces a sensor's POP3 integration and returns it as stored, with its new
// version. An empty Password keeps the stored one. Version works as in PutSMTP.
func (c *Client) PutPOP3(ctx context.Context, id string, cfg *POP3Integration, version int64) (*POP3Integration, int64, error) {
	var out POP3Integration
	v, err := c.putVersioned(ctx, id, "pop3", cfg, version, &out)
	if err != nil {
		return nil, 0, err
	}
	return &out, v, nil
}

func (c *Client) getVersioned(ctx context.Context, id, part string, out any) (int64, error) {
	p, err := sensorPath(id, part)
	if err != nil {
		return 0, err
	}
	return c.getVersionedAt(ctx, p, out)
}

// getVersionedAt reads the document at path p and returns its version.
func (c *Client) getVersionedAt(ctx context.Context, p string, out any) (int64, error) {
	resp, err := c.do(ctx, http.MethodGet, p, nil, nil, out)
	if err != nil {
		return 0, err
	}
	return responseVersion(resp)
}

func (c *Client) putVersioned(ctx context.Context, id, part string, in any, version int64, out any) (int64, error) {
	p, err := sensorPath(id, part)
	if err != nil {
		return 0, err
	}
	return c.putVersionedAt(ctx, p, in, version, out)
}

// putVersionedAt writes the document at path p, if version is not 0 only
// while its stored version is still version, and returns its new version.
func (c *Client) putVersionedAt(ctx context.Context, p string, in any, version int64, out any) (int64, error) {
	if version < 0 {
		return 0, fmt.Errorf("api: negative version %d", version)
	}
	h := http.Header{}
	if version != 0 {
		h.Set("If-Match", FormatETag(version))
	}
	resp, err := c.do(ctx, http.MethodPut, p, h, in, out)
	if err != nil {
		return 0, err
	}
	return responseVersion(resp)
}

// responseVersion returns the version in resp's ETag, or 0 if it has none.
func responseVersion(resp *http.Response) (int64, error) {
	etag := resp.Header.Get("ETag")
	if etag == "" {
		return 0, nil
	}
	v, err := ParseETag(etag)
	if err != nil {
		return 0, fmt.Errorf("api: %s %s: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	return v, nil
}

// Users lists the users the caller may see. Passwords are never returned.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var out UserList
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/users", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Users, nil
}

// CreateUser creates a user (u.Password is required) and returns it as stored.
func (c *Client) CreateUser(ctx context.Context, u User) (*User, error) {
	var out User
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/users", nil, u, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateToken creates a token. The returned Token's Secret is the only copy of the bearer
// string; the server cannot show it again.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (*Token, error) {
	var out Token
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/tokens", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Nodes lists the members of the central node cluster with their state, health and
// addresses, and the DNS answers the cluster gives, as the node that answers sees them.
func (c *Client) Nodes(ctx context.Context) (*NodeList, error) {
	var out NodeList
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/nodes", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rules lists a tenant's rules, enabled and disabled, by id.
func (c *Client) Rules(ctx context.Context, tenant string) ([]Rule, error) {
	p, err := tenantPath(tenant, "rules")
	if err != nil {
		return nil, err
	}
	var out RuleList
	if _, err := c.do(ctx, http.MethodGet, p, nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Rules, nil
}

// Rule returns one rule of a tenant; its Version is for a later UpdateRule or DeleteRule.
func (c *Client) Rule(ctx context.Context, tenant, id string) (*Rule, error) {
	p, err := rulePath(tenant, id)
	if err != nil {
		return nil, err
	}
	var out Rule
	if _, err := c.do(ctx, http.MethodGet, p, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateRule creates a rule in tenant (an id is generated when r.ID is empty) and returns it
// as stored, its value in canonical form.
func (c *Client) CreateRule(ctx context.Context, tenant string, r Rule) (*Rule, error) {
	p, err := tenantPath(tenant, "rules")
	if err != nil {
		return nil, err
	}
	var out Rule
	if _, err := c.do(ctx, http.MethodPost, p, nil, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateRule replaces the rule r.ID of tenant and returns it as stored. If version is not 0,
// the write happens only if the stored version is still version; otherwise it fails with an
// *Error of status 409.
func (c *Client) UpdateRule(ctx context.Context, tenant string, r Rule, version int64) (*Rule, error) {
	p, err := rulePath(tenant, r.ID)
	if err != nil {
		return nil, err
	}
	return c.putRule(ctx, p, r, version)
}

// putRule replaces the rule at path p; version works as in UpdateRule.
func (c *Client) putRule(ctx context.Context, p string, r Rule, version int64) (*Rule, error) {
	h, err := ifMatch(version)
	if err != nil {
		return nil, err
	}
	var out Rule
	if _, err := c.do(ctx, http.MethodPut, p, h, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteRule deletes a rule of tenant. Version works as in UpdateRule.
func (c *Client) DeleteRule(ctx context.Context, tenant, id string, version int64) error {
	p, err := rulePath(tenant, id)
	if err != nil {
		return err
	}
	return c.deleteAt(ctx, p, version)
}

// deleteAt deletes what is at path p; version works as in UpdateRule.
func (c *Client) deleteAt(ctx context.Context, p string, version int64) error {
	h, err := ifMatch(version)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodDelete, p, h, nil, nil)
	return err
}

// GlobalRules lists the global rules, which apply to every tenant's
// messages, by id.
func (c *Client) GlobalRules(ctx context.Context) ([]Rule, error) {
	var out RuleList
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/rules", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Rules, nil
}

// CreateGlobalRule creates a global rule (an administrator of all tenants
// only) and returns it as stored.
func (c *Client) CreateGlobalRule(ctx context.Context, r Rule) (*Rule, error) {
	var out Rule
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/rules", nil, r, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateGlobalRule replaces the global rule r.ID and returns it as stored.
// Version works as in UpdateRule.
func (c *Client) UpdateGlobalRule(ctx context.Context, r Rule, version int64) (*Rule, error) {
	p, err := globalRulePath(r.ID)
	if err != nil {
		return nil, err
	}
	return c.putRule(ctx, p, r, version)
}

// DeleteGlobalRule deletes a global rule. Version works as in UpdateRule.
func (c *Client) DeleteGlobalRule(ctx context.Context, id string, version int64) error {
	p, err := globalRulePath(id)
	if err != nil {
		return err
	}
	return c.deleteAt(ctx, p, version)
}

func globalRulePath(id string) (string, error) {
	if id == "" || id == "." || id == ".." {
		return "", fmt.Errorf("api: invalid rule id %q", id)
	}
	return "/api/v1/rules/" + url.PathEscape(id), nil
}

// Alerts returns one page of the alerts q selects, newest first. Pass the page's
// NextPageToken as q.PageToken for the next one, until it is empty.
func (c *Client) Alerts(ctx context.Context, q AlertQuery) (*AlertList, error) {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("tenant", q.Tenant)
	set("severity", string(q.Severity))
	if !q.Since.IsZero() {
		v.Set("since", q.Since.Format(time.RFC3339Nano))
	}
	set("sensor", q.Sensor)
	set("server", q.Server)
	set("q", q.Q)
	set("page_token", q.PageToken)
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out AlertList
	if _, err := c.do(ctx, http.MethodGet, withQuery("/api/v1/alerts", v), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Audit returns one page of the message audit log, newest first.
func (c *Client) Audit(ctx context.Context, q AuditQuery) (*AuditList, error) {
	v := url.Values{}
	for k, s := range map[string]string{"tenant": q.Tenant, "sensor": q.Sensor, "kind": q.Kind, "sender": q.Sender,
		"recipient": q.Recipient, "subject": q.Subject, "message_id": q.MessageID, "client_ip": q.ClientIP,
		"verdict": q.Verdict, "reason": q.Reason, "page_token": q.PageToken} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.Format(time.RFC3339Nano))
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out AuditList
	if _, err := c.do(ctx, http.MethodGet, withQuery("/api/v1/audit", v), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Alert returns one alert. tenant may be empty: the server then looks in every tenant the
// caller may see.
func (c *Client) Alert(ctx context.Context, tenant, id string) (*Alert, error) {
	if id == "" || id == "." || id == ".." {
		return nil, fmt.Errorf("api: invalid alert id %q", id)
	}
	v := url.Values{}
	if tenant != "" {
		v.Set("tenant", tenant)
	}
	var out Alert
	if _, err := c.do(ctx, http.MethodGet, withQuery("/api/v1/alerts/"+url.PathEscape(id), v), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Messages returns one page of the records of uploaded messages q selects. Pass the page's
// NextPageToken as q.PageToken for the next one, until it is empty.
func (c *Client) Messages(ctx context.Context, q MessageQuery) (*MessageList, error) {
	v := url.Values{}
	for k, s := range map[string]string{"tenant": q.Tenant, "sensor": q.Sensor, "page_token": q.PageToken} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out MessageList
	if _, err := c.do(ctx, http.MethodGet, withQuery("/api/v1/messages", v), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Export returns a tenant's syslog export and its version, for a later PutExport.
func (c *Client) Export(ctx context.Context, tenant string) (*SyslogExport, int64, error) {
	return getTenantDoc[SyslogExport](ctx, c, tenant, "export")
}

// PutExport replaces a tenant's syslog export and returns it as stored, with its new version.
// Version works as in UpdateRule.
func (c *Client) PutExport(ctx context.Context, tenant string, e *SyslogExport, version int64) (*SyslogExport, int64, error) {
	return putTenantDoc(ctx, c, tenant, "export", e, version)
}

// Policy returns a tenant's verdict policy (every field with the value that applies) and
// its version, for a later PutPolicy.
func (c *Client) Policy(ctx context.Context, tenant string) (*VerdictPolicy, int64, error) {
	return getTenantDoc[VerdictPolicy](ctx, c, tenant, "policy")
}

// PutPolicy replaces a tenant's verdict policy and returns it as stored, with its new
// version. Version works as in UpdateRule.
func (c *Client) PutPolicy(ctx context.Context, tenant string, p *VerdictPolicy, version int64) (*VerdictPolicy, int64, error) {
	return putTenantDoc(ctx, c, tenant, "policy", p, version)
}

// getTenantDoc reads one of a tenant's documents (/api/v1/tenants/{tenant}/{name}) and
// its version.
func getTenantDoc[T any](ctx context.Context, c *Client, tenant, name string) (*T, int64, error) {
	p, err := tenantPath(tenant, name)
	if err != nil {
		return nil, 0, err
	}
	var out T
	resp, err := c.do(ctx, http.MethodGet, p, nil, nil, &out)
	if err != nil {
		return nil, 0, err
	}
	v, err := responseVersion(resp)
	return &out, v, err
}

// putTenantDoc replaces one of a tenant's documents, if it is still at version (0: any).
func putTenantDoc[T any](ctx context.Context, c *Client, tenant, name string, in *T, version int64) (*T, int64, error) {
	p, err := tenantPath(tenant, name)
	if err != nil {
		return nil, 0, err
	}
	h, err := ifMatch(version)
	if err != nil {
		return nil, 0, err
	}
	var out T
	resp, err := c.do(ctx, http.MethodPut, p, h, in, &out)
	if err != nil {
		return nil, 0, err
	}
	v, err := responseVersion(resp)
	return &out, v, err
}

// ifMatch returns the If-Match header of a conditional write, or none for version 0.
func ifMatch(version int64) (http.Header, error) {
	if version < 0 {
		return nil, fmt.Errorf("api: negative version %d", version)
	}
	h := http.Header{}
	if version != 0 {
		h.Set("If-Match", FormatETag(version))
	}
	return h, nil
}

func withQuery(path string, v url.Values) string {
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// tenantPath returns the escaped path of a tenant's sub-resource.
func tenantPath(tenant, sub string) (string, error) {
	if tenant == "" || tenant == "." || tenant == ".." {
		return "", fmt.Errorf("api: invalid tenant %q", tenant)
	}
	return "/api/v1/tenants/" + url.PathEscape(tenant) + "/" + sub, nil
}

func rulePath(tenant, id string) (string, error) {
	p, err := tenantPath(tenant, "rules")
	if err != nil {
		return "", err
	}
	if id == "" || id == "." || id == ".." {
		return "", fmt.Errorf("api: invalid rule id %q", id)
	}
	return p + "/" + url.PathEscape(id), nil
}

// sensorPath returns the escaped path of a sensor, or of one of its sub-resources.
func sensorPath(id, sub string) (string, error) {
	if id == "" || id == "." || id == ".." {
		return "", fmt.Errorf("api: invalid sensor id %q", id)
	}
	p := "/api/v1/sensors/" + url.PathEscape(id)
	if sub != "" {
		p += "/" + sub
	}
	return p, nil
}

// do sends a request with in as its JSON body (if not nil) and decodes a successful
// response's body into out (if not nil). A response that is not 2xx becomes an *Error. The
// returned response's body is closed.
func (c *Client) do(ctx context.Context, method, path string, header http.Header, in, out any) (*http.Response, error) {
	resp, err := c.send(ctx, method, path, header, in, "application/json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: read response: %w", method, path, err)
	}
	if len(b) > maxResponseBytes {
		return nil, fmt.Errorf("api: %s %s: response larger than %d bytes", method, path, maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, decodeError(resp.StatusCode, b)
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("api: %s %s: decode response: %w", method, path, err)
		}
	}
	return resp, nil
}

// stream sends a GET of path and copies a successful response's body to w,
// however large; an error response becomes an *Error as in do.
func (c *Client) stream(ctx context.Context, path, accept string, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, path, nil, nil, accept)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return decodeError(resp.StatusCode, b)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("api: GET %s: read response: %w", path, err)
	}
	return nil
}

// rawBody is a request body sent as it is, not as JSON.
type rawBody struct {
	contentType string
	r           io.Reader
}

// send sends a request with in as its JSON body (if not nil; a rawBody as
// it is) and returns the response, its body for the caller to read and
// close.
func (c *Client) send(ctx context.Context, method, path string, header http.Header, in any, accept string) (*http.Response, error) {
	var body io.Reader
	contentType := "application/json"
	switch in := in.(type) {
	case nil:
	case rawBody:
		body, contentType = in.r, in.contentType
	default:
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("api: %s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", method, path, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "osprey-api-go")
	if in != nil {
		req.Header.Set("Content-Type", contentType)
	}
	switch {
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.username != "":
		req.SetBasicAuth(c.username, c.password)
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		if u := req.URL; u.Scheme == "https" && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
			// net/http has no error value to match for this one.
			return nil, fmt.Errorf("api: %s answers in plain HTTP, not HTTPS: use the address %s: %w", u.Host, "http://"+strings.TrimPrefix(c.base, "https://"), err)
		}
		return nil, fmt.Errorf("api: %w", err) // *url.Error already names the method and URL
	}
	return resp, nil
}

// decodeError turns an error response into an *Error. A body that is not the API's error
// JSON (from a proxy, say) becomes the status text with the start of the body.
func decodeError(status int, body []byte) *Error {
	var e Error
	if err := json.Unmarshal(body, &e); err == nil && e.Message != "" {
		e.StatusCode = status
		return &e
	}
	msg := http.StatusText(status)
	if msg == "" {
		msg = "unexpected status"
	}
	if text := strings.TrimSpace(string(body)); text != "" && utf8.ValidString(text) {
		if len(text) > 200 {
			n := 200
			for n > 0 && !utf8.RuneStart(text[n]) {
				n--
			}
			text = text[:n] + "…"
		}
		msg += ": " + text
	}
	return &Error{StatusCode: status, Message: msg}
}

// Queue returns one page of a gateway sensor's delivery queue, as the
// sensor reads it now: the sensor must be connected. Pass the page's
// NextPageToken as q.PageToken for the next one, until it is empty.
func (c *Client) Queue(ctx context.Context, sensor string, q QueueQuery) (*QueueList, error) {
	p, err := sensorPath(sensor, "queue")
	if err != nil {
		return nil, err
	}
	v := url.Values{}
	for k, s := range map[string]string{"state": string(q.State), "sender": q.Sender, "recipient": q.Recipient,
		"next_hop": q.NextHop, "page_token": q.PageToken} {
		if s != "" {
			v.Set(k, s)
		}
	}
	for k, d := range map[string]time.Duration{"min_age": q.MinAge, "max_age": q.MaxAge} {
		if d != 0 {
			v.Set(k, d.String())
		}
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out QueueList
	if _, err := c.do(ctx, http.MethodGet, withQuery(p, v), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// QueuedMessage returns one message of a gateway sensor's queue.
func (c *Client) QueuedMessage(ctx context.Context, sensor, id string) (*QueuedMessage, error) {
	p, err := queuedPath(sensor, id, "")
	if err != nil {
		return nil, err
	}
	var out QueuedMessage
	if _, err := c.do(ctx, http.MethodGet, p, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// QueueAct retries, holds or releases one queued message and returns it as
// it is afterwards.
func (c *Client) QueueAct(ctx context.Context, sensor, id string, action QueueAction) (*QueuedMessage, error) {
	p, err := queuedPath(sensor, id, string(action))
	if err != nil {
		return nil, err
	}
	var out QueuedMessage
	if _, err := c.do(ctx, http.MethodPost, p, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteQueued removes one message from a gateway sensor's queue and
// returns the gateway's state afterwards; with dsn, its sender gets a
// failure notice for the recipients not yet delivered.
func (c *Client) DeleteQueued(ctx context.Context, sensor, id string, dsn bool) (*GatewayStatus, error) {
	p, err := queuedPath(sensor, id, "")
	if err != nil {
		return nil, err
	}
	if dsn {
		p = withQuery(p, url.Values{"dsn": {"true"}})
	}
	var out GatewayStatus
	if _, err := c.do(ctx, http.MethodDelete, p, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ControlGateway stops or resumes a gateway sensor's sending or receiving,
// or flushes its queue, and returns its state afterwards.
func (c *Client) ControlGateway(ctx context.Context, sensor string, control GatewayControl) (*GatewayStatus, error) {
	if control == "" || strings.ContainsAny(string(control), "/?#") {
		return nil, fmt.Errorf("api: invalid gateway control %q", control)
	}
	p, err := sensorPath(sensor, "gateway/"+string(control))
	if err != nil {
		return nil, err
	}
	var out GatewayStatus
	if _, err := c.do(ctx, http.MethodPost, p, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func queuedPath(sensor, id, action string) (string, error) {
	if id == "" || id == "." || id == ".." {
		return "", fmt.Errorf("api: invalid queued message id %q", id)
	}
	sub := "queue/" + url.PathEscape(id)
	if action != "" {
		sub += "/" + url.PathEscape(action)
	}
	return sensorPath(sensor, sub)
}

// Quarantine returns a page of the quarantined messages q selects, newest first. Pass the
// page's NextPageToken as q.PageToken for the next one, until it is empty.
func (c *Client) Quarantine(ctx context.Context, q QuarantineQuery) (*QuarantineList, error) {
	v := url.Values{}
	for k, s := range map[string]string{"tenant": q.Tenant, "sensor": q.Sensor, "state": string(q.State), "sender": q.Sender,
		"recipient": q.Recipient, "subject": q.Subject, "page_token": q.PageToken} {
		if s != "" {
			v.Set(k, s)
		}
	}
	for k, t := range map[string]time.Time{"since": q.Since, "until": q.Until} {
		if !t.IsZero() {
			v.Set(k, t.UTC().Format(time.RFC3339))
		}
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out QuarantineList
	if _, err := c.do(ctx, http.MethodGet, withQuery("/api/v1/quarantine", v), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// QuarantinedMessage returns one quarantined message with its history; with preview, its
// sensor is asked for a preview of its content.
func (c *Client) QuarantinedMessage(ctx context.Context, sensor, id string, preview bool) (*QuarantinedMessage, error) {
	p, err := quarantinedPath(sensor, id, "")
	if err != nil {
		return nil, err
	}
	if preview {
		p = withQuery(p, url.Values{"preview": {"true"}})
	}
	var out QuarantinedMessage
	if _, err := c.do(ctx, http.MethodGet, p, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ReleaseQuarantined releases a quarantined message to its recipients, or, with to, a copy
// to those addresses.
func (c *Client) ReleaseQuarantined(ctx context.Context, sensor, id string, to []string) (*QuarantineActionResult, error) {
	p, err := quarantinedPath(sensor, id, "release")
	if err != nil {
		return nil, err
	}
	var out QuarantineActionResult
	if _, err := c.do(ctx, http.MethodPost, p, nil, &QuarantineRelease{To: to}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteQuarantined deletes a quarantined message.
func (c *Client) DeleteQuarantined(ctx context.Context, sensor, id string) (*QuarantineActionResult, error) {
	p, err := quarantinedPath(sensor, id, "")
	if err != nil {
		return nil, err
	}
	var out QuarantineActionResult
	if _, err := c.do(ctx, http.MethodDelete, p, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DownloadQuarantined writes a quarantined message, as it arrived (.eml), to w.
func (c *Client) DownloadQuarantined(ctx context.Context, sensor, id string, w io.Writer) error {
	p, err := quarantinedPath(sensor, id, "eml")
	if err != nil {
		return err
	}
	return c.stream(ctx, p, "message/rfc822", w)
}

func quarantinedPath(sensor, id, sub string) (string, error) {
	if id == "" || id == "." || id == ".." {
		return "", fmt.Errorf("api: invalid quarantined message id %q", id)
	}
	p := "quarantine/" + url.PathEscape(id)
	if sub != "" {
		p += "/" + sub
	}
	return sensorPath(sensor, p)
}
