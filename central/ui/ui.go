// Package ui is the web UI of a Central Node: server-rendered pages (html/template)
// with their stylesheet and a little hand-written JavaScript embedded in the binary,
// so it works on a closed network with no build step and no CDN.
//
// Design note. The UI is a second front end of the same operations as the REST API
// (package httpapi), not a client of it: a form is turned into the API's JSON types,
// converted by package convert and written through the store, whose writes run
// package validate. So a value the API refuses, the UI refuses with the same
// field-level errors, shown next to the fields they name, and tenant isolation is
// the store's as it is for the API: every call takes the Scope of the signed-in user,
// and another tenant's sensor, alert or rule reads as not found (404).
//
// Sessions live in the node's memory (see sessions): a cookie carries a random id
// signed with a key made at start, so a restart signs everyone out. Every form
// carries a per-session CSRF token that every POST must return, on top of the
// browser's own cross-origin checks (http.CrossOriginProtection) and SameSite=Lax
// cookies. Failed sign-ins are throttled per user name and per client address.
// Auditors see every form read-only, and their POSTs are refused (403).
package ui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/quarantine"
	"github.com/ospreysec/osprey/central/remotesensors"
	"github.com/ospreysec/osprey/central/sensorrpc"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

//go:embed templates static
var assets embed.FS

// Options configures the UI.
type Options struct {
	Store *store.Store
	// Messages holds the alerts.
	Messages *sqlstore.Store
	// Requests carries requests to the sensors (a gateway's queue); nil
	// shows no queue.
	Requests *sensorrpc.Router
	// Quarantine is the gateways' quarantine (lists, previews, actions);
	// nil shows none.
	Quarantine *quarantine.Service
	Auth       *auth.Authenticator
	// InsecureCookies leaves the Secure attribute off the session cookie, for
	// plain HTTP on loopback (osprey dev). Everywhere else the UI is served
	// over HTTPS and the cookie is Secure.
	InsecureCookies bool
	// NodeName and GRPCAddr describe this node on the cluster page; GRPCAddr
	// is also the --central address of a join command line.
	NodeName string
	GRPCAddr string
	// Etcd lists the etcd cluster's members for the cluster page (a
	// *clientv3.Client will do); nil shows none.
	Etcd clientv3.Cluster
	// JoinTokens mints the secret of a join token, as for the API (see
	// httpapi.Options.JoinTokens). Nil refuses join tokens.
	JoinTokens func(*ospreyv1.Token) (string, error)
	// Nodes lists the central node cluster's members and DNS answers for the
	// cluster page; nil shows none.
	Nodes func(context.Context) (*api.NodeList, error)
	// Primary is the PCN's side of the distributed mode (nil unless
	// --pcn), Uplink this node's place in it; both feed the Servers page.
	Primary *hierarchy.Primary
	Uplink  *hierarchy.Secondary
	// RemoteSensors lists and configures the SCNs' sensors (nil unless
	// --pcn).
	RemoteSensors *remotesensors.Primary
	Logger        *slog.Logger
	// Now is the clock of sessions, throttling and token expiry; nil means time.Now.
	Now func() time.Time
}

// Server is the UI's HTTP handler. It is safe for concurrent use and owns no
// goroutines: expired sessions are swept as it goes. Sign-ins are throttled
// by the Authenticator (auth.Throttle).
type Server struct {
	store      *store.Store
	messages   *sqlstore.Store
	requests   *sensorrpc.Router
	quarantine *quarantine.Service
	auth       *auth.Authenticator
	log        *slog.Logger
	now        func() time.Time
	secure     bool
	node       nodeInfo
	joinTokens func(*ospreyv1.Token) (string, error)
	primary    *hierarchy.Primary
	uplink     *hierarchy.Secondary
	remote     *remotesensors.Primary

	sessions *sessions
	pages    *pages
	handler  http.Handler
}

type nodeInfo struct {
	Name     string
	GRPCAddr string
	Etcd     clientv3.Cluster
	Nodes    func(context.Context) (*api.NodeList, error)
}

// A route needs a capability of the user's role (auth.ReadConfig, ...), or
// one of these.
const (
	public   auth.Capability = -1 // no session needed
	signedIn auth.Capability = 0  // any signed-in user, whatever the role
)

type route struct {
	method, pattern string
	needs           auth.Capability
	// json routes answer 401 instead of redirecting to the sign-in page, and
	// do not count as activity for the session's idle timeout.
	json    bool
	handler func(*Server, http.ResponseWriter, *http.Request, *request) error
}

func routes() []route {
	return []route{
		{"GET", "/{$}", signedIn, false, (*Server).home},
		{"GET", "/signin", public, false, (*Server).signInPage},
		{"POST", "/signin", public, false, (*Server).signIn},
		{"POST", "/signout", signedIn, false, (*Server).signOut},
		{"GET", "/static/{file}", public, false, (*Server).static},
		{"GET", "/sensors", auth.ReadConfig, false, (*Server).sensorList},
		{"GET", "/sensors.json", auth.ReadConfig, true, (*Server).sensorStatus},
		{"POST", "/sensors/{id}/approve", auth.Configure, false, (*Server).approveSensor},
		{"POST", "/sensors/{id}/reject", auth.Configure, false, (*Server).rejectSensor},
		{"POST", "/sensors/{id}/revoke", auth.Configure, false, (*Server).revokeSensor},
		{"GET", "/sensors/{id}", auth.ReadConfig, false, (*Server).sensorHome},
		{"GET", "/sensors/{id}/status", auth.ReadConfig, false, (*Server).statusPage},
		{"GET", "/sensors/{id}/smtp", auth.ReadConfig, false, (*Server).smtpPage},
		{"POST", "/sensors/{id}/smtp", auth.Configure, false, (*Server).applySMTP},
		{"POST", "/sensors/{id}/smtp/apply-to-tenant", auth.Configure, false, (*Server).applySMTPToTenant},
		{"GET", "/sensors/{id}/pop3", auth.ReadConfig, false, (*Server).pop3Page},
		{"POST", "/sensors/{id}/pop3", auth.Configure, false, (*Server).applyPOP3},
		{"GET", "/sensors/{id}/acceptance/{kind}", auth.ReadConfig, false, (*Server).acceptancePage},
		{"GET", "/sensors/{id}/acceptance/{kind}/export", auth.ReadConfig, false, (*Server).acceptanceExport},
		{"POST", "/sensors/{id}/acceptance/{kind}/{action}", auth.Configure, false, (*Server).acceptanceAction},
		{"GET", "/sensors/{id}/queue", auth.ReadConfig, false, (*Server).queuePage},
		{"POST", "/sensors/{id}/queue/{msg}/{action}", auth.Configure, false, (*Server).queueAction},
		{"POST", "/sensors/{id}/gateway/{control}", auth.Configure, false, (*Server).gatewayControl},
		{"GET", "/quarantine", auth.ReadQuarantine, false, (*Server).quarantineList},
		{"GET", "/quarantine/{sensor}/{msg}", auth.ReadQuarantine, false, (*Server).quarantineMessagePage},
		{"GET", "/quarantine/{sensor}/{msg}/eml", auth.ReadQuarantine, false, (*Server).quarantineDownload},
		{"POST", "/quarantine/{sensor}/{msg}/{action}", auth.ManageQuarantine, false, (*Server).quarantineAction},
		{"GET", "/alerts", auth.ReadAlerts, false, (*Server).alertList},
		{"GET", "/alerts/{tenant}/{id}", auth.ReadAlerts, false, (*Server).alertPage},
		{"GET", "/audit", auth.ReadAudit, false, (*Server).auditList},
		{"GET", "/audit/{tenant}/{sensor}/{message}", auth.ReadAudit, false, (*Server).auditMessagePage},
		{"GET", "/rules", auth.ReadRules, false, (*Server).rules},
		{"GET", "/rules/{tenant}", auth.ReadRules, false, (*Server).rulesPage},
		{"POST", "/rules/{tenant}", auth.WriteRules, false, (*Server).createRule},
		{"GET", "/rules/{tenant}/policy", auth.ReadConfig, false, (*Server).policyPage},
		{"POST", "/rules/{tenant}/policy", auth.Configure, false, (*Server).applyPolicy},
		{"POST", "/rules/{tenant}/{id}/enable", auth.WriteRules, false, (*Server).enableRule},
		{"POST", "/rules/{tenant}/{id}/disable", auth.WriteRules, false, (*Server).disableRule},
		{"POST", "/rules/{tenant}/{id}/delete", auth.WriteRules, false, (*Server).deleteRule},
		{"POST", "/rules/{tenant}/global/{id}/delete", auth.WriteGlobalRules, false, (*Server).deleteGlobalRule},
		{"GET", "/cluster", auth.ReadConfig, false, (*Server).clusterPage},
		{"GET", "/servers", auth.ReadAlerts, false, (*Server).serversPage},
		{"POST", "/servers/{id}/{action}", auth.ManageServers, false, (*Server).serverAction},
		{"GET", "/servers/{id}/sensors", auth.ReadConfig, false, (*Server).serverSensorsPage},
		{"POST", "/servers/{id}/sensors/{sensor}/{doc}", auth.Configure, false, (*Server).serverSensorWrite},
		{"POST", "/pcn/sensor-management", auth.Configure, false, (*Server).sensorManagement},
		{"POST", "/pcn/fingerprint", auth.ManageServers, false, (*Server).pcnFingerprint},
		{"POST", "/pcn/join", auth.ManageServers, false, (*Server).pcnJoin},
		{"POST", "/pcn/login", auth.ManageServers, false, (*Server).pcnLogin},
		{"GET", "/users", auth.ReadUsers, false, (*Server).usersPage},
		{"POST", "/users", auth.ManageUsers, false, (*Server).createUser},
		{"GET", "/tokens", auth.ReadConfig, false, (*Server).tokensPage},
		{"POST", "/tokens", auth.Configure, false, (*Server).createToken},
		{"POST", "/tokens/{id}/delete", auth.Configure, false, (*Server).deleteToken},
		{"", "/", signedIn, false, (*Server).notFound},
	}
}

// New builds the UI handler.
func New(opts Options) *Server {
	s := &Server{
		store:      opts.Store,
		messages:   opts.Messages,
		requests:   opts.Requests,
		quarantine: opts.Quarantine,
		auth:       opts.Auth,
		log:        opts.Logger,
		now:        opts.Now,
		secure:     !opts.InsecureCookies,
		node:       nodeInfo{Name: opts.NodeName, GRPCAddr: opts.GRPCAddr, Etcd: opts.Etcd, Nodes: opts.Nodes},
		joinTokens: opts.JoinTokens,
		primary:    opts.Primary,
		uplink:     opts.Uplink,
		remote:     opts.RemoteSensors,
		pages:      mustParsePages(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.sessions = newSessions(s.now)

	mux := http.NewServeMux()
	for _, rt := range routes() {
		pattern := rt.pattern
		if rt.method != "" {
			pattern = rt.method + " " + pattern
		}
		mux.Handle(pattern, s.wrap(rt))
	}
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.renderError(w, r, nil, http.StatusForbidden, "This form was sent from another site, and was refused.")
	}))
	s.handler = cop.Handler(mux)
	return s
}

// contentSecurityPolicy allows the page's own stylesheet, script and images
// only: no inline script or style, no framing, forms posted to this site.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// ServeHTTP serves the UI.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	// No Strict-Transport-Security: outside dev a node serves a self-signed
	// certificate by default, and HSTS would stop browsers from letting
	// administrators accept it.
	s.handler.ServeHTTP(w, r)
}

// request is what a handler knows of the signed-in user.
type request struct {
	sess  session
	p     auth.Principal
	scope store.Scope
}

// maxForm bounds a form's body; the largest carry a few PEM certificates.
const maxForm = 1 << 20

// readForm reads a POST's form: at most maxForm, or, for a file upload
// (multipart, the import of an acceptance list), maxUpload, of which what
// is past 1 MiB waits in a temporary file. It returns what the page says
// of a form it cannot read, or "".
func readForm(w http.ResponseWriter, r *http.Request) string {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		r.Body = http.MaxBytesReader(w, r.Body, maxUpload+maxForm)
		if err := r.ParseMultipartForm(maxForm); err != nil {
			return fmt.Sprintf("The file could not be read: a file of at most %d MiB is taken.", maxUpload>>20)
		}
		return ""
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return "The form could not be read."
	}
	return ""
}

// wrap checks the session, the CSRF token of a POST and the role before
// calling the route's handler, and turns its error into a page.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if problem := readForm(w, r); problem != "" {
				s.renderError(w, r, nil, http.StatusBadRequest, problem)
				return
			}
		}
		if rt.needs == public {
			if err := rt.handler(s, w, r, nil); err != nil {
				s.fail(w, r, nil, err)
			}
			return
		}
		req, err := s.signedIn(r, !rt.json)
		switch {
		case errors.Is(err, auth.ErrUnauthenticated) && rt.json:
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "session expired; sign in again"})
			return
		case errors.Is(err, auth.ErrUnauthenticated):
			s.clearCookie(w, sessionCookie(s.secure))
			next := ""
			if r.Method == http.MethodGet {
				next = r.URL.RequestURI()
			}
			http.Redirect(w, r, signInURL(next), http.StatusSeeOther)
			return
		case err != nil:
			s.fail(w, r, nil, err)
			return
		}
		if r.Method == http.MethodPost && !checkCSRF(req.sess, r.PostFormValue("csrf")) {
			s.renderError(w, r, req, http.StatusForbidden,
				"The form has expired or did not come from this page. Go back, reload the page and try again.")
			return
		}
		if rt.needs != signedIn && !req.p.Can(rt.needs) {
			s.renderError(w, r, req, http.StatusForbidden, fmt.Sprintf("Your role (%s) may not %s.", auth.RoleTitle(req.p.Role), rt.needs))
			return
		}
		if err := rt.handler(s, w, r, req); err != nil {
			s.fail(w, r, req, err)
		}
	})
}

// signedIn returns the request's session, or ErrUnauthenticated. The user is
// read again on every request, so a user whose role or tenants changed, or who
// was removed, is signed out at their next click.
func (s *Server) signedIn(r *http.Request, touch bool) (*request, error) {
	c, err := r.Cookie(sessionCookie(s.secure))
	if err != nil {
		return nil, auth.ErrUnauthenticated
	}
	sess, ok := s.sessions.get(c.Value, touch)
	if !ok {
		return nil, auth.ErrUnauthenticated
	}
	p := sess.principal
	u, _, err := s.store.GetUser(r.Context(), store.AllTenants(), p.Name)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalidID) ||
		(err == nil && !auth.Grants(u, p)) {
		s.sessions.delete(sess.id)
		return nil, auth.ErrUnauthenticated
	}
	if err != nil {
		return nil, err
	}
	return &request{sess: sess, p: p, scope: scopeOf(p)}, nil
}

// severalTenants reports whether the user sees more than one tenant (or all),
// so that pages show tenants and let the user choose one.
func (r *request) severalTenants() bool { return severalTenants(r.scope) }

func severalTenants(scope store.Scope) bool { return scope.Tenant() == "" }

// scopeOf is the store scope of a user, as for the API: every tenant for a
// user of all tenants, else the user's tenants.
func scopeOf(p auth.Principal) store.Scope {
	if p.AllTenants {
		return store.AllTenants()
	}
	return store.TenantsScope(p.Tenants...)
}

// errForbidden is a role check failing in a handler (the store checks tenants).
var errForbidden = errors.New("forbidden")

// fail is the one place where a handler's error becomes a page.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, req *request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalidID):
		s.renderError(w, r, req, http.StatusNotFound, "There is nothing here, or it is outside your tenant.")
	case errors.Is(err, errBadForm):
		s.renderError(w, r, req, http.StatusBadRequest, "The form could not be read. Go back, reload the page and try again.")
	case errors.Is(err, errForbidden), errors.Is(err, store.ErrForbidden):
		s.renderError(w, r, req, http.StatusForbidden, "This is outside your role or tenant.")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		s.renderError(w, r, req, http.StatusServiceUnavailable, "The configuration store did not answer in time. Try again shortly.")
	case errors.Is(err, errNoQuarantine):
		s.renderError(w, r, req, http.StatusServiceUnavailable, "This node does not run the quarantine service.")
	case errors.Is(err, sqlstore.ErrUnavailable):
		s.renderError(w, r, req, http.StatusServiceUnavailable, "The message store (SQL database) is unreachable. Try again shortly.")
	default:
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		s.renderError(w, r, req, http.StatusInternalServerError, "Something went wrong on the server; it has been logged.")
	}
}

// flash queues a message for the next page of req's session.
func (s *Server) flash(req *request, kind, format string, args ...any) {
	s.sessions.addFlash(req.sess.id, flash{Kind: kind, Message: fmt.Sprintf(format, args...)})
}

// redirect answers a POST with a redirect to a page (POST/redirect/GET).
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// localPath returns p if it is a path on this site, else fallback: a
// redirect target from a form or a query must not lead elsewhere.
func localPath(p, fallback string) string {
	if p == "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") ||
		strings.ContainsAny(p, "\r\n") {
		return fallback
	}
	if u, err := url.Parse(p); err != nil || u.Scheme != "" || u.Host != "" {
		return fallback
	}
	return p
}

func signInURL(next string) string {
	if next == "" || next == "/" {
		return "/signin"
	}
	return "/signin?next=" + url.QueryEscape(next)
}

// home is the sensor list, or the alerts for a role that does not read the
// configuration.
func (s *Server) home(w http.ResponseWriter, r *http.Request, req *request) error {
	to := "/sensors"
	if !req.p.Can(auth.ReadConfig) {
		to = "/alerts"
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request, req *request) error {
	s.renderError(w, r, req, http.StatusNotFound, "There is no such page.")
	return nil
}
