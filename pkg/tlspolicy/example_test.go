package tlspolicy_test

import (
	"fmt"

	"github.com/ospreysec/osprey/pkg/tlspolicy"
)

func ExampleParseCertificatePolicy() {
	p, err := tlspolicy.ParseCertificatePolicy("accept_self_signed")
	fmt.Println(p, err)
	name, _ := tlspolicy.CertificatePolicyName(p)
	fmt.Println(name)
	_, err = tlspolicy.ParseCertificatePolicy("yes")
	fmt.Println(err)
	// Output:
	// TLS_CERTIFICATE_POLICY_ACCEPT_SELF_SIGNED <nil>
	// accept_self_signed
	// "yes": unknown TLS certificate policy, want accept_any, accept_self_signed or trusted_only
}
