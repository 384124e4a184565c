package central

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/clusterca"
	"github.com/ospreysec/osprey/central/gossip"
	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/httpapi"
	"github.com/ospreysec/osprey/central/pipeline"
	"github.com/ospreysec/osprey/central/quarantine"
	"github.com/ospreysec/osprey/central/remotesensors"
	"github.com/ospreysec/osprey/central/scan"
	"github.com/ospreysec/osprey/central/scan/clamav"
	"github.com/ospreysec/osprey/central/scan/rspamd"
	"github.com/ospreysec/osprey/central/sensorrpc"
	"github.com/ospreysec/osprey/central/sensorsvc"
	"github.com/ospreysec/osprey/central/siem"
	"github.com/ospreysec/osprey/central/siemfeed"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/central/ui"
	"github.com/ospreysec/osprey/central/upgrade"
	"github.com/ospreysec/osprey/central/uplink"
	"github.com/ospreysec/osprey/internal/buildinfo"
	"github.com/ospreysec/osprey/pkg/jointoken"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// node holds the components of a running Central Node that the HTTP server
// and the later services share.
type node struct {
	store    *store.Store
	db       *sqlstore.Store
	handler  http.Handler
	ready    Ready
	ca       *pki.CA
	registry *prometheus.Registry
	// etcdRead is a linearizable read: it succeeds when etcd has a quorum.
	etcdRead func(context.Context) error
	// cluster is set once the cluster component started, before anything serves.
	cluster atomic.Pointer[clusterNode]

	grpc    *grpc.Server
	configs *store.ConfigHub
	sensors *sensorsvc.Service
	status  *sensorsvc.StatusWriter
	// balancer moves sensor streams to other nodes when this one holds
	// more than its share.
	balancer *sensorsvc.Balancer

	// The scanning pipeline's background work: the rule cache, the
	// alert sweeper (each started by Run with the node's errgroup).
	rules      *store.RuleCache
	sweeper    *sqlstore.Sweeper
	exports    *store.ExportCache
	policies   *store.PolicyCache
	quarantine *quarantine.Service
	exporter   *siem.Exporter
	feeder     *siemfeed.Feeder
	// requests carries the operators' requests to the sensors.
	requests *sensorrpc.Router
	// spam is the spam check (Rspamd); nil without --rspamd-url.
	spam *pipeline.Spam
	// primary serves SCNs (nil unless --pcn); secondary links this node's
	// cluster to its PCN once its administrator joined one.
	primary   *hierarchy.Primary
	secondary *hierarchy.Secondary
	// uplinkIn stores the SCNs' alerts and summaries on a PCN (nil unless
	// --pcn).
	uplinkIn *uplink.Receiver
}

const (
	defaultTenant = "default"
	adminUser     = "admin"
	// initialPasswordFile, in the data dir, holds a generated admin password.
	initialPasswordFile = "initial-admin-password"
)

// migrateTrustedNetworks moves the trusted networks an earlier version
// kept in sensors' SMTP integrations into their outbound acceptance lists
// (store.MigrateTrustedNetworks); a sensor whose list contradicts them
// keeps them, and is named in a warning.
func migrateTrustedNetworks(ctx context.Context, st *store.Store, log *slog.Logger) error {
	m, err := st.MigrateTrustedNetworks(ctx)
	if err != nil {
		return err
	}
	if len(m.Moved) > 0 {
		log.InfoContext(ctx, "trusted networks moved into the sensors' outbound acceptance lists", "sensors", m.Moved)
	}
	for id, err := range m.Failed {
		log.WarnContext(ctx, "trusted networks not moved into the outbound acceptance list: it says otherwise; edit the list, then save the SMTP settings",
			"sensor", id, "err", err)
	}
	return nil
}

// migrateUsers gives the users an earlier version stored (admin,
// tenant_admin, auditor, with one tenant) the product's roles and tenants
// (store.MigrateUsers, auth.Upgrade).
func migrateUsers(ctx context.Context, st *store.Store, log *slog.Logger) error {
	migrated, err := st.MigrateUsers(ctx, auth.Upgrade)
	if err != nil {
		return fmt.Errorf("migrate users to the product's roles: %w", err)
	}
	if len(migrated) > 0 {
		log.InfoContext(ctx, "users given the product's roles", "users", migrated)
	}
	return nil
}

func newNode(ctx context.Context, opts Options, kek []byte, cli *clientv3.Client, db *sqlstore.Store, grpcAddr net.Addr, log *slog.Logger) (*node, error) {
	st := store.New(cli)
	n := &node{store: st, db: db, etcdRead: func(ctx context.Context) error {
		// A linearizable read proves a quorum answers, as etcd's own /health does.
		if _, err := cli.Get(ctx, "health"); err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
		return nil
	}}
	if err := bootstrap(ctx, opts, st, &n.ready, log); err != nil {
		return nil, err
	}
	if _, err := upgrade.MoveToSQL(ctx, cli, st, db, log.With("component", "upgrade")); err != nil {
		return nil, err
	}
	if err := migrateTrustedNetworks(ctx, st, log.With("component", "upgrade")); err != nil {
		return nil, err
	}
	if err := migrateUsers(ctx, st, log.With("component", "upgrade")); err != nil {
		return nil, err
	}
	ca, err := clusterca.Load(ctx, st, kek)
	if err != nil {
		return nil, fmt.Errorf("cluster key %s: %w", opts.ClusterKeyFile, err)
	}
	n.ca = ca
	caHash := pki.SPKIHash(ca.Cert)
	n.ready.CAHash = caHash
	if opts.Dev || opts.LocalSensor.Run {
		id, err := registerLocalSensor(ctx, st, opts.NodeName)
		if err != nil {
			return nil, err
		}
		n.ready.LocalSensorID = id
		sn, _, err := st.GetSensor(ctx, store.AllTenants(), id)
		if err != nil {
			return nil, err
		}
		if sn.GetCertFingerprint() == "" || opts.LocalSensor.Unenrolled { // never enrolled, or lost its identity
			if n.ready.LocalSensorJoinToken, err = localSensorToken(ctx, st, id, caHash); err != nil {
				return nil, err
			}
		}
	}
	serverCert, err := clusterca.NewServerCert(ca, grpcHosts(opts.NodeName, grpcAddr), nil)
	if err != nil {
		return nil, err
	}
	n.status = sensorsvc.NewStatusWriter(st, log.With("component", "sensor-status"))
	reg := newRegistry()
	n.registry = reg
	spillDir := filepath.Join(opts.DataDir, "spill")
	if err := os.MkdirAll(spillDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", spillDir, err)
	}
	scanner, err := newScanner(opts, reg, spillDir, log)
	if err != nil {
		return nil, err
	}
	if n.spam, err = newSpam(opts, reg, log); err != nil {
		return nil, err
	}
	n.rules = store.NewRuleCache(st, store.CacheOptions{Logger: log.With("component", "rule-cache")})
	n.sweeper = sqlstore.NewSweeper(db, sqlstore.SweeperOptions{Logger: log.With("component", "retention")})
	n.exports = store.NewExportCache(st, store.CacheOptions{Logger: log.With("component", "export-cache")})
	n.policies = store.NewPolicyCache(st, store.CacheOptions{Logger: log.With("component", "policy-cache")})
	if n.exporter, err = siem.New(siem.Options{Version: buildinfo.Version(), Registerer: reg, Logger: log.With("component", "siem")}); err != nil {
		return nil, err
	}
	if n.feeder, err = siemfeed.New(siemfeed.Options{
		Client: cli, Store: st, Alerts: db, Exports: n.exports, Exporter: n.exporter, NodeName: opts.NodeName,
		Registerer: reg, Logger: log.With("component", "siemfeed"),
	}); err != nil {
		return nil, err
	}
	n.requests = sensorrpc.New(cli, log.With("component", "sensor-requests"))
	n.quarantine = quarantine.New(quarantine.Options{Store: st, DB: db, Requests: n.requests, Logger: log.With("component", "quarantine")})
	n.configs = store.NewConfigHub(st, store.CacheOptions{Logger: log.With("component", "config-hub")})
	n.sensors = sensorsvc.New(sensorsvc.Options{
		Store: st, Messages: db, Configs: n.configs, CA: ca, NodeName: opts.NodeName, Status: n.status, Logger: log.With("component", "sensors"),
		SpillDir: spillDir, Registerer: reg,
		Scanner:  pipeline.New(scanner, n.rules, n.policies, log.With("component", "pipeline")).WithSpam(n.spam),
		Certs:    opts.SensorCerts,
		Requests: n.requests,
	})
	n.balancer = sensorsvc.NewBalancer(n.sensors, sensorsvc.BalanceOptions{
		Nodes: n.streamNodes, Interval: opts.SensorBalance.Interval, Step: opts.SensorBalance.Step,
		Registerer: reg, Logger: log.With("component", "sensor-balance"),
	})
	if n.grpc, err = newGRPCServer(serverCert, ca, reg, log.With("component", "grpc")); err != nil {
		return nil, err
	}
	n.sensors.Register(n.grpc)
	notFound := []error{store.ErrNotFound, store.ErrInvalidID}
	authn, err := auth.NewAuthenticator(auth.Options{
		Users: auth.UsersFunc(func(ctx context.Context, name string) (*ospreyv1.User, error) {
			u, _, err := st.GetUser(ctx, store.AllTenants(), name)
			return u, err
		}),
		Tokens: auth.TokensFunc(func(ctx context.Context, id string) (*ospreyv1.Token, error) {
			t, _, err := st.GetToken(ctx, store.AllTenants(), id)
			return t, err
		}),
		NotFound: notFound,
	})
	if err != nil {
		return nil, err
	}
	var remote *remotesensors.Primary
	if opts.Hierarchy.Primary {
		n.uplinkIn = uplink.NewReceiver(uplink.ReceiverOptions{Messages: db, Servers: st, Logger: log.With("component", "uplink-in")})
		remote = remotesensors.NewPrimary(remotesensors.PrimaryOptions{Client: cli, Store: st, Logger: log.With("component", "remote-sensors")})
		n.primary = hierarchy.NewPrimary(hierarchy.PrimaryOptions{
			Store: st, CA: ca, Passwords: authn, NodeName: opts.NodeName,
			TokenLifetime: opts.Hierarchy.TokenLifetime, Heartbeat: opts.Hierarchy.Heartbeat, CertValidity: opts.Hierarchy.CertValidity,
			Channels: []hierarchy.PrimaryChannel{n.uplinkIn, hierarchy.NewDown(st, log.With("component", "hierarchy-down")), remote},
			Logger:   log.With("component", "hierarchy"),
		})
		n.primary.Register(n.grpc)
	}
	// The PCN's calls to this node's sensors run through its own API
	// (built below, before the link can run).
	var apiHandler *httpapi.Server
	n.secondary = hierarchy.NewSecondary(hierarchy.SecondaryOptions{
		Store: st, Client: cli, KEK: kek, NodeName: opts.NodeName, Version: buildinfo.Version(),
		IsPrimary: opts.Hierarchy.Primary, OwnFingerprint: caHash, Counts: n.counts, Logger: log.With("component", "uplink"),
		Channels: []hierarchy.SecondaryChannel{
			uplink.NewSender(uplink.SenderOptions{Messages: db, Logger: log.With("component", "uplink-out")}),
			hierarchy.NewDownApply(st, log.With("component", "hierarchy-down")),
			remotesensors.NewSecondary(remotesensors.SecondaryOptions{
				Client: cli, Store: st, Logger: log.With("component", "remote-sensors"),
				Documents: func(ctx context.Context, call *ospreyv1.RemoteSensorCall) (int, []byte, int64) {
					return apiHandler.SensorDocument(ctx, call)
				},
			}),
		},
		Disconnected: hierarchy.MakeLocal(st),
	})
	apiHandler = httpapi.New(httpapi.Options{
		Store:      st,
		Messages:   db,
		Requests:   n.requests,
		Quarantine: n.quarantine,
		Auth:       authn,
		Registry:   reg,
		Logger:     log.With("component", "api"),
		JoinTokens: func(t *ospreyv1.Token) (string, error) {
			return mintJoinToken(t, caHash)
		},
		// Ready is etcd's quorum only: without its SQL store the node still
		// pushes configuration and serves the API and UI (which show the
		// store's state); only uploads wait.
		Ready:         n.etcdRead,
		Available:     n.available,
		Nodes:         n.nodeList,
		Primary:       n.primary,
		Uplink:        n.secondary,
		RemoteSensors: remote,
	})
	// The API keeps its paths; every other path is the web UI.
	mux := http.NewServeMux()
	for _, p := range []string{"/api/", "/healthz", "/readyz", "/metrics"} {
		mux.Handle(p, apiHandler)
	}
	mux.Handle("/", ui.New(ui.Options{
		Store: st, Messages: db, Requests: n.requests, Quarantine: n.quarantine, Auth: authn, InsecureCookies: !opts.servesTLS(),
		NodeName: opts.NodeName, GRPCAddr: advertised(grpcAddr), Etcd: cli,
		JoinTokens: func(t *ospreyv1.Token) (string, error) {
			return mintJoinToken(t, caHash)
		},
		Nodes:         n.nodeList,
		Primary:       n.primary,
		Uplink:        n.secondary,
		RemoteSensors: remote,
		Logger:        log.With("component", "ui"),
	}))
	n.handler = mux
	return n, nil
}

// newScanner builds the scan engines: the built-in ones, and ClamAV when a
// clamd address is configured.
func newScanner(opts Options, reg prometheus.Registerer, tempDir string, log *slog.Logger) (*scan.Scanner, error) {
	engines := scan.DefaultEngines()
	if opts.Scan.ClamdAddress != "" {
		network := "tcp"
		if strings.HasPrefix(opts.Scan.ClamdAddress, "/") {
			network = "unix"
		}
		c, err := clamav.New(clamav.Options{Network: network, Address: opts.Scan.ClamdAddress})
		if err != nil {
			return nil, fmt.Errorf("clamd: %w", err)
		}
		engines = append(engines, clamav.NewEngine(c))
	}
	return scan.New(scan.Options{Engines: engines, TempDir: tempDir, Registerer: reg, Logger: log.With("component", "scan")})
}

// newSpam builds the spam check when an Rspamd URL is configured; nil
// otherwise.
func newSpam(opts Options, reg prometheus.Registerer, log *slog.Logger) (*pipeline.Spam, error) {
	if opts.Scan.RspamdURL == "" {
		return nil, nil
	}
	c, err := rspamd.New(opts.Scan.rspamdOptions())
	if err != nil {
		return nil, err
	}
	return pipeline.NewSpam(pipeline.SpamOptions{Client: c, Registerer: reg, Logger: log.With("component", "spam")})
}

// spamHealth is the health check of the spam check; nil without one.
func (n *node) spamHealth() func(context.Context) error {
	if n.spam == nil {
		return nil
	}
	return n.spam.Health
}

// counts is what an SCN tells its PCN at each heartbeat: its sensors, the
// alerts it ever stored (the sum of each tenant's alert numbers) and when
// it stored the newest.
func (n *node) counts(ctx context.Context) (hierarchy.Counts, error) {
	all := store.AllTenants()
	sensors, err := n.store.ListSensors(ctx, all)
	if err != nil {
		return hierarchy.Counts{}, err
	}
	tenants, err := n.store.ListTenants(ctx, all)
	if err != nil {
		return hierarchy.Counts{}, err
	}
	c := hierarchy.Counts{Sensors: int64(len(sensors))}
	for _, t := range tenants {
		seq, err := n.db.LastAlertSeq(ctx, all, t.GetId())
		if err != nil {
			return hierarchy.Counts{}, err
		}
		c.Alerts += seq
	}
	page, err := n.db.ListAlerts(ctx, all, sqlstore.AlertQuery{Limit: 1})
	if err != nil {
		return hierarchy.Counts{}, err
	}
	if len(page.Alerts) > 0 {
		c.LastData = page.Alerts[0].GetCreatedAt().AsTime()
	}
	return c, nil
}

// available says whether this node reaches the etcd quorum, as far as it
// knows: a node that lost it refuses API calls at once.
func (n *node) available() error {
	if c := n.cluster.Load(); c != nil && !c.etcd.OK() {
		return fmt.Errorf("no successful etcd read for %v: %w", etcdGrace, store.ErrUnavailable)
	}
	return nil
}

// streamNodes is how many central nodes take sensor streams now, as the
// cluster's name answers (0 until the cluster component runs).
func (n *node) streamNodes() int {
	c := n.cluster.Load()
	if c == nil {
		return 0
	}
	return len(c.gossip.Healthy(gossip.RoleCentral))
}

// nodeList lists the cluster's members, once the cluster component runs.
func (n *node) nodeList(ctx context.Context) (*api.NodeList, error) {
	c := n.cluster.Load()
	if c == nil {
		return nil, errors.New("cluster membership is not running yet")
	}
	return c.nodeList(ctx)
}

// bootstrap makes what a new cluster needs: the default tenant and the first
// admin. Both are create-if-absent, so every node may run it at every start
// and concurrent first starts agree on one admin.
func bootstrap(ctx context.Context, opts Options, st *store.Store, ready *Ready, log *slog.Logger) error {
	all := store.AllTenants()
	_, err := st.CreateTenant(ctx, all, &ospreyv1.Tenant{Id: defaultTenant, Name: "Default", CreatedAt: timestamppb.Now()})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("bootstrap default tenant: %w", err)
	}
	ready.AdminUser = adminUser
	passwordFile := filepath.Join(opts.DataDir, initialPasswordFile)
	ready.AdminPasswordFile = passwordFile

	if _, _, err := st.GetUser(ctx, all, adminUser); err == nil {
		// An existing cluster. In dev, show the generated password again while
		// its file is there, so a restart still prints how to sign in.
		if opts.Dev && opts.BootstrapAdminPassword == "" {
			if b, err := os.ReadFile(passwordFile); err == nil {
				ready.AdminPassword = strings.TrimSpace(string(b))
			}
		}
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("bootstrap admin: %w", err)
	}

	password, generated := opts.BootstrapAdminPassword, false
	if password == "" {
		password, generated = auth.GeneratePassword(), true
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	// The password reaches the disk before the user exists, so a crash in
	// between can never leave an admin whose password nobody knows.
	if generated {
		if err := pki.WriteFileAtomic(passwordFile, []byte(password+"\n"), 0o600); err != nil {
			return fmt.Errorf("bootstrap admin: %w", err)
		}
	}
	_, err = st.CreateUser(ctx, all, &ospreyv1.User{
		Name: adminUser, Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true, PasswordHash: hash, CreatedAt: timestamppb.Now(),
	})
	if errors.Is(err, store.ErrExists) {
		// Another node bootstrapped the cluster first; its password stands.
		if generated {
			os.Remove(passwordFile)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	if generated {
		ready.AdminPassword = password
		log.Info("created the first admin with a generated password", "user", adminUser, "password_file", passwordFile)
	} else {
		log.Info("created the first admin with the bootstrap password", "user", adminUser)
	}
	return nil
}

// registerLocalSensor records the node's own Sensor component as an approved
// sensor of the default tenant, named after the node.
func registerLocalSensor(ctx context.Context, st *store.Store, nodeName string) (string, error) {
	all := store.AllTenants()
	_, err := st.CreateSensor(ctx, all, &ospreyv1.Sensor{
		Id:        nodeName,
		Tenant:    defaultTenant,
		Name:      nodeName,
		State:     ospreyv1.SensorState_SENSOR_STATE_APPROVED,
		Local:     true,
		CreatedAt: timestamppb.Now(),
	})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return "", fmt.Errorf("register the local sensor: %w", err)
	}
	return nodeName, nil
}

// mintJoinToken gives t a fresh id and secret and returns the string a sensor
// is given: it carries the cluster CA's hash, so the sensor needs nothing else.
func mintJoinToken(t *ospreyv1.Token, caHash string) (string, error) {
	jt, err := jointoken.Generate(caHash)
	if err != nil {
		return "", err
	}
	t.Id, t.SecretHash = jt.ID, jointoken.SecretHash(jt.Secret)
	return jt.String(), nil
}

// localSensorToken makes a one-use join token bound to the node's own sensor,
// for the Sensor component that runs in this process (dev) to enroll with.
func localSensorToken(ctx context.Context, st *store.Store, sensorID, caHash string) (string, error) {
	t := &ospreyv1.Token{
		Kind:        ospreyv1.TokenKind_TOKEN_KIND_JOIN,
		Tenant:      defaultTenant,
		SensorId:    sensorID,
		MaxUses:     1,
		UsesLeft:    1,
		CreatedAt:   timestamppb.Now(),
		ExpiresAt:   timestamppb.New(time.Now().Add(time.Hour)),
		Description: "enrollment of the node's own sensor",
	}
	secret, err := mintJoinToken(t, caHash)
	if err != nil {
		return "", err
	}
	if _, err := st.CreateToken(ctx, store.AllTenants(), t); err != nil {
		return "", fmt.Errorf("join token for the local sensor: %w", err)
	}
	return secret, nil
}

// grpcHosts are the names a node's gRPC certificate is issued for.
func grpcHosts(nodeName string, addr net.Addr) []string {
	hosts := []string{nodeName, "localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	if host, _, err := net.SplitHostPort(addr.String()); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			hosts = append(hosts, host)
		}
	}
	return hosts
}

// newGRPCServer serves the sensor service over TLS: the node's certificate
// from the cluster CA, and sensors' client certificates verified against that
// CA when given (Enroll is the one call made without one; every other call
// checks the verified identity itself). A panic in a call fails that call
// with Internal instead of ending the process (gRPC, unlike net/http, does
// not recover): it is logged with its stack and counted in
// osprey_grpc_panics_total.
func newGRPCServer(cert *clusterca.ServerCert, ca *pki.CA, reg prometheus.Registerer, log *slog.Logger) (*grpc.Server, error) {
	panics := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "osprey_grpc_panics_total", Help: "gRPC calls that panicked (a bug): each failed with Internal, and the node went on.",
	})
	if err := reg.Register(panics); err != nil {
		return nil, fmt.Errorf("register gRPC metrics: %w", err)
	}
	recovered := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		panics.Inc()
		method, _ := grpc.Method(ctx)
		log.ErrorContext(ctx, "gRPC call panicked", "method", method, "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	tc := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cert.GetCertificate,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      pool,
	}
	return grpc.NewServer(
		grpc.Creds(credentials.NewTLS(tc)),
		// Detect a dead sensor within seconds, and let sensors do the same.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 5 * time.Second, Timeout: 5 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 2 * time.Second, PermitWithoutStream: true}),
		// What sensors send is small. What they are sent is not bounded
		// here (a server sends any size): a configuration with its
		// acceptance lists can pass 4 MiB, and the agent raises its
		// receive limit for it.
		grpc.MaxRecvMsgSize(4<<20),
		// No read buffer of gRPC's own: TLS already holds each decrypted
		// record, so the 32 KiB per connection would only copy it again
		// (most of an idle sensor stream's memory; see docs/BENCHMARKS.md).
		grpc.ReadBufferSize(0),
		grpc.ConnectionTimeout(10*time.Second),
		grpc.ChainUnaryInterceptor(recovery.UnaryServerInterceptor(recovered)),
		grpc.ChainStreamInterceptor(recovery.StreamServerInterceptor(recovered)),
	), nil
}
