package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// ServerState is where an SCN stands on its PCN.
type ServerState string

// The states of an SCN on its PCN.
const (
	ServerPending      ServerState = "pending"
	ServerAccepted     ServerState = "accepted"
	ServerDisconnected ServerState = "disconnected"
)

// NoDataAfter is how long a PCN waits for data from an SCN before it shows
// "no data for over 5 minutes".
const NoDataAfter = 5 * time.Minute

// Server is a Secondary Central Node as its PCN sees it (GET
// /api/v1/servers).
type Server struct {
	ID     string      `json:"id"`
	Name   string      `json:"name"`
	Tenant string      `json:"tenant,omitempty"`
	State  ServerState `json:"state"`
	// Address is the SCN's own (as it gave it); Peer the address its
	// request or its link came from.
	Address string `json:"address,omitempty"`
	Peer    string `json:"peer,omitempty"`
	// Fingerprint is the SHA-256 of the public key the SCN asked to be
	// certified, as the SCN shows it.
	Fingerprint string `json:"fingerprint"`
	Version     string `json:"version,omitempty"`
	// Username is the PCN account the SCN joined with.
	Username string `json:"username"`
	Online   bool   `json:"online"`
	// Node is the PCN node holding the link, while online.
	Node string `json:"node,omitempty"`
	// LastDataAt is when the PCN last heard from the SCN; NoData is set
	// when that was over 5 minutes ago (or never, once accepted).
	LastDataAt     *time.Time `json:"last_data_at,omitempty"`
	NoData         bool       `json:"no_data"`
	TokenExpiresAt *time.Time `json:"token_expires_at,omitempty"`
	CertExpiresAt  *time.Time `json:"cert_expires_at,omitempty"`
	Sensors        int64      `json:"sensors"`
	// Alerts is how many alerts the SCN holds (its heartbeat says);
	// PCNAlerts how many of them this PCN holds.
	Alerts    int64 `json:"alerts"`
	PCNAlerts int64 `json:"pcn_alerts"`
	// UplinkAt is when the SCN's alerts or message summaries last came.
	UplinkAt   *time.Time `json:"uplink_at,omitempty"`
	CreatedAt  *time.Time `json:"created_at,omitempty"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	// Down is what the SCN answered to the users and global rules the PCN
	// sends it; nil before the first was sent.
	Down *ServerDown `json:"down,omitempty"`
}

// ServerDown is where an SCN stands with the users and global rules of
// its PCN. Versions are the PCN's etcd revisions.
type ServerDown struct {
	// SentVersion is the last version sent, AppliedVersion the last the
	// SCN acknowledged (it is behind while an update travels, or after a
	// NACK).
	SentVersion    int64      `json:"sent_version"`
	AppliedVersion int64      `json:"applied_version"`
	AppliedAt      *time.Time `json:"applied_at,omitempty"`
	// NackVersion, NackReason and NackAt are the SCN's last refusal (kept
	// after later updates were acknowledged; NackVersion tells whether it is
	// older than AppliedVersion).
	NackVersion int64      `json:"nack_version,omitempty"`
	NackReason  string     `json:"nack_reason,omitempty"`
	NackAt      *time.Time `json:"nack_at,omitempty"`
}

// ServerList is the answer of GET /api/v1/servers.
type ServerList struct {
	Servers []Server `json:"servers"`
}

// AcceptServer is the body of POST /api/v1/servers/{id}/accept.
type AcceptServer struct {
	Tenant string `json:"tenant"`
}

// NodeHierarchyRole is a Central Node's place in the distributed mode.
type NodeHierarchyRole string

// The places of a node in the distributed mode.
const (
	HierarchyStandalone NodeHierarchyRole = "standalone"
	HierarchyPrimary    NodeHierarchyRole = "pcn"
	HierarchySecondary  NodeHierarchyRole = "scn"
)

// PrimaryState is where an SCN stands with its PCN, as the SCN sees it.
type PrimaryState string

// The states of an SCN's link to its PCN.
const (
	PrimaryPending      PrimaryState = "pending"
	PrimaryLinked       PrimaryState = "linked"
	PrimaryTokenExpired PrimaryState = "token_expired"
	PrimaryRejected     PrimaryState = "rejected"
	PrimaryDisconnected PrimaryState = "disconnected"
)

// Hierarchy is this node's place in the distributed mode (GET
// /api/v1/pcn): on an SCN, its PCN and the link.
type Hierarchy struct {
	Role NodeHierarchyRole `json:"role"`
	// OwnFingerprint is the fingerprint of this node's cluster CA: what
	// the administrator of an SCN joining this node, as its PCN, compares.
	OwnFingerprint string `json:"own_fingerprint"`
	// The rest is set once the node asked to join a PCN.
	PCNAddress     string       `json:"pcn_address,omitempty"`
	Fingerprint    string       `json:"fingerprint,omitempty"`
	State          PrimaryState `json:"state,omitempty"`
	Name           string       `json:"name,omitempty"`
	Username       string       `json:"username,omitempty"`
	ServerID       string       `json:"server_id,omitempty"`
	Tenant         string       `json:"tenant,omitempty"`
	Online         bool         `json:"online"`
	Node           string       `json:"node,omitempty"`
	Error          string       `json:"error,omitempty"`
	TokenExpiresAt *time.Time   `json:"token_expires_at,omitempty"`
	CertExpiresAt  *time.Time   `json:"cert_expires_at,omitempty"`
	RequestedAt    *time.Time   `json:"requested_at,omitempty"`
	LastHeartbeat  *time.Time   `json:"last_heartbeat_at,omitempty"`
}

// PCNAddress is the body of POST /api/v1/pcn/fingerprint, and
// PCNFingerprint its answer.
type PCNAddress struct {
	Address string `json:"address"`
}

// PCNFingerprint is the fingerprint of a PCN's CA, to compare out of band
// with the one the PCN shows (GET /api/v1/pcn on the PCN).
type PCNFingerprint struct {
	Address     string `json:"address"`
	Fingerprint string `json:"fingerprint"`
}

// JoinPCN is the body of POST /api/v1/pcn/join.
type JoinPCN struct {
	// Address is the PCN's gRPC address, host:port.
	Address string `json:"address"`
	// Fingerprint is the one the administrator confirmed.
	Fingerprint string `json:"fingerprint"`
	// Name is this SCN's name on the PCN.
	Name string `json:"name"`
	// Username and Password are the account made on the PCN for this SCN.
	Username string `json:"username"`
	Password string `json:"password"`
}

// PCNLogin is the body of POST /api/v1/pcn/login.
type PCNLogin struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Servers lists the SCNs of a PCN, pending ones included.
func (c *Client) Servers(ctx context.Context) (*ServerList, error) {
	var out ServerList
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/servers", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AcceptServer accepts a pending SCN into tenant.
func (c *Client) AcceptServer(ctx context.Context, id, tenant string) (*Server, error) {
	var out Server
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/servers/"+url.PathEscape(id)+"/accept", nil, AcceptServer{Tenant: tenant}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RejectServer forgets a pending SCN's request.
func (c *Client) RejectServer(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodPost, "/api/v1/servers/"+url.PathEscape(id)+"/reject", nil, nil, nil)
	return err
}

// DisconnectServer refuses an SCN's link from now on.
func (c *Client) DisconnectServer(ctx context.Context, id string) (*Server, error) {
	var out Server
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/servers/"+url.PathEscape(id)+"/disconnect", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Hierarchy returns this node's place in the distributed mode.
func (c *Client) Hierarchy(ctx context.Context) (*Hierarchy, error) {
	var out Hierarchy
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/pcn", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PCNFingerprint fetches the fingerprint of the PCN at address.
func (c *Client) PCNFingerprint(ctx context.Context, address string) (*PCNFingerprint, error) {
	var out PCNFingerprint
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/pcn/fingerprint", nil, PCNAddress{Address: address}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// JoinPCN sends this node's request to join a PCN.
func (c *Client) JoinPCN(ctx context.Context, in JoinPCN) (*Hierarchy, error) {
	var out Hierarchy
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/pcn/join", nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// LoginPCN renews this SCN's token with its PCN account.
func (c *Client) LoginPCN(ctx context.Context, in PCNLogin) (*Hierarchy, error) {
	var out Hierarchy
	if _, err := c.do(ctx, http.MethodPost, "/api/v1/pcn/login", nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
