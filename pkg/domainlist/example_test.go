package domainlist_test

import (
	"errors"
	"fmt"

	"github.com/ospreysec/osprey/pkg/domainlist"
)

func ExampleParse() {
	l, err := domainlist.Parse([]string{"example.com", "!hr.example.com", "it.hr.example.com"})
	if err != nil {
		panic(err)
	}
	for _, d := range []string{"mail.example.com", "hr.example.com", "x.it.hr.example.com", "example.org"} {
		fmt.Println(d, l.Match(d))
	}
	// Output:
	// mail.example.com true
	// hr.example.com false
	// x.it.hr.example.com true
	// example.org false
}

func ExampleParse_errors() {
	_, err := domainlist.Parse([]string{"example.com", "*.example.org", "EXAMPLE.COM."})
	var errs domainlist.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Printf("destination_domains[%d]: %v\n", e.Index, e.Err)
		}
	}
	// Output:
	// destination_domains[1]: wildcards are not supported: a domain already covers its subdomains
	// destination_domains[2]: duplicate domain: same as entry 0 "example.com"
}

func ExampleNormalize() {
	d, err := domainlist.Normalize("Bücher.DE.")
	fmt.Println(d, err)
	// Output:
	// xn--bcher-kva.de <nil>
}

func ExampleRecipientDomain() {
	l, err := domainlist.Parse([]string{"example.com"})
	if err != nil {
		panic(err)
	}
	for _, rcpt := range []string{"<User@Mail.Example.COM.>", "user%victim.example@example.com", "@relay:user@example.com"} {
		d, err := domainlist.RecipientDomain(rcpt)
		if err != nil {
			fmt.Printf("%s: rejected: %v\n", rcpt, err)
			continue
		}
		fmt.Printf("%s: %s in scope %t\n", rcpt, d, l.Match(d))
	}
	// Output:
	// <User@Mail.Example.COM.>: mail.example.com in scope true
	// user%victim.example@example.com: rejected: '%' and '!' are not accepted in the local part
	// @relay:user@example.com: rejected: source routes are not accepted
}
