package validate_test

import (
	"fmt"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func ExampleSMTPIntegration() {
	err := validate.SMTPIntegration(&ospreyv1.SmtpIntegration{
		Enabled:            true,
		Listen:             "0.0.0.0:25",
		DestinationDomains: []string{"example.com", "*.example.org"},
		Clients:            []string{"10.0.0.1/8"},
		MaxMessageSize:     &ospreyv1.SizeLimit{Value: 25},
	})
	if errs, ok := validate.AsErrors(err); ok {
		for _, e := range errs {
			fmt.Printf("%s: %s\n", e.Field, e.Message)
		}
	}
	// Output:
	// destination_domains[1]: wildcards are not supported: a domain already covers its subdomains
	// clients[0]: host bits set, did you mean 10.0.0.0/8
	// max_message_size.unit: required: KB, MB or GB
}

func ExampleUser() {
	err := validate.User(&ospreyv1.User{Name: "alice", Role: ospreyv1.Role_ROLE_TENANT_ADMIN})
	fmt.Println(err)
	// Output:
	// tenant: required for a tenant_admin
}

func ExampleErrors_Prefix() {
	err := validate.POP3Integration(&ospreyv1.Pop3Integration{Enabled: true, Server: "mail.example.com", Port: 995, IntervalSeconds: 5, Username: "journal"})
	errs, _ := validate.AsErrors(err)
	fmt.Println(errs.Prefix("pop3"))
	// Output:
	// pop3.interval_seconds: must be 10 to 86400
}

func ExampleSMTPLimits() {
	l := validate.SMTPLimits(&ospreyv1.SmtpLimits{MaxRecipients: 500})
	fmt.Println(l.GetMaxRecipients(), l.GetMaxConnections(), l.GetCommandTimeoutSeconds())
	// Output:
	// 500 200 300
}
