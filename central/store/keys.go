package store

import (
	"fmt"
	"strconv"
	"strings"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Key layout. Every key the store reads or writes is built in this file, and
// nowhere else; ids are checked by validID before they become part of a key.
//
//	key (under /osprey/v1/)              value                            written by
//	-----------------------------------  -------------------------------  ------------------------------------------
//	tenants/<tenant>/meta                ospreyv1.Tenant                  CreateTenant, UpdateTenant
//	tenants/<tenant>/sensors/<id>/meta   ospreyv1.Sensor                  CreateSensor, UpdateSensor
//	tenants/<tenant>/sensors/<id>/smtp   ospreyv1.SmtpIntegration         PutSMTP (absent = disabled, version 0)
//	tenants/<tenant>/sensors/<id>/pop3   ospreyv1.Pop3Integration         PutPOP3 (absent = disabled, version 0)
//	tenants/<tenant>/sensors/<id>/acceptance/<kind>
//	                                     head, plain text (see below)     ReplaceAcceptance, EditAcceptance, ClearAcceptance, MigrateTrustedNetworks (absent = empty, version 0)
//	tenants/<tenant>/sensors/<id>/acceptance/<kind>/<generation>/<nnnnnn>
//	                                     chunk n: entries, one a line     the same, before the head that names the generation
//	tenants/<tenant>/rules/<id>          ospreyv1.Rule                    CreateRule, UpdateRule, DeleteRule (followed by RuleCache)
//	tenants/<tenant>/export              ospreyv1.SyslogExport            PutExport (absent = disabled, version 0; followed by ExportCache)
//	tenants/<tenant>/policy              ospreyv1.VerdictPolicy           PutPolicy (absent = the defaults, version 0; followed by PolicyCache)
//	sensor-tenant/<id>                   tenant id, plain text (index)    CreateSensor, in the txn that writes meta
//	global-rules/<id>                    ospreyv1.Rule (global)           CreateGlobalRule, UpdateGlobalRule, DeleteGlobalRule; on an SCN ApplyPrimaryUpdate (followed by RuleCache)
//	users/<name>                         ospreyv1.User                    CreateUser, UpdateUser, DeleteUser, MigrateUsers; on an SCN ApplyPrimaryUpdate (origin "pcn")
//	tokens/<id>                          ospreyv1.Token                   CreateToken, ConsumeJoinToken, DeleteToken
//	status/<sensor id>                   ospreyv1.SensorRuntime, live     PutStatus, under the lease of the node holding the stream
//	lastseen/<sensor id>                 ospreyv1.SensorRuntime, durable  PutStatus (durable), when a stream ends or a version is answered
//	messages/<tenant>/<sensor>/<msg id>  ospreyv1.MessageRecord           RecordScan (once per message id; expires with an hourly lease)
//	pop3-seen/<tenant>/<sha256>          "<sensor>/<msg id>", plain text   RecordScan, with the record of a POP3 message: sha256 of mailbox NUL UIDL (same lease)
//	alerts/<tenant>/<alert id>           ospreyv1.Alert                   RecordScan, in the txn of the message record; TrimAlerts deletes the oldest
//	cluster/ca                           ospreyv1.ClusterCA               CreateClusterCA (once, on the first start of a cluster)
//	cluster/pubkeys/<sha256 of SPKI>     sensor id, plain text            ClaimPublicKey (a key is enrolled at most once)
//	cluster/nodes/<node name>            gossip address, plain text       PutNode (each central node, at every start)
//	cluster/pop3-locks/<sha256>/<lease>  empty, under that session lease   central/mailboxlock (one POP3 poller per mailbox; sha256 of "user@server:port")
//	cluster/siem-leader/<lease>          node name, under that session lease  central/siemfeed (the node that exports alerts; an etcd election)
//	cluster/siem-cursor/<tenant>         revision, decimal plain text     SetExportCursor (the leader): the tenant's alerts up to it were exported
//	cluster/sensor-rpc/<sensor>/<req>    ospreyv1.SensorRequest           central/sensorrpc Call, under the caller's lease (seconds)
//	cluster/sensor-rpc-reply/<req>       ospreyv1.SensorReply             central/sensorrpc, by the node holding the sensor's stream, same lease
//	cluster/pcn-link-leader/<lease>      node name, under that session lease  central/hierarchy on an SCN (the node that holds the link to the PCN; an election)
//	cluster/...                          reserved: cluster coordination
//	servers/<id>                         ospreyv1.Server                  on a PCN: CreateServer (an SCN's request), UpdateServer (accept, disconnect, token), DeleteServer (reject)
//	server-status/<id>                   ospreyv1.ServerLink, live        on a PCN: PutServerLink, under the lease of the node holding the SCN's link
//	server-lastseen/<id>                 ospreyv1.ServerLink, durable     on a PCN: PutServerLink, when the link ends
//	server-down/<id>                     ospreyv1.DownStatus, durable     on a PCN: PutDownStatus, by the node holding the SCN's link (users and rules sent, ACK/NACK)
//	hierarchy/primary                    ospreyv1.Primary                 on an SCN: PutPrimary (join, acceptance, token, state)
//	hierarchy/link                       ospreyv1.PrimaryLink, live       on an SCN: PutPrimaryLink, under the lease of the node holding the link
//	hierarchy/sensor-management          ospreyv1.SensorManagement        on an SCN: PutSensorManagement (absent: the PCN may write its sensors' settings)
//	server-sensors/<id>                  ospreyv1.RemoteSensorList        on a PCN: PutServerSensors, by the node holding the SCN's link (central/remotesensors)
//	cluster/server-rpc/<id>/<req>        ospreyv1.RemoteSensorCall        on a PCN: central/remotesensors Call, under the caller's lease (seconds)
//	cluster/server-rpc-reply/<req>       ospreyv1.RemoteSensorAnswer      on a PCN: central/remotesensors, by the node holding the SCN's link, same lease
//
// Values are protobuf messages in deterministic wire form, except the
// sensor-tenant index, which holds the bare tenant id, the heads and chunks
// of acceptance lists, and the plain-text values of cluster/pubkeys/, cluster/nodes/, cluster/siem-leader/ and
// cluster/siem-cursor/. A value's version is the
// ModRevision of its key; a key that was never written has version 0.
//
// Alert ids start with the scan time (16 hex digits of Unix nanoseconds), so
// the keys of a tenant's alerts sort by time: the oldest are a key range that
// one DeleteRange removes (retention), and a page of the newest is one
// descending range read. Alerts carry no lease: etcd renews every lease to its
// full TTL when the leader changes, which would keep a 30-day lease alive for
// ever in a cluster that restarts weekly; see alerts.go.
//
// Rules and the export live under tenants/<tenant>/, beside the sensors, so a
// tenant's configuration stays under one prefix; the caches follow them with
// one watch of tenants/ and skip the other keys.
//
// Everything one sensor's configuration push needs lives under the single
// prefix tenants/<tenant>/sensors/<id>/, so one range read is a consistent
// snapshot and one prefix watch sees every change. Sensor ids are unique across
// tenants (the index enforces it), so a sensor id alone finds its tenant.
//
// A gateway's acceptance lists (kind: inbound, outbound, auth) may hold
// 100,000 entries and more, past what one etcd value or request takes
// (1.5 MiB by default), so each is a head and chunks of at most
// maxChunkBytes, under the sensor's prefix like the rest of what the push
// reads. The head names the generation the list is in and how many entries
// each of its chunks holds: "<generation> <entries> <n0> <n1> ...", decimal
// counts separated by spaces; generation "0" with no chunks is the empty
// list. A write puts a new generation's chunks (in as many transactions as
// etcd's limits need), then swaps the head in a transaction that checks the
// head's version, then deletes the chunks of other generations written
// before the swap. Readers follow the head: the chunks of a generation that
// no head names (a write interrupted, or beaten by another) are ignored, and
// the next write of the list removes them. A page is read as the head, then
// the chunks that hold it, at the head's revision.
//
// Ids of tenants, sensors and tokens match [a-z0-9][a-z0-9_.-]{0,62}; user
// names match [A-Za-z0-9][A-Za-z0-9_.@-]{0,63} (so an e-mail address works).
// Neither allows "/" or a leading ".", so an id can never reach outside its
// own key. These are the store's key-safety rules; package validate may be
// stricter.
const (
	rootPrefix         = "/osprey/v1/"
	tenantsPrefix      = rootPrefix + "tenants/"
	sensorTenantPrefix = rootPrefix + "sensor-tenant/"
	usersPrefix        = rootPrefix + "users/"
	globalRulesPrefix  = rootPrefix + "global-rules/"
	tokensPrefix       = rootPrefix + "tokens/"
	statusPrefix       = rootPrefix + "status/"
	lastSeenPrefix     = rootPrefix + "lastseen/"
	clusterCAKey       = rootPrefix + "cluster/ca"
	pubkeysPrefix      = rootPrefix + "cluster/pubkeys/"
	nodesPrefix        = rootPrefix + "cluster/nodes/"
	exportLeaderPrefix = rootPrefix + "cluster/siem-leader/"
	exportCursorPrefix = rootPrefix + "cluster/siem-seq/"
	sensorRPCPrefix    = rootPrefix + "cluster/sensor-rpc/"
	sensorReplyPrefix  = rootPrefix + "cluster/sensor-rpc-reply/"

	primaryLeaderPrefix  = rootPrefix + "cluster/pcn-link-leader/"
	serversPrefix        = rootPrefix + "servers/"
	serverStatusPrefix   = rootPrefix + "server-status/"
	serverLastSeenPrefix = rootPrefix + "server-lastseen/"
	serverDownPrefix     = rootPrefix + "server-down/"
	primaryKey           = rootPrefix + "hierarchy/primary"
	primaryLinkKey       = rootPrefix + "hierarchy/link"

	sensorManagementKey = rootPrefix + "hierarchy/sensor-management"
	serverSensorsPrefix = rootPrefix + "server-sensors/"
	serverRPCPrefix     = rootPrefix + "cluster/server-rpc/"
	serverReplyPrefix   = rootPrefix + "cluster/server-rpc-reply/"
)

func serverSensorsKey(id string) string { return serverSensorsPrefix + id }

// ServerRequestKey is the key of request req to the SCN server (req ""
// gives the prefix of the SCN's requests); ServerReplyKey the key of its
// answer (central/remotesensors).
func ServerRequestKey(server, req string) string { return serverRPCPrefix + server + "/" + req }
func ServerReplyKey(req string) string           { return serverReplyPrefix + req }

func serverKey(id string) string         { return serversPrefix + id }
func serverStatusKey(id string) string   { return serverStatusPrefix + id }
func serverLastSeenKey(id string) string { return serverLastSeenPrefix + id }
func serverDownKey(id string) string     { return serverDownPrefix + id }

// SensorRequestPrefix is the prefix of the operators' requests to sensors
// (central/sensorrpc): one key per request, under the sensor's prefix.
func SensorRequestPrefix() string { return sensorRPCPrefix }

// SensorRequestKey is the key of request id to sensor; SensorRequestKeyParts
// splits one back, reporting false for a key that is not one.
func SensorRequestKey(sensor, id string) string { return sensorRPCPrefix + sensor + "/" + id }

// SensorRequestKeyParts returns the sensor and request id of a request key.
func SensorRequestKeyParts(key string) (sensor, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, sensorRPCPrefix)
	if !ok {
		return "", "", false
	}
	sensor, id, ok = strings.Cut(rest, "/")
	return sensor, id, ok && validID(sensor) && validID(id)
}

// SensorReplyKey is the key of the reply to request id.
func SensorReplyKey(id string) string { return sensorReplyPrefix + id }

// Keys of what an earlier version kept in etcd and the SQL store now holds
// (see legacy.go): message records, the index of POP3 messages by mailbox
// and UIDL, alerts, and the SIEM export's cursors by etcd revision.
const (
	legacyMessagesPrefix = rootPrefix + "messages/"
	legacyPOP3SeenPrefix = rootPrefix + "pop3-seen/"
	legacyAlertsPrefix   = rootPrefix + "alerts/"
	legacyCursorPrefix   = rootPrefix + "cluster/siem-cursor/"
)

// Parts of a sensor's configuration: the last element of its keys, or,
// for an acceptance list, the elements after the sensor id
// ("acceptance/inbound", "acceptance/inbound/<generation>/<n>").
const (
	partMeta       = "meta"
	partSMTP       = "smtp"
	partPOP3       = "pop3"
	partAcceptance = "acceptance"
)

// acceptanceKinds names the acceptance lists in their keys.
var acceptanceKinds = map[ospreyv1.AcceptanceListKind]string{
	ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND:  "inbound",
	ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND: "outbound",
	ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_AUTH:     "auth",
}

// acceptanceKind returns the kind a key names, or false.
func acceptanceKind(name string) (ospreyv1.AcceptanceListKind, bool) {
	for k, n := range acceptanceKinds {
		if n == name {
			return k, true
		}
	}
	return 0, false
}

// acceptanceHeadKey is the head of a sensor's acceptance list; the list's
// chunks are under acceptanceHeadKey + "/".
func acceptanceHeadKey(tenant, id string, kind ospreyv1.AcceptanceListKind) string {
	return sensorKey(tenant, id, partAcceptance+"/"+acceptanceKinds[kind])
}

// acceptanceChunkKey is the key of chunk n of a list's generation; n has
// six digits, so that the chunks of a generation sort in order and a run of
// them is one key range.
func acceptanceChunkKey(tenant, id string, kind ospreyv1.AcceptanceListKind, generation string, n int) string {
	return sensorKey(tenant, id, acceptanceChunkPart(kind, generation, n))
}

// acceptanceChunkPart is the part of a chunk's key after the sensor id.
func acceptanceChunkPart(kind ospreyv1.AcceptanceListKind, generation string, n int) string {
	return fmt.Sprintf("%s/%s/%s/%06d", partAcceptance, acceptanceKinds[kind], generation, n)
}

// acceptancePart is the part of a head or chunk key (what parseSensorKey
// returns) split: the kind, and for a chunk its generation and number.
type acceptancePart struct {
	kind       ospreyv1.AcceptanceListKind
	generation string // "" for the head
	n          int
}

// parseAcceptancePart splits the part of an acceptance key.
func parseAcceptancePart(part string) (acceptancePart, bool) {
	f := strings.Split(part, "/")
	if f[0] != partAcceptance || (len(f) != 2 && len(f) != 4) {
		return acceptancePart{}, false
	}
	kind, ok := acceptanceKind(f[1])
	if !ok {
		return acceptancePart{}, false
	}
	if len(f) == 2 {
		return acceptancePart{kind: kind}, true
	}
	n, err := strconv.Atoi(f[3])
	if err != nil || n < 0 || !validGeneration(f[2]) {
		return acceptancePart{}, false
	}
	return acceptancePart{kind: kind, generation: f[2], n: n}, true
}

// validGeneration reports whether g can be the generation of a chunk: 16
// lower-case hexadecimal digits.
func validGeneration(g string) bool {
	if len(g) != 16 {
		return false
	}
	for i := range len(g) {
		if c := g[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// maxIDLen bounds every id used in a key.
const maxIDLen = 63

// validID reports whether id may be used as one element of a key.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case i > 0 && (c == '-' || c == '_' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// maxUserNameLen bounds a user name.
const maxUserNameLen = 64

// validUserName reports whether name may be used as the last element of a
// user key.
func validUserName(name string) bool {
	if name == "" || len(name) > maxUserNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '-' || c == '_' || c == '.' || c == '@'):
		default:
			return false
		}
	}
	return true
}

// CheckID returns an error wrapping ErrInvalidID when id cannot be used in a key.
func CheckID(kind, id string) error {
	if !validID(id) {
		return fmt.Errorf("%s id %q: %w", kind, id, ErrInvalidID)
	}
	return nil
}

// checkUserName returns an error wrapping ErrInvalidID when name cannot be
// used in a key.
func checkUserName(name string) error {
	if !validUserName(name) {
		return fmt.Errorf("user name %q: %w", name, ErrInvalidID)
	}
	return nil
}

func tenantKey(tenant string) string {
	return tenantsPrefix + tenant + "/meta"
}

// tenantSensorsPrefix is the prefix of every sensor key of one tenant.
func tenantSensorsPrefix(tenant string) string {
	return tenantsPrefix + tenant + "/sensors/"
}

// sensorPrefix is the prefix of every key of one sensor's configuration.
func sensorPrefix(tenant, id string) string {
	return tenantSensorsPrefix(tenant) + id + "/"
}

func sensorKey(tenant, id, part string) string {
	return sensorPrefix(tenant, id) + part
}

func sensorTenantKey(id string) string {
	return sensorTenantPrefix + id
}

func userKey(name string) string {
	return usersPrefix + name
}

func tokenKey(id string) string {
	return tokensPrefix + id
}

// parseTenantKey returns the tenant of a tenants/<tenant>/meta key.
func parseTenantKey(key string) (tenant string, ok bool) { return parseTenantValueKey(key, "/meta") }

// parseSensorKey splits a tenants/<tenant>/sensors/<id>/<part> key; the
// part of an acceptance list's key holds slashes (see parseAcceptancePart).
func parseSensorKey(key string) (tenant, id, part string, ok bool) {
	rest, ok := strings.CutPrefix(key, tenantsPrefix)
	if !ok {
		return "", "", "", false
	}
	f := strings.SplitN(rest, "/", 4)
	if len(f) != 4 || f[1] != "sensors" || !validID(f[0]) || !validID(f[2]) {
		return "", "", "", false
	}
	switch f[3] {
	case partMeta, partSMTP, partPOP3:
		return f[0], f[2], f[3], true
	}
	if _, ok := parseAcceptancePart(f[3]); ok {
		return f[0], f[2], f[3], true
	}
	return "", "", "", false
}

func statusKey(sensorID string) string {
	return statusPrefix + sensorID
}

func lastSeenKey(sensorID string) string {
	return lastSeenPrefix + sensorID
}

func pubkeyKey(fingerprint string) string {
	return pubkeysPrefix + fingerprint
}

func nodeKey(name string) string {
	return nodesPrefix + name
}

// tenantRulesPrefix is the prefix of every rule of one tenant.
func tenantRulesPrefix(tenant string) string {
	return tenantsPrefix + tenant + "/rules/"
}

func ruleKey(tenant, id string) string {
	return tenantRulesPrefix(tenant) + id
}

// parseRuleKey splits a tenants/<tenant>/rules/<id> key.
func parseRuleKey(key string) (tenant, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, tenantsPrefix)
	if !ok {
		return "", "", false
	}
	f := strings.Split(rest, "/")
	if len(f) != 3 || f[1] != "rules" || !validID(f[0]) || !validID(f[2]) {
		return "", "", false
	}
	return f[0], f[2], true
}

func globalRuleKey(id string) string { return globalRulesPrefix + id }

// parseGlobalRuleKey returns the id of a global-rules/<id> key; the tenant
// is always empty (RuleCache keeps the global rules as tenant "").
func parseGlobalRuleKey(key string) (tenant, id string, ok bool) {
	id, ok = strings.CutPrefix(key, globalRulesPrefix)
	if !ok || !validID(id) {
		return "", "", false
	}
	return "", id, true
}

func exportKey(tenant string) string {
	return tenantsPrefix + tenant + "/export"
}

// parseExportKey returns the tenant of a tenants/<tenant>/export key.
func parseExportKey(key string) (tenant string, ok bool) { return parseTenantValueKey(key, "/export") }

func policyKey(tenant string) string {
	return tenantsPrefix + tenant + "/policy"
}

// parsePolicyKey returns the tenant of a tenants/<tenant>/policy key.
func parsePolicyKey(key string) (tenant string, ok bool) { return parseTenantValueKey(key, "/policy") }

// parseTenantValueKey returns the tenant of a tenants/<tenant><suffix> key.
func parseTenantValueKey(key, suffix string) (tenant string, ok bool) {
	rest, ok := strings.CutPrefix(key, tenantsPrefix)
	if !ok {
		return "", false
	}
	tenant, ok = strings.CutSuffix(rest, suffix)
	if !ok || !validID(tenant) {
		return "", false
	}
	return tenant, true
}

func exportCursorKey(tenant string) string {
	return exportCursorPrefix + tenant
}
