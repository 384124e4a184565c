package delivery

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/pkg/validate"
)

func TestApplyValidation(t *testing.T) {
	c := New(Options{Hostname: func() (string, error) { return "gw.osprey.test", nil }})
	good := Config{Routes: []Route{{Domain: "corp.test", Hosts: []Host{{Host: "10.0.0.5"}}}}}
	if err := c.Apply(good); err != nil {
		t.Fatal(err)
	}
	err := c.Apply(Config{
		HeloName:       "gw osprey",
		ConnectTimeout: -1,
		Routes: []Route{
			{Domain: "", Hosts: []Host{{Host: ""}}},
			{Domain: "*.corp.test"},
			{Domain: "Corp.Test."},
			{Domain: "corp.test", Hosts: []Host{
				{Host: "10.0.0.1", MX: true},
				{Host: "bad_host"},
				{Host: "mail.corp.test", Port: 2525},
				{Host: "MAIL.corp.test.", Port: 2525},
				{Host: "fe80::1%eth0"},
			}},
		},
		Default:    Route{Domain: "example.com"},
		RequireTLS: []string{"bank.test", "BANK.test", "[10.0.0.1]"},
	})
	es, ok := validate.AsErrors(err)
	if !ok {
		t.Fatalf("got %v, want validate.Errors", err)
	}
	var fields []string
	for _, e := range es {
		fields = append(fields, e.Field)
	}
	want := []string{
		"connect_timeout", "helo_name",
		"routes[0].domain", "routes[0].hosts[0].host",
		"routes[1].domain",
		"routes[3].domain", "routes[3].hosts[0].mx", "routes[3].hosts[1].host", "routes[3].hosts[3].host", "routes[3].hosts[4].host",
		"default.domain",
		"require_tls[1]", "require_tls[2]",
	}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s\n%v", diff, err)
	}
	// Nothing changed: the good configuration still routes.
	if got := c.Destination("a@corp.test"); got != "route:corp.test" {
		t.Errorf("after a refused Apply, Destination = %q, want route:corp.test", got)
	}

	bad := New(Options{Hostname: func() (string, error) { return "", errors.New("no name") }})
	if _, ok := validate.AsErrors(bad.Apply(Config{})); !ok {
		t.Errorf("Apply without a HeloName and without a host name: want a helo_name error")
	}
}

func TestDestination(t *testing.T) {
	c := New(Options{Hostname: func() (string, error) { return "gw.osprey.test", nil }})
	if got := c.Destination("a@Example.COM."); got != "example.com" {
		t.Errorf("before Apply: %q, want example.com", got)
	}
	if err := c.Apply(Config{
		Routes: []Route{
			{Domain: "corp.test", Hosts: []Host{{Host: "10.0.0.5"}}},
			{Domain: "lab.corp.test"},
		},
		Default:    Route{Hosts: []Host{{Host: "relay.isp.test"}}},
		RequireTLS: []string{"bank.test", "secure.corp.test"},
	}); err != nil {
		t.Fatal(err)
	}
	for rcpt, want := range map[string]string{
		"a@corp.test":          "route:corp.test",
		"a@x.corp.test":        "route:corp.test",
		"a@secure.corp.test":   "route:corp.test+tls",
		"a@lab.corp.test":      "lab.corp.test",
		"a@x.lab.corp.test":    "x.lab.corp.test",
		"a@example.com":        "relay",
		"a@bank.test":          "relay+tls",
		"a@[192.0.2.1]":        "relay",
		"a@bücher.example":     "relay",
		"postmaster":           "invalid:postmaster",
		"a@[IPv6:2001:db8::1]": "relay",
		"a@[IPv6:192.0.2.1]":   "invalid:a@[IPv6:192.0.2.1]",
		"a@[2001:db8::1]":      "invalid:a@[2001:db8::1]",
		"a@bad..domain":        "invalid:a@bad..domain",
	} {
		if got := c.Destination(rcpt); got != want {
			t.Errorf("Destination(%q) = %q, want %q", rcpt, got, want)
		}
	}
	if err := c.Apply(Config{HeloName: "gw.osprey.test"}); err != nil {
		t.Fatal(err)
	}
	for rcpt, want := range map[string]string{
		"a@[192.0.2.1]":        "[192.0.2.1]",
		"a@[IPv6:2001:db8::1]": "[2001:db8::1]",
		"a@bücher.example":     "xn--bcher-kva.example",
	} {
		if got := c.Destination(rcpt); got != want {
			t.Errorf("MX routing: Destination(%q) = %q, want %q", rcpt, got, want)
		}
	}
}

// TestMixedDestinations: a recipient whose destination is not the
// request's (the configuration changed after the queue grouped them) is
// left to its own delivery, not sent to another domain's next hop.
func TestMixedDestinations(t *testing.T) {
	port, _ := freePort(t) // nothing listens on 127.0.0.4
	c := New(Options{Hostname: func() (string, error) { return "gw.osprey.test", nil }})
	if err := c.Apply(Config{Routes: []Route{{Domain: "corp.test", Hosts: []Host{{Host: "127.0.0.4", Port: uint16(port)}}}}}); err != nil {
		t.Fatal(err)
	}
	r := c.Deliver(t.Context(), request("mixed", "a@corp.test", "b@other.test", "bad@@x"))
	if got := r.Rcpts[1]; got.Code != 451 || got.Enhanced != "4.3.5" || got.Rcpt != "b@other.test" {
		t.Errorf("other destination: got %v, want 451 4.3.5", got)
	}
	if got := r.Rcpts[2]; got.Code != 553 || got.Enhanced != "5.1.3" {
		t.Errorf("bad address: got %v, want 553 5.1.3", got)
	}
	if got := r.Rcpts[0]; got.Code != 451 || got.Enhanced != "4.4.1" || got.Rcpt != "a@corp.test" {
		t.Errorf("route host refusing connections: got %v, want 451 4.4.1", got)
	}
}
