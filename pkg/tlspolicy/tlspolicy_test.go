package tlspolicy

import (
	"errors"
	"testing"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestParseCertificatePolicy(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ospreyv1.TlsCertificatePolicy
		wantErr bool
	}{
		{name: "accept any", in: "accept_any", want: ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_ANY},
		{name: "self signed", in: "accept_self_signed", want: ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_SELF_SIGNED},
		{name: "trusted", in: "trusted_only", want: ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY},
		{name: "upper with dashes", in: "TRUSTED-ONLY", want: ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY},
		{name: "empty", in: "", wantErr: true},
		{name: "enum name", in: "TLS_CERTIFICATE_POLICY_TRUSTED_ONLY", wantErr: true},
		{name: "unknown", in: "trust_me", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCertificatePolicy(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseCertificatePolicy(%q) error = %v, want error %t", tt.in, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrUnknownPolicy) {
				t.Errorf("ParseCertificatePolicy(%q) error = %v, want %v", tt.in, err, ErrUnknownPolicy)
			}
			if got != tt.want {
				t.Errorf("ParseCertificatePolicy(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestCertificatePolicyNameRoundTrip(t *testing.T) {
	for v := range ospreyv1.TlsCertificatePolicy_name {
		p := ospreyv1.TlsCertificatePolicy(v)
		name, err := CertificatePolicyName(p)
		if p == ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_UNSPECIFIED {
			if !errors.Is(err, ErrUnknownPolicy) {
				t.Errorf("CertificatePolicyName(%v) error = %v, want %v", p, err, ErrUnknownPolicy)
			}
			continue
		}
		if err != nil {
			t.Fatalf("CertificatePolicyName(%v): %v", p, err)
		}
		back, err := ParseCertificatePolicy(name)
		if err != nil || back != p {
			t.Errorf("ParseCertificatePolicy(%q) = %v, %v, want %v", name, back, err, p)
		}
	}
	if _, err := CertificatePolicyName(42); !errors.Is(err, ErrUnknownPolicy) {
		t.Errorf("CertificatePolicyName(42) error = %v, want %v", err, ErrUnknownPolicy)
	}
}
