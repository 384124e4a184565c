// Package convert translates between the REST API's JSON types (package api) and the
// configuration model (the protobuf messages of proto/osprey/v1), in both directions. The
// REST API and the web UI both use it, so a field has one name and one spelling everywhere.
//
// API to proto (a write) reports every unknown enum name at once, as validate.Errors naming
// each field by its JSON path ("tls.mode", "max_message_size.unit"); it checks nothing else,
// which is pkg/validate's job once the message is built. Proto to API (a read) never copies
// a secret: a POP3 password or an SMTP private key becomes password_set or key_set. A write
// that leaves a secret empty keeps the stored one: the store's writes see to that.
package convert

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// enum maps a proto enum to the names of the API. The zero (UNSPECIFIED) value maps to
// the empty name, unless the name is required.
type enum[P ~int32, A ~string] struct {
	what     string // "role", for messages
	names    []A    // by proto value; names[0] is the empty name
	required bool   // the empty name is an error
	fold     bool   // names match case-insensitively
	// zeroIs, when set, is the value UNSPECIFIED means: reads name it for
	// UNSPECIFIED, and writes of its name store UNSPECIFIED, so that what
	// was written before the field existed reads and writes back the same.
	zeroIs P
}

func (e enum[P, A]) toAPI(p P) A {
	if p == 0 {
		p = e.zeroIs
	}
	if p == 0 {
		return ""
	}
	if int(p) > 0 && int(p) < len(e.names) {
		return e.names[p]
	}
	return A(strconv.Itoa(int(p))) // a value from a newer model: show it, do not hide it
}

func (e enum[P, A]) toProto(a A) (P, error) {
	if a == "" {
		if e.required {
			return 0, fmt.Errorf("%s is required; want %s", e.what, e.choices())
		}
		return 0, nil
	}
	for i, name := range e.names[1:] {
		if name == a || e.fold && strings.EqualFold(string(name), string(a)) {
			if P(i+1) == e.zeroIs {
				return 0, nil
			}
			return P(i + 1), nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q; want %s", e.what, a, e.choices())
}

func (e enum[P, A]) choices() string {
	var b strings.Builder
	last := len(e.names) - 1
	for i, name := range e.names[1:] {
		switch {
		case i == 0:
		case i+1 == last:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(string(name))
	}
	return b.String()
}

var (
	sensorStates = enum[ospreyv1.SensorState, api.SensorState]{
		what: "sensor state", required: true,
		names: []api.SensorState{"", api.SensorPending, api.SensorApproved, api.SensorRevoked},
	}
	sizeUnits = enum[ospreyv1.SizeUnit, api.SizeUnit]{
		what: "size unit", fold: true,
		names: []api.SizeUnit{"", api.KB, api.MB, api.GB},
	}
	tlsModes = enum[ospreyv1.TlsMode, api.TLSMode]{
		what:  "TLS mode",
		names: []api.TLSMode{"", api.TLSOff, api.TLSAccept, api.TLSRequire},
	}
	clientCertModes = enum[ospreyv1.ClientCertMode, api.ClientCertMode]{
		what:  "client certificate mode",
		names: []api.ClientCertMode{"", api.ClientCertOff, api.ClientCertRequest, api.ClientCertRequire},
	}
	pop3TLSModes = enum[ospreyv1.Pop3TlsMode, api.POP3TLSMode]{
		what:  "POP3 TLS mode",
		names: []api.POP3TLSMode{"", api.POP3Implicit, api.POP3STARTTLS},
	}
	certPolicies = enum[ospreyv1.TlsCertificatePolicy, api.TLSCertificatePolicy]{
		what:  "TLS certificate policy",
		names: []api.TLSCertificatePolicy{"", api.AcceptAny, api.AcceptSelfSigned, api.TrustedOnly},
	}
	smtpModes = enum[ospreyv1.SmtpMode, api.SMTPMode]{
		what:   "SMTP mode",
		names:  []api.SMTPMode{"", api.SMTPMonitor, api.SMTPInbound, api.SMTPOutbound, api.SMTPInboundOutbound},
		zeroIs: ospreyv1.SmtpMode_SMTP_MODE_MONITOR,
	}
	holdActions = enum[ospreyv1.HoldTimeoutAction, api.HoldTimeoutAction]{
		what:   "hold timeout action",
		names:  []api.HoldTimeoutAction{"", api.DeliverUnscanned, api.KeepHolding},
		zeroIs: ospreyv1.HoldTimeoutAction_HOLD_TIMEOUT_ACTION_DELIVER_UNSCANNED,
	}
	authTreatments = enum[ospreyv1.AuthErrorTreatment, api.AuthErrorTreatment]{
		what:   "DMARC error treatment",
		names:  []api.AuthErrorTreatment{"", api.AuthErrorAsIs, api.AuthErrorFail, api.AuthErrorNone},
		zeroIs: ospreyv1.AuthErrorTreatment_AUTH_ERROR_TREATMENT_AS_IS,
	}
	// verdictActions names an action where "" takes the policy's;
	// actionsDefault* name the policy's fields whose default is that action.
	verdictActions           = enum[ospreyv1.VerdictAction, api.VerdictAction]{what: "action", names: actionNames}
	actionsDefaultDeliver    = enum[ospreyv1.VerdictAction, api.VerdictAction]{what: "action", names: actionNames, zeroIs: ospreyv1.VerdictAction_VERDICT_ACTION_DELIVER}
	actionsDefaultQuarantine = enum[ospreyv1.VerdictAction, api.VerdictAction]{what: "action", names: actionNames, zeroIs: ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE}
	roles                    = enum[ospreyv1.Role, api.Role]{
		what: "role", required: true,
		names: []api.Role{"", api.RoleAdministrator, api.RoleTenantAdmin, api.RoleSecurityAuditor,
			api.RoleLocalAdministrator, api.RoleSeniorSecurityOfficer, api.RoleSecurityOfficer},
	}
	tokenKinds = enum[ospreyv1.TokenKind, api.TokenKind]{
		what: "token kind", required: true,
		names: []api.TokenKind{"", api.TokenAPI, api.TokenJoin},
	}
)

var actionNames = []api.VerdictAction{"", api.ActionDeliver, api.ActionTag, api.ActionQuarantine, api.ActionDropNotifyRecipient, api.ActionDropNotifySender}

// SensorStateFromProto returns the API name of a sensor state ("pending", ...).
func SensorStateFromProto(s ospreyv1.SensorState) api.SensorState { return sensorStates.toAPI(s) }

// SensorStateToProto returns the sensor state named s; the name is required.
func SensorStateToProto(s api.SensorState) (ospreyv1.SensorState, error) {
	return sensorStates.toProto(s)
}

// SizeUnitFromProto returns the API name of a size unit ("KB", "MB", "GB").
func SizeUnitFromProto(u ospreyv1.SizeUnit) api.SizeUnit { return sizeUnits.toAPI(u) }

// SizeUnitToProto returns the size unit named u, in any case; "" is UNSPECIFIED.
func SizeUnitToProto(u api.SizeUnit) (ospreyv1.SizeUnit, error) { return sizeUnits.toProto(u) }

// TLSModeFromProto returns the API name of an SMTP TLS mode ("off", "accept", "require").
func TLSModeFromProto(m ospreyv1.TlsMode) api.TLSMode { return tlsModes.toAPI(m) }

// TLSModeToProto returns the SMTP TLS mode named m; "" is UNSPECIFIED.
func TLSModeToProto(m api.TLSMode) (ospreyv1.TlsMode, error) { return tlsModes.toProto(m) }

// ClientCertModeFromProto returns the API name of a client certificate mode.
func ClientCertModeFromProto(m ospreyv1.ClientCertMode) api.ClientCertMode {
	return clientCertModes.toAPI(m)
}

// ClientCertModeToProto returns the client certificate mode named m; "" is UNSPECIFIED.
func ClientCertModeToProto(m api.ClientCertMode) (ospreyv1.ClientCertMode, error) {
	return clientCertModes.toProto(m)
}

// POP3TLSModeFromProto returns the API name of a POP3 TLS mode ("implicit", "starttls").
func POP3TLSModeFromProto(m ospreyv1.Pop3TlsMode) api.POP3TLSMode { return pop3TLSModes.toAPI(m) }

// POP3TLSModeToProto returns the POP3 TLS mode named m; "" is UNSPECIFIED.
func POP3TLSModeToProto(m api.POP3TLSMode) (ospreyv1.Pop3TlsMode, error) {
	return pop3TLSModes.toProto(m)
}

// TLSCertificatePolicyFromProto returns the API name of a certificate policy ("trusted_only", ...).
func TLSCertificatePolicyFromProto(p ospreyv1.TlsCertificatePolicy) api.TLSCertificatePolicy {
	return certPolicies.toAPI(p)
}

// TLSCertificatePolicyToProto returns the certificate policy named p; "" is UNSPECIFIED.
func TLSCertificatePolicyToProto(p api.TLSCertificatePolicy) (ospreyv1.TlsCertificatePolicy, error) {
	return certPolicies.toProto(p)
}

// SMTPModeFromProto returns the API name of an SMTP mode; UNSPECIFIED, which means
// MONITOR, is "monitor" too.
func SMTPModeFromProto(m ospreyv1.SmtpMode) api.SMTPMode { return smtpModes.toAPI(m) }

// SMTPModeToProto returns the SMTP mode named m. "monitor", the default, is
// UNSPECIFIED as "" is: the value an integration written before modes existed
// holds, so that one read and written back is the same configuration.
func SMTPModeToProto(m api.SMTPMode) (ospreyv1.SmtpMode, error) { return smtpModes.toProto(m) }

// HoldTimeoutActionFromProto returns the API name of a hold timeout action;
// UNSPECIFIED, which means DELIVER_UNSCANNED, is "deliver_unscanned" too.
func HoldTimeoutActionFromProto(a ospreyv1.HoldTimeoutAction) api.HoldTimeoutAction {
	return holdActions.toAPI(a)
}

// HoldTimeoutActionToProto returns the hold timeout action named a;
// "deliver_unscanned", the default, is UNSPECIFIED as "" is (see SMTPModeToProto).
func HoldTimeoutActionToProto(a api.HoldTimeoutAction) (ospreyv1.HoldTimeoutAction, error) {
	return holdActions.toProto(a)
}

// AuthErrorTreatmentFromProto returns the API name of what a DMARC error counts as;
// UNSPECIFIED, which means AS_IS, is "as_is" too.
func AuthErrorTreatmentFromProto(t ospreyv1.AuthErrorTreatment) api.AuthErrorTreatment {
	return authTreatments.toAPI(t)
}

// AuthErrorTreatmentToProto returns the treatment named t; "as_is", the default, is
// UNSPECIFIED as "" is (see SMTPModeToProto).
func AuthErrorTreatmentToProto(t api.AuthErrorTreatment) (ospreyv1.AuthErrorTreatment, error) {
	return authTreatments.toProto(t)
}

// RoleFromProto returns the API name of a role ("admin", "tenant_admin", "auditor").
func RoleFromProto(r ospreyv1.Role) api.Role { return roles.toAPI(r) }

// RoleToProto returns the role named r; the name is required.
// The names of before the product's roles, admin and auditor, are read as
// the roles they became.
// The choices an error offers leave out the retired tenant_admin.
func RoleToProto(r api.Role) (ospreyv1.Role, error) {
	if n, ok := oldRoleNames[r]; ok {
		r = n
	}
	p, err := roles.toProto(r)
	switch {
	case err != nil && r == "":
		return 0, fmt.Errorf("role is required; want %s", roleChoices)
	case err != nil:
		return 0, fmt.Errorf("unknown role %q; want %s", r, roleChoices)
	}
	return p, nil
}

const roleChoices = "administrator, local-administrator, senior-security-officer, security-officer or security-auditor"

var oldRoleNames = map[api.Role]api.Role{"admin": api.RoleAdministrator, "auditor": api.RoleSecurityAuditor}

// TokenKindFromProto returns the API name of a token kind ("api", "join").
func TokenKindFromProto(k ospreyv1.TokenKind) api.TokenKind { return tokenKinds.toAPI(k) }

// TokenKindToProto returns the token kind named k; the name is required.
func TokenKindToProto(k api.TokenKind) (ospreyv1.TokenKind, error) { return tokenKinds.toProto(k) }

// fieldErrors collects the problems of one conversion.
type fieldErrors validate.Errors

// check records err, if any, as a problem of field.
func (fe *fieldErrors) check(field string, err error) {
	if err != nil {
		*fe = append(*fe, validate.FieldError{Field: field, Message: err.Error()})
	}
}

// err returns the problems as validate.Errors, or nil (untyped) when there are none.
func (fe fieldErrors) err() error {
	if len(fe) == 0 {
		return nil
	}
	return validate.Errors(fe)
}
