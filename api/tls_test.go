package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFingerprint(t *testing.T) {
	const hexFP = "5f1d7e44c2a1b3f07c9e88d1a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8"
	colons := strings.ToUpper(hexFP[:2])
	for i := 2; i < len(hexFP); i += 2 {
		colons += ":" + strings.ToUpper(hexFP[i:i+2])
	}
	tests := []struct {
		name, in, want, wantErr string
	}{
		{name: "lower-case hex", in: hexFP, want: hexFP},
		{name: "upper case", in: strings.ToUpper(hexFP), want: hexFP},
		{name: "openssl colons", in: colons, want: hexFP},
		{name: "sha256 prefix", in: "SHA256:" + hexFP, want: hexFP},
		{name: "spaces around", in: " " + hexFP + "\n", want: hexFP},
		{name: "too short", in: hexFP[:62], wantErr: "64 hex digits"},
		{name: "not hex", in: strings.Repeat("g", 64), wantErr: "64 hex digits"},
		{name: "empty", in: "", wantErr: "64 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFingerprint(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestPinnedFingerprint: a pinned fingerprint is the whole verification: the
// test server's certificate chains to no CA the client knows, yet the call
// succeeds when its fingerprint is pinned, and fails with a FingerprintError
// naming what the server presented when another one is.
func TestPinnedFingerprint(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"tenants":[{"id":"default","name":"Default"}]}`)
	}))
	t.Cleanup(srv.Close)
	sum := sha256.Sum256(srv.Certificate().Raw)
	served := hex.EncodeToString(sum[:])
	other := strings.Repeat("ab", 32)

	tests := []struct {
		name    string
		pins    []string
		wantErr bool
	}{
		{name: "pinned", pins: []string{strings.ToUpper(served)}},
		{name: "one of several", pins: []string{other, served}},
		{name: "another certificate", pins: []string{other}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(Config{Address: srv.URL, Username: "u", Password: "p", TLSFingerprints: tt.pins})
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Tenants(t.Context())
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Tenants: %v", err)
				}
				if diff := cmp.Diff([]Tenant{{ID: "default", Name: "Default"}}, got); diff != "" {
					t.Errorf("Tenants (-want +got):\n%s", diff)
				}
				return
			}
			var fpErr *FingerprintError
			if !errors.As(err, &fpErr) {
				t.Fatalf("got %v, want a *FingerprintError", err)
			}
			if diff := cmp.Diff(&FingerprintError{Got: served, Want: []string{other}}, fpErr); diff != "" {
				t.Errorf("FingerprintError (-want +got):\n%s", diff)
			}
			if !strings.Contains(err.Error(), served) {
				t.Errorf("error %q does not name the fingerprint the server presented", err)
			}
		})
	}
}

func TestPinnedFingerprintConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "malformed", cfg: Config{Address: "h", TLSFingerprints: []string{"abc"}}, wantErr: "64 hex digits"},
		{name: "with HTTPClient", cfg: Config{Address: "h", HTTPClient: &http.Client{}, TLSFingerprints: []string{strings.Repeat("ab", 32)}},
			wantErr: "leave HTTPClient nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewClient(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestHTTPSAddressOfPlainHTTPServer: an https address of a server that speaks
// plain HTTP gets an error that says so and gives the address to use.
func TestHTTPSAddressOfPlainHTTPServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"tenants":[]}`)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, addr := range []string{host, "https://" + host} {
		c, err := NewClient(Config{Address: addr})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Tenants(t.Context())
		if want := "answers in plain HTTP, not HTTPS: use the address http://" + host; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("address %q: got %v, want an error containing %q", addr, err, want)
		}
	}
}
