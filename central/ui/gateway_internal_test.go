package ui

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/api"
)

func TestParseLocalDomains(t *testing.T) {
	text := "# internal mail servers\n" +
		"example.com  10.0.0.10:25 pref=10  10.0.0.11 pref=20\n" +
		"\n" +
		"example.org  mx.example.org mx  require_tls\n" +
		"example.net\n" +
		"v6.example  [2001:db8::25]:2525 pref=5  2001:db8::26\n"
	got, lines, errs := parseLocalDomains(text)
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := []api.LocalDomain{
		{Domain: "example.com", Hosts: []api.NextHop{{Host: "10.0.0.10", Port: 25, Preference: 10}, {Host: "10.0.0.11", Preference: 20}}},
		{Domain: "example.org", Hosts: []api.NextHop{{Host: "mx.example.org", MXLookup: true}}, RequireTLS: true},
		{Domain: "example.net", Hosts: []api.NextHop{}},
		{Domain: "v6.example", Hosts: []api.NextHop{{Host: "2001:db8::25", Port: 2525, Preference: 5}, {Host: "2001:db8::26"}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("domains (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{2, 4, 5, 6}, lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	formatted, _ := formatLocalDomains(got)
	wantText := "example.com  10.0.0.10:25 pref=10  10.0.0.11 pref=20\n" +
		"example.org  mx.example.org mx  require_tls\n" +
		"example.net\n" +
		"v6.example  [2001:db8::25]:2525 pref=5  2001:db8::26"
	if formatted != wantText {
		t.Errorf("formatted:\n%s\nwant:\n%s", formatted, wantText)
	}
}

func TestRouteListErrors(t *testing.T) {
	tests := []struct {
		name, domains, relays string
		want                  []string
	}{
		{name: "option before a host", domains: "example.com pref=10 10.0.0.1", want: []string{`line 1: "pref=10" must follow a host`}},
		{name: "mx before a host", relays: "\n mx", want: []string{`line 2: "mx" must follow a host`}},
		{name: "bad preference", domains: "a.example\nexample.com 10.0.0.1 pref=high", want: []string{`line 2: "pref=high": the preference must be a whole number`}},
		{name: "unknown option", relays: "relay.example weight=3", want: []string{`line 1: unknown option "weight=3"; want pref=N or mx after a host`}},
		{name: "bad port", domains: "example.com 10.0.0.1:smtp", want: []string{`line 1: "10.0.0.1:smtp": want host, host:port or [IPv6]:port`}},
		{name: "require_tls among relay hosts", relays: "relay.example require_tls", want: []string{"line 1: require_tls belongs to a local domain"}},
		{name: "every line's error", domains: "a.example :25\nb.example x=1", want: []string{
			`line 1: ":25": want host, host:port or [IPv6]:port`, `line 2: unknown option "x=1"; want pref=N or mx after a host`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, derrs := parseLocalDomains(tt.domains)
			_, _, rerrs := parseRelayHosts(tt.relays)
			var got []string
			for _, e := range append(derrs, rerrs...) {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// A validation error of a route is given to its text field, naming its line.
func TestRouteErrorsNameTheirLine(t *testing.T) {
	var f gatewayForm
	_, f.domainLines, _ = parseLocalDomains("# comment\nexample.com 10.0.0.1\n\n!bad.example 10.0.0.2 10.0.0.3:70000")
	_, f.relayLines, _ = parseRelayHosts("a.example b.example\nc.example")
	got := f.lineErrors([]fieldError{
		{Field: "gateway.local_domains[1].domain", Message: "must be a domain name"},
		{Field: "gateway.local_domains[1].hosts[1].port", Message: "must be 1 to 65535 (0 for 25)"},
		{Field: "gateway.local_domains", Message: "at most 10000 domains"},
		{Field: "gateway.relay_hosts[2].host", Message: "not a host name"},
		{Field: "gateway.relay_hosts[7].host", Message: "not a host name"},
		{Field: "gateway.helo_name", Message: "must be a host name"},
	})
	want := []fieldError{
		{Field: "gateway.local_domains", Message: "line 4: domain: must be a domain name"},
		{Field: "gateway.local_domains", Message: "line 4, host 2: port: must be 1 to 65535 (0 for 25)"},
		{Field: "gateway.local_domains", Message: "at most 10000 domains"},
		{Field: "gateway.relay_hosts", Message: "line 2: host: not a host name"},
		{Field: "gateway.relay_hosts", Message: "entry 8: host: not a host name"},
		{Field: "gateway.helo_name", Message: "must be a host name"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// FuzzRouteLists: the parsers never panic; what they read, written back and
// read again, is the same.
func FuzzRouteLists(f *testing.F) {
	for _, s := range []string{
		"example.com  10.0.0.10:25 pref=10  10.0.0.11 pref=20\nexample.org mx.example.org mx require_tls",
		"[2001:db8::1]:25 pref=1\n2001:db8::2",
		"a pref=1 mx\n# c\n\n b:0",
		"x [::1]: pref=99999999999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		domains, lines, _ := parseLocalDomains(text)
		if len(lines) != len(domains) {
			t.Fatalf("%d lines for %d domains", len(lines), len(domains))
		}
		formatted, _ := formatLocalDomains(domains)
		again, _, errs := parseLocalDomains(formatted)
		if len(errs) > 0 || !cmp.Equal(domains, again) && len(domains) > 0 {
			t.Fatalf("domains %v written as %q read back as %v, %v", domains, formatted, again, errs)
		}
		hops, hopLines, _ := parseRelayHosts(text)
		if len(hopLines) != len(hops) {
			t.Fatalf("%d lines for %d hosts", len(hopLines), len(hops))
		}
		var w []string
		for _, h := range hops {
			w = append(w, formatNextHop(h))
		}
		back, _, errs := parseRelayHosts(strings.Join(w, "\n"))
		if len(errs) > 0 || len(hops) > 0 && !cmp.Equal(hops, back) {
			t.Fatalf("hosts %v written as %q read back as %v, %v", hops, w, back, errs)
		}
	})
}
