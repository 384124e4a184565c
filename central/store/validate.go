package store

import (
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The store validates every message with package validate before writing
// it; these name the one function per message.

func validateTenant(m *ospreyv1.Tenant) error        { return validate.Tenant(m) }
func validateSensor(m *ospreyv1.Sensor) error        { return validate.Sensor(m) }
func validateSMTP(m *ospreyv1.SmtpIntegration) error { return validate.SMTPIntegration(m) }
func validatePOP3(m *ospreyv1.Pop3Integration) error { return validate.POP3Integration(m) }
func validateUser(m *ospreyv1.User) error            { return validate.User(m) }
func validateToken(m *ospreyv1.Token) error          { return validate.Token(m) }
func validateRule(m *ospreyv1.Rule) error            { return validate.Rule(m) }
func validateExport(m *ospreyv1.SyslogExport) error  { return validate.SyslogExport(m) }
func validatePolicy(m *ospreyv1.VerdictPolicy) error { return validate.Policy(m) }

// fieldError is a validation error the store finds itself: a rule that needs
// the stored state (a sensor cannot change tenant).
func fieldError(field, msg string) error {
	return validate.Errors{{Field: field, Message: msg}}
}
