package validate

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestGatewayAccessLimits checks recipient verification and rate limits,
// each field against its bounds, and the harvest guard's need of
// verification.
func TestGatewayAccessLimits(t *testing.T) {
	verifying := func(s *ospreyv1.SmtpIntegration) {
		s.Gateway.RecipientVerification = &ospreyv1.RecipientVerification{Enabled: true}
	}
	tests := []struct {
		name       string
		edit       func(s *ospreyv1.SmtpIntegration)
		wantFields []string
		wantText   string
	}{
		{name: "defaults", edit: verifying},
		{name: "verification in range", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.RecipientVerification = &ospreyv1.RecipientVerification{Enabled: true, PositiveTtlSeconds: 86400,
				PositiveRefreshSeconds: 3600, NegativeTtlSeconds: 60, ProbeTimeoutSeconds: 1, MaxProbesPerHost: 100}
		}},
		{name: "verification out of range", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.RecipientVerification = &ospreyv1.RecipientVerification{PositiveTtlSeconds: 59,
				NegativeTtlSeconds: 32 * 86400, ProbeTimeoutSeconds: 301, MaxProbesPerHost: 101}
		}, wantFields: []string{"gateway.recipient_verification.positive_ttl_seconds", "gateway.recipient_verification.negative_ttl_seconds",
			"gateway.recipient_verification.probe_timeout_seconds", "gateway.recipient_verification.max_probes_per_host"}},
		{name: "refresh after expiry", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.RecipientVerification = &ospreyv1.RecipientVerification{PositiveTtlSeconds: 3600}
		}, wantFields: []string{"gateway.recipient_verification.positive_refresh_seconds"}, wantText: "positive_ttl_seconds (3600)"},
		{name: "rate limits", edit: func(s *ospreyv1.SmtpIntegration) {
			verifying(s)
			s.Gateway.RateLimits = &ospreyv1.RateLimits{ConnectionsPerMinute: 60, MessagesPerMinute: 120, RecipientsPerMinute: 1000000,
				HarvestUnknownRecipients: 20, HarvestWindowSeconds: 10, HarvestBlockSeconds: 7 * 86400}
		}},
		{name: "rate limits out of range", edit: func(s *ospreyv1.SmtpIntegration) {
			verifying(s)
			s.Gateway.RateLimits = &ospreyv1.RateLimits{ConnectionsPerMinute: 1000001, MessagesPerMinute: 2000000, RecipientsPerMinute: 3000000,
				HarvestUnknownRecipients: 10001, HarvestWindowSeconds: 9, HarvestBlockSeconds: 8 * 86400}
		}, wantFields: []string{"gateway.rate_limits.connections_per_minute", "gateway.rate_limits.messages_per_minute",
			"gateway.rate_limits.recipients_per_minute", "gateway.rate_limits.harvest_unknown_recipients",
			"gateway.rate_limits.harvest_window_seconds", "gateway.rate_limits.harvest_block_seconds"}},
		{name: "harvest guard without verification", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Gateway.RateLimits = &ospreyv1.RateLimits{HarvestUnknownRecipients: 20}
		}, wantFields: []string{"gateway.rate_limits.harvest_unknown_recipients"}, wantText: "recipient_verification.enabled"},
		{name: "harvest guard kept in an outbound gateway", edit: func(s *ospreyv1.SmtpIntegration) {
			s.Mode = ospreyv1.SmtpMode_SMTP_MODE_OUTBOUND
			s.Gateway.RateLimits = &ospreyv1.RateLimits{HarvestUnknownRecipients: 20}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validGateway()
			tt.edit(s)
			err := SMTPIntegration(s)
			if diff := cmp.Diff(tt.wantFields, fields(t, err)); diff != "" {
				t.Fatalf("SMTPIntegration() = %v, fields mismatch (-want +got):\n%s", err, diff)
			}
			if tt.wantText != "" {
				if es, _ := AsErrors(err); !strings.Contains(es[0].Message, tt.wantText) {
					t.Errorf("message %q, want it to contain %q", es[0].Message, tt.wantText)
				}
			}
		})
	}
}

func TestGatewayAccessDefaults(t *testing.T) {
	got := RecipientVerification(&ospreyv1.RecipientVerification{Enabled: true, NegativeTtlSeconds: 600})
	want := &ospreyv1.RecipientVerification{Enabled: true, PositiveTtlSeconds: 31 * 86400, PositiveRefreshSeconds: 7 * 86400,
		NegativeTtlSeconds: 600, ProbeTimeoutSeconds: 30, MaxProbesPerHost: 4}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("RecipientVerification() mismatch (-want +got):\n%s", diff)
	}
	gotL := RateLimits(&ospreyv1.RateLimits{MessagesPerMinute: 10, HarvestUnknownRecipients: 5})
	wantL := &ospreyv1.RateLimits{MessagesPerMinute: 10, HarvestUnknownRecipients: 5, HarvestWindowSeconds: 300, HarvestBlockSeconds: 900}
	if diff := cmp.Diff(wantL, gotL, protocmp.Transform()); diff != "" {
		t.Errorf("RateLimits() mismatch (-want +got):\n%s", diff)
	}
}
