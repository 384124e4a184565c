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

// Role is what a user may do, in the tenants the user may see (docs/users.md has the
// table of what each may do).
type Role string

// The roles of a user: those of Kaspersky Anti Targeted Attack's distributed mode.
const (
	// RoleAdministrator may do everything in its tenants; with all tenants also manage
	// users, tenants, the PCN/SCN hierarchy and the cluster.
	RoleAdministrator Role = "administrator"
	// RoleLocalAdministrator configures this node's sensors, integrations, gateway,
	// acceptance lists and queue in its tenants, and reads alerts.
	RoleLocalAdministrator Role = "local-administrator"
	// RoleSeniorSecurityOfficer handles alerts and quarantine, writes rules, reads the
	// audit log and the configuration.
	RoleSeniorSecurityOfficer Role = "senior-security-officer"
	// RoleSecurityOfficer reads and handles alerts, reads quarantine, rules and the audit log.
	RoleSecurityOfficer Role = "security-officer"
	// RoleSecurityAuditor reads everything in its tenants and changes nothing.
	RoleSecurityAuditor Role = "security-auditor"
	// RoleTenantAdmin is the retired role of a user of one tenant, before the roles
	// above: reads show it only for a record no node could migrate, writes refuse it.
	RoleTenantAdmin Role = "tenant_admin"
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

	// Type says whether the sensor is a Central Node's own Sensor component
	// (as Local does) or a remote sensor.
	Type SensorType `json:"type"`
	// SoftwareVersion is the version the sensor reported when it connected.
	SoftwareVersion string `json:"software_version,omitempty"`
	// StatusAt is when the sensor last reported its status (every 10 s, and
	// at once when its POP3 polling changes state); the fields below are
	// that report, and for an offline sensor its last one.
	StatusAt time.Time `json:"status_at,omitzero"`
	// Healthy is false while the sensor cannot take mail safely: its spool
	// cannot take mail (the cluster's DNS then leaves it out). A failing
	// POP3 mailbox does not make it unhealthy; POP3Status says so. It is
	// false too before the sensor's first report (StatusAt zero).
	Healthy bool `json:"healthy"`
	// Problems are every problem the sensor reports, most urgent first.
	Problems []Problem `json:"problems,omitempty"`
	// SMTPStatus, POP3Status and SpoolStatus are the state of each part of
	// the sensor; absent until the sensor reported them.
	SMTPStatus  *IntegrationStatus `json:"smtp_status,omitempty"`
	POP3Status  *IntegrationStatus `json:"pop3_status,omitempty"`
	SpoolStatus *SpoolStatus       `json:"spool_status,omitempty"`
	// GatewayStatus is a gateway sensor's state: whether it sends and
	// receives, and its queue's depth; absent on a sensor in monitor mode.
	GatewayStatus *GatewayStatus `json:"gateway_status,omitempty"`
	// Counters are the sensor's counters since it started, by name
	// ("smtp_accepted", "pop3_errors", "upload_uploaded", ...).
	Counters map[string]uint64 `json:"counters,omitempty"`
}

// SensorType says what runs a sensor.
type SensorType string

// Sensor types.
const (
	// SensorCentralNodeComponent is the Sensor component of a Central Node.
	SensorCentralNodeComponent SensorType = "central_node_component"
	// SensorRemote is a sensor that runs on its own (osprey sensor).
	SensorRemote SensorType = "remote_sensor"
)

// IntegrationState is what an integration (SMTP or POP3) of a sensor does.
type IntegrationState string

// Integration states.
const (
	// IntegrationUnknown: not reported yet (or by a sensor too old to say).
	IntegrationUnknown IntegrationState = "unknown"
	// IntegrationDisabled: the configuration turns it off.
	IntegrationDisabled IntegrationState = "disabled"
	// IntegrationListening: SMTP listens and takes mail.
	IntegrationListening IntegrationState = "listening"
	// IntegrationPolling: POP3 polls and its last session succeeded.
	IntegrationPolling IntegrationState = "polling"
	// IntegrationFailing: POP3 sessions fail, or SMTP turns mail away
	// because the spool cannot take it; LastError says why.
	IntegrationFailing IntegrationState = "failing"
	// IntegrationWaitingLock: POP3 waits for the mailbox lock while
	// another Central Node's Sensor component polls the mailbox.
	IntegrationWaitingLock IntegrationState = "waiting_lock"
)

// IntegrationStatus is the state of a sensor's SMTP or POP3 integration.
type IntegrationStatus struct {
	State IntegrationState `json:"state"`
	// Target is the SMTP listen address, or the POP3 mailbox as
	// user@server:port.
	Target string `json:"target,omitempty"`
	// LastError is the error of the current failure (empty once the
	// integration works again); LastErrorAt is when it last happened,
	// FailingSince when the failures began, Failures how many in a row.
	LastError    string    `json:"last_error,omitempty"`
	LastErrorAt  time.Time `json:"last_error_at,omitzero"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	Failures     uint32    `json:"failures,omitempty"`
	// LastSuccessAt is the end of the last successful POP3 session, or when
	// SMTP last accepted a message.
	LastSuccessAt time.Time `json:"last_success_at,omitzero"`
	// Messages and Bytes count what was taken into the spool since the
	// sensor started.
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	// Refusals counts what was turned away since the sensor started, by
	// reason (SMTP: client_refused, message_too_large, spool_full, ...;
	// POP3: too_large, messages left on the server).
	Refusals map[string]uint64 `json:"refusals,omitempty"`
	// Problems are the problems of this integration.
	Problems []Problem `json:"problems,omitempty"`
}

// SpoolState is whether a sensor's spool can take mail.
type SpoolState string

// Spool states.
const (
	SpoolUnknown SpoolState = "unknown"
	SpoolOK      SpoolState = "ok"
	// SpoolLowDisk: free space is below the floor; SMTP answers 421 and
	// POP3 mail stays on its server until space is freed.
	SpoolLowDisk SpoolState = "low_disk"
	// SpoolFailing: the spool cannot write.
	SpoolFailing SpoolState = "failing"
)

// SpoolStatus is the state of a sensor's spool and of its disk.
type SpoolStatus struct {
	State SpoolState `json:"state"`
	// Error says why State is not ok.
	Error string `json:"error,omitempty"`
	// Messages and Bytes wait for upload to a Central Node.
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	// FreeBytes is the free space of the spool's file system, MinFreeBytes
	// the floor below which the sensor takes no mail (--spool-min-free).
	FreeBytes    uint64    `json:"free_bytes"`
	MinFreeBytes uint64    `json:"min_free_bytes"`
	Problems     []Problem `json:"problems,omitempty"`
}

// ProblemLevel is how urgent a problem is.
type ProblemLevel string

// Problem levels, most urgent first.
const (
	// ProblemAlert: mail does not come in (a POP3 mailbox failing for long,
	// low disk space); the text starts with "ALERT:".
	ProblemAlert ProblemLevel = "alert"
	// ProblemRisk: mail comes in, but unsafely (TLS off, certificates not
	// checked); the text starts with "RISK:".
	ProblemRisk ProblemLevel = "risk"
	// ProblemWarning: something changed that an operator should check (a
	// pinned certificate changed); the text starts with "WARNING:".
	ProblemWarning ProblemLevel = "warning"
	// ProblemError: a failure that has not lasted long enough for an alert.
	ProblemError ProblemLevel = "error"
	// ProblemNote: how the sensor works around a server's quirk.
	ProblemNote ProblemLevel = "note"
)

// Problem is one problem a sensor reports.
type Problem struct {
	Level ProblemLevel `json:"level"`
	// Text is the problem as the sensor says it, its level's prefix
	// included ("RISK: pop3 journal@mail:110: TLS is off: ...").
	Text string `json:"text"`
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
	// Mode is what the integration does with the mail it takes: a copy for
	// inspection on Listen (monitor, also what an empty Mode means on write), or a
	// mail gateway that relays it through the listeners of Gateway. Reads always
	// name the mode.
	Mode SMTPMode `json:"mode,omitempty"`
	// Gateway configures the gateway modes; it is kept, unused, in monitor mode.
	// Reads always return it, empty when never written, with lists as [] and both
	// listeners and the queue present.
	Gateway *SMTPGateway `json:"gateway,omitempty"`
}

// SMTPMode is what a sensor's SMTP integration does with the mail it takes.
type SMTPMode string

// The SMTP modes.
const (
	// SMTPMonitor: a mail server sends a copy on Listen; nothing is forwarded.
	SMTPMonitor SMTPMode = "monitor"
	// SMTPInbound: the gateway takes mail for its local domains from anyone and
	// delivers it to their hosts.
	SMTPInbound SMTPMode = "inbound"
	// SMTPOutbound: the gateway relays mail from its trusted networks to any domain.
	SMTPOutbound SMTPMode = "outbound"
	// SMTPInboundOutbound: both, each on its own listeners.
	SMTPInboundOutbound SMTPMode = "inbound_outbound"
)

// HoldTimeoutAction is what a gateway does with a message that no Central Node has
// scanned within its hold timeout.
type HoldTimeoutAction string

// The hold timeout actions.
const (
	// DeliverUnscanned delivers it with a header that says it was not scanned (the default).
	DeliverUnscanned HoldTimeoutAction = "deliver_unscanned"
	// KeepHolding keeps it until a verdict arrives.
	KeepHolding HoldTimeoutAction = "keep_holding"
)

// SMTPGateway is the gateway part of an SMTP integration (docs/configuration.md,
// "Gateway mode").
type SMTPGateway struct {
	// Inbound and Outbound are the listeners of each direction.
	Inbound  *GatewayListener `json:"inbound,omitempty"`
	Outbound *GatewayListener `json:"outbound,omitempty"`
	// LocalDomains are taken from any client and delivered as each says.
	LocalDomains []LocalDomain `json:"local_domains"`
	// TrustedNetworks is where an earlier version kept the clients that may relay, now
	// the sensor's outbound acceptance list (Client.AcceptanceEdit): a Central Node moves
	// them there when it starts, and a write that sets it is refused.
	//
	// Deprecated: use the outbound acceptance list.
	TrustedNetworks []string `json:"trusted_networks,omitempty"`
	// InboundAcceptance is which clients the inbound listeners take mail from: all (the
	// default) or listed, the clients of the inbound acceptance list.
	InboundAcceptance AcceptanceMode `json:"inbound_acceptance,omitempty"`
	// RelayHosts take the mail for other domains; empty means their MX hosts.
	RelayHosts []NextHop `json:"relay_hosts"`
	// RequireTLSDomains: mail to these domains (and their subdomains) goes only over
	// STARTTLS with a verified certificate.
	RequireTLSDomains []string `json:"require_tls_domains"`
	// HeloName is the gateway's name in EHLO to next hops and in bounces; empty means the
	// sensor's host name.
	HeloName string `json:"helo_name"`
	// HoldTimeoutSeconds is how long a message waits for its verdict; 0 means 600.
	HoldTimeoutSeconds uint32 `json:"hold_timeout_seconds"`
	// OnTimeout is what happens then; empty means deliver_unscanned.
	OnTimeout HoldTimeoutAction `json:"on_timeout,omitempty"`
	// Queue configures the delivery queue; zeros mean the defaults.
	Queue *DeliveryQueueSettings `json:"queue,omitempty"`
	// Quarantine bounds the messages the gateway keeps from delivery.
	Quarantine *QuarantineSettings `json:"quarantine,omitempty"`
	// SenderAuth configures the checks of SPF, DKIM and DMARC; zeros mean the defaults.
	SenderAuth *SenderAuthSettings `json:"sender_auth,omitempty"`
	// Submission is the SMTP AUTH listener of the outbound modes. Reads always return it.
	Submission *SubmissionSettings `json:"submission,omitempty"`
	// RecipientVerification asks a local domain's next hop whether a recipient exists
	// before the inbound listeners take it; zeros mean the defaults.
	RecipientVerification *RecipientVerification `json:"recipient_verification,omitempty"`
	// RateLimits bound what one client may do on the inbound listeners; zero means no limit.
	RateLimits *RateLimits `json:"rate_limits,omitempty"`
}

// RecipientVerification configures a gateway's recipient verification (docs/configuration.md,
// "Recipient verification"): a callout to the next hop with the null sender, its results
// cached. Zero means the default.
type RecipientVerification struct {
	Enabled bool `json:"enabled"`
	// PositiveTTLSeconds: a recipient found is good this long (0: 31 days), and probed
	// again in the background once its result is PositiveRefreshSeconds old (0: 7 days).
	PositiveTTLSeconds     uint32 `json:"positive_ttl_seconds"`
	PositiveRefreshSeconds uint32 `json:"positive_refresh_seconds"`
	// NegativeTTLSeconds: a recipient refused stays refused this long (0: 3 days).
	NegativeTTLSeconds uint32 `json:"negative_ttl_seconds"`
	// ProbeTimeoutSeconds bounds one probe (0: 30).
	ProbeTimeoutSeconds uint32 `json:"probe_timeout_seconds"`
	// MaxProbesPerHost bounds the probes at once to one next hop (0: 4).
	MaxProbesPerHost uint32 `json:"max_probes_per_host"`
}

// RateLimits bound what one client address (an IPv6 client per /64) may do on a gateway's
// inbound listeners, per minute; zero means no limit. The trusted networks are not limited.
type RateLimits struct {
	ConnectionsPerMinute uint32 `json:"connections_per_minute"`
	MessagesPerMinute    uint32 `json:"messages_per_minute"`
	RecipientsPerMinute  uint32 `json:"recipients_per_minute"`
	// HarvestUnknownRecipients unknown recipients (refused by recipient verification)
	// within HarvestWindowSeconds (0: 300) defer the client for HarvestBlockSeconds
	// (0: 900); zero turns the harvest guard off.
	HarvestUnknownRecipients uint32 `json:"harvest_unknown_recipients"`
	HarvestWindowSeconds     uint32 `json:"harvest_window_seconds"`
	HarvestBlockSeconds      uint32 `json:"harvest_block_seconds"`
}

// SubmissionSettings configure a gateway's submission listener (docs/configuration.md,
// "Submission"): clients that authenticate with SMTP AUTH relay to any domain. Zeros mean
// the defaults.
type SubmissionSettings struct {
	Enabled bool `json:"enabled"`
	// Listener is where it listens (Listen ":587" when empty) and its TLS; TLS require is
	// recommended.
	Listener *GatewayListener `json:"listener,omitempty"`
	// AllowAuthWithoutTLS offers AUTH before STARTTLS.
	AllowAuthWithoutTLS bool `json:"allow_auth_without_tls"`
	// Acceptance: all (the default) or listed (the clients of the AUTH acceptance list).
	Acceptance AcceptanceMode `json:"acceptance,omitempty"`
	// Source is where credentials are checked: ldap or smtp_forward.
	Source      AuthSource       `json:"source,omitempty"`
	LDAP        *LDAPAuth        `json:"ldap,omitempty"`
	SMTPForward *SMTPForwardAuth `json:"smtp_forward,omitempty"`
	// Failed authentications are throttled: past MaxFailuresPerClient (0: 10) from one
	// address, or MaxFailuresPerUser (0: 5) for one name, within FailureWindowSeconds
	// (0: 600), AUTH is refused until the window has passed.
	MaxFailuresPerClient uint32 `json:"max_failures_per_client"`
	MaxFailuresPerUser   uint32 `json:"max_failures_per_user"`
	FailureWindowSeconds uint32 `json:"failure_window_seconds"`
	// CacheSeconds (0: 300) remembers a successful check; DisableCache checks every AUTH.
	CacheSeconds uint32 `json:"cache_seconds"`
	DisableCache bool   `json:"disable_cache"`
}

// AuthSource is where a submission listener checks credentials.
type AuthSource string

// The authentication sources.
const (
	AuthSourceLDAP        AuthSource = "ldap"
	AuthSourceSMTPForward AuthSource = "smtp_forward"
)

// LDAPAuth checks credentials with a bind to a directory: as the user (BindDNTemplate), or
// as the entry a search finds (BaseDN and Filter).
type LDAPAuth struct {
	// URL is ldap://host[:389] or ldaps://host[:636].
	URL      string `json:"url"`
	StartTLS bool   `json:"start_tls"`
	// CAPEM holds the CAs the directory's certificate must chain to; empty: the system roots.
	CAPEM string `json:"ca_pem"`
	// BindDNTemplate: "%s" is the user name ("uid=%s,ou=people,dc=example,dc=com").
	BindDNTemplate string `json:"bind_dn_template"`
	// BaseDN and Filter ("%s" is the user name) find the user when BindDNTemplate is empty.
	BaseDN string `json:"base_dn"`
	Filter string `json:"filter"`
	// SearchBindDN is the account the search runs as; empty: anonymously.
	SearchBindDN string `json:"search_bind_dn"`
	// SearchBindPassword is write-only: reads never return it and say
	// SearchBindPasswordSet instead. A write with an empty one keeps the stored one while
	// URL and SearchBindDN stay the same.
	SearchBindPassword string `json:"search_bind_password,omitempty"`
	// SearchBindPasswordSet reports whether a password is stored. Read-only.
	SearchBindPasswordSet bool `json:"search_bind_password_set"`
	// TimeoutMs bounds a connection and each operation; 0 means 5000.
	TimeoutMs uint32 `json:"timeout_ms"`
}

// SMTPForwardAuth checks credentials by AUTH PLAIN, with them, at another SMTP server, over
// TLS.
type SMTPForwardAuth struct {
	// Address is host:port.
	Address string `json:"address"`
	// ImplicitTLS: TLS from the first byte (port 465); otherwise STARTTLS.
	ImplicitTLS bool `json:"implicit_tls"`
	// CAPEM holds the CAs its certificate must chain to; empty: the system roots.
	CAPEM string `json:"ca_pem"`
	// ServerName is the name its certificate must hold; empty: the host of Address.
	ServerName string `json:"server_name"`
	// TimeoutMs bounds a check; 0 means 10000.
	TimeoutMs uint32 `json:"timeout_ms"`
}

// QuarantineSettings bound a gateway's quarantine: past either bound the oldest
// messages are removed first. Zero means the default (10000 messages, 1 GB).
type QuarantineSettings struct {
	MaxMessages uint32     `json:"max_messages"`
	MaxSize     *SizeLimit `json:"max_size,omitempty"`
}

// SenderAuthSettings configure a gateway's sender authentication (docs/configuration.md,
// "Sender authentication").
type SenderAuthSettings struct {
	// Enabled checks the mail the inbound listeners take.
	Enabled bool `json:"enabled"`
	// AuthservID names the gateway in the Authentication-Results header; empty means its
	// HELO name.
	AuthservID string `json:"authserv_id"`
	// DMARCTempError and DMARCPermError are what a DMARC temperror and permerror count
	// as; empty means as_is.
	DMARCTempError AuthErrorTreatment `json:"dmarc_temperror,omitempty"`
	DMARCPermError AuthErrorTreatment `json:"dmarc_permerror,omitempty"`
	// LookupTimeoutMs bounds one DNS lookup (0: 2000), CheckTimeoutMs all the lookups of
	// one check (0: 5000).
	LookupTimeoutMs uint32 `json:"lookup_timeout_ms"`
	CheckTimeoutMs  uint32 `json:"check_timeout_ms"`
}

// AuthErrorTreatment is what a sender authentication error counts as in the DMARC
// result a gateway records.
type AuthErrorTreatment string

// The treatments of a DMARC temperror or permerror.
const (
	// AuthErrorAsIs keeps the error (the default): no DMARC policy applies.
	AuthErrorAsIs AuthErrorTreatment = "as_is"
	// AuthErrorFail counts it as fail.
	AuthErrorFail AuthErrorTreatment = "fail"
	// AuthErrorNone counts it as none, as if the domain published no DMARC record.
	AuthErrorNone AuthErrorTreatment = "none"
)

// GatewayListener is where one direction of a gateway takes mail.
type GatewayListener struct {
	// Listen is an IPv4 address and port ("0.0.0.0:25").
	Listen string `json:"listen"`
	// ListenV6 is an optional IPv6 address and port ("[2001:db8::25]:25").
	ListenV6 string `json:"listen_v6"`
	// TLS is as the monitor listener's; its KeyPEM is write-only as there.
	TLS *SMTPTLS `json:"tls,omitempty"`
}

// LocalDomain is a domain a gateway takes inbound mail for, and where it goes.
type LocalDomain struct {
	// Domain covers its subdomains.
	Domain string `json:"domain"`
	// Hosts are the internal mail servers; empty means the domain's MX hosts.
	Hosts []NextHop `json:"hosts"`
	// RequireTLS: delivery only over STARTTLS with a verified certificate.
	RequireTLS bool `json:"require_tls"`
}

// NextHop is a host a gateway delivers to.
type NextHop struct {
	// Host is an IP address or a host name.
	Host string `json:"host"`
	// Port is the SMTP port; 0 means 25.
	Port uint32 `json:"port"`
	// MXLookup delivers to the MX hosts of Host instead of Host itself.
	MXLookup bool `json:"mx_lookup"`
	// Preference orders the hosts: lower first, equal ones shared at random.
	Preference uint32 `json:"preference"`
}

// DeliveryQueueSettings configure a gateway's delivery queue. Zero means the default.
type DeliveryQueueSettings struct {
	MinBackoffSeconds      uint32 `json:"min_backoff_seconds"`
	MaxBackoffSeconds      uint32 `json:"max_backoff_seconds"`
	MaxLifetimeSeconds     uint32 `json:"max_lifetime_seconds"`
	DelayWarningSeconds    uint32 `json:"delay_warning_seconds"`
	DestinationConcurrency uint32 `json:"destination_concurrency"`
	Concurrency            uint32 `json:"concurrency"`
}

// ApplyOutcome is what applying one sensor's SMTP integration to the tenant did to
// another sensor.
type ApplyOutcome string

// The outcomes of applying to one sensor.
const (
	// ApplyApplied: the sensor's integration was written.
	ApplyApplied ApplyOutcome = "applied"
	// ApplyUnchanged: it had the settings already; nothing was written.
	ApplyUnchanged ApplyOutcome = "unchanged"
	// ApplyError: it was left unchanged because of Error (and Fields).
	ApplyError ApplyOutcome = "error"
)

// SensorApplyResult is what applying an SMTP integration did to one sensor.
type SensorApplyResult struct {
	Sensor string       `json:"sensor"`
	Result ApplyOutcome `json:"result"`
	// Version is the sensor's new configuration version, when applied.
	Version int64 `json:"version,omitempty"`
	// Error says why the sensor was left unchanged; Fields are the validation
	// errors of its configuration as it would have been.
	Error  string       `json:"error,omitempty"`
	Fields []FieldError `json:"fields,omitempty"`
}

// SMTPApplyResult is the body of POST /api/v1/sensors/{id}/smtp/apply-to-tenant:
// every other sensor of the sensor's tenant, in id order, with what was done to it.
type SMTPApplyResult struct {
	// Source is the sensor whose settings were applied, Tenant its tenant.
	Source  string              `json:"source"`
	Tenant  string              `json:"tenant"`
	Sensors []SensorApplyResult `json:"sensors"`
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
	// Tenants are the tenants the user may see; AllTenants lets it see every tenant
	// instead (Tenants then empty). A write with neither, by a user of exactly one
	// tenant, means that tenant.
	Tenants    []string `json:"tenants,omitempty"`
	AllTenants bool     `json:"all_tenants,omitempty"`
	// Tenant is write-only, for clients written before Tenants: a write with Tenant
	// and no Tenants means Tenants: [Tenant]. Reads never set it.
	Tenant string `json:"tenant,omitempty"`
	// Password is write-only: set it to create a user, reads never return it.
	Password  string    `json:"password,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	// Origin is set by the server: "pcn" on an SCN for an account its PCN
	// manages (read-only there; it becomes local when the PCN disconnects
	// the SCN).
	Origin string `json:"origin,omitempty"`
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
	// SQL: the node reaches its SQL store (message records and alerts). Without it the node
	// still serves, but sensors' uploads wait.
	SQL bool `json:"sql"`
	// Rspamd, only on a node that asks Rspamd about every message (--rspamd-url): Rspamd
	// answers and none of its checks failed in the last minute. Without it messages are
	// recorded without a spam result.
	Rspamd *bool `json:"rspamd,omitempty"`
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

// Severity is how serious a rule's match, or an alert, is.
type Severity string

// The severities, lowest first.
const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// RuleKind says what a rule's value is compared with.
type RuleKind string

// The kinds of rule.
const (
	// RuleSHA256, RuleSHA1 and RuleMD5 match the hex digest of an attachment or archive member.
	RuleSHA256 RuleKind = "sha256"
	RuleSHA1   RuleKind = "sha1"
	RuleMD5    RuleKind = "md5"
	// RuleSender matches a sender address (envelope MAIL FROM or header From).
	RuleSender RuleKind = "sender"
	// RuleSenderDomain matches a sender domain and its subdomains.
	RuleSenderDomain RuleKind = "sender_domain"
	// RuleURL matches a URL found in a body (scheme and host compared without case).
	RuleURL RuleKind = "url"
	// RuleURLHost matches the host of a URL found in a body, and its subdomains.
	RuleURLHost RuleKind = "url_host"
	// RuleAttachmentName matches attachment and archive member names with a glob (path.Match).
	RuleAttachmentName RuleKind = "attachment_name"
	// RuleAttachmentExtension matches a file extension, without the dot.
	RuleAttachmentExtension RuleKind = "attachment_extension"
	// RuleAuthResult matches a gateway's sender authentication result, "dmarc=fail".
	RuleAuthResult RuleKind = "auth_result"
)

// Rule is an indicator of compromise of a tenant, matched against every scanned message.
type Rule struct {
	// ID is the rule's id; a create without one gets a generated id.
	ID string `json:"id,omitempty"`
	// Tenant is set by the server, from the path.
	Tenant string   `json:"tenant,omitempty"`
	Kind   RuleKind `json:"kind"`
	// Value is what to match; the server stores it in canonical form (hex digests and
	// addresses lower-cased, domains as IDNA A-labels, URLs with scheme and host
	// lower-cased and the default port dropped).
	Value       string   `json:"value"`
	Severity    Severity `json:"severity"`
	Description string   `json:"description,omitempty"`
	// Disabled rules are kept but not matched.
	Disabled bool `json:"disabled,omitempty"`
	// Action, when set, is what a gateway does with a message the rule matched,
	// instead of the tenant's policy for detected messages.
	Action VerdictAction `json:"action,omitempty"`
	// CreatedAt is set by the server.
	CreatedAt time.Time `json:"created_at,omitzero"`
	// Version is the rule's version, set by the server (the same as its ETag).
	Version int64 `json:"version,omitempty"`
	// Global is set by the server on the rules of /api/v1/rules, which apply
	// to every tenant's messages (a match names them "global/<id>").
	Global bool `json:"global,omitempty"`
	// Origin is set by the server: "pcn" on an SCN for a global rule its
	// PCN manages (read-only there).
	Origin string `json:"origin,omitempty"`
}

// RuleList is the body of GET /api/v1/tenants/{tenant}/rules and GET
// /api/v1/rules.
type RuleList struct {
	Rules []Rule `json:"rules"`
}

// MailSource is how a sensor took a message in.
type MailSource string

// The mail sources.
const (
	SourceSMTP MailSource = "smtp"
	SourcePOP3 MailSource = "pop3"
)

// Envelope is what a sensor knows of a message besides its bytes.
type Envelope struct {
	MailFrom   string    `json:"mail_from"`
	RcptTo     []string  `json:"rcpt_to"`
	ClientAddr string    `json:"client_addr,omitempty"`
	Helo       string    `json:"helo,omitempty"`
	TLS        bool      `json:"tls,omitempty"`
	ReceivedAt time.Time `json:"received_at,omitzero"`
	// Mailbox names the POP3 mailbox (user@server) a polled message came from.
	Mailbox string `json:"mailbox,omitempty"`
	// TLSVersion and TLSCipher name the TLS of the session ("TLS 1.3", "TLS_AES_128_GCM_SHA256").
	TLSVersion string `json:"tls_version,omitempty"`
	TLSCipher  string `json:"tls_cipher,omitempty"`
	// Auth holds a gateway's checks of the sender, when it checks senders.
	Auth *AuthResults `json:"auth,omitempty"`
	// AuthUser is the name the client authenticated as (SMTP AUTH on a gateway's
	// submission listener); empty for mail taken without AUTH.
	AuthUser string `json:"auth_user,omitempty"`
}

// AuthResults are a gateway's checks of who sent a message, as RFC 8601 names their
// results: "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"; empty
// when not checked.
type AuthResults struct {
	// SPF is the SPF result of SPFDomain, the MAIL FROM domain (the HELO name for a null
	// sender).
	SPF       string `json:"spf,omitempty"`
	SPFDomain string `json:"spf_domain,omitempty"`
	// DKIM has one result per DKIM-Signature, in the header's order.
	DKIM []DKIMResult `json:"dkim,omitempty"`
	// DMARC is the DMARC result of FromDomain, the domain of the header From; DMARCPolicy
	// the policy it publishes ("none", "quarantine", "reject"; empty when none).
	DMARC       string `json:"dmarc,omitempty"`
	DMARCPolicy string `json:"dmarc_policy,omitempty"`
	FromDomain  string `json:"from_domain,omitempty"`
}

// DKIMResult is the check of one DKIM-Signature: its result, and its d= and s=.
type DKIMResult struct {
	Result   string `json:"result"`
	Domain   string `json:"domain,omitempty"`
	Selector string `json:"selector,omitempty"`
}

// HeaderSummary is what an alert keeps of a message's headers.
type HeaderSummary struct {
	From      string    `json:"from,omitempty"`
	To        []string  `json:"to,omitempty"`
	Cc        []string  `json:"cc,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	MessageID string    `json:"message_id,omitempty"`
	Date      time.Time `json:"date,omitzero"`
	// Received is the Received chain, newest first.
	Received              []string `json:"received,omitempty"`
	AuthenticationResults []string `json:"authentication_results,omitempty"`
}

// Match is one engine's finding in a scanned message.
type Match struct {
	// Engine is "ioc", "eicar", "clamav" or "structure".
	Engine string `json:"engine"`
	// RuleID is the matched rule's id (ioc) or the signature's name.
	RuleID   string   `json:"rule_id,omitempty"`
	Severity Severity `json:"severity"`
	// What says what matched, for people.
	What string `json:"what,omitempty"`
	// Part says where in the message: "attachment invoice.zip > a.exe".
	Part string `json:"part,omitempty"`
}

// Attachment is one attachment or archive member of a scanned message.
type Attachment struct {
	// Path names the part through its containers: "report.zip/inner/a.exe".
	Path         string `json:"path"`
	Filename     string `json:"filename,omitempty"`
	DeclaredType string `json:"declared_type,omitempty"`
	DetectedType string `json:"detected_type,omitempty"`
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256,omitempty"`
	SHA1         string `json:"sha1,omitempty"`
	MD5          string `json:"md5,omitempty"`
}

// Alert is raised once for each scanned message with at least one match.
type Alert struct {
	// ID sorts by time: 16 hex digits of the scan time in Unix nanoseconds, "-", 16 hex digits.
	ID        string `json:"id"`
	Tenant    string `json:"tenant"`
	SensorID  string `json:"sensor_id"`
	MessageID string `json:"message_id"`
	// ServerID is, on a PCN, the SCN the alert came from ("" for its own).
	ServerID    string         `json:"server_id,omitempty"`
	Source      MailSource     `json:"source,omitempty"`
	Envelope    *Envelope      `json:"envelope,omitempty"`
	Headers     *HeaderSummary `json:"headers,omitempty"`
	Severity    Severity       `json:"severity"`
	Matches     []Match        `json:"matches"`
	Attachments []Attachment   `json:"attachments"`
	CreatedAt   time.Time      `json:"created_at,omitzero"`
	// Node is the central node that scanned the message.
	Node    string `json:"node,omitempty"`
	Verdict string `json:"verdict"`
	Size    int64  `json:"size"`
	// SHA256 is the hex SHA-256 of the raw message.
	SHA256 string `json:"sha256,omitempty"`
}

// AlertList is the body of GET /api/v1/alerts: one page, newest first.
type AlertList struct {
	Alerts []Alert `json:"alerts"`
	// NextPageToken asks for the next page (page_token); empty on the last page. A page may
	// hold fewer alerts than the limit and still have a next one.
	NextPageToken string `json:"next_page_token"`
}

// AlertQuery selects alerts; zero fields select everything.
type AlertQuery struct {
	// Tenant restricts the list to one tenant.
	Tenant string
	// Severity is the lowest severity listed.
	Severity Severity
	// Since lists alerts raised at or after it.
	Since time.Time
	// Sensor lists one sensor's alerts.
	Sensor string
	// Server lists, on a PCN, the alerts that came from one SCN.
	Server string
	// Q is text that must occur, ignoring case, in the subject, From, To, Cc, envelope sender or
	// recipients, attachment names, or the matches' rule ids and descriptions.
	Q string
	// PageToken continues from a previous page's NextPageToken.
	PageToken string
	// Limit is the page size: 0 means 50; at most 500.
	Limit int
}

// MessageRecord is the central's record of one uploaded message.
type MessageRecord struct {
	MessageID string     `json:"message_id"`
	SensorID  string     `json:"sensor_id"`
	Tenant    string     `json:"tenant"`
	Source    MailSource `json:"source,omitempty"`
	Envelope  *Envelope  `json:"envelope,omitempty"`
	Size      int64      `json:"size"`
	// SHA256 is the hex SHA-256 of the raw message.
	SHA256     string    `json:"sha256,omitempty"`
	UploadedAt time.Time `json:"uploaded_at,omitzero"`
	// Node is the central node that took the upload.
	Node    string `json:"node,omitempty"`
	Verdict string `json:"verdict"`
	// AlertID is the alert raised for the message, if any.
	AlertID string `json:"alert_id,omitempty"`
	// Headers summarises the message's header, as the scan read it.
	Headers *HeaderSummary `json:"headers,omitempty"`
	// Spam is Rspamd's opinion of the message, on a node that asks it
	// (--rspamd-url); absent when it was not asked or did not answer.
	Spam *SpamResult `json:"spam,omitempty"`
}

// SpamResult is a spam engine's (Rspamd's) opinion of a message.
type SpamResult struct {
	Score float64 `json:"score"`
	// RequiredScore is the engine's own spam threshold (Rspamd's reject score).
	RequiredScore float64 `json:"required_score"`
	// Action is the engine's own suggestion: "no action", "greylist", "add header",
	// "rewrite subject", "soft reject" or "reject".
	Action string `json:"action"`
	// Symbols are the engine's rules that fired, those of the largest scores (either sign)
	// first, at most 50.
	Symbols []SpamSymbol `json:"symbols"`
	// NotChecked, when set, says why the engine gave no score (the fields above are then
	// empty): "error" (it failed or did not answer in time), "too_large" (over the size
	// the engine is sent), "paused" (left out for a while after errors in a row).
	NotChecked string `json:"not_checked,omitempty"`
}

// SpamSymbol is one rule of the spam engine that fired, with its weight.
type SpamSymbol struct {
	Name  string  `json:"name"`
	Score float64 `json:"score"`
}

// Audit event kinds.
const (
	AuditAccepted = "accepted"
	AuditRefused  = "refused"
	AuditDelivery = "delivery"
	// AuditQuarantine: a step of a quarantined message (quarantined, released, deleted,
	// evicted, or an operator's request waiting for the sensor), with who did it.
	AuditQuarantine = "quarantine"
)

// AuditEvent is one entry of the message audit log (GET /api/v1/audit): a
// message a sensor accepted (Message set), the attempts it refused for
// one reason from one client within one minute (Refusal set), or a
// gateway sensor's attempt to deliver a message (Delivery set).
type AuditEvent struct {
	// Kind is "accepted", "refused", "delivery" or "quarantine".
	Kind string `json:"kind"`
	// Time is when the sensor took the message, the last refusal of the
	// minute, or when the delivery attempt started.
	Time     time.Time             `json:"time"`
	Tenant   string                `json:"tenant"`
	SensorID string                `json:"sensor_id"`
	Message  *MessageRecord        `json:"message,omitempty"`
	Refusal  *AuditRefusal         `json:"refusal,omitempty"`
	Delivery *AuditDeliveryAttempt `json:"delivery,omitempty"`
	// Quarantine is a step of the quarantined message MessageID.
	Quarantine *AuditQuarantineStep `json:"quarantine,omitempty"`
}

// AuditQuarantineStep is a step of a quarantined message in the audit log.
type AuditQuarantineStep struct {
	// MessageID is the sensor's id of the message.
	MessageID string    `json:"message_id"`
	At        time.Time `json:"at"`
	// Action, Actor and Detail are as in QuarantineEvent.
	Action string `json:"action"`
	Actor  string `json:"actor"`
	Detail string `json:"detail,omitempty"`
}

// AuditDeliveryAttempt is a gateway sensor's attempt to deliver a queued message
// to one next hop, and what came of it for each recipient tried.
type AuditDeliveryAttempt struct {
	// MessageID is the sensor's id of the message (MessageRecord.MessageID).
	MessageID string `json:"message_id"`
	// Sender is the envelope sender; empty for the null sender of a bounce.
	Sender string `json:"sender"`
	// Direction is "inbound" or "outbound".
	Direction string `json:"direction,omitempty"`
	// NextHop is the gateway queue's destination of the recipients: their domain when they go by
	// MX, "route:DOMAIN" for a configured route's hosts, "relay" for the relay hosts ("+tls" added
	// where TLS is required).
	NextHop string `json:"next_hop"`
	// Host is the host the attempt reached, "name [address]:port"; empty when none answered.
	Host string `json:"host,omitempty"`
	// TLS is the session's TLS version and cipher; empty without TLS.
	TLS     string    `json:"tls,omitempty"`
	Started time.Time `json:"started"`
	// TookMS is how long the attempt took, in milliseconds, the connection included.
	TookMS     int64                    `json:"took_ms"`
	Recipients []AuditDeliveryRecipient `json:"recipients"`
}

// AuditDeliveryRecipient is what a delivery attempt left one recipient in.
type AuditDeliveryRecipient struct {
	Address string `json:"address"`
	// State is "delivered", "deferred" or "bounced"; "active" when the attempt was cut short,
	// "held" or "quarantined" when the recipient was kept from delivery meanwhile.
	State QueueState `json:"state"`
	// Code, Enhanced and Text are the reply: the next hop's, or the sensor's when none answered
	// (a connection refused, no MX).
	Code     int    `json:"code,omitempty"`
	Enhanced string `json:"enhanced,omitempty"`
	Text     string `json:"text,omitempty"`
	// NextAttempt is when a deferred recipient is tried again.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// AuditRefusal counts a sensor's refusals of one reason from one client
// within one minute, with what the first of them said.
type AuditRefusal struct {
	Minute   time.Time `json:"minute"`
	ClientIP string    `json:"client_ip"`
	// Reason names why: client_refused, recipient_refused,
	// message_too_large, tls_invalid_client_certificate, bare_newline, …
	Reason   string    `json:"reason"`
	Count    int64     `json:"count"`
	FirstAt  time.Time `json:"first_at"`
	LastAt   time.Time `json:"last_at"`
	MailFrom string    `json:"mail_from,omitempty"`
	Rcpt     string    `json:"rcpt,omitempty"`
	Detail   string    `json:"detail,omitempty"`
}

// AuditList is the body of GET /api/v1/audit: one page, newest first.
type AuditList struct {
	Events []AuditEvent `json:"events"`
	// NextPageToken asks for the next page (page_token); empty on the last page.
	NextPageToken string `json:"next_page_token"`
}

// AuditQuery selects audit events (GET /api/v1/audit). Filters combine;
// text filters ignore case, but for MessageID.
type AuditQuery struct {
	Tenant string
	Sensor string
	// From and To bound the events' time: From inclusive, To exclusive.
	From, To time.Time
	// Kind is "accepted", "refused", "delivery", or empty for every kind.
	Kind string
	// Sender must occur in the envelope sender or the header From.
	Sender string
	// Recipient is an envelope recipient, exactly.
	Recipient string
	// Subject must occur in an accepted message's subject.
	Subject string
	// MessageID is an accepted message's Message-ID header: it selects the message and its
	// delivery attempts.
	MessageID string
	ClientIP  string
	Verdict   string
	Reason    string
	PageToken string
	// Limit is the page size: 0 means 50; at most 500.
	Limit int
}

// MessageList is the body of GET /api/v1/messages: one page, by tenant, sensor and message id.
type MessageList struct {
	Messages []MessageRecord `json:"messages"`
	// NextPageToken asks for the next page (page_token); empty on the last page.
	NextPageToken string `json:"next_page_token"`
}

// MessageQuery selects message records; zero fields select everything.
type MessageQuery struct {
	Tenant    string
	Sensor    string
	PageToken string
	// Limit is the page size: 0 means 50; at most 500.
	Limit int
}

// VerdictAction is what a gateway does with a message once its verdict is known.
type VerdictAction string

// The verdict actions.
const (
	// ActionDeliver delivers the message (with its X-Osprey-Verdict header).
	ActionDeliver VerdictAction = "deliver"
	// ActionTag delivers it with a subject tag and the policy's headers.
	ActionTag VerdictAction = "tag"
	// ActionQuarantine keeps it on the sensor, for an operator to release or delete.
	ActionQuarantine VerdictAction = "quarantine"
	// ActionDropNotifyRecipient drops it and tells each recipient.
	ActionDropNotifyRecipient VerdictAction = "drop_notify_recipient"
	// ActionDropNotifySender drops it and tells the sender (never a null sender).
	ActionDropNotifySender VerdictAction = "drop_notify_sender"
)

// HeaderField is a header field a tag adds.
type HeaderField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// VerdictPolicy is what a tenant's gateways do with each kind of message
// (docs/configuration.md, "Verdict policy"). A read shows every field with the
// value that applies, defaults included; of several actions that apply to one
// message, the strongest wins (drop, quarantine, tag, deliver).
type VerdictPolicy struct {
	// Detected: a message an engine matched ("quarantine"); a rule's own action
	// overrides it for its matches.
	Detected VerdictAction `json:"detected"`
	// UnscannableLimit: nothing matched, a bound of the scan was hit ("deliver").
	UnscannableLimit VerdictAction `json:"unscannable_limit"`
	// UnscannableError: nothing matched, an engine failed ("deliver").
	UnscannableError VerdictAction `json:"unscannable_error"`
	// SubjectTag is put before the subject by "tag" ("[Osprey detect]").
	SubjectTag string `json:"subject_tag"`
	// TagHeaders are added by "tag".
	TagHeaders []HeaderField `json:"tag_headers,omitempty"`
	// ApplyDMARCPolicy applies the policy the From domain of a message that fails
	// DMARC publishes: DMARCReject for p=reject, DMARCQuarantine for
	// p=quarantine (both "quarantine").
	ApplyDMARCPolicy bool          `json:"apply_dmarc_policy"`
	DMARCReject      VerdictAction `json:"dmarc_reject"`
	DMARCQuarantine  VerdictAction `json:"dmarc_quarantine"`
	// SpamTagScore: a spam score (Rspamd) at or above it tags the message with
	// SpamSubjectTag (6); SpamQuarantineScore: at or above it, quarantine (15).
	SpamTagScore        float64 `json:"spam_tag_score"`
	SpamQuarantineScore float64 `json:"spam_quarantine_score"`
	SpamSubjectTag      string  `json:"spam_subject_tag"`
}

// SyslogExport sends a tenant's alerts to a SIEM: syslog (RFC 5424, octet-counted framing of
// RFC 6587) over TCP or TLS, in CEF.
type SyslogExport struct {
	Enabled bool `json:"enabled"`
	// Address is host:port of the syslog receiver.
	Address string `json:"address"`
	// TLS turns on TLS, verified against the system roots plus CAPEM.
	TLS   bool   `json:"tls"`
	CAPEM string `json:"ca_pem,omitempty"`
	// ServerName overrides the name checked in the receiver's certificate.
	ServerName string `json:"server_name,omitempty"`
	// Facility is the syslog facility, 0 to 23; 0 means 13 (log audit).
	Facility uint32 `json:"facility"`
	// AppName is the RFC 5424 APP-NAME; empty means "osprey".
	AppName string `json:"app_name,omitempty"`
}

// GatewayStatus is whether a gateway sensor sends and receives mail, and
// the depth of its delivery queue: recipients per state, and messages.
type GatewayStatus struct {
	// Sending is false while an operator stopped the deliveries: mail
	// stays queued.
	Sending bool `json:"sending"`
	// Receiving is false while an operator stopped the gateway listeners
	// taking mail: they answer 421.
	Receiving   bool   `json:"receiving"`
	Messages    uint64 `json:"messages"`
	Active      uint64 `json:"active"`
	Deferred    uint64 `json:"deferred"`
	Held        uint64 `json:"held"`
	Quarantined uint64 `json:"quarantined"`
}

// QueueState is the state of a recipient in a gateway's delivery queue.
type QueueState string

// Queue states.
const (
	// QueueActive: never tried yet, or being tried.
	QueueActive QueueState = "active"
	// QueueDeferred: tried, waiting for its next attempt.
	QueueDeferred QueueState = "deferred"
	// QueueHeld: kept from delivery by an operator.
	QueueHeld QueueState = "held"
	// QueueQuarantined: kept from delivery by the scan's verdict.
	QueueQuarantined QueueState = "quarantined"
	QueueDelivered   QueueState = "delivered"
	QueueBounced     QueueState = "bounced"
)

// QueueQuery selects the messages of a gateway's queue; zero fields select
// everything. State, Recipient and NextHop select the messages with one
// recipient that matches all three.
type QueueQuery struct {
	State QueueState
	// Sender and Recipient match addresses that contain them, ignoring case.
	Sender, Recipient string
	// NextHop is a destination as the queue names it: "route:example.com"
	// (a local domain's hosts), "example.org" (by MX), "relay" (the
	// relay hosts).
	NextHop string
	// MinAge and MaxAge bound the time since arrival.
	MinAge, MaxAge time.Duration
	// Limit is the page size: 0 means 100; at most 1000.
	Limit     int
	PageToken string
}

// QueueList is one page of a gateway's queue, oldest first.
type QueueList struct {
	Messages []QueuedMessage `json:"messages"`
	// NextPageToken asks for the next page (page_token); empty on the last page.
	NextPageToken string `json:"next_page_token"`
	// Gateway is the gateway's state when the page was read.
	Gateway *GatewayStatus `json:"gateway,omitempty"`
}

// QueuedMessage is a message in a gateway's delivery queue.
type QueuedMessage struct {
	ID      string    `json:"id"`
	Sender  string    `json:"sender"`
	Arrival time.Time `json:"arrival"`
	Size    int64     `json:"size"`
	Verdict string    `json:"verdict"`
	// Direction is inbound or outbound.
	Direction string `json:"direction"`
	// Unscanned: released for delivery without a verdict (the hold timed out).
	Unscanned bool `json:"unscanned,omitempty"`
	// Kind is empty for mail, "failure" or "delay" for a notice of the gateway's.
	Kind            string            `json:"kind,omitempty"`
	DelayNoticeSent bool              `json:"delay_notice_sent,omitempty"`
	Recipients      []QueuedRecipient `json:"recipients"`
}

// QueuedRecipient is one recipient of a queued message.
type QueuedRecipient struct {
	Address      string     `json:"address"`
	NextHop      string     `json:"next_hop"`
	State        QueueState `json:"state"`
	Attempts     uint32     `json:"attempts"`
	NextAttempt  time.Time  `json:"next_attempt,omitzero"`
	FirstAttempt time.Time  `json:"first_attempt,omitzero"`
	LastAttempt  time.Time  `json:"last_attempt,omitzero"`
	// The last reply: what the next hop answered, or what the attempt ended with.
	LastCode     uint32 `json:"last_code,omitempty"`
	LastEnhanced string `json:"last_enhanced,omitempty"`
	LastText     string `json:"last_text,omitempty"`
	LastHost     string `json:"last_host,omitempty"`
}

// QueueAction is what an operator does to one queued message.
type QueueAction string

// Queue actions.
const (
	// QueueRetry tries the message's waiting recipients now.
	QueueRetry QueueAction = "retry"
	// QueueHold keeps its waiting recipients from delivery.
	QueueHold QueueAction = "hold"
	// QueueRelease puts its held or quarantined recipients back in delivery.
	QueueRelease QueueAction = "release"
)

// GatewayControl is what an operator does to a gateway sensor as a whole.
// A stop lasts, across the sensor's restarts, until the matching resume.
type GatewayControl string

// Gateway controls.
const (
	GatewayStopSending     GatewayControl = "stop-sending"
	GatewayResumeSending   GatewayControl = "resume-sending"
	GatewayStopReceiving   GatewayControl = "stop-receiving"
	GatewayResumeReceiving GatewayControl = "resume-receiving"
	// GatewayFlush tries every waiting recipient now.
	GatewayFlush GatewayControl = "flush"
)

// QuarantineState is the state of a quarantined message.
type QuarantineState string

// The quarantine states.
const (
	// QuarantineHeld: the sensor holds it.
	QuarantineHeld QuarantineState = "quarantined"
	// QuarantineReleased: released to its recipients.
	QuarantineReleased QuarantineState = "released"
	// QuarantineDeleted: deleted by an operator.
	QuarantineDeleted QuarantineState = "deleted"
	// QuarantineEvicted: removed, oldest first, by the sensor's quarantine bounds.
	QuarantineEvicted QuarantineState = "evicted"
	// QuarantineNotHeld: nothing was left to hold, or the sensor no longer had it.
	QuarantineNotHeld QuarantineState = "not_held"
)

// QuarantinedMessage is a message a gateway sensor holds in its quarantine, as the central
// lists it; the message itself stays on the sensor.
type QuarantinedMessage struct {
	Tenant        string          `json:"tenant"`
	SensorID      string          `json:"sensor_id"`
	MessageID     string          `json:"message_id"`
	QuarantinedAt time.Time       `json:"quarantined_at"`
	State         QuarantineState `json:"state"`
	Sender        string          `json:"sender"`
	Recipients    []string        `json:"recipients"`
	Subject       string          `json:"subject"`
	// Reason says why it was quarantined: the rule, engine or check.
	Reason    string    `json:"reason"`
	Verdict   string    `json:"verdict"`
	Direction string    `json:"direction"`
	Size      int64     `json:"size"`
	UpdatedAt time.Time `json:"updated_at"`
	// Available says whether its sensor is connected; when it is not, a preview or a
	// download cannot be had, and an action waits for the sensor (Pending).
	Available bool `json:"available"`
	// Pending is an action waiting for the sensor ("release", "release_to",
	// "delete"), asked for by PendingBy, to PendingTo.
	Pending   string   `json:"pending,omitempty"`
	PendingTo []string `json:"pending_to,omitempty"`
	PendingBy string   `json:"pending_by,omitempty"`
	// History, Preview and PreviewError come with one message
	// (GET /api/v1/sensors/{id}/quarantine/{msg}, Preview with ?preview=true).
	History      []QuarantineEvent `json:"history,omitempty"`
	Preview      *MessagePreview   `json:"preview,omitempty"`
	PreviewError string            `json:"preview_error,omitempty"`
}

// QuarantineEvent is one step of a quarantined message's history.
type QuarantineEvent struct {
	At time.Time `json:"at"`
	// Action is what happened: quarantined, release, release_to or delete (asked for
	// while the sensor was offline), released, released_to, deleted, evicted, not_held.
	Action string `json:"action"`
	// Actor is the user who did it, or "central" or "sensor".
	Actor  string `json:"actor"`
	Detail string `json:"detail,omitempty"`
}

// MessagePreview is what an operator sees of a quarantined message without opening it.
type MessagePreview struct {
	Headers []HeaderField `json:"headers"`
	// Text is the first text part (text/plain before text/html) as text: HTML is its
	// source, to be shown escaped, never rendered.
	Text          string              `json:"text"`
	TextType      string              `json:"text_type,omitempty"`
	TextTruncated bool                `json:"text_truncated,omitempty"`
	Attachments   []PreviewAttachment `json:"attachments"`
	// Notes say what could not be read.
	Notes []string `json:"notes,omitempty"`
}

// PreviewAttachment is one attachment of a previewed message.
type PreviewAttachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
}

// QuarantineList is one page of quarantined messages, newest first.
type QuarantineList struct {
	Messages []QuarantinedMessage `json:"messages"`
	// NextPageToken asks for the next page (page_token); empty on the last page.
	NextPageToken string `json:"next_page_token"`
}

// QuarantineQuery selects quarantined messages; empty fields select all.
type QuarantineQuery struct {
	Tenant, Sensor string
	State          QuarantineState
	// Sender, Recipient and Subject match what contains them, ignoring case.
	Sender, Recipient, Subject string
	Since, Until               time.Time
	Limit                      int
	PageToken                  string
}

// QuarantineRelease asks to release a quarantined message: to its recipients, or, with
// To, a copy to those addresses (the message stays in the quarantine).
type QuarantineRelease struct {
	To []string `json:"to,omitempty"`
}

// QuarantineActionResult is what a release or a delete came to.
type QuarantineActionResult struct {
	// Done is false when the sensor is offline: the action waits for it.
	Done bool `json:"done"`
	// QueueID is the id of the released copy in the sensor's delivery queue.
	QueueID string             `json:"queue_id,omitempty"`
	Message QuarantinedMessage `json:"message"`
}
