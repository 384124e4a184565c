// Package httpapi is the REST API of a Central Node (/api/v1), with the health
// and metrics endpoints beside it.
//
// Every /api/v1 route authenticates (HTTP Basic or a Bearer API token) before
// its handler runs, checks the caller's role, and hands the store a tenant
// Scope derived from the caller: tenant isolation is enforced by the store, so
// a handler cannot leak another tenant's data by mistake. Errors become JSON in
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

// access is the least a caller must be to use a route.
type access int

const (
	public access = iota // no authentication (health probes only)
	reader               // any authenticated user, auditors included
	writer               // a user who may change things (not an auditor)
	admin                // an admin across tenants
)

// Route is one entry of the API's route table.
type Route struct {
	Method  string
	Pattern string
	access  access
	handler func(*Server, http.ResponseWriter, *http.Request, auth.Principal) error
}

// Routes is the API's route table.
func Routes() []Route {
	return []Route{
		{"GET", "/healthz", public, (*Server).healthz},
		{"GET", "/readyz", public, (*Server).readyz},
		{"GET", "/metrics", reader, nil}, // served by promhttp, see New
		{"GET", "/api/v1/tenants", reader, (*Server).listTenants},
		{"POST", "/api/v1/tenants", admin, (*Server).createTenant},
		{"PUT", "/api/v1/tenants/{tenant}/smtp", writer, (*Server).applySMTP},
		{"GET", "/api/v1/tenants/{tenant}/rules", reader, (*Server).listRules},
		{"POST", "/api/v1/tenants/{tenant}/rules", writer, (*Server).createRule},
		{"GET", "/api/v1/tenants/{tenant}/rules/{id}", reader, (*Server).getRule},
		{"PUT", "/api/v1/tenants/{tenant}/rules/{id}", writer, (*Server).putRule},
		{"DELETE", "/api/v1/tenants/{tenant}/rules/{id}", writer, (*Server).deleteRule},
		{"GET", "/api/v1/tenants/{tenant}/export", reader, (*Server).getExport},
		{"PUT", "/api/v1/tenants/{tenant}/export", writer, (*Server).putExport},
		{"GET", "/api/v1/tenants/{tenant}/policy", reader, (*Server).getPolicy},
		{"PUT", "/api/v1/tenants/{tenant}/policy", writer, (*Server).putPolicy},
		{"GET", "/api/v1/sensors", reader, (*Server).listSensors},
		{"GET", "/api/v1/sensors/{id}", reader, (*Server).getSensor},
		{"POST", "/api/v1/sensors/{id}/approve", writer, (*Server).approveSensor},
		{"POST", "/api/v1/sensors/{id}/revoke", writer, (*Server).revokeSensor},
		{"GET", "/api/v1/sensors/{id}/smtp", reader, (*Server).getSMTP},
		{"PUT", "/api/v1/sensors/{id}/smtp", writer, (*Server).putSMTP},
		{"POST", "/api/v1/sensors/{id}/smtp/apply-to-tenant", writer, (*Server).copySMTPToTenant},
		{"GET", "/api/v1/quarantine", reader, (*Server).listQuarantine},
		{"GET", "/api/v1/sensors/{id}/quarantine/{msg}", reader, (*Server).getQuarantined},
		{"GET", "/api/v1/sensors/{id}/quarantine/{msg}/eml", reader, (*Server).downloadQuarantined},
		{"POST", "/api/v1/sensors/{id}/quarantine/{msg}/release", writer, (*Server).releaseQuarantined},
		{"DELETE", "/api/v1/sensors/{id}/quarantine/{msg}", writer, (*Server).deleteQuarantined},
		{"GET", "/api/v1/sensors/{id}/queue", reader, (*Server).listQueue},
		{"GET", "/api/v1/sensors/{id}/queue/{msg}", reader, (*Server).getQueued},
		{"POST", "/api/v1/sensors/{id}/queue/{msg}/retry", writer, actOnQueued(api.QueueRetry)},
		{"POST", "/api/v1/sensors/{id}/queue/{msg}/hold", writer, actOnQueued(api.QueueHold)},
		{"POST", "/api/v1/sensors/{id}/queue/{msg}/release", writer, actOnQueued(api.QueueRelease)},
		{"DELETE", "/api/v1/sensors/{id}/queue/{msg}", writer, (*Server).deleteQueued},
		{"POST", "/api/v1/sensors/{id}/gateway/stop-sending", writer, controlGateway(api.GatewayStopSending)},
		{"POST", "/api/v1/sensors/{id}/gateway/resume-sending", writer, controlGateway(api.GatewayResumeSending)},
		{"POST", "/api/v1/sensors/{id}/gateway/stop-receiving", writer, controlGateway(api.GatewayStopReceiving)},
		{"POST", "/api/v1/sensors/{id}/gateway/resume-receiving", writer, controlGateway(api.GatewayResumeReceiving)},
		{"POST", "/api/v1/sensors/{id}/gateway/flush", writer, controlGateway(api.GatewayFlush)},
		{"GET", "/api/v1/sensors/{id}/acceptance/{kind}", reader, (*Server).getAcceptance},
		{"POST", "/api/v1/sensors/{id}/acceptance/{kind}", writer, (*Server).editAcceptance},
		{"PUT", "/api/v1/sensors/{id}/acceptance/{kind}", writer, (*Server).importAcceptance},
		{"DELETE", "/api/v1/sensors/{id}/acceptance/{kind}", writer, (*Server).clearAcceptance},
		{"GET", "/api/v1/sensors/{id}/acceptance/{kind}/export", reader, (*Server).exportAcceptance},
		{"GET", "/api/v1/sensors/{id}/pop3", reader, (*Server).getPOP3},
		{"PUT", "/api/v1/sensors/{id}/pop3", writer, (*Server).putPOP3},
		{"GET", "/api/v1/users", reader, (*Server).listUsers},
		{"POST", "/api/v1/users", writer, (*Server).createUser},
		{"POST", "/api/v1/tokens", writer, (*Server).createToken},
		{"GET", "/api/v1/nodes", reader, (*Server).listNodes},
		{"GET", "/api/v1/audit", reader, (*Server).listAudit},
		{"GET", "/api/v1/alerts", reader, (*Server).listAlerts},
		{"GET", "/api/v1/alerts/{id}", reader, (*Server).getAlert},
		{"GET", "/api/v1/messages", reader, (*Server).listMessages},
		{"GET", "/api/v1/servers", admin, (*Server).listServers},
		{"POST", "/api/v1/servers/{id}/accept", admin, (*Server).acceptServer},
		{"POST", "/api/v1/servers/{id}/reject", admin, (*Server).rejectServer},
		{"POST", "/api/v1/servers/{id}/disconnect", admin, (*Server).disconnectServer},
		{"GET", "/api/v1/servers/{id}/sensors", reader, (*Server).listServerSensors},
		{"GET", "/api/v1/servers/{id}/sensors/{sensor}/smtp", reader, serverSensorDocument("smtp", false)},
		{"PUT", "/api/v1/servers/{id}/sensors/{sensor}/smtp", writer, serverSensorDocument("smtp", true)},
		{"GET", "/api/v1/servers/{id}/sensors/{sensor}/pop3", reader, serverSensorDocument("pop3", false)},
		{"PUT", "/api/v1/servers/{id}/sensors/{sensor}/pop3", writer, serverSensorDocument("pop3", true)},
		{"GET", "/api/v1/pcn", admin, (*Server).getHierarchy},
		{"POST", "/api/v1/pcn/fingerprint", admin, (*Server).pcnFingerprint},
		{"POST", "/api/v1/pcn/join", admin, (*Server).joinPCN},
		{"POST", "/api/v1/pcn/login", admin, (*Server).loginPCN},
		{"GET", "/api/v1/pcn/sensor-management", admin, (*Server).getSensorManagement},
		{"PUT", "/api/v1/pcn/sensor-management", admin, (*Server).putSensorManagement},
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
			h = s.authenticated(rt.access, func(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
				metrics.ServeHTTP(w, r)
				return nil
			})
		} else {
			h = s.authenticated(rt.access, func(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
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

// authenticated checks credentials and role before calling h, and turns its
// error into a response.
func (s *Server) authenticated(need access, h handlerFunc) http.Handler {
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

func allowed(p auth.Principal, need access) bool {
	switch need {
	case reader:
		return true
	case writer:
		return p.CanWrite()
	case admin:
		return p.IsAdmin()
	}
	return need == public
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

// scope is the store scope of a caller: every tenant for an admin (and for an
// auditor without a tenant), else the caller's tenant alone.
func scope(p auth.Principal) store.Scope {
	if p.Tenant == "" {
		return store.AllTenants()
	}
	return store.TenantScope(p.Tenant)
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
