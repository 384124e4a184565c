package validate_test

import (
	"fmt"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func ExampleRecipientVerification() {
	v := validate.RecipientVerification(&ospreyv1.RecipientVerification{Enabled: true, NegativeTtlSeconds: 3600})
	fmt.Println(v.GetPositiveTtlSeconds(), v.GetPositiveRefreshSeconds(), v.GetNegativeTtlSeconds(), v.GetProbeTimeoutSeconds(), v.GetMaxProbesPerHost())
	// Output:
	// 2678400 604800 3600 30 4
}

func ExampleRateLimits() {
	l := validate.RateLimits(&ospreyv1.RateLimits{RecipientsPerMinute: 600, HarvestUnknownRecipients: 20})
	fmt.Println(l.GetConnectionsPerMinute(), l.GetRecipientsPerMinute(), l.GetHarvestUnknownRecipients(), l.GetHarvestWindowSeconds(), l.GetHarvestBlockSeconds())
	// Output:
	// 0 600 20 300 900
}
