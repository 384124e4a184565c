package auth

import (
	"slices"

	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Capability is one thing a role may do, in the tenants its user may see. Every route of
// the API and the web UI names the capability it needs; roleCapabilities says which roles
// have it.
type Capability int

// The capabilities. Reads of configuration never return secrets, whoever reads.
const (
	// ReadConfig: tenants' and sensors' configuration (integrations, gateway, acceptance
	// lists, delivery queue, policy, SIEM export), the central nodes, metrics.
	ReadConfig Capability = iota + 1
	// Configure: this node's own configuration: approve and revoke sensors, their SMTP and
	// POP3 integrations, gateway controls, acceptance lists, queue actions, verdict policy,
	// SIEM export, join tokens.
	Configure
	// ReadAlerts: alerts.
	ReadAlerts
	// HandleAlerts: change an alert's status.
	HandleAlerts
	// ReadQuarantine: the quarantine, and a quarantined message's content.
	ReadQuarantine
	// ManageQuarantine: release and delete quarantined messages.
	ManageQuarantine
	// ReadRules and WriteRules: a tenant's scan rules.
	ReadRules
	WriteRules
	// ReadAudit: the message audit log (accepted, refused, delivered, quarantined) and the
	// message records.
	ReadAudit
	// ReadUsers: the users one may see (those whose tenants are all among one's own).
	ReadUsers

	// The global capabilities below reach beyond tenants: a role has them only with all
	// tenants.

	// ManageUsers: create and change users.
	ManageUsers
	// ManageTenants: create and change tenants.
	ManageTenants
	// ManageServers: the PCN/SCN hierarchy: accept, reject and disconnect SCNs, join a PCN.
	ManageServers
	// ManageCluster: settings of the whole cluster of central nodes.
	ManageCluster
	// WriteGlobalRules: the global scan rules, which apply to every tenant (a PCN sends
	// them to its SCNs).
	WriteGlobalRules
)

var capabilityNames = map[Capability]string{
	ReadConfig: "read configuration", Configure: "configure", ReadAlerts: "read alerts",
	HandleAlerts: "handle alerts", ReadQuarantine: "read quarantine", ManageQuarantine: "manage quarantine",
	ReadRules: "read rules", WriteRules: "write rules", ReadAudit: "read the audit log", ReadUsers: "read users",
	ManageUsers: "manage users", ManageTenants: "manage tenants", ManageServers: "manage servers",
	ManageCluster: "manage the cluster", WriteGlobalRules: "write global rules",
}

// String names c for messages ("manage users").
func (c Capability) String() string { return capabilityNames[c] }

// Global reports whether c reaches beyond tenants, and so needs all tenants.
func (c Capability) Global() bool { return c >= ManageUsers }

// roleCapabilities is the one table of what each role may do (docs/users.md shows it).
var roleCapabilities = map[ospreyv1.Role][]Capability{
	// Administrator: everything in its tenants; with all tenants also the global ones.
	ospreyv1.Role_ROLE_ADMIN: {ReadConfig, Configure, ReadAlerts, HandleAlerts, ReadQuarantine, ManageQuarantine,
		ReadRules, WriteRules, ReadAudit, ReadUsers, ManageUsers, ManageTenants, ManageServers, ManageCluster,
		WriteGlobalRules},
	// Local administrator: this node's own configuration; reads alerts. No users, no hierarchy.
	ospreyv1.Role_ROLE_LOCAL_ADMIN: {ReadConfig, Configure, ReadAlerts},
	// Senior security officer: alerts and quarantine, rules, the audit log; reads configuration.
	ospreyv1.Role_ROLE_SENIOR_OFFICER: {ReadConfig, ReadAlerts, HandleAlerts, ReadQuarantine, ManageQuarantine,
		ReadRules, WriteRules, ReadAudit, WriteGlobalRules},
	// Security officer: reads and handles alerts; reads quarantine, rules and the audit log.
	ospreyv1.Role_ROLE_OFFICER: {ReadAlerts, HandleAlerts, ReadQuarantine, ReadRules, ReadAudit},
	// Security auditor: reads everything in its tenants, changes nothing.
	ospreyv1.Role_ROLE_AUDITOR: {ReadConfig, ReadAlerts, ReadQuarantine, ReadRules, ReadAudit, ReadUsers},
}

// Roles are the roles a user may be given, in the order forms show them.
var Roles = []ospreyv1.Role{
	ospreyv1.Role_ROLE_ADMIN, ospreyv1.Role_ROLE_LOCAL_ADMIN, ospreyv1.Role_ROLE_SENIOR_OFFICER,
	ospreyv1.Role_ROLE_OFFICER, ospreyv1.Role_ROLE_AUDITOR,
}

var roleTitles = map[ospreyv1.Role]string{
	ospreyv1.Role_ROLE_ADMIN:          "Administrator",
	ospreyv1.Role_ROLE_LOCAL_ADMIN:    "Local administrator",
	ospreyv1.Role_ROLE_SENIOR_OFFICER: "Senior security officer",
	ospreyv1.Role_ROLE_OFFICER:        "Security officer",
	ospreyv1.Role_ROLE_AUDITOR:        "Security auditor",
}

// RoleTitle is the product's name of r ("Senior security officer"), or r's proto name
// for a role that is not one of Roles.
func RoleTitle(r ospreyv1.Role) string {
	if t, ok := roleTitles[r]; ok {
		return t
	}
	return r.String()
}

// RoleCapabilities returns what r may do, global capabilities included.
func RoleCapabilities(r ospreyv1.Role) []Capability {
	return slices.Clone(roleCapabilities[r])
}

func knownRole(r ospreyv1.Role) bool {
	_, ok := roleCapabilities[r]
	return ok
}

// Before the product's roles, a user was an admin (every tenant), a tenant admin of one
// tenant, or an auditor of one tenant or (without a tenant) of every tenant, in the
// record's tenant field. A record of today names its tenants or all tenants, so one that
// names neither, or has the tenant admin role, is one of then.

// IsLegacy reports whether u is a record written before the product's roles.
func IsLegacy(u *ospreyv1.User) bool {
	return u.GetRole() == ospreyv1.Role_ROLE_TENANT_ADMIN || !u.GetAllTenants() && len(u.GetTenants()) == 0
}

// Upgrade rewrites a legacy record u as the product's roles have it, and reports whether
// it changed anything: an admin becomes an Administrator of all tenants; a tenant admin of
// t an Administrator of [t]; an auditor of t a Security auditor of [t], and an auditor
// without a tenant a Security auditor of all tenants. A record it cannot map (a tenant
// admin without a tenant, an unknown role) it leaves alone: it grants nothing.
func Upgrade(u *ospreyv1.User) bool {
	if !IsLegacy(u) {
		return false
	}
	switch t := u.GetTenant(); {
	case u.GetRole() == ospreyv1.Role_ROLE_ADMIN:
		u.AllTenants = true
	case u.GetRole() == ospreyv1.Role_ROLE_TENANT_ADMIN && t != "":
		u.Role, u.Tenants = ospreyv1.Role_ROLE_ADMIN, []string{t}
	case u.GetRole() == ospreyv1.Role_ROLE_AUDITOR && t != "":
		u.Tenants = []string{t}
	case u.GetRole() == ospreyv1.Role_ROLE_AUDITOR:
		u.AllTenants = true
	default:
		return false
	}
	u.Tenant = ""
	return true
}

func cloneUser(u *ospreyv1.User) *ospreyv1.User { return proto.Clone(u).(*ospreyv1.User) }
