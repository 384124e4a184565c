package api

import "time"

// SensorState is the administrative state of a sensor.
type SensorState string

// The sensor states.
const (
	// SensorPending: enrolled, waiting for an administrator's approval.
	SensorPending SensorState = "pending"
	// SensorApproved: receives its configuration and may upload mail.
	SensorApproved SensorState = "approved"
	// SensorRevoked: refused until approved again.
	SensorRevoked SensorState = "revoked"
)

// Role is what a user may do.
type Role string

// The roles of a user.
const (
	// RoleAdmin may do everything, across tenants.
	RoleAdmin Role = "admin"
	// RoleTenantAdmin may do everything within its tenant.
	RoleTenantAdmin Role = "tenant_admin"
	// RoleAuditor may read, within its tenant or (with no tenant) across all.
	RoleAuditor Role = "auditor"
)

// TokenKind is what a token may be used for.
type TokenKind string

// The kinds of token.
const (
	// TokenAPI authenticates API calls as the user who created it (Authorization: Bearer).
	TokenAPI TokenKind = "api"
	// TokenJoin allows one thing: enrolling a sensor into its tenant.
	TokenJoin TokenKind = "join"
)

// SizeUnit is the unit of a message size limit. Multiples are binary: 1 KB is 1024 bytes.
type SizeUnit string

// The size units.
const (
	KB SizeUnit = "KB"
	MB SizeUnit = "MB"
	GB SizeUnit = "GB"
)

// TLSMode says whether an SMTP listener offers STARTTLS and whether it requires it.
type TLSMode string

// The SMTP TLS modes.
const (
	TLSOff     TLSMode = "off"
	TLSAccept  TLSMode = "accept"
	TLSRequire TLSMode = "require"
)

// ClientCertMode says whether an SMTP listener asks its clients for a certificate.
type ClientCertMode string

// The client certificate modes.
const (
	ClientCertOff     ClientCertMode = "off"
	ClientCertRequest ClientCertMode = "request"
	ClientCertRequire ClientCertMode = "require"
)

// POP3TLSMode is how TLS starts on a POP3 connection.
type POP3TLSMode string

// The POP3 TLS modes.
const (
	// POP3Implicit: TLS from the first byte (usually port 995).
	POP3Implicit POP3TLSMode = "implicit"
	// POP3STARTTLS: a plaintext greeting, then STLS (RFC 2595).
	POP3STARTTLS POP3TLSMode = "starttls"
)

// TLSCertificatePolicy is how a POP3 server's certificate is checked.
type TLSCertificatePolicy string

// The certificate policies.
const (
	AcceptAny        TLSCertificatePolicy = "accept_any"
	AcceptSelfSigned TLSCertificatePolicy = "accept_self_signed"
	TrustedOnly      TLSCertificatePolicy = "trusted_only"
)

// Tenant is one customer or organisation; every sensor, user, rule and alert belongs to one.
// A tenant named "default" exists from the start.
type Tenant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// SCN names the Secondary Central Node that serves the tenant in distributed mode.
	SCN string `json:"scn,omitempty"`
	// CreatedAt is set by the server.
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// ApplyResult is the answer to applying an integration to every sensor of a tenant.
type ApplyResult struct {
	// Changed counts the sensors whose integration was written.
	Changed int `json:"changed"`
	// Version is the revision of the last write, 0 when nothing changed.
	Version int64 `json:"version"`
}

// TenantList is the body of GET /api/v1/tenants.
type TenantList struct {
	Tenants []Tenant `json:"tenants"`
}

// Sensor is an enrolled sensor with its current status.
type Sensor struct {
	ID     string      `json:"id"`
	Name   string      `json:"name"`
	Tenant string      `json:"tenant"`
	State  SensorState `json:"state"`
	// CertFingerprint is the SHA-256 of the sensor's client certificate, in hex.
	CertFingerprint string `json:"cert_fingerprint,omitempty"`
	// Local marks the Sensor component that runs inside a Central Node.
	Local     bool      `json:"local,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`

	// Online says whether a central node holds the sensor's configuration stream.
	Online bool `json:"online"`
	// Node names the central node that holds the stream, when Online.
	Node string `json:"node,omitempty"`
	// LastSeen is when the sensor was last heard from; zero if never.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// ConfigVersion is the version of the configuration stored for the sensor.
	ConfigVersion int64 `json:"config_version"`
	// AppliedVersion is the last version the sensor acknowledged as applied.
	AppliedVersion int64 `json:"applied_version"`
	// LastError is the error of the sensor's last refused configuration, if any.
	LastError string `json:"last_error,omitempty"`
}

// SensorList is the body of GET /api/v1/sensors.
type SensorList struct {
	Sensors []Sensor `json:"sensors"`
}

// SizeLimit is a message size limit: unlimited, or Value × Unit.
type SizeLimit struct {
	Unlimited bool     `json:"unlimited"`
	Value     uint64   `json:"value"`
	Unit      SizeUnit `json:"unit"`
}

// SMTPIntegration is a sensor's SMTP listener and the mail it accepts.
type SMTPIntegration struct {
	Enabled bool `json:"enabled"`
	// Listen is the address to listen on, as host:port.
	Listen string `json:"listen"`
	// DestinationDomains lists the recipient domains to accept: "example.com" also covers its
	// subdomains, "!hr.example.com" excludes one. Empty accepts any recipient.
	DestinationDomains []string `json:"destination_domains"`
	// Clients lists the IPs and CIDRs (IPv4 and IPv6) that may connect; "!10.0.0.5" or
	// "!10.1.0.0/16" excludes. Empty allows any client when DestinationDomains is set,
	// otherwise only hosts in the sensor's own subnets.
	Clients        []string    `json:"clients"`
	MaxMessageSize *SizeLimit  `json:"max_message_size,omitempty"`
	TLS            *SMTPTLS    `json:"tls,omitempty"`
	Limits         *SMTPLimits `json:"limits,omitempty"`
}

// SMTPTLS is the TLS part of an SMTP integration.
type SMTPTLS struct {
	Mode TLSMode `json:"mode"`
	// CertPEM is the server certificate chain; empty means a self-signed one made by the sensor.
	CertPEM string `json:"cert_pem,omitempty"`
	// KeyPEM is the private key of CertPEM. It is write-only: reads never return it and say
	// KeySet instead. A write with an empty KeyPEM keeps the stored key if CertPEM is the
	// stored certificate.
	KeyPEM string `json:"key_pem,omitempty"`
	// KeySet reports whether a private key is stored. Read-only: the server ignores it on write.
	KeySet     bool           `json:"key_set"`
	ClientCert ClientCertMode `json:"client_cert"`
	// ClientCAPEM holds the CAs that client certificates must chain to.
	ClientCAPEM string `json:"client_ca_pem,omitempty"`
}

// SMTPLimits bound what one SMTP listener accepts. Zero means the documented default.
type SMTPLimits struct {
	MaxRecipients           uint32 `json:"max_recipients"`
	MaxConnections          uint32 `json:"max_connections"`
	MaxConnectionsPerClient uint32 `json:"max_connections_per_client"`
	CommandTimeoutSeconds   uint32 `json:"command_timeout_seconds"`
	DataTimeoutSeconds      uint32 `json:"data_timeout_seconds"`
	SessionTimeoutSeconds   uint32 `json:"session_timeout_seconds"`
	MaxErrors               uint32 `json:"max_errors"`
}

// POP3Integration is a sensor's polling of one POP3 mailbox.
type POP3Integration struct {
	Enabled         bool        `json:"enabled"`
	Server          string      `json:"server"`
	Port            uint32      `json:"port"`
	IntervalSeconds uint32      `json:"interval_seconds"`
	TLS             bool        `json:"tls"`
	TLSMode         POP3TLSMode `json:"tls_mode,omitempty"`
	Username        string      `json:"username"`
	// Password is write-only: reads never return it and say PasswordSet instead. A write with
	// an empty Password keeps the stored one as long as Server and Username are unchanged.
	Password string `json:"password,omitempty"`
	// PasswordSet reports whether a password is stored. Read-only: the server ignores it on write.
	PasswordSet    bool                 `json:"password_set"`
	TLSCertificate TLSCertificatePolicy `json:"tls_certificate"`
	// CipherSuite is an OpenSSL cipher list such as "HIGH:!aNULL"; empty means Go's defaults.
	CipherSuite string `json:"cipher_suite,omitempty"`
	// CAPEM adds trusted CAs to the system roots for TrustedOnly.
	CAPEM string `json:"ca_pem,omitempty"`
}

// User is a person or automation that signs in to the API or the web UI.
type User struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
	// Tenant scopes tenant_admin and auditor users; empty for admin.
	Tenant string `json:"tenant,omitempty"`
	// Password is write-only: set it to create a user, reads never return it.
	Password  string    `json:"password,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// UserList is the body of GET /api/v1/users.
type UserList struct {
	Users []User `json:"users"`
}

// TokenRequest asks for a new token.
type TokenRequest struct {
	Kind TokenKind `json:"kind"`
	// Tenant is the tenant a join token enrolls sensors into.
	Tenant string `json:"tenant,omitempty"`
	// TTLSeconds is how long the token is valid; 0 means it does not expire.
	TTLSeconds uint32 `json:"ttl_seconds,omitempty"`
	// MaxUses is how many sensors a join token may enroll; 0 means no limit.
	MaxUses     uint32 `json:"max_uses,omitempty"`
	Description string `json:"description,omitempty"`
}

// Token is a bearer token as the server keeps it.
type Token struct {
	ID     string    `json:"id"`
	Kind   TokenKind `json:"kind"`
	Tenant string    `json:"tenant,omitempty"`
	// User is the owner of an API token.
	User        string    `json:"user,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at,omitzero"`
	// ExpiresAt is zero for a token that does not expire.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	MaxUses   uint32    `json:"max_uses,omitempty"`
	UsesLeft  uint32    `json:"uses_left,omitempty"`
	// Secret is the bearer string "osp_<id>_<secret>". Only the response that creates the
	// token carries it; the server keeps a hash and cannot show it again.
	Secret string `json:"secret,omitempty"`
}

// NodeState is a central node's membership state, as the node that answers sees it.
type NodeState string

// The node states.
const (
	// NodeAlive: the node answers gossip probes.
	NodeAlive NodeState = "alive"
	// NodeSuspect: the node missed probes and may be declared dead soon.
	NodeSuspect NodeState = "suspect"
	// NodeDead: the node was declared failed (it stopped answering without leaving).
	NodeDead NodeState = "dead"
	// NodeLeft: the node left the cluster on purpose (it was stopped).
	NodeLeft NodeState = "left"
)

// NodeRole is a part a node plays in the cluster.
type NodeRole string

// The node roles.
const (
	// NodeRoleCentral serves the REST API, the web UI and the gRPC sensor service.
	NodeRoleCentral NodeRole = "central"
	// NodeRoleSensor runs a Sensor component that takes mail by SMTP.
	NodeRoleSensor NodeRole = "sensor"
)

// NodeHealth is what a node says about its components; each is true when it works.
type NodeHealth struct {
	// Etcd: the node's linearizable reads of etcd succeed (it reaches the quorum).
	Etcd bool `json:"etcd"`
	// GRPC: the gRPC sensor service accepts TLS connections.
	GRPC bool `json:"grpc"`
	// HTTP: the REST API and web UI answer.
	HTTP bool `json:"http"`
	// SMTP: the node's Sensor component has SMTP enabled and its listener accepts connections.
	SMTP bool `json:"smtp"`
	// Spool: the Sensor component's spool has room.
	Spool bool `json:"spool"`
}

// Node is one member of the central node cluster.
type Node struct {
	Name  string     `json:"name"`
	State NodeState  `json:"state"`
	Roles []NodeRole `json:"roles"`
	// Self marks the node that answered the request.
	Self bool `json:"self,omitempty"`
	// GossipAddr is where the node gossips (memberlist), as IP:port.
	GossipAddr string `json:"gossip_addr"`
	// GRPCAddr, HTTPAddr and SMTPAddr are where the node serves, as IP:port (a node
	// listening on every address shows its gossip IP); empty when it does not serve that.
	GRPCAddr string     `json:"grpc_addr,omitempty"`
	HTTPAddr string     `json:"http_addr,omitempty"`
	SMTPAddr string     `json:"smtp_addr,omitempty"`
	Health   NodeHealth `json:"health"`
	// MetadataError says why the node's gossiped metadata could not be read (a newer,
	// incompatible version); such a node is in no DNS answer.
	MetadataError string `json:"metadata_error,omitempty"`
}

// DNSRecord is one name the cluster's DNS responder answers, with the values it holds now.
type DNSRecord struct {
	// Name is the fully qualified name, with the final dot.
	Name string `json:"name"`
	// Type is the record type: A, AAAA or SRV.
	Type string `json:"type"`
	// Values are the record data in zone-file form ("10.0.0.1", "10 10 25 n1.nodes.example.").
	Values []string `json:"values"`
}

// ClusterDNS is the cluster's DNS zone as the answering node serves it.
type ClusterDNS struct {
	// Zone is the zone every central node is authoritative for (--dns-zone).
	Zone string `json:"zone"`
	// Addr is where the answering node's DNS responder listens.
	Addr string `json:"addr"`
	// TTLSeconds is the TTL of every answer.
	TTLSeconds int `json:"ttl_seconds"`
	// Quorum is false while the answering node cannot reach the etcd quorum; it then
	// answers SERVFAIL, so resolvers ask another node.
	Quorum bool `json:"quorum"`
	// Records are the names the zone answers with healthy nodes (smtp, central, SRV).
	Records []DNSRecord `json:"records"`
}

// NodeList is the body of GET /api/v1/nodes: every member of the central node cluster,
// as the answering node sees it, and the DNS answers it gives from that view.
type NodeList struct {
	Nodes []Node     `json:"nodes"`
	DNS   ClusterDNS `json:"dns"`
}
