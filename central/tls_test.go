package central_test

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/central"
	"github.com/ospreysec/osprey/pkg/pki"
)

// signInCookies signs in to the web UI of n as the admin and returns the
// cookies the sign-in form and the sign-in set.
func signInCookies(t *testing.T, n *node, password string) []*http.Cookie {
	t.Helper()
	hc := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	t.Cleanup(hc.CloseIdleConnections)
	resp, err := hc.Get(n.ready.HTTPURL + "/signin")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("GET /signin: status %d, no csrf field in:\n%s", resp.StatusCode, body)
	}
	cookies := resp.Cookies()
	form := url.Values{"csrf": {string(m[1])}, "username": {n.ready.AdminUser}, "password": {password}, "next": {"/sensors"}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, n.ready.HTTPURL+"/signin", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		t.Fatalf("POST /signin: status %d, want a redirect to the site", resp.StatusCode)
	}
	return append(cookies, resp.Cookies()...)
}

// TestCookiesAreSecureOverHTTPS: the UI's cookies are Secure (and
// __Host- prefixed) whenever the node serves HTTPS, a dev node with
// --http-tls-cert included; only a dev node on plain HTTP leaves Secure off.
func TestCookiesAreSecureOverHTTPS(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, err := pki.SelfSigned("localhost", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api-key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	const password = "a long bootstrap password"
	tests := []struct {
		name       string
		opts       central.Options
		wantScheme string
		wantSecure bool
	}{
		{"dev on plain HTTP", central.Options{Dev: true}, "http", false},
		{"dev with --http-tls-cert", central.Options{Dev: true, HTTP: central.HTTPOptions{TLSCert: certFile, TLSKey: keyFile}}, "https", true},
		{"central", central.Options{}, "https", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.DataDir, opts.BootstrapAdminPassword = t.TempDir(), password
			n := startNode(t, opts)
			if got, _, _ := strings.Cut(n.ready.HTTPURL, "://"); got != tt.wantScheme {
				t.Fatalf("node serves %s, want %s", n.ready.HTTPURL, tt.wantScheme)
			}
			cookies := signInCookies(t, n, password)
			var names []string
			for _, c := range cookies {
				names = append(names, c.Name)
				if c.Secure != tt.wantSecure || strings.HasPrefix(c.Name, "__Host-") != tt.wantSecure {
					t.Errorf("cookie %s: Secure %v, want %v (and the __Host- prefix with it)", c.Name, c.Secure, tt.wantSecure)
				}
			}
			if !strings.Contains(strings.Join(names, " "), "osprey_session") {
				t.Errorf("cookies %v: want a session cookie after sign-in", names)
			}
		})
	}
}

// served returns the certificate the node at baseURL serves, verified
// against the pool of its own self-signed certificate for the URL's host.
func served(t *testing.T, baseURL string, roots *x509.CertPool) (*x509.Certificate, error) {
	t.Helper()
	u, err := url.Parse(baseURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: roots, ServerName: u.Hostname()})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func selfSignedPool(t *testing.T, dataDir string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "http-tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("http-tls/cert.pem holds no certificate")
	}
	return pool
}

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// TestSelfSignedCertificateNamesTheNodeAddress: a node bound to an address
// other than 127.0.0.1 serves a self-signed certificate that verifies for
// that address (with the certificate as the CA) and whose fingerprint is the
// one Ready reports; a restart on the same address keeps the certificate (a
// pinned fingerprint still holds), one on another address makes a new one
// that names it.
func TestSelfSignedCertificateNamesTheNodeAddress(t *testing.T) {
	dir := t.TempDir()
	const password = "a long bootstrap password"
	start := func(addr string) (*node, *x509.Certificate) {
		t.Helper()
		n := startNode(t, central.Options{DataDir: dir, BootstrapAdminPassword: password, HTTP: central.HTTPOptions{Addr: addr}})
		if !n.ready.HTTPCertSelfSigned || n.ready.HTTPCertFingerprint == "" {
			t.Errorf("ready: self-signed %v, fingerprint %q; want a self-signed certificate and its fingerprint",
				n.ready.HTTPCertSelfSigned, n.ready.HTTPCertFingerprint)
		}
		leaf, err := served(t, n.ready.HTTPURL, selfSignedPool(t, dir))
		if err != nil {
			t.Fatalf("verify %s with the node's self-signed certificate as the CA: %v", n.ready.HTTPURL, err)
		}
		if got := fingerprint(leaf); got != n.ready.HTTPCertFingerprint {
			t.Errorf("served certificate's SHA-256 %s, Ready says %s", got, n.ready.HTTPCertFingerprint)
		}
		return n, leaf
	}
	n, first := start("127.0.0.2:0")
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	n, again := start("127.0.0.2:0")
	if fingerprint(again) != fingerprint(first) {
		t.Errorf("restart on the same address: certificate %s, want the same as before (%s)", fingerprint(again), fingerprint(first))
	}
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	_, moved := start("127.0.0.3:0")
	if fingerprint(moved) == fingerprint(first) {
		t.Errorf("restart on another address kept the certificate that does not name it")
	}
}
