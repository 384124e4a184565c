package validate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// keyPairPEM makes a self-signed certificate and its key, in PEM.
func keyPairPEM(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sensor.example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
}

// fields returns the field of each error, or fails when err is not Errors.
func fields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	es, ok := AsErrors(err)
	if !ok {
		t.Fatalf("error %v (%T) is not Errors", err, err)
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Field
	}
	return out
}

func TestErrors(t *testing.T) {
	es := Errors{{Field: "listen", Message: "required"}, {Field: "clients[0]", Message: "bad"}, {Message: "whole object"}}
	if got, want := es.Error(), "listen: required; clients[0]: bad; whole object"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	got := es.Prefix("smtp")
	want := Errors{{Field: "smtp.listen", Message: "required"}, {Field: "smtp.clients[0]", Message: "bad"}, {Field: "smtp", Message: "whole object"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Prefix mismatch (-want +got):\n%s", diff)
	}
	if got := (Errors{{Field: "x", Message: "y"}}).Prefix("tenants[2]"); got[0].Field != "tenants[2].x" {
		t.Errorf("Prefix field = %q, want %q", got[0].Field, "tenants[2].x")
	}
	if got := (Errors{{Field: "[1]", Message: "y"}}).Prefix("clients"); got[0].Field != "clients[1]" {
		t.Errorf("Prefix field = %q, want %q", got[0].Field, "clients[1]")
	}

	wrapped := fmt.Errorf("put sensor config: %w", es)
	back, ok := AsErrors(wrapped)
	if !ok || len(back) != 3 {
		t.Errorf("AsErrors(wrapped) = %v, %t, want the 3 errors", back, ok)
	}
	if _, ok := AsErrors(errors.New("other")); ok {
		t.Errorf("AsErrors(other error) = true, want false")
	}
	if _, ok := AsErrors(nil); ok {
		t.Errorf("AsErrors(nil) = true, want false")
	}
}

func TestCertificates(t *testing.T) {
	certPEM, keyPEM := keyPairPEM(t)
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{name: "one", in: certPEM},
		{name: "two", in: certPEM + "\n" + certPEM + "\n"},
		{name: "empty", in: "", wantErr: "no PEM certificate"},
		{name: "garbage", in: "hello", wantErr: "no PEM certificate"},
		{name: "key", in: keyPEM, wantErr: `"PRIVATE KEY", want CERTIFICATE`},
		{name: "trailing text", in: certPEM + "junk", wantErr: "unexpected text"},
		{name: "corrupt", in: strings.Replace(certPEM, "MII", "MIX", 1), wantErr: "certificate 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseCertificates(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseCertificates: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseCertificates error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	a := Errors{{Field: "listen", Message: "not an address"}, {Field: "clients[0]", Message: "bad"}}
	b := Errors{{Field: "listen", Message: "required"}, {Field: "max_message_size.unit", Message: "unknown"}}
	got, ok := AsErrors(Merge(nil, a, nil, b))
	want := Errors{a[0], a[1], b[1]}
	if !ok || !slices.Equal(got, want) {
		t.Errorf("Merge: got %v, want %v (a field reported once, by the first check)", got, want)
	}
	if err := Merge(nil, nil); err != nil {
		t.Errorf("Merge of nothing: got %v, want nil", err)
	}
	other := errors.New("etcd unavailable")
	if err := Merge(a, other, b); err != other {
		t.Errorf("Merge with an error that is not about fields: got %v, want it as it is", err)
	}
}
