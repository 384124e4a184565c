package ui_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"
	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/quarantine"
	"github.com/ospreysec/osprey/central/sensorrpc"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/central/ui"
	"github.com/ospreysec/osprey/internal/clocktest"
	"github.com/ospreysec/osprey/internal/etcdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testPassword = "correct horse battery"

// testUsers are the users of every env: one of each role, in two tenants.
var testUsers = []*ospreyv1.User{
	{Name: "root", Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true},
	{Name: "alice", Role: ospreyv1.Role_ROLE_ADMIN, Tenants: []string{"default"}},
	{Name: "bob", Role: ospreyv1.Role_ROLE_ADMIN, Tenants: []string{"acme"}},
	{Name: "audrey", Role: ospreyv1.Role_ROLE_AUDITOR, Tenants: []string{"default"}},
	{Name: "lena", Role: ospreyv1.Role_ROLE_LOCAL_ADMIN, Tenants: []string{"default"}},
	{Name: "sam", Role: ospreyv1.Role_ROLE_SENIOR_OFFICER, Tenants: []string{"default"}},
	{Name: "otto", Role: ospreyv1.Role_ROLE_OFFICER, Tenants: []string{"default"}},
}

// clock is a settable clock for session expiry and throttling.
// env is the UI over a real embedded etcd with two tenants (default and
// acme), a pending sensor in each (s1, s2), and a user of every role.
type env struct {
	t     *testing.T
	url   string
	store *store.Store
	db    *sqlstore.Store
	clock *clocktest.Clock
}

type envOptions struct {
	secureCookies bool
	// primary makes the node a PCN.
	primary bool
}

func newEnv(t *testing.T, opts ...envOptions) *env {
	t.Helper()
	var o envOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	cli := etcdtest.Client(t)
	st := store.New(cli)
	ctx := t.Context()
	all := store.AllTenants()
	for _, tenant := range []string{"default", "acme"} {
		if _, err := st.CreateTenant(ctx, all, &ospreyv1.Tenant{Id: tenant, Name: strings.ToUpper(tenant[:1]) + tenant[1:]}); err != nil {
			t.Fatal(err)
		}
	}
	// The lowest bcrypt cost keeps the tests fast; each hash carries its own cost.
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
		sn := &ospreyv1.Sensor{Id: id, Tenant: tenant, Name: "sensor-" + id, State: ospreyv1.SensorState_SENSOR_STATE_PENDING}
		if _, err := st.CreateSensor(ctx, all, sn); err != nil {
			t.Fatal(err)
		}
	}
	c := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	authn, err := auth.NewAuthenticator(auth.Options{
		Now: c.Now,
		Users: auth.UsersFunc(func(ctx context.Context, name string) (*ospreyv1.User, error) {
			u, _, err := st.GetUser(ctx, all, name)
			return u, err
		}),
		NotFound: []error{store.ErrNotFound, store.ErrInvalidID},
	})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlstore.Open(ctx, sqlstore.Options{URL: filepath.Join(t.TempDir(), "osprey.db"), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	router := sensorrpc.New(cli, nil)
	var primary *hierarchy.Primary
	if o.primary {
		primary = hierarchy.NewPrimary(hierarchy.PrimaryOptions{Store: st, Now: c.Now})
	}
	h := ui.New(ui.Options{
		Store: st, Messages: db, Requests: router, Auth: authn, InsecureCookies: !o.secureCookies,
		Quarantine: quarantine.New(quarantine.Options{Store: st, DB: db, Requests: router, Now: c.Now}),
		NodeName:   "node-1", GRPCAddr: "0.0.0.0:7443", Etcd: cli,
		JoinTokens: func(tok *ospreyv1.Token) (string, error) {
			issued := auth.NewToken() // any id and secret will do here
			tok.Id, tok.SecretHash = issued.ID, issued.SecretHash
			return "ospj_" + issued.ID + "_secret", nil
		},
		Nodes:   func(context.Context) (*api.NodeList, error) { return testNodes(), nil },
		Now:     c.Now,
		Primary: primary,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, store: st, db: db, clock: c}
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see them.
type browser struct {
	t    *testing.T
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	e.t.Cleanup(c.CloseIdleConnections)
	return &browser{t: e.t, e: e, c: c}
}

// page is a response with its body read.
type page struct {
	status   int
	header   http.Header
	body     string
	location string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	p := page{status: resp.StatusCode, header: resp.Header, body: string(body), location: resp.Header.Get("Location")}
	if m := csrfRE.FindStringSubmatch(p.body); m != nil {
		b.csrf = html.UnescapeString(m[1])
	}
	return p
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) get(path string) page {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.e.url+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// postRaw posts form as it is.
func (b *browser) postRaw(path string, form url.Values, header ...string) page {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.e.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

// post posts form with the CSRF token of the last page seen.
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf)
	return b.postRaw(path, form)
}

// signIn signs in as name with the test password and checks it worked.
func (b *browser) signIn(name string) {
	b.t.Helper()
	b.get("/signin")
	p := b.post("/signin", url.Values{"username": {name}, "password": {testPassword}})
	if p.status != http.StatusSeeOther || p.location != "/sensors" {
		b.t.Fatalf("sign in as %s: got %d to %q, want 303 to /sensors\n%s", name, p.status, p.location, p.body)
	}
	b.get("/sensors") // picks up the session's CSRF token
}

func (e *env) signedIn(name string) *browser {
	b := e.browser()
	b.signIn(name)
	return b
}

// doc parses a page's HTML.
func (p page) doc(t *testing.T) *html.Node {
	t.Helper()
	n, err := html.Parse(strings.NewReader(p.body))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// byID returns the element with id, or nil.
func byID(n *html.Node, id string) *html.Node {
	if n.Type == html.ElementNode && attr(n, "id") == id {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if found := byID(c, id); found != nil {
			return found
		}
	}
	return nil
}

// closestField returns the nearest ancestor whose class list has "field".
func closestField(n *html.Node) *html.Node {
	for p := n.Parent; p != nil; p = p.Parent {
		if p.Type == html.ElementNode && strings.Contains(" "+attr(p, "class")+" ", " field ") {
			return p
		}
	}
	return nil
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// attrOK returns an attribute's value and whether the element has it.
func attrOK(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// entryError returns the error shown beside the list entry input with id:
// the text of the element id+"-err", which must be in the entry's row.
func entryError(t *testing.T, p page, id string) string {
	t.Helper()
	doc := p.doc(t)
	input := byID(doc, id)
	if input == nil {
		t.Fatalf("no element #%s in the page", id)
	}
	errEl := byID(doc, id+"-err")
	if errEl == nil {
		return ""
	}
	if errEl.Parent != input.Parent || attr(input.Parent, "class") == "" || !strings.Contains(attr(input.Parent, "class"), "list-row") {
		t.Fatalf("the error #%s-err is not in the row of #%s", id, id)
	}
	return text(errEl)
}

// expectFieldErrors fails t unless the error shown on p beside each field
// (by its input's id) holds the text given.
func expectFieldErrors(t *testing.T, p page, want map[string]string) {
	t.Helper()
	for id, text := range want {
		if got := fieldError(t, p, id); !strings.Contains(got, text) {
			t.Errorf("#%s error %q, want it to contain %q", id, got, text)
		}
	}
}

// fieldError returns the error shown for the input with id: the text of
// the element id+"-err", which must be in the same field as the input.
func fieldError(t *testing.T, p page, id string) string {
	t.Helper()
	doc := p.doc(t)
	input := byID(doc, id)
	if input == nil {
		t.Fatalf("no element #%s in the page", id)
	}
	errEl := byID(doc, id+"-err")
	if errEl == nil {
		return ""
	}
	if closestField(errEl) != closestField(input) {
		t.Fatalf("the error #%s-err is not in the field of #%s", id, id)
	}
	return text(errEl)
}

// testNodes is the cluster the env's node sees: itself, a sensor node whose
// SMTP listener is down and whose Rspamd fails, and a dead node.
func testNodes() *api.NodeList {
	failing := false
	return &api.NodeList{
		Nodes: []api.Node{
			{Name: "node-1", State: api.NodeAlive, Roles: []api.NodeRole{api.NodeRoleCentral}, Self: true,
				GossipAddr: "10.0.0.1:7946", GRPCAddr: "10.0.0.1:7443", HTTPAddr: "10.0.0.1:8443",
				Health: api.NodeHealth{Etcd: true, GRPC: true, HTTP: true, Spool: true}},
			{Name: "node-2", State: api.NodeAlive, Roles: []api.NodeRole{api.NodeRoleCentral, api.NodeRoleSensor},
				GossipAddr: "10.0.0.2:7946", GRPCAddr: "10.0.0.2:7443", HTTPAddr: "10.0.0.2:8443", SMTPAddr: "10.0.0.2:25",
				Health: api.NodeHealth{Etcd: true, GRPC: true, HTTP: true, SMTP: false, Spool: true, Rspamd: &failing}},
			{Name: "node-3", State: api.NodeDead, Roles: []api.NodeRole{api.NodeRoleCentral}, GossipAddr: "10.0.0.3:7946"},
		},
		DNS: api.ClusterDNS{Zone: "cluster.example.", Addr: "10.0.0.1:53", TTLSeconds: 5, Quorum: true, Records: []api.DNSRecord{
			{Name: "smtp.cluster.example.", Type: "A", Values: []string{}},
			{Name: "central.cluster.example.", Type: "A", Values: []string{"10.0.0.1", "10.0.0.2"}},
		}},
	}
}
