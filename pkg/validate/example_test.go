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
	err := validate.User(&ospreyv1.User{Name: "alice", Role: ospreyv1.Role_ROLE_OFFICER, Tenants: []string{"acme", "Beta"}})
	fmt.Println(err)
	// Output:
	// tenants[1]: must be 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit
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

func ExampleRule() {
	err := validate.Rule(&ospreyv1.Rule{
		Kind:     ospreyv1.RuleKind_RULE_KIND_SHA1,
		Value:    "d41d8cd98f00b204e9800998ecf8427e",
		Severity: ospreyv1.Severity_SEVERITY_HIGH,
	})
	fmt.Println(err)
	// Output:
	// value: must be a SHA-1 digest: 40 hexadecimal digits
}

func ExampleCanonicalRuleValue() {
	for _, v := range []struct {
		kind  ospreyv1.RuleKind
		value string
	}{
		{ospreyv1.RuleKind_RULE_KIND_URL, "HTTPS://Login.Example.COM:443/Reset"},
		{ospreyv1.RuleKind_RULE_KIND_SENDER, "Billing@Bücher.de"},
		{ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, ".EXE"},
	} {
		c, err := validate.CanonicalRuleValue(v.kind, v.value)
		fmt.Println(c, err)
	}
	// Output:
	// https://login.example.com/Reset <nil>
	// billing@xn--bcher-kva.de <nil>
	// exe <nil>
}

func ExampleSyslogExport() {
	err := validate.SyslogExport(&ospreyv1.SyslogExport{Enabled: true, Address: "siem.example.com", Facility: 30})
	if errs, ok := validate.AsErrors(err); ok {
		for _, e := range errs {
			fmt.Printf("%s: %s\n", e.Field, e.Message)
		}
	}
	// Output:
	// address: must be host:port, such as siem.example.com:6514 or [2001:db8::1]:514
	// facility: must be 0 (the default, 13) to 23
}
