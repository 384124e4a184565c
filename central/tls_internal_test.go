package central

import (
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHTTPCertHosts(t *testing.T) {
	ifAddrs := func() ([]net.Addr, error) {
		var out []net.Addr
		for _, c := range []string{"127.0.0.1/8", "192.0.2.10/24", "2001:db8::10/64", "fe80::1/64", "::1/128"} {
			ip, n, err := net.ParseCIDR(c)
			if err != nil {
				t.Fatal(err)
			}
			n.IP = ip
			out = append(out, n)
		}
		return out, nil
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	host = strings.ToLower(host)
	common := []string{"n1", "localhost", "127.0.0.1", "::1", host, "n1.nodes.osprey.example.com", "central.osprey.example.com"}
	tests := []struct {
		name    string
		opts    Options
		bound   []net.Addr
		want    []string
		wantNot []string
	}{
		{
			name:    "bound to one address",
			opts:    Options{HTTP: HTTPOptions{Addr: "10.0.0.1:8443"}, GRPC: GRPCOptions{Addr: "10.0.0.1:7443"}},
			bound:   []net.Addr{&net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 8443}},
			want:    []string{"10.0.0.1"},
			wantNot: []string{"192.0.2.10", "2001:db8::10"},
		},
		{
			name:    "wildcard: every interface's address",
			opts:    Options{HTTP: HTTPOptions{Addr: "0.0.0.0:8443"}, GRPC: GRPCOptions{Addr: "10.0.0.1:7443"}},
			bound:   []net.Addr{&net.TCPAddr{IP: net.IPv4zero, Port: 8443}},
			want:    []string{"10.0.0.1", "192.0.2.10", "2001:db8::10"},
			wantNot: []string{"fe80::1"},
		},
		{
			name:  "IPv6 wildcard",
			opts:  Options{HTTP: HTTPOptions{Addr: "[::]:8443"}},
			bound: []net.Addr{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8443}},
			want:  []string{"192.0.2.10", "2001:db8::10"},
		},
		{
			name: "a host name and an advertised address",
			opts: Options{HTTP: HTTPOptions{Addr: "Osprey-1.Example.com:8443"}, Gossip: GossipOptions{AdvertiseAddr: "203.0.113.7:7946"}},
			want: []string{"osprey-1.example.com", "203.0.113.7"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.NodeName, tt.opts.DNS.Zone = "n1", "osprey.example.com."
			got := httpCertHosts(tt.opts, tt.bound, ifAddrs)
			for _, w := range append(common, tt.want...) {
				if !slices.Contains(got, w) {
					t.Errorf("got %v, want %s among them", got, w)
				}
			}
			for _, w := range tt.wantNot {
				if slices.Contains(got, w) {
					t.Errorf("got %v, want no %s", got, w)
				}
			}
			sorted := slices.Clone(got)
			slices.Sort(sorted)
			if len(slices.Compact(sorted)) != len(got) {
				t.Errorf("got %v: a name twice", got)
			}
		})
	}
}

// TestSelfSignedCertRenewal: the self-signed pair is kept while it is
// whole, names every host and is far from its end; otherwise it is made
// anew.
func TestSelfSignedCertRenewal(t *testing.T) {
	hosts := []string{"n1", "127.0.0.2"}
	now := time.Now()
	leafOf := func(t *testing.T, der []byte) *x509.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name        string
		damage      func(t *testing.T, dir string)
		hosts       []string
		now         time.Time
		wantCreated bool
	}{
		{name: "same hosts", hosts: hosts, now: now},
		{name: "fewer hosts", hosts: hosts[:1], now: now},
		{name: "another address", hosts: []string{"n1", "127.0.0.3"}, now: now, wantCreated: true},
		{name: "near its end", hosts: hosts, now: now.Add(selfSignedValidity - selfSignedRenewBefore/2), wantCreated: true},
		{name: "a key that does not match", hosts: hosts, now: now, wantCreated: true, damage: func(t *testing.T, dir string) {
			other, _, err := selfSignedCert(t.TempDir(), "other", hosts, now)
			if err != nil {
				t.Fatal(err)
			}
			pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Certificate[0]})
			if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pemBytes, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a certificate cut short", hosts: hosts, now: now, wantCreated: true, damage: func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, "cert.pem"), 100); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "http-tls")
			first, created, err := selfSignedCert(dir, "n1", hosts, now)
			if err != nil || !created {
				t.Fatalf("first: created %v, %v; want a new pair", created, err)
			}
			if !covers(leafOf(t, first.Certificate[0]), hosts) {
				t.Fatalf("the new certificate does not cover %v", hosts)
			}
			if info, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || info.Mode().Perm() != 0o600 {
				t.Errorf("key.pem: %v, %v; want mode 0600", info, err)
			}
			if tt.damage != nil {
				tt.damage(t, dir)
			}
			got, created, err := selfSignedCert(dir, "n1", tt.hosts, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if created != tt.wantCreated {
				t.Errorf("created %v, want %v", created, tt.wantCreated)
			}
			leaf := leafOf(t, got.Certificate[0])
			if !covers(leaf, tt.hosts) {
				t.Errorf("certificate names %v %v, want %v covered", leaf.DNSNames, leaf.IPAddresses, tt.hosts)
			}
			if kept := string(got.Certificate[0]) == string(first.Certificate[0]); kept == tt.wantCreated {
				t.Errorf("kept the first certificate: %v, want %v", kept, !tt.wantCreated)
			}
			again, created, err := selfSignedCert(dir, "n1", tt.hosts, time.Now())
			if err != nil || created || string(again.Certificate[0]) != string(got.Certificate[0]) {
				t.Errorf("next start: created %v, %v; want the pair on disk kept", created, err)
			}
		})
	}
}
