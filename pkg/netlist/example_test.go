package netlist_test

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/ospreysec/osprey/pkg/netlist"
)

func ExampleParse() {
	l, err := netlist.Parse([]string{"10.0.0.0/8", "!10.0.0.5", "2001:db8::/32"})
	if err != nil {
		panic(err)
	}
	for _, a := range []string{"10.1.2.3", "10.0.0.5", "::ffff:10.1.2.3", "192.0.2.1"} {
		fmt.Println(a, l.Contains(netip.MustParseAddr(a)))
	}
	// Output:
	// 10.1.2.3 true
	// 10.0.0.5 false
	// ::ffff:10.1.2.3 true
	// 192.0.2.1 false
}

func ExampleParse_errors() {
	_, err := netlist.Parse([]string{"10.0.0.1/8", "192.0.2.1", "fe80::1%eth0"})
	var errs netlist.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Printf("clients[%d]: %v\n", e.Index, e.Err)
		}
	}
	// Output:
	// clients[0]: host bits set, did you mean 10.0.0.0/8
	// clients[2]: IPv6 zones are not allowed
}

func ExampleList_WithDefault() {
	// A list of exclusions only: the blank inclusion means "the sensor's own
	// subnets", here one made-up subnet.
	l, err := netlist.Parse([]string{"!192.0.2.5"})
	if err != nil {
		panic(err)
	}
	own := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	eff := l.WithDefault(own)
	fmt.Println(eff)
	fmt.Println(eff.Contains(netip.MustParseAddr("192.0.2.4")), eff.Contains(netip.MustParseAddr("192.0.2.5")))
	// Output:
	// 192.0.2.0/24, !192.0.2.5
	// true false
}
