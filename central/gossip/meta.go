package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/hashicorp/memberlist"
)

// Role is a part a node plays in the cluster.
type Role string

const (
	// RoleCentral is a Central Node: it serves the gRPC sensor API and the
	// HTTP API from the configuration in etcd.
	RoleCentral Role = "central"
	// RoleSensor is a node that runs a Sensor component and takes mail by SMTP.
	RoleSensor Role = "sensor"
)

// Health is what a node says about its own components. Each field is true
// when that component works; the zero Health is "nothing works".
type Health struct {
	// Etcd is true when the node reaches the etcd quorum.
	Etcd bool
	// GRPC is true when the gRPC sensor API accepts connections.
	GRPC bool
	// HTTP is true when the REST API and web UI accept connections.
	HTTP bool
	// SMTP is true when the SMTP listener accepts connections.
	SMTP bool
	// Spool is true when the spool has room for more mail (it is not full).
	Spool bool
	// SQL is true when the node reaches its SQL store (message records and
	// alerts). It decides no role's health: without it the node still
	// pushes configuration and its sensor still takes mail (uploads wait).
	SQL bool
	// RspamdUsed says the node asks Rspamd about every message (its spam
	// check); Rspamd is true while Rspamd answers and its checks succeed.
	// It decides no role's health: without it messages are recorded
	// without a spam result.
	RspamdUsed, Rspamd bool
}

// Meta is the metadata a node gossips about itself. Addresses are host:port
// with an IP literal (IPv4 or IPv6), or empty when the node does not serve
// that API; an unspecified host (0.0.0.0, ::) stands for the node's gossip IP.
type Meta struct {
	// Roles are the parts the node plays, in no particular order.
	Roles []Role
	// GRPCAddr is where the gRPC sensor API listens.
	GRPCAddr string
	// HTTPAddr is where the REST API and web UI listen.
	HTTPAddr string
	// SMTPAddr is where the SMTP listener of the node's Sensor component listens.
	SMTPAddr string
	// Health is the state of the node's components.
	Health Health
}

// Has reports whether the node plays role.
func (m Meta) Has(role Role) bool { return slices.Contains(m.Roles, role) }

// MetaVersion is the version of the metadata encoding this package writes.
// Fields may be added without changing it; it changes only when the meaning
// of an existing field does, and a node refuses metadata of a version it does
// not know (that member is then never healthy in its view).
const MetaVersion = 1

// MaxMetaSize is the largest encoded metadata memberlist carries.
const MaxMetaSize = memberlist.MetaMaxSize

// ErrMetaVersion is returned when metadata has a version this node does not know.
var ErrMetaVersion = errors.New("unknown metadata version")

// wireMeta is the compact JSON form of Meta:
//
//	{"v":1,"n":"node-1","r":["central","sensor"],"g":"10.0.0.1:7443",
//	 "h":"10.0.0.1:8443","s":"10.0.0.1:25","ok":["etcd","grpc","http","smtp","spool","rspamd"],
//	 "u":["rspamd"]}
//
// Health travels as the list of components that work, so a component added
// later is simply absent (unhealthy) for an older reader.
type wireMeta struct {
	V     int      `json:"v"`
	Name  string   `json:"n,omitempty"`
	Roles []Role   `json:"r,omitempty"`
	GRPC  string   `json:"g,omitempty"`
	HTTP  string   `json:"h,omitempty"`
	SMTP  string   `json:"s,omitempty"`
	OK    []string `json:"ok,omitempty"`
	// Uses are the optional components the node runs ("rspamd"); each is
	// in OK while it works.
	Uses []string `json:"u,omitempty"`
	// Leaving is set by a node that is about to leave the cluster, so the
	// others can tell its leave from a failure (memberlist tells both apart
	// to no delegate).
	Leaving bool `json:"l,omitempty"`
}

// Component names in the "ok" list of the wire form.
const (
	compEtcd  = "etcd"
	compGRPC  = "grpc"
	compHTTP  = "http"
	compSMTP  = "smtp"
	compSpool = "spool"
	compSQL   = "sql"
	// compRspamd is optional: in Uses when the node has it.
	compRspamd = "rspamd"
)

// encodeMeta encodes the metadata of the node called name.
func encodeMeta(name string, m Meta, leaving bool) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	w := wireMeta{V: MetaVersion, Name: name, Roles: m.Roles, GRPC: m.GRPCAddr, HTTP: m.HTTPAddr, SMTP: m.SMTPAddr, Leaving: leaving}
	for _, c := range []struct {
		ok   bool
		name string
	}{
		{m.Health.Etcd, compEtcd}, {m.Health.GRPC, compGRPC}, {m.Health.HTTP, compHTTP},
		{m.Health.SMTP, compSMTP}, {m.Health.Spool, compSpool}, {m.Health.SQL, compSQL},
		{m.Health.RspamdUsed && m.Health.Rspamd, compRspamd},
	} {
		if c.ok {
			w.OK = append(w.OK, c.name)
		}
	}
	if m.Health.RspamdUsed {
		w.Uses = append(w.Uses, compRspamd)
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("encoded metadata is %d bytes, more than %d", len(b), MaxMetaSize)
	}
	return b, nil
}

// decodeMeta decodes metadata written by encodeMeta, of this or an older
// compatible version, and whether the node is leaving. Fields it does not
// know are ignored.
func decodeMeta(b []byte) (m Meta, leaving bool, err error) {
	if len(b) == 0 {
		return Meta{}, false, errors.New("no metadata")
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, false, fmt.Errorf("decode metadata: %w", err)
	}
	if w.V != MetaVersion {
		return Meta{}, false, fmt.Errorf("metadata version %d: %w", w.V, ErrMetaVersion)
	}
	m = Meta{Roles: w.Roles, GRPCAddr: w.GRPC, HTTPAddr: w.HTTP, SMTPAddr: w.SMTP}
	for _, c := range w.OK {
		switch c {
		case compEtcd:
			m.Health.Etcd = true
		case compGRPC:
			m.Health.GRPC = true
		case compHTTP:
			m.Health.HTTP = true
		case compSMTP:
			m.Health.SMTP = true
		case compSpool:
			m.Health.Spool = true
		case compSQL:
			m.Health.SQL = true
		case compRspamd:
			m.Health.Rspamd = true
		}
	}
	m.Health.RspamdUsed = slices.Contains(w.Uses, compRspamd)
	m.Health.Rspamd = m.Health.Rspamd && m.Health.RspamdUsed
	return m, w.Leaving, nil
}

// validate checks the addresses and roles of m, reporting every problem.
func (m Meta) validate() error {
	var errs []error
	for _, a := range []struct{ field, v string }{
		{"gRPC", m.GRPCAddr}, {"HTTP", m.HTTPAddr}, {"SMTP", m.SMTPAddr},
	} {
		if a.v == "" {
			continue
		}
		if _, err := netip.ParseAddrPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("gossip metadata: %s address %q: want IP:port: %w", a.field, a.v, err))
		}
	}
	for _, r := range m.Roles {
		if r == "" {
			errs = append(errs, errors.New("gossip metadata: empty role"))
		}
	}
	return errors.Join(errs...)
}
