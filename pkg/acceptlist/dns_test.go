package acceptlist

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/internal/dnstest"
)

// resolverOf is a Go resolver that asks only srv.
func resolverOf(srv *dnstest.Server) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, srv.Addr)
	}}
}

func TestConfirmedNames(t *testing.T) {
	srv := dnstest.New(t)
	srv.MustAdd(t,
		// 192.0.2.1: its name resolves back to it.
		"1.2.0.192.in-addr.arpa. 300 IN PTR mail.example.com.",
		"mail.example.com. 300 IN A 192.0.2.1",
		// 192.0.2.2: claims a name that does not resolve to it.
		"2.2.0.192.in-addr.arpa. 300 IN PTR mx.example.com.",
		"mx.example.com. 300 IN A 192.0.2.99",
		// 192.0.2.3: two names, the second confirmed.
		"3.2.0.192.in-addr.arpa. 300 IN PTR gone.example.com.",
		"3.2.0.192.in-addr.arpa. 300 IN PTR relay.example.org.",
		"relay.example.org. 300 IN A 192.0.2.3",
		// 2001:db8::25
		"5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR v6.example.com.",
		"v6.example.com. 300 IN AAAA 2001:db8::25",
		// 192.0.2.5: its name's server fails.
		"5.2.0.192.in-addr.arpa. 300 IN PTR broken.example.net.",
	)
	srv.ServFail("broken.example.net", true)
	srv.ServFail("6.2.0.192.in-addr.arpa", true)
	r := resolverOf(srv)
	tests := []struct {
		addr    string
		want    []string
		wantErr bool
	}{
		{addr: "192.0.2.1", want: []string{"mail.example.com"}},
		{addr: "::ffff:192.0.2.1", want: []string{"mail.example.com"}},
		{addr: "192.0.2.2"},
		{addr: "192.0.2.3", want: []string{"relay.example.org"}},
		{addr: "2001:db8::25", want: []string{"v6.example.com"}},
		{addr: "192.0.2.4"}, // no PTR record: no name, no error
		{addr: "192.0.2.5", wantErr: true},
		{addr: "192.0.2.6", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			got, err := ConfirmedNames(t.Context(), r, netip.MustParseAddr(tt.addr), nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ConfirmedNames(%s) error %v, want error %t", tt.addr, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
		})
	}

	// A name no list could match is not looked up forward.
	m, err := Compile([]string{"example.org"})
	if err != nil {
		t.Fatal(err)
	}
	before := srv.Queries("A", "mail.example.com")
	names, err := ConfirmedNames(t.Context(), r, netip.MustParseAddr("192.0.2.1"), m.MatchName)
	if err != nil || len(names) != 0 {
		t.Errorf("got %q, %v; want no name", names, err)
	}
	if n := srv.Queries("A", "mail.example.com"); n != before {
		t.Errorf("mail.example.com was looked up %d times, want 0", n-before)
	}
	names, err = ConfirmedNames(t.Context(), r, netip.MustParseAddr("192.0.2.3"), m.MatchName)
	if err != nil || !m.Match(netip.MustParseAddr("192.0.2.3"), names) {
		t.Errorf("192.0.2.3 (relay.example.org): names %q, %v; want a match of example.org", names, err)
	}
}
