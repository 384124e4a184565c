package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// issue signs tmpl with ca directly, bypassing SignClient, to make the
// certificates SignClient never would.
func issue(t *testing.T, ca *CA, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	serial, err := newSerial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	if tmpl.NotAfter.IsZero() {
		tmpl.NotBefore = testNow.Add(-time.Hour)
		tmpl.NotAfter = testNow.Add(time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return parseCert(t, der)
}

func TestIdentityFromCert(t *testing.T) {
	ca := newTestCA(t)
	uris := func(ss ...string) []*url.URL {
		var out []*url.URL
		for _, s := range ss {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, u)
		}
		return out
	}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tests := []struct {
		name    string
		cn      string
		uris    []*url.URL
		eku     []x509.ExtKeyUsage
		isCA    bool
		want    Identity
		wantErr string
	}{
		{name: "valid", cn: "s1", uris: uris("osprey://sensor/default/s1"), eku: client, want: Identity{Tenant: "default", SensorID: "s1"}},
		{name: "dots and dashes", cn: "a.b-c_d", uris: uris("osprey://sensor/T_1/a.b-c_d"), eku: client, want: Identity{Tenant: "T_1", SensorID: "a.b-c_d"}},
		{name: "no URI", cn: "s1", eku: client, wantErr: "0 URI SANs"},
		{name: "two URIs", cn: "s1", uris: uris("osprey://sensor/default/s1", "osprey://sensor/other/s1"), eku: client, wantErr: "2 URI SANs"},
		{name: "URI plus spiffe", cn: "s1", uris: uris("osprey://sensor/default/s1", "spiffe://x/y"), eku: client, wantErr: "2 URI SANs"},
		{name: "other scheme", cn: "s1", uris: uris("https://sensor/default/s1"), eku: client, wantErr: "does not start with"},
		{name: "other host", cn: "s1", uris: uris("osprey://central/default/s1"), eku: client, wantErr: "does not start with"},
		{name: "port", cn: "s1", uris: uris("osprey://sensor:1/default/s1"), eku: client, wantErr: "does not start with"},
		{name: "user info", cn: "s1", uris: uris("osprey://x@sensor/default/s1"), eku: client, wantErr: "does not start with"},
		{name: "no sensor id", cn: "", uris: uris("osprey://sensor/default"), eku: client, wantErr: "want osprey://sensor/<tenant>/<sensor-id>"},
		{name: "empty sensor id", cn: "", uris: uris("osprey://sensor/default/"), eku: client, wantErr: "sensor id is empty"},
		{name: "empty tenant", cn: "s1", uris: uris("osprey://sensor//s1"), eku: client, wantErr: "tenant is empty"},
		{name: "extra segment", cn: "s1", uris: uris("osprey://sensor/default/s1/x"), eku: client, wantErr: "not a letter"},
		{name: "escaped slash", cn: "s1", uris: uris("osprey://sensor/default%2Fx/s1"), eku: client, wantErr: "not a letter"},
		{name: "query", cn: "s1", uris: uris("osprey://sensor/default/s1?tenant=other"), eku: client, wantErr: "not a letter"},
		{name: "fragment", cn: "s1", uris: uris("osprey://sensor/default/s1#x"), eku: client, wantErr: "not a letter"},
		{name: "dot-dot", cn: "..", uris: uris("osprey://sensor/default/.."), eku: client, wantErr: "must start with a letter or a digit"},
		{name: "common name differs", cn: "s2", uris: uris("osprey://sensor/default/s1"), eku: client, wantErr: "is not its sensor id"},
		{name: "server certificate", cn: "s1", uris: uris("osprey://sensor/default/s1"), eku: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, wantErr: "client authentication"},
		{name: "no EKU", cn: "s1", uris: uris("osprey://sensor/default/s1"), wantErr: "client authentication"},
		{name: "CA", cn: "s1", uris: uris("osprey://sensor/default/s1"), eku: client, isCA: true, wantErr: "is a CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := issue(t, ca, &x509.Certificate{
				Subject:               pkix.Name{CommonName: tt.cn},
				URIs:                  tt.uris,
				ExtKeyUsage:           tt.eku,
				BasicConstraintsValid: true,
				IsCA:                  tt.isCA,
			})
			got, err := IdentityFromCert(cert)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("IdentityFromCert: %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("identity (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("IdentityFromCert: got %v, want an error containing %q", got, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("IdentityFromCert: got error %q, want it to contain %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrNoIdentity) {
				t.Errorf("IdentityFromCert: got error %v, want one matching ErrNoIdentity", err)
			}
		})
	}
}

func TestIdentityValidate(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		name string
		id   Identity
		want []string // substrings of the error, all of them; none for a valid id
	}{
		{name: "valid", id: Identity{Tenant: "default", SensorID: "0f3a"}},
		{name: "63 characters", id: Identity{Tenant: long[:63], SensorID: "x"}},
		{name: "both empty", id: Identity{}, want: []string{"tenant is empty", "sensor id is empty"}},
		{name: "too long", id: Identity{Tenant: long, SensorID: "x"}, want: []string{"tenant has 64 characters"}},
		{name: "leading dash", id: Identity{Tenant: "t", SensorID: "-x"}, want: []string{"must start"}},
		{name: "space", id: Identity{Tenant: "a b", SensorID: "x"}, want: []string{"character 2"}},
		{name: "non-ASCII", id: Identity{Tenant: "t", SensorID: "é"}, want: []string{"must start"}},
		{name: "colon", id: Identity{Tenant: "t", SensorID: "a:b"}, want: []string{"character 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.id.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("Validate: got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: got nil, want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func FuzzIdentityURI(f *testing.F) {
	f.Add("osprey://sensor/default/s1")
	f.Add("osprey://sensor/a.b/c-d_e")
	f.Add("osprey://sensor//")
	f.Add("osprey://sensor/default/s1/x")
	f.Add("osprey://sensor/default%2Fx/s1")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseIdentityURI(s)
		if err != nil {
			return
		}
		if err := id.Validate(); err != nil {
			t.Fatalf("parseIdentityURI(%q) = %+v, which does not validate: %v", s, id, err)
		}
		if got := id.String(); got != s {
			t.Fatalf("parseIdentityURI(%q).String() = %q: a second spelling of one identity", s, got)
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", s, err)
		}
		if got := u.String(); got != s {
			t.Fatalf("url.Parse(%q).String() = %q: the SAN would not read back", s, got)
		}
	})
}

// A link certificate (an SCN's) and a sensor's are issued by the same CA; a
// server that reads the identity of one kind must refuse the other.
func TestServerAndSensorIdentitiesDoNotMix(t *testing.T) {
	ca := newTestCA(t)
	_, csr := newTestCSR(t, nil)
	linkDER, err := ca.SignServerLink(csr, "branch-1", time.Hour, testNow)
	if err != nil {
		t.Fatalf("SignServerLink: %v", err)
	}
	sensorDER, err := ca.SignClient(csr, Identity{Tenant: "default", SensorID: "branch-1"}, time.Hour, testNow)
	if err != nil {
		t.Fatalf("SignClient: %v", err)
	}
	link, sensor := parseCert(t, linkDER), parseCert(t, sensorDER)

	id, err := ServerIDFromCert(link)
	if err != nil || id != "branch-1" {
		t.Fatalf("ServerIDFromCert(link) = %q, %v; want branch-1", id, err)
	}
	if got, err := IdentityFromCert(link); !errors.Is(err, ErrNoIdentity) {
		t.Errorf("IdentityFromCert(link) = %v, %v; want ErrNoIdentity", got, err)
	}
	if got, err := ServerIDFromCert(sensor); !errors.Is(err, ErrNoServerIdentity) {
		t.Errorf("ServerIDFromCert(sensor) = %q, %v; want ErrNoServerIdentity", got, err)
	}
	if got := link.URIs[0].String(); got != "osprey://server/branch-1" {
		t.Errorf("link URI = %q, want osprey://server/branch-1", got)
	}
}

func TestServerIDFromCertRefuses(t *testing.T) {
	ca := newTestCA(t)
	uri := func(s string) []*url.URL {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return []*url.URL{u}
	}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	tests := []struct {
		name string
		tmpl *x509.Certificate
	}{
		{"no URI", &x509.Certificate{Subject: pkix.Name{CommonName: "a"}, ExtKeyUsage: client}},
		{"server auth only", &x509.Certificate{Subject: pkix.Name{CommonName: "a"}, URIs: uri("osprey://server/a"), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}},
		{"common name differs", &x509.Certificate{Subject: pkix.Name{CommonName: "b"}, URIs: uri("osprey://server/a"), ExtKeyUsage: client}},
		{"bad id", &x509.Certificate{Subject: pkix.Name{CommonName: "a/b"}, URIs: uri("osprey://server/a/b"), ExtKeyUsage: client}},
		{"sensor URI", &x509.Certificate{Subject: pkix.Name{CommonName: "a"}, URIs: uri("osprey://sensor/t/a"), ExtKeyUsage: client}},
		{"two URIs", &x509.Certificate{Subject: pkix.Name{CommonName: "a"}, URIs: append(uri("osprey://server/a"), uri("osprey://server/b")...), ExtKeyUsage: client}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if id, err := ServerIDFromCert(issue(t, ca, tt.tmpl)); !errors.Is(err, ErrNoServerIdentity) {
				t.Errorf("ServerIDFromCert = %q, %v; want ErrNoServerIdentity", id, err)
			}
		})
	}
}

func FuzzServerURI(f *testing.F) {
	f.Add("osprey://server/branch-1")
	f.Add("osprey://server/")
	f.Add("osprey://server/a/b")
	f.Add("osprey://sensor/default/s1")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseServerURI(s)
		if err != nil {
			return
		}
		if _, err := parseIdentityURI(s); err == nil {
			t.Fatalf("%q reads as a server's and a sensor's identity", s)
		}
		if got := ServerIdentity(id); got != s {
			t.Fatalf("parseServerURI(%q) = %q, whose URI is %q: a second spelling of one identity", s, id, got)
		}
		u, err := url.Parse(s)
		if err != nil || u.String() != s {
			t.Fatalf("url.Parse(%q) = %v, %v: the SAN would not read back", s, u, err)
		}
	})
}
