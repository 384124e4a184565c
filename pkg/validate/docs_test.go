package validate_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestConfigurationReferenceMatchesTheCode keeps docs/configuration.md honest:
// every field of the integrations is documented by its full path, and every
// default the code applies is the one the page states.
func TestConfigurationReferenceMatchesTheCode(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, m := range []protoreflect.Message{
		(&ospreyv1.SmtpIntegration{}).ProtoReflect(),
		(&ospreyv1.Pop3Integration{}).ProtoReflect(),
		(&ospreyv1.Rule{}).ProtoReflect(),
		(&ospreyv1.SyslogExport{}).ProtoReflect(),
		(&ospreyv1.VerdictPolicy{}).ProtoReflect(),
	} {
		for _, path := range fieldPaths(m.Descriptor(), "") {
			if !strings.Contains(doc, "| `"+path+"` |") {
				t.Errorf("docs/configuration.md has no row for %s.%s", m.Descriptor().Name(), path)
			}
		}
	}
	for field, def := range map[string]int{
		"limits.max_recipients":                                   validate.DefaultMaxRecipients,
		"limits.max_connections":                                  validate.DefaultMaxConnections,
		"limits.max_connections_per_client":                       validate.DefaultMaxConnectionsPerClient,
		"limits.command_timeout_seconds":                          validate.DefaultCommandTimeoutSeconds,
		"limits.data_timeout_seconds":                             validate.DefaultDataTimeoutSeconds,
		"limits.session_timeout_seconds":                          validate.DefaultSessionTimeoutSeconds,
		"limits.max_errors":                                       validate.DefaultMaxErrors,
		"gateway.hold_timeout_seconds":                            validate.DefaultHoldTimeoutSeconds,
		"gateway.queue.min_backoff_seconds":                       validate.DefaultMinBackoffSeconds,
		"gateway.queue.max_backoff_seconds":                       validate.DefaultMaxBackoffSeconds,
		"gateway.queue.max_lifetime_seconds":                      validate.DefaultMaxLifetimeSeconds,
		"gateway.queue.delay_warning_seconds":                     validate.DefaultDelayWarningSeconds,
		"gateway.queue.destination_concurrency":                   validate.DefaultDestinationConcurrency,
		"gateway.queue.concurrency":                               validate.DefaultConcurrency,
		"gateway.sender_auth.lookup_timeout_ms":                   validate.DefaultSenderAuthLookupTimeoutMs,
		"gateway.sender_auth.check_timeout_ms":                    validate.DefaultSenderAuthCheckTimeoutMs,
		"gateway.submission.max_failures_per_client":              validate.DefaultMaxAuthFailuresPerClient,
		"gateway.submission.max_failures_per_user":                validate.DefaultMaxAuthFailuresPerUser,
		"gateway.submission.failure_window_seconds":               validate.DefaultAuthFailureWindowSeconds,
		"gateway.submission.cache_seconds":                        validate.DefaultAuthCacheSeconds,
		"gateway.submission.ldap.timeout_ms":                      validate.DefaultLDAPTimeoutMs,
		"gateway.submission.smtp_forward.timeout_ms":              validate.DefaultSMTPForwardTimeoutMs,
		"gateway.recipient_verification.positive_ttl_seconds":     validate.DefaultVerifyPositiveTTLSeconds,
		"gateway.recipient_verification.positive_refresh_seconds": validate.DefaultVerifyPositiveRefreshSeconds,
		"gateway.recipient_verification.negative_ttl_seconds":     validate.DefaultVerifyNegativeTTLSeconds,
		"gateway.recipient_verification.probe_timeout_seconds":    validate.DefaultVerifyProbeTimeoutSeconds,
		"gateway.recipient_verification.max_probes_per_host":      validate.DefaultVerifyMaxProbesPerHost,
		"gateway.rate_limits.harvest_window_seconds":              validate.DefaultHarvestWindowSeconds,
		"gateway.rate_limits.harvest_block_seconds":               validate.DefaultHarvestBlockSeconds,
	} {
		if row := fmt.Sprintf("| `%s` | integer | %d |", field, def); !strings.Contains(doc, row) {
			t.Errorf("docs/configuration.md: want the row %q", row)
		}
	}
	for _, row := range []string{
		fmt.Sprintf("| `facility` | integer | %d |", validate.DefaultSyslogFacility),
		fmt.Sprintf("| `app_name` | string | `%s` |", validate.DefaultSyslogAppName),
		fmt.Sprintf("1 to %d printable US-ASCII", validate.MaxSyslogAppNameBytes),
		fmt.Sprintf("at most %d bytes, no control characters, no leading", validate.MaxRuleValueBytes),
		fmt.Sprintf("At most %d bytes, no control characters. |", validate.MaxRuleDescriptionBytes),
	} {
		if !strings.Contains(doc, row) {
			t.Errorf("docs/configuration.md: want the text %q", row)
		}
	}
	for kind := range ospreyv1.RuleKind_value {
		name := strings.ToLower(strings.TrimPrefix(kind, "RULE_KIND_"))
		if name != "unspecified" && !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("docs/configuration.md does not document the rule kind %s", name)
		}
	}
	if want := fmt.Sprintf("%d–%d", validate.MinPOP3IntervalSeconds, validate.MaxPOP3IntervalSeconds); !strings.Contains(doc, want) {
		t.Errorf("docs/configuration.md does not state the POP3 interval bounds %s", want)
	}
}

// fieldPaths lists the leaf fields of md as dotted JSON paths.
func fieldPaths(md protoreflect.MessageDescriptor, prefix string) []string {
	var out []string
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		path := prefix + string(f.Name())
		if f.Kind() == protoreflect.MessageKind && !f.IsList() && f.Message().FullName() != "google.protobuf.Timestamp" {
			out = append(out, fieldPaths(f.Message(), path+".")...)
			continue
		}
		out = append(out, path)
	}
	return out
}
