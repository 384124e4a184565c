package central

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"time"

	"github.com/ospreysec/osprey/central/dnsserver"
	"github.com/ospreysec/osprey/central/etcdembed"
	"github.com/ospreysec/osprey/central/gossip"
	"github.com/ospreysec/osprey/central/scan/rspamd"
	"github.com/ospreysec/osprey/central/sensorsvc"
	"github.com/ospreysec/osprey/central/sqlstore"
)

// Options configures a Central Node: what the whole node needs first, then
// one group per component, named as its flags are (--http-*, --etcd-*,
// --gossip-*, --dns-*, --db-url, --sensor-cert-*).
type Options struct {
	// NodeName names this node in the cluster, in etcd, and as its own sensor.
	NodeName string
	// DataDir holds the embedded etcd's data and the node's local secrets.
	DataDir string
	// Dev runs the single-process trial mode: plain HTTP on loopback (HTTPS
	// with HTTP.TLSCert), text logs, and the node's own Sensor component
	// registered and approved.
	Dev bool
	// ClusterKeyFile holds the 32-byte key that seals the cluster CA's key in
	// etcd; every central node of a cluster needs the same file. Default:
	// DataDir/cluster.key, made on the first start of a new cluster.
	ClusterKeyFile string
	// BootstrapAdminPassword is the first admin's password on a new cluster.
	// When empty one is generated and written to DataDir/initial-admin-password.
	BootstrapAdminPassword string

	HTTP        HTTPOptions
	GRPC        GRPCOptions
	Etcd        EtcdOptions
	DB          DBOptions
	Gossip      GossipOptions
	DNS         DNSOptions
	Scan        ScanOptions
	LocalSensor LocalSensorOptions
	// SensorCerts are the lifetimes of the sensors' client certificates
	// (--sensor-cert-validity, --sensor-cert-renew-from,
	// --sensor-cert-renew-until); zero fields take the defaults. Every
	// node of a cluster should be given the same.
	SensorCerts sensorsvc.CertLifetime
	// SensorBalance is how the node keeps its share of the cluster's
	// sensor streams (--sensor-balance-interval, --sensor-balance-step).
	SensorBalance SensorBalanceOptions
	// Hierarchy is the distributed mode's (--pcn, --hierarchy-*).
	Hierarchy HierarchyOptions

	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// OnReady, when set, is called once the node serves.
	OnReady func(Ready)
}

// HierarchyOptions are the distributed mode's. Every node may be made a
// Secondary Central Node by its administrator (API, ctl or UI: it is a
// state in etcd, not a flag); Primary makes this node's cluster a Primary
// Central Node, which serves the hierarchy service on its gRPC address
// (the same listener and certificate as the sensors'). The rest is the
// PCN's: every node of a PCN cluster should be given the same.
type HierarchyOptions struct {
	// Primary serves SCNs (--pcn).
	Primary bool
	// TokenLifetime is how long an SCN may stay offline before it must
	// log in again with its PCN account (--hierarchy-token-lifetime).
	TokenLifetime time.Duration
	// Heartbeat is the SCNs' heartbeat interval; three missed heartbeats
	// show an SCN offline (--hierarchy-heartbeat).
	Heartbeat time.Duration
	// CertValidity is the lifetime of an SCN's link certificate, renewed
	// at two thirds of it (--hierarchy-cert-validity).
	CertValidity time.Duration
}

// validate checks the hierarchy's options; zero durations take the
// defaults.
// SensorBalanceOptions say how often a node compares the sensor streams it
// holds with its share of the cluster's, and how many it moves at most each
// time (see sensorsvc.Balancer); zero fields take the defaults, 5 s and
// 0.05 of its streams.
type SensorBalanceOptions struct {
	Interval time.Duration
	Step     float64
}

func (b SensorBalanceOptions) validate() error {
	var errs []error
	if b.Interval != 0 && (b.Interval < 100*time.Millisecond || b.Interval > time.Hour) {
		errs = append(errs, fmt.Errorf("--sensor-balance-interval: %v: want 100ms to 1h", b.Interval))
	}
	if b.Step < 0 || b.Step > 1 {
		errs = append(errs, fmt.Errorf("--sensor-balance-step: %v: want 0 to 1 (a fraction of the node's streams)", b.Step))
	}
	return errors.Join(errs...)
}

func (h HierarchyOptions) validate() error {
	var errs []error
	if h.TokenLifetime != 0 && (h.TokenLifetime < 10*time.Second || h.TokenLifetime > 365*24*time.Hour) {
		errs = append(errs, fmt.Errorf("--hierarchy-token-lifetime: %v: want 10s to 8760h", h.TokenLifetime))
	}
	if h.Heartbeat != 0 && (h.Heartbeat < 100*time.Millisecond || h.Heartbeat > 5*time.Minute) {
		errs = append(errs, fmt.Errorf("--hierarchy-heartbeat: %v: want 100ms to 5m", h.Heartbeat))
	}
	if h.Heartbeat != 0 && h.TokenLifetime != 0 && 3*h.Heartbeat >= h.TokenLifetime {
		errs = append(errs, errors.New("--hierarchy-token-lifetime: must be longer than three --hierarchy-heartbeat"))
	}
	if h.CertValidity != 0 && (h.CertValidity < time.Minute || h.CertValidity > 365*24*time.Hour) {
		errs = append(errs, fmt.Errorf("--hierarchy-cert-validity: %v: want 1m to 8760h", h.CertValidity))
	}
	return errors.Join(errs...)
}

// HTTPOptions are the REST API's and web UI's listener.
type HTTPOptions struct {
	// Addr is where the REST API and web UI listen.
	Addr string
	// Listener, when set, is used instead of listening on Addr.
	Listener net.Listener
	// TLSCert and TLSKey are the API's certificate and key files. Outside
	// dev, when they are empty, the node makes a self-signed pair in DataDir.
	TLSCert, TLSKey string
}

// GRPCOptions are the sensor service's listener.
type GRPCOptions struct {
	// Addr is where sensors enroll and hold their configuration streams.
	Addr string
	// Listener, when set, is used instead of listening on Addr.
	Listener net.Listener
}

// EtcdOptions select the configuration store: an external etcd cluster
// (Endpoints and the fields after it) or an embedded member (the rest).
type EtcdOptions struct {
	// Endpoints selects an external etcd cluster; empty embeds a member.
	Endpoints []string
	// CAFile, CertFile and KeyFile are the TLS files for an external etcd.
	CAFile, CertFile, KeyFile string
	// Username and Password authenticate to an external etcd.
	Username, Password string

	// ClientAddr and PeerAddr are the embedded member's listeners.
	ClientAddr, PeerAddr string
	// InitialCluster ("n1=https://10.0.0.1:2380,n2=...,n3=...") makes the
	// embedded member one of a cluster formed by the central nodes; it must
	// name this node. Empty: a single-member cluster.
	InitialCluster string
	// InitialClusterState is "new" (default) when the members in
	// InitialCluster start a cluster together, or "existing" when this
	// member was added to a running cluster (etcdctl member add).
	InitialClusterState string
}

// DBOptions are the SQL store of message records, alerts and audit events.
type DBOptions struct {
	// URL is a postgres:// URL, which every node of a cluster shares
	// (--db-url). Empty: SQLite in DataDir, for a node alone; a cluster
	// node refuses to start without it.
	URL string
	// AlertRetention bounds each tenant's alerts; zero fields take the
	// store's defaults (20,000 alerts, 30 days).
	AlertRetention sqlstore.AlertRetention
	// MessageRetention is how long message records are kept; 0 means the
	// store's default (30 days).
	MessageRetention time.Duration
}

// GossipOptions are the node's membership in the cluster.
type GossipOptions struct {
	// Addr is where the node gossips with the other central nodes, UDP and
	// TCP (--gossip-addr); port 0 picks one. A dev node without one gossips
	// on 127.0.0.1, port picked by the kernel.
	Addr string
	// AdvertiseAddr, when set, is the IP:port the other nodes reach this
	// one at (behind NAT); by default the bound address, or a private IP
	// of the host when it binds every address.
	AdvertiseAddr string
	// Join are the gossip addresses (host:port) of nodes to join at start
	// and to rejoin while they are not seen alive; this node's own address
	// may be among them. The node list in etcd is used too.
	Join []string
	// Key is the base64 of the 32-byte key that encrypts gossip;
	// KeyringFile a JSON array of such keys, the primary first. One is
	// required outside dev.
	Key, KeyringFile string
	// Timing is GossipTuned (default) or GossipLAN.
	Timing string
}

// DNSOptions are the health-aware DNS responder's.
type DNSOptions struct {
	// Addr is where the DNS responder listens, UDP and TCP; a dev node
	// without one listens on 127.0.0.1, port picked by the kernel.
	Addr string
	// Zone is the zone every central node is authoritative for (default
	// DefaultDNSZone).
	Zone string
	// TTL is the TTL of every DNS answer (default DefaultDNSTTL).
	TTL time.Duration
}

// ScanOptions are the scan engines beside the built-in ones, and the spam
// check.
type ScanOptions struct {
	// ClamdAddress, when set, adds the ClamAV engine: a clamd socket path
	// ("/run/clamav/clamd.ctl") or host:port.
	ClamdAddress string
	// RspamdURL, when set, has Rspamd asked about every message beside the
	// scan, its opinion kept on the message's record: the URL of its
	// normal worker ("http://127.0.0.1:11333").
	RspamdURL string
	// RspamdTimeout bounds one check (0: rspamd.DefaultTimeout).
	RspamdTimeout time.Duration
	// RspamdMaxSize is the largest message sent, in bytes: rspamd's
	// max_message (0: rspamd's default, 50 MB).
	RspamdMaxSize int64
}

// rspamdOptions are the options of the Rspamd client.
func (o ScanOptions) rspamdOptions() rspamd.Options {
	return rspamd.Options{URL: o.RspamdURL, Timeout: o.RspamdTimeout, MaxSize: o.RspamdMaxSize}
}

// LocalSensorOptions are about the node's own Sensor component, which
// cmd/osprey runs beside the node once it is ready.
type LocalSensorOptions struct {
	// Run says the node has one (--sensor; dev always does): the node
	// registers it as an approved sensor named after the node and gossips
	// the sensor role and its SMTP listener.
	Run bool
	// Unenrolled says that it has no identity in its data dir (lost, or a
	// data dir restored from another node's backup) though its record
	// names a certificate: the node then makes it a join token all the
	// same (Ready), and it enrolls into its record again. cmd/osprey looks
	// at the sensor's data dir.
	Unenrolled bool
}

// Validate reports every problem with the options at once.
func (o *Options) Validate() error {
	var errs []error
	if o.DataDir == "" {
		errs = append(errs, errors.New("--data-dir: required"))
	}
	if o.NodeName == "" {
		errs = append(errs, errors.New("--node-name: required"))
	} else if !validNodeName(o.NodeName) {
		errs = append(errs, fmt.Errorf("--node-name: %q: use lower-case letters, digits, '-' and '.', at most 63", o.NodeName))
	}
	if o.HTTP.Listener == nil {
		if _, _, err := net.SplitHostPort(o.HTTP.Addr); err != nil {
			errs = append(errs, fmt.Errorf("--http-addr: %q: %w", o.HTTP.Addr, err))
		}
	}
	if o.GRPC.Listener == nil {
		if _, _, err := net.SplitHostPort(o.GRPC.Addr); err != nil {
			errs = append(errs, fmt.Errorf("--grpc-addr: %q: %w", o.GRPC.Addr, err))
		}
	}
	if (o.HTTP.TLSCert == "") != (o.HTTP.TLSKey == "") {
		errs = append(errs, errors.New("--http-tls-cert and --http-tls-key: give both or neither"))
	}
	if len(o.Etcd.Endpoints) == 0 {
		if o.Etcd.CAFile != "" || o.Etcd.CertFile != "" || o.Etcd.Username != "" {
			errs = append(errs, errors.New("--etcd-ca/--etcd-cert/--etcd-username: only with --etcd-endpoints"))
		}
	}
	if (o.Etcd.CertFile == "") != (o.Etcd.KeyFile == "") {
		errs = append(errs, errors.New("--etcd-cert and --etcd-key: give both or neither"))
	}
	errs = append(errs, o.validateEtcdCluster(), o.validateCluster(), o.SensorCerts.Validate(), o.SensorBalance.validate(), o.validateDB(), o.validateScan(), o.Hierarchy.validate())
	return errors.Join(errs...)
}

// validateScan checks the spam check's options.
func (o *Options) validateScan() error {
	var errs []error
	s := o.Scan
	if s.RspamdURL == "" {
		return nil // the other flags are not used
	}
	if err := rspamd.CheckURL(s.RspamdURL); err != nil {
		errs = append(errs, fmt.Errorf("--rspamd-url: %w", err))
	}
	if s.RspamdTimeout < 0 {
		errs = append(errs, fmt.Errorf("--rspamd-timeout: %v: must not be negative", s.RspamdTimeout))
	}
	if s.RspamdMaxSize < 0 {
		errs = append(errs, fmt.Errorf("--rspamd-max-size: %d: must not be negative", s.RspamdMaxSize))
	}
	return errors.Join(errs...)
}

// validateDB checks the SQL store's options.
func (o *Options) validateDB() error {
	var errs []error
	if o.DB.URL == "" && (o.Etcd.InitialCluster != "" || len(o.Etcd.Endpoints) > 0 || len(o.Gossip.Join) > 0) {
		errs = append(errs, errors.New("--db-url: required for a node of a cluster, which shares its message records and alerts with the other nodes in one PostgreSQL (postgres://user@host/osprey?target_session_attrs=read-write); only a node alone keeps them in SQLite in its data dir"))
	}
	if o.DB.URL != "" {
		if err := sqlstore.CheckURL(o.DB.URL); err != nil {
			errs = append(errs, fmt.Errorf("--db-url: %w", err))
		}
	}
	if o.DB.MessageRetention != 0 && o.DB.MessageRetention < sqlstore.MinMessageRetention {
		errs = append(errs, fmt.Errorf("--message-retention: %s: want at least %s (a record also recognises a sensor's retry of its upload)", o.DB.MessageRetention, sqlstore.MinMessageRetention))
	}
	return errors.Join(errs...)
}

// validateEtcdCluster checks the embedded member's cluster options.
func (o *Options) validateEtcdCluster() error {
	var errs []error
	switch o.Etcd.InitialClusterState {
	case "", "new":
	case "existing":
		if o.Etcd.InitialCluster == "" {
			errs = append(errs, errors.New("--etcd-initial-cluster-state existing: needs --etcd-initial-cluster"))
		}
	default:
		errs = append(errs, fmt.Errorf("--etcd-initial-cluster-state: %q: want new or existing", o.Etcd.InitialClusterState))
	}
	if o.Etcd.InitialCluster == "" {
		return errors.Join(errs...)
	}
	if len(o.Etcd.Endpoints) > 0 {
		errs = append(errs, errors.New("--etcd-initial-cluster: only with the embedded etcd, not with --etcd-endpoints"))
	}
	if _, err := etcdembed.MemberPeerURLs(o.Etcd.InitialCluster, o.NodeName); err != nil {
		errs = append(errs, fmt.Errorf("--etcd-initial-cluster: %w", err))
	} else {
		members, _ := etcdembed.ParseInitialCluster(o.Etcd.InitialCluster)
		for _, name := range slices.Sorted(maps.Keys(members)) {
			for _, u := range members[name] {
				if u.Scheme != "https" {
					errs = append(errs, fmt.Errorf("--etcd-initial-cluster: %s=%s: the members talk mutual TLS (with certificates from the cluster key), so peer URLs are https://", name, u.String()))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// servesTLS says whether the API and web UI are served over HTTPS: always,
// but on a dev node without --http-tls-cert.
func (o *Options) servesTLS() bool { return !o.Dev || o.HTTP.TLSCert != "" }

// devLoopback is where a dev node gossips and answers DNS when no address
// is given: a cluster of one, on ports the kernel picks.
const devLoopback = "127.0.0.1:0"

// clusterDefaults fills what a dev node may leave out (Run and Validate
// both see it so).
func (o Options) clusterDefaults() Options {
	if o.Dev {
		o.Gossip.Addr = cmp.Or(o.Gossip.Addr, devLoopback)
		o.DNS.Addr = cmp.Or(o.DNS.Addr, devLoopback)
	}
	return o
}

// validateCluster checks the gossip and DNS options, with their packages'
// own validation. Their node name checks are left to Validate's.
func (o *Options) validateCluster() error {
	withDefaults := o.clusterDefaults()
	o = &withDefaults
	var errs []error
	g := o.gossipOptions()
	g.NodeName = "node"
	if err := g.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch o.Gossip.Timing {
	case "", GossipTuned, GossipLAN:
	default:
		errs = append(errs, fmt.Errorf("--gossip-timing: %q: want %s or %s", o.Gossip.Timing, GossipTuned, GossipLAN))
	}
	if o.DNS.Addr == "" {
		errs = append(errs, errors.New("--dns-addr: required"))
	}
	d := dnsserver.Options{Zone: cmp.Or(o.DNS.Zone, DefaultDNSZone), NodeName: "node", View: noView{}, Addr: o.DNS.Addr, TTL: o.DNS.TTL}
	if validNodeName(o.NodeName) {
		d.NodeName = o.NodeName
	}
	if err := d.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// noView stands for the DNS view while the options are validated.
type noView struct{}

func (noView) Healthy(gossip.Role) []gossip.Member { return nil }
func (noView) Quorum() bool                        { return false }

func validNodeName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '.'))
		if !ok {
			return false
		}
	}
	return true
}
