// Package httpapi is the REST API of a Central Node (/api/v1), with the health
// and metrics endpoints beside it.
//
// Every /api/v1 route authenticates (HTTP Basic or a Bearer API token) before
// its handler runs, checks that the caller's role has the capability the
// route names (auth.Capability), and hands the store a tenant Scope of the
// caller's tenants: tenant isolation is enforced by the store, so a handler
// cannot leak another tenant's data by mistake. Errors become JSON in
// one place (writeError). The route table is data (Routes), so a test can hold
// it against api/openapi.yaml.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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

// Options configures the API.
type Options struct {
	Store *store.Store
	// Messages holds the message records and alerts.
	Messages *sqlstore.Store
	// Requests carries requests to the sensors (a gateway's queue); nil
	// answers those routes 503.
	Requests *sensorrpc.Router
	// Quarantine is the gateways' quarantine; nil answers its routes 503.
	Quarantine *quarantine.Service
	Auth       *auth.Authenticator
	// Ready reports whether the node can serve (etcd reachable); nil means always.
	Ready func(context.Context) error
	// Available, when set, is asked before every authenticated route: an
	// error (wrapping store.ErrUnavailable when the node knows it lost the
	// etcd quorum) is answered at once, rather than after etcd's own
	// timeout. Nil means always available.
	Available func() error
	// Registry receives the API's metrics and is served at /metrics.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// JoinTokens mints the secret of a join token: it sets the token's id and
	// secret hash and returns the string a sensor is given (which carries the
	// cluster CA's hash). Nil refuses join tokens.
	JoinTokens func(*ospreyv1.Token) (string, error)
	// Nodes lists the central node cluster's members and DNS answers (GET
	// /api/v1/nodes); nil answers 404.
	Nodes func(context.Context) (*api.NodeList, error)
	// Primary is the PCN's side of the distributed mode (nil unless
	// --pcn); Uplink this node's place in it (nil answers 404).
	Primary *hierarchy.Primary
	Uplink  *hierarchy.Secondary
	// RemoteSensors is the PCN's management of its SCNs' sensors (nil
	// unless --pcn).
	RemoteSensors *remotesensors.Primary
}

// Server is the HTTP handler of the API.
type Server struct {
	store      *store.Store
	messages   *sqlstore.Store
	sensors    *sensorrpc.Router
	quarantine *quarantine.Service
	auth       *auth.Authenticator
	ready      func(context.Context) error
	avail      func() error
	log        *slog.Logger
	now        func() time.Time
	mux        *http.ServeMux

	joinTokens func(*ospreyv1.Token) (string, error)
	nodes      func(context.Context) (*api.NodeList, error)
	primary    *hierarchy.Primary
	uplink     *hierarchy.Secondary
	remote     *remotesensors.Primary

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// requestTimeout bounds the store calls of one authenticated request, so a
// request made while etcd elects a leader or has lost its quorum gets its
// 503 in seconds.
const requestTimeout = 10 * time.Second

// A route needs a capability of the caller's role (auth.ReadConfig, ...), or
// one of these.
const (
	public   auth.Capability = -1 // no authentication (health probes only)
	signedIn auth.Capability = 0  // any authenticated user, whatever the role
)

// Route is one entry of the API's route table.
type Route struct {
	Method  string
	Pattern string
	// Needs is what the caller must be able to do (public, signedIn or a
	// capability).
	Needs   auth.Capability
	handler func(*Server, http.ResponseWriter, *http.Request, auth.Principal) error
}

// Routes is the API's route table.
func Routes() []Route {
	return []Route{
		{"GET", "/healthz", public, (*Server).healthz},
		{"GET", "/readyz", public, (*Server).readyz},
		{"GET", "/metrics", auth.ReadConfig, nil}, // served by promhttp, see New
		{"GET", "/api/v1/tenants", signedIn, (*Server).listTenants},
		{"POST", "/api/v1/tenants", auth.ManageTenants, (*Server).createTenant},
		{"PUT", "/api/v1/tenants/{tenant}/smtp", auth.Configure, (*Server).applySMTP},
		{"GET", "/api/v1/tenants/{tenant}/rules", auth.ReadRules, (*Server).listRules},
		{"POST", "/api/v1/tenants/{tenant}/rules", auth.WriteRules, (*Server).createRule},
		{"GET", "/api/v1/tenants/{tenant}/rules/{id}", auth.ReadRules, (*Server).getRule},
		{"PUT", "/api/v1/tenants/{tenant}/rules/{id}", auth.WriteRules, (*Server).putRule},
		{"DELETE", "/api/v1/tenants/{tenant}/rules/{id}", auth.WriteRules, (*Server).deleteRule},
		{"GET", "/api/v1/rules", auth.ReadRules, (*Server).listGlobalRules},
		{"POST", "/api/v1/rules", auth.WriteGlobalRules, (*Server).createGlobalRule},
		{"GET", "/api/v1/rules/{id}", auth.ReadRules, (*Server).getGlobalRule},
		{"PUT", "/api/v1/rules/{id}", auth.WriteGlobalRules, (*Server).putGlobalRule},
		{"DELETE", "/api/v1/rules/{id}", auth.WriteGlobalRules, (*Server).deleteGlobalRule},
		{"GET", "/api/v1/tenants/{tenant}/export", auth.ReadConfig, (*Server).getExport},
		{"PUT", "/api/v1/tenants/{tenant}/export", auth.Configure, (*Server).putExport},
		{"GET", "/api/v1/tenants/{tenant}/policy", auth.ReadConfig, (*Server).getPolicy},
		{"PUT", "/api/v1/tenants/{tenant}/policy", auth.Configure, (*Server).putPolicy},
		{"GET", "/api/v1/sensors", auth.ReadConfig, (*Server).listSensors},
		{"GET", "/api/v1/sensors/{id}", auth.ReadConfig, (*Server).getSensor},
		{"POST", "/api/v1/sensors/{id}/approve", auth.Configure, (*Server).approveSensor},
		{"POST", "/api/v1/sensors/{id}/revoke", auth.Configure, (*Server).revokeSensor},
		{"GET", "/api/v1/sensors/{id}/smtp", auth.ReadConfig, (*Server).getSMTP},
		{"PUT", "/api/v1/sensors/{id}/smtp", auth.Configure, (*Server).putSMTP},
		{"POST", "/api/v1/sensors/{id}/smtp/apply-to-tenant", auth.Configure, (*Server).copySMTPToTenant},
		{"GET", "/api/v1/quarantine", auth.ReadQuarantine, (*Server).listQuarantine},
		{"GET", "/api/v1/sensors/{id}/quarantine/{msg}", auth.ReadQuarantine, (*Server).getQuarantined},
		{"GET", "/api/v1/sensors/{id}/quarantine/{msg}/eml", auth.ReadQuarantine, (*Server).downloadQuarantined},
		{"POST", "/api/v1/sensors/{id}/quarantine/{msg}/release", auth.ManageQuarantine, (*Server).releaseQuarantined},
		{"DELETE", "/api/v1/sensors/{id}/quarantine/{msg}", auth.ManageQuarantine, (*Server).deleteQuarantined},
		{"GET", "/api/v1/sensors/{id}/queue", auth.ReadConfig, (*Server).listQueue},
		{"GET", "/api/v1/sensors/{id}/queue/{msg}", auth.ReadConfig, (*Server).getQueued},
		{"POST", "/api/v1/sensors/{id}/queue/{msg}/retry", auth.Configure, actOnQueued(api.QueueRetry)},
		{"POST", "/api/v1/sensors/{id}/queue/{msg}/hold", auth.Configure, actOnQueued(api.QueueHold)},
		{"POST", "/api/v1/sensors/{id}/queue/{msg}/release", auth.Configure, actOnQueued(api.QueueRelease)},
		{"DELETE", "/api/v1/sensors/{id}/queue/{msg}", auth.Configure, (*Server).deleteQueued},
		{"POST", "/api/v1/sensors/{id}/gateway/stop-sending", auth.Configure, controlGateway(api.GatewayStopSending)},
		{"POST", "/api/v1/sensors/{id}/gateway/resume-sending", auth.Configure, controlGateway(api.GatewayResumeSending)},
		{"POST", "/api/v1/sensors/{id}/gateway/stop-receiving", auth.Configure, controlGateway(api.GatewayStopReceiving)},
		{"POST", "/api/v1/sensors/{id}/gateway/resume-receiving", auth.Configure, controlGateway(api.GatewayResumeReceiving)},
		{"POST", "/api/v1/sensors/{id}/gateway/flush", auth.Configure, controlGateway(api.GatewayFlush)},
		{"GET", "/api/v1/sensors/{id}/acceptance/{kind}", auth.ReadConfig, (*Server).getAcceptance},
		{"POST", "/api/v1/sensors/{id}/acceptance/{kind}", auth.Configure, (*Server).editAcceptance},
		{"PUT", "/api/v1/sensors/{id}/acceptance/{kind}", auth.Configure, (*Server).importAcceptance},
		{"DELETE", "/api/v1/sensors/{id}/acceptance/{kind}", auth.Configure, (*Server).clearAcceptance},
		{"GET", "/api/v1/sensors/{id}/acceptance/{kind}/export", auth.ReadConfig, (*Server).exportAcceptance},
		{"GET", "/api/v1/sensors/{id}/pop3", auth.ReadConfig, (*Server).getPOP3},
		{"PUT", "/api/v1/sensors/{id}/pop3", auth.Configure, (*Server).putPOP3},
		{"GET", "/api/v1/users", auth.ReadUsers, (*Server).listUsers},
		{"POST", "/api/v1/users", auth.ManageUsers, (*Server).createUser},
		{"DELETE", "/api/v1/users/{name}", auth.ManageUsers, (*Server).deleteUser},
		{"POST", "/api/v1/tokens", signedIn, (*Server).createToken},
		{"GET", "/api/v1/nodes", auth.ReadConfig, (*Server).listNodes},
		{"GET", "/api/v1/audit", auth.ReadAudit, (*Server).listAudit},
		{"GET", "/api/v1/alerts", auth.ReadAlerts, (*Server).listAlerts},
		{"GET", "/api/v1/alerts/{id}", auth.ReadAlerts, (*Server).getAlert},
		{"GET", "/api/v1/messages", auth.ReadAudit, (*Server).listMessages},
		{"GET", "/api/v1/servers", auth.ReadAlerts, (*Server).listServers},
		{"POST", "/api/v1/servers/{id}/accept", auth.ManageServers, (*Server).acceptServer},
		{"POST", "/api/v1/servers/{id}/reject", auth.ManageServers, (*Server).rejectServer},
		{"POST", "/api/v1/servers/{id}/disconnect", auth.ManageServers, (*Server).disconnectServer},
		// An SCN's sensors, managed from the PCN: the SCN's tenant is
		// checked too (remotesensors.Allowed).
		{"GET", "/api/v1/servers/{id}/sensors", auth.ReadConfig, (*Server).listServerSensors},
		{"GET", "/api/v1/servers/{id}/sensors/{sensor}/smtp", auth.ReadConfig, serverSensorDocument("smtp", false)},
		{"PUT", "/api/v1/servers/{id}/sensors/{sensor}/smtp", auth.Configure, serverSensorDocument("smtp", true)},
		{"GET", "/api/v1/servers/{id}/sensors/{sensor}/pop3", auth.ReadConfig, serverSensorDocument("pop3", false)},
		{"PUT", "/api/v1/servers/{id}/sensors/{sensor}/pop3", auth.Configure, serverSensorDocument("pop3", true)},
		{"GET", "/api/v1/pcn", auth.ReadAlerts, (*Server).getHierarchy},
		{"POST", "/api/v1/pcn/fingerprint", auth.ManageServers, (*Server).pcnFingerprint},
		{"POST", "/api/v1/pcn/join", auth.ManageServers, (*Server).joinPCN},
		{"POST", "/api/v1/pcn/login", auth.ManageServers, (*Server).loginPCN},
		{"GET", "/api/v1/pcn/sensor-management", auth.ReadConfig, (*Server).getSensorManagement},
		{"PUT", "/api/v1/pcn/sensor-management", auth.Configure, (*Server).putSensorManagement},
	}
}

// New builds the API handler.
func New(opts Options) *Server {
	s := &Server{
		store: opts.Store, messages: opts.Messages, sensors: opts.Requests, quarantine: opts.Quarantine,
		auth:  opts.Auth,
		ready: opts.Ready,
		avail: opts.Available,
		log:   opts.Logger,
		now:   opts.Now,
		mux:   http.NewServeMux(),

		joinTokens: opts.JoinTokens,
		nodes:      opts.Nodes,
		primary:    opts.Primary,
		uplink:     opts.Uplink,
		remote:     opts.RemoteSensors,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "osprey_http_requests_total",
			Help: "HTTP requests served, by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "osprey_http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8),
		}, []string{"route"}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ready == nil {
		s.ready = func(context.Context) error { return nil }
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(s.requests, s.duration)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})

	for _, rt := range Routes() {
		name := rt.Method + " " + rt.Pattern
		var h http.Handler
		if rt.handler == nil {
			h = s.authenticated(rt.Needs, func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				metrics.ServeHTTP(w, r)
				return nil
			})
		} else {
			h = s.authenticated(rt.Needs, func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
				return rt.handler(s, w, r, p)
			})
		}
		s.mux.Handle(name, s.instrument(name, h))
	}
	// Everything else under /api/ is a JSON 404 (or 405), never the UI's HTML.
	s.mux.Handle("/api/", s.instrument("unmatched", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, store.ErrNotFound)
	})))
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

type handlerFunc func(http.ResponseWriter, *http.Request, auth.Principal) error

// authenticated checks credentials and the capability need before calling h,
// and turns its error into a response.
func (s *Server) authenticated(need auth.Capability, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p auth.Principal
		if need != public {
			if s.avail != nil {
				if err := s.avail(); err != nil {
					s.writeError(w, r, err)
					return
				}
			}
			// The sign-in's lookup and the handler's store calls each
			// get requestTimeout: a password check (bcrypt, a quarter of
			// a second on an idle core) is not the store's time.
			actx, cancel := context.WithTimeout(r.Context(), requestTimeout)
			var err error
			p, err = s.auth.Authenticate(r.WithContext(actx))
			cancel()
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			if !allowed(p, need) {
				s.writeError(w, r, errForbidden)
				return
			}
			ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), untimedKey{}, r.Context()), requestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if err := h(w, r, p); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// untimedKey keeps, in an authenticated request's context, the context it
// had before requestTimeout was set on it.
type untimedKey struct{}

// retimed gives r's store calls the whole requestTimeout again from now,
// after work of the handler's own that may take long on a busy machine (a
// password's bcrypt hash): that is not the store's time.
func retimed(r *http.Request) (*http.Request, context.CancelFunc) {
	base, ok := r.Context().Value(untimedKey{}).(context.Context)
	if !ok {
		return r, func() {}
	}
	ctx, cancel := context.WithTimeout(context.WithValue(base, untimedKey{}, base), requestTimeout)
	return r.WithContext(ctx), cancel
}

func allowed(p auth.Principal, need auth.Capability) bool {
	return need == public || need == signedIn || p.Can(need)
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) instrument(route string, h http.Handler) http.Handler {
	requests := s.requests.MustCurryWith(prometheus.Labels{"route": route})
	duration := s.duration.WithLabelValues(route)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		duration.Observe(time.Since(start).Seconds())
		requests.WithLabelValues(strconv.Itoa(rec.code)).Inc()
	})
}

// scope is the store scope of a caller: every tenant for a user of all
// tenants, else the caller's tenants.
func scope(p auth.Principal) store.Scope {
	if p.AllTenants {
		return store.AllTenants()
	}
	return store.TenantsScope(p.Tenants...)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request, _ auth.Principal) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.ready(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": err.Error()})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	return nil
}
