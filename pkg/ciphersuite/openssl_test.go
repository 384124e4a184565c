package ciphersuite

import (
	"crypto/tls"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGoSuitesInTable(t *testing.T) {
	all := append(tls.CipherSuites(), tls.InsecureCipherSuites()...)
	for _, cs := range all {
		if slices.Equal(cs.SupportedVersions, []uint16{tls.VersionTLS13}) {
			continue
		}
		if Name(cs.ID) == "" {
			t.Errorf("Go suite %s has no entry in the table", cs.Name)
		}
	}
	for name, tm := range names {
		if tm.suite != 0 && table[tm.suite-1].name != name && table[tm.suite-1].std != name && aliases[name] == "" {
			t.Errorf("name %q points at suite %s", name, table[tm.suite-1].name)
		}
	}
}

// openssl runs `openssl ciphers` and returns the TLS 1.2 and older suites
// it prints, or skips the test when there is no openssl to ask.
func openssl(t *testing.T, args ...string) []string {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("no openssl binary")
	}
	out, err := exec.Command(path, append([]string{"ciphers"}, args...)...).Output()
	if err != nil {
		return nil // "no cipher match"
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || (len(f) > 1 && f[1] == "TLSv1.3") {
			continue
		}
		names = append(names, f[0])
	}
	return names
}

func nonLegacy(idx []int) []string {
	var out []string
	for _, i := range idx {
		if table[i].flags&flagLegacy == 0 {
			out = append(out, table[i].name)
		}
	}
	return out
}

// TestTableMatchesOpenSSL checks that the table holds the suites of the
// openssl binary; their order is checked by TestExpandMatchesOpenSSL.
func TestTableMatchesOpenSSL(t *testing.T) {
	want := openssl(t, "-v", "ALL:COMPLEMENTOFALL:@SECLEVEL=0")
	var all []int
	for i := range table {
		all = append(all, i)
	}
	got := nonLegacy(all)
	slices.Sort(want)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("table differs from openssl (-openssl +table):\n%s", diff)
	}
}

// TestExpandMatchesOpenSSL checks the cipher-string engine, without this
// package's policy, against the openssl binary on the suites it builds.
func TestExpandMatchesOpenSSL(t *testing.T) {
	for _, s := range []string{
		"ALL", "DEFAULT", "DEFAULT:!AES128", "HIGH", "HIGH:!aNULL", "HIGH:!aNULL:!MD5:@STRENGTH",
		"ECDHE+AESGCM", "EECDH+AESGCM:EDH+AESGCM", "AES256+EECDH:AES256+EDH",
		"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:!aNULL",
		"ALL:-AES128:AESGCM", "AES256:-AES256:ALL", "ALL:+kRSA", "ALL:!kRSA:kRSA", "ALL:-kRSA:kRSA",
		"kRSA", "RSA", "aRSA", "kDHE", "DH", "EDH", "DHE", "ADH", "kECDHE", "ECDH", "ECDHE", "EECDH", "AECDH",
		"PSK", "kPSK", "kRSAPSK", "kDHEPSK", "kECDHEPSK", "aPSK", "SRP", "kSRP", "aSRP",
		"aDSS", "DSS", "aECDSA", "ECDSA", "aNULL", "eNULL", "NULL",
		"AES", "AES128", "AES256", "AESGCM", "AESCCM", "AESCCM8", "CHACHA20", "CAMELLIA", "CAMELLIA128",
		"CAMELLIA256", "ARIA", "ARIA128", "ARIA256", "ARIAGCM", "CBC",
		"MD5", "SHA1", "SHA", "SHA256", "SHA384", "SSLv3", "TLSv1", "TLSv1.0", "TLSv1.2",
		"FIPS", "COMPLEMENTOFDEFAULT", "COMPLEMENTOFALL", "ALL:COMPLEMENTOFALL:@STRENGTH",
		"ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA", "ALL:!ECDHE-RSA-AES128-GCM-SHA256",
		"HIGH:+AES128:-SHA1:ECDHE-RSA-AES128-SHA", "AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256:@STRENGTH",
		"kECDHE+aECDSA+AES256", "ALL:+AES256:+CHACHA20:-ECDSA", "ALL,!aNULL;!eNULL !PSK",
	} {
		t.Run(s, func(t *testing.T) {
			want := openssl(t, "-v", s+":@SECLEVEL=0")
			idx, _, err := expand(s, false)
			if err != nil {
				t.Fatalf("expand(%q): %v", s, err)
			}
			if diff := cmp.Diff(want, nonLegacy(idx)); diff != "" {
				t.Errorf("expand(%q) differs from openssl (-openssl +expand):\n%s", s, diff)
			}
		})
	}
}
