package acceptlist_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/ospreysec/osprey/pkg/acceptlist"
)

func ExampleImport() {
	file := "192.0.2.10, 2001:0DB8:0:0::/32; Mail.Example.COM\n" +
		"10.0.0.0/8\t!10.1.0.0/16\n"
	l, err := acceptlist.Import(strings.NewReader(file), nil)
	if err != nil {
		panic(err)
	}
	if err := acceptlist.Export(os.Stdout, l.Entries()); err != nil {
		panic(err)
	}
	// Output:
	// 10.0.0.0/8
	// !10.1.0.0/16
	// 192.0.2.10
	// 2001:db8::/32
	// mail.example.com
}

func ExampleImport_errors() {
	file := "192.0.2.10\n10.0.0.1/8, example..com\n!192.0.2.10\n"
	_, err := acceptlist.Import(strings.NewReader(file), nil)
	var errs *acceptlist.Errors
	if errors.As(err, &errs) {
		for _, e := range errs.Entries {
			fmt.Println(e)
		}
	}
	// Output:
	// line 2: "10.0.0.1/8": host bits set, did you mean 10.0.0.0/8
	// line 2: "example..com": not an IP address, CIDR prefix or domain: empty label
	// line 3: "!192.0.2.10": the same entry is both included and excluded: line 1 "192.0.2.10" says otherwise
}

func ExampleList_Edit() {
	l, err := acceptlist.Parse([]string{"192.0.2.10", "example.com"})
	if err != nil {
		panic(err)
	}
	// Edit an entry: remove the old form, add the new one.
	l, err = l.Edit([]string{"192.0.2.0/24"}, []string{"192.0.2.10"})
	if err != nil {
		panic(err)
	}
	fmt.Println(l.Entries())
	// Output:
	// [192.0.2.0/24 example.com]
}

func ExampleMatcher_Match() {
	m, err := acceptlist.Compile([]string{"10.0.0.0/8", "!10.1.0.0/16", "example.com"})
	if err != nil {
		panic(err)
	}
	for _, c := range []struct {
		addr  string
		names []string // forward-confirmed names, see ConfirmedNames
	}{
		{"10.2.0.1", nil},
		{"10.1.0.1", nil},
		{"192.0.2.25", []string{"mx1.example.com"}},
		{"192.0.2.26", []string{"mx1.example.net"}},
	} {
		fmt.Println(c.addr, m.Match(netip.MustParseAddr(c.addr), c.names))
	}
	// Output:
	// 10.2.0.1 true
	// 10.1.0.1 false
	// 192.0.2.25 true
	// 192.0.2.26 false
}
