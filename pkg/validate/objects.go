package validate

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Identifiers of tenants and tokens appear in etcd keys, URLs and log
// lines, so they are kept to DNS-label characters: 1 to 63 lower-case
// letters, digits and hyphens, starting and ending with a letter or digit.
var identifier = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

const identifierRule = "must be 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit"

// User names are what people type to sign in: 1 to 64 ASCII letters,
// digits and ". _ @ -", starting with a letter or digit, so that an e-mail
// address works and nothing needs quoting in a URL or a log line.
var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

const userNameRule = "must be 1 to 64 letters, digits and '.', '_', '@', '-', starting with a letter or digit"

// Tenant validates a tenant: id (when set, as the store may assign it)
// an identifier; name required, at most 128 bytes, no control characters,
// no leading or trailing space; scn (when set) at most 253 bytes without
// spaces or control characters.
func Tenant(t *ospreyv1.Tenant) error {
	var r report
	if id := t.GetId(); id != "" && !identifier.MatchString(id) {
		r.add("id", identifierRule)
	}
	name(&r, "name", t.GetName(), 128)
	if scn := t.GetScn(); scn != "" && r.text("scn", scn, 253) && strings.ContainsFunc(scn, isSpace) {
		r.add("scn", "must not contain spaces")
	}
	return r.err()
}

func isSpace(r rune) bool { return r == ' ' || r == '\u00a0' }

// name checks a display name.
func name(r *report, field, v string, max int) {
	if v == "" {
		r.add(field, "required")
		return
	}
	if r.text(field, v, max) && strings.TrimSpace(v) != v {
		r.add(field, "must not start or end with spaces")
	}
}

// Sensor validates a sensor's record: name 1 to 64 printable characters
// without spaces at either end (as enrollment takes it); state pending,
// approved or revoked; each certificate fingerprint empty or a SHA-256 in
// lower-case hex, and the previous one only beside a current one. The
// store checks the ids, which make its keys.
func Sensor(sn *ospreyv1.Sensor) error {
	var r report
	if n := sn.GetName(); n == "" {
		r.add("name", "required")
	} else if len(n) > 64 || strings.ContainsFunc(n, func(c rune) bool { return !unicode.IsPrint(c) }) || !utf8.ValidString(n) {
		r.add("name", "must be 1 to 64 printable characters")
	} else if strings.TrimSpace(n) != n {
		r.add("name", "must not start or end with spaces")
	}
	switch sn.GetState() {
	case ospreyv1.SensorState_SENSOR_STATE_PENDING, ospreyv1.SensorState_SENSOR_STATE_APPROVED, ospreyv1.SensorState_SENSOR_STATE_REVOKED:
	case ospreyv1.SensorState_SENSOR_STATE_UNSPECIFIED:
		r.add("state", "required: pending, approved or revoked")
	default:
		r.add("state", "must be pending, approved or revoked")
	}
	for _, f := range [...]struct{ field, fp string }{
		{"cert_fingerprint", sn.GetCertFingerprint()},
		{"previous_cert_fingerprint", sn.GetPreviousCertFingerprint()},
	} {
		if f.fp != "" && !sha256Hex.MatchString(f.fp) {
			r.add(f.field, "must be a SHA-256 in lower-case hex (64 digits)")
		}
	}
	if sn.GetPreviousCertFingerprint() != "" && sn.GetCertFingerprint() == "" {
		r.add("previous_cert_fingerprint", "needs cert_fingerprint: a certificate replaced by none")
	}
	return r.err()
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// MaxUserTenants is how many tenants one user may be given by name (beyond it, give all
// tenants).
const MaxUserTenants = 64

// User validates a user: name per the rule above; role required, one of the product's
// (the retired tenant_admin is refused: an administrator with tenants does its work);
// tenants, each an identifier and none twice, at least one unless all_tenants is set,
// and none with it; the retired single tenant field empty.
func User(u *ospreyv1.User) error {
	var r report
	if n := u.GetName(); n == "" {
		r.add("name", "required")
	} else if !userName.MatchString(n) {
		r.add("name", userNameRule)
	}
	switch u.GetRole() {
	case ospreyv1.Role_ROLE_UNSPECIFIED:
		r.add("role", "required: %s", roleChoices)
	case ospreyv1.Role_ROLE_TENANT_ADMIN:
		r.add("role", "tenant_admin is retired: make the user an administrator of its tenants")
	case ospreyv1.Role_ROLE_ADMIN, ospreyv1.Role_ROLE_LOCAL_ADMIN, ospreyv1.Role_ROLE_SENIOR_OFFICER,
		ospreyv1.Role_ROLE_OFFICER, ospreyv1.Role_ROLE_AUDITOR:
	default:
		r.add("role", "must be one of %s", roleChoices)
	}
	if u.GetTenant() != "" {
		r.add("tenant", "retired: name the user's tenants in tenants")
	}
	tenants := u.GetTenants()
	switch {
	case u.GetAllTenants() && len(tenants) > 0:
		r.add("tenants", "must be empty for a user of all tenants")
	case !u.GetAllTenants() && len(tenants) == 0:
		r.add("tenants", "required: at least one tenant, or all tenants")
	case len(tenants) > MaxUserTenants:
		r.add("tenants", "at most %d; give the user all tenants instead", MaxUserTenants)
	}
	seen := map[string]bool{}
	for i, t := range tenants {
		field := fmt.Sprintf("tenants[%d]", i)
		switch {
		case !identifier.MatchString(t):
			r.add(field, identifierRule)
		case seen[t]:
			r.add(field, "%q named twice", t)
		}
		seen[t] = true
	}
	origin(&r, u.GetOrigin())
	return r.err()
}

const roleChoices = "administrator, local-administrator, senior-security-officer, security-officer or security-auditor"

// OriginPCN is the origin of a user or global rule an SCN got from its PCN.
const OriginPCN = "pcn"

// origin checks who manages a user or rule: this node (empty) or the PCN.
func origin(r *report, o string) {
	if o != "" && o != OriginPCN {
		r.add("origin", "must be empty or %q", OriginPCN)
	}
}

// Token validates a token: id, when set, an identifier; kind required. A
// join token needs a tenant (it enrolls sensors into it) and counts its
// uses: uses_left at most max_uses, and 0 when max_uses is 0 (unlimited).
// An API token needs its user and has no use count. secret_hash, when set,
// is a SHA-256 (32 bytes); expires_at, when set with created_at, is later;
// description at most 256 bytes without control characters.
func Token(t *ospreyv1.Token) error {
	var r report
	if id := t.GetId(); id != "" && !identifier.MatchString(id) {
		r.add("id", identifierRule)
	}
	if tenant := t.GetTenant(); tenant != "" && !identifier.MatchString(tenant) {
		r.add("tenant", identifierRule)
	}
	if user := t.GetUser(); user != "" && !userName.MatchString(user) {
		r.add("user", userNameRule)
	}
	switch t.GetKind() {
	case ospreyv1.TokenKind_TOKEN_KIND_UNSPECIFIED:
		r.add("kind", "required: api or join")
	case ospreyv1.TokenKind_TOKEN_KIND_JOIN:
		if t.GetTenant() == "" {
			r.add("tenant", "required for a join token")
		}
		if t.GetMaxUses() == 0 && t.GetUsesLeft() != 0 {
			r.add("uses_left", "must be 0 when max_uses is 0 (unlimited)")
		} else if t.GetUsesLeft() > t.GetMaxUses() {
			r.add("uses_left", "must not exceed max_uses (%d)", t.GetMaxUses())
		}
	case ospreyv1.TokenKind_TOKEN_KIND_API:
		if t.GetUser() == "" {
			r.add("user", "required for an API token")
		}
		if t.GetMaxUses() != 0 {
			r.add("max_uses", "only join tokens count uses")
		}
		if t.GetUsesLeft() != 0 {
			r.add("uses_left", "only join tokens count uses")
		}
	default:
		r.add("kind", "must be api or join")
	}
	if h := t.GetSecretHash(); len(h) != 0 && len(h) != 32 {
		r.add("secret_hash", "must be a SHA-256 hash (32 bytes)")
	}
	created, expires := t.GetCreatedAt(), t.GetExpiresAt()
	if created != nil {
		if err := created.CheckValid(); err != nil {
			r.add("created_at", "not a valid time")
			created = nil
		}
	}
	if expires != nil {
		if err := expires.CheckValid(); err != nil {
			r.add("expires_at", "not a valid time")
		} else if created != nil && !expires.AsTime().After(created.AsTime()) {
			r.add("expires_at", "must be after created_at")
		}
	}
	r.text("description", t.GetDescription(), 256)
	return r.err()
}
