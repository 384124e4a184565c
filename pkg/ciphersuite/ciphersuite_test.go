package ciphersuite

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var (
	// secure are Go's secure TLS 1.2 suites in OpenSSL's order.
	secure = []string{
		"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
		"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
		"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
		"ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
		"ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
	}
	rsaKx = []string{"AES256-GCM-SHA384", "AES128-GCM-SHA256", "AES256-SHA", "AES128-SHA"}
)

func concat(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		name         string
		in           string
		want         []string
		wantInsecure []string
	}{
		{name: "blank is Go's defaults", in: "", want: nil},
		{name: "separators only", in: " : , ", want: nil},
		{name: "ALL", in: "ALL", want: secure},
		{name: "DEFAULT", in: "DEFAULT", want: secure},
		{name: "HIGH without aNULL", in: "HIGH:!aNULL", want: secure},
		{name: "by names", in: "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305", want: []string{
			"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
			"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
		}},
		{name: "and", in: "ECDHE+AESGCM", want: []string{
			"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
		}},
		{name: "and with order", in: "ECDHE+CHACHA20:ECDHE+AESGCM", want: []string{
			"ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
			"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
		}},
		{name: "aRSA only", in: "HIGH:!aECDSA", want: []string{
			"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-SHA", "ECDHE-RSA-AES128-SHA",
		}},
		{name: "move to end", in: "ALL:+SHA1", want: secure},
		{name: "move AES256 to end", in: "ECDHE+AESGCM:+AES256", want: []string{
			"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
		}},
		{name: "remove then add back", in: "ALL:-SHA1:ECDHE-RSA-AES128-SHA", want: concat(secure[:6], []string{"ECDHE-RSA-AES128-SHA"})},
		{name: "kill is for good", in: "ALL:!SHA1:ECDHE-RSA-AES128-SHA", want: secure[:6]},
		{name: "strength", in: "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:@STRENGTH", want: []string{"ECDHE-RSA-AES256-SHA", "ECDHE-RSA-AES128-SHA"}},
		{name: "commas spaces semicolons", in: "ECDHE+AESGCM, !AES256; !aECDSA", want: []string{"ECDHE-RSA-AES128-GCM-SHA256"}},
		{name: "iana names", in: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", want: []string{"ECDHE-RSA-AES128-GCM-SHA256"}},
		{name: "tls 1.3 names ignored", in: "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:ECDHE-RSA-AES128-GCM-SHA256", want: []string{"ECDHE-RSA-AES128-GCM-SHA256"}},
		{name: "seclevel ignored", in: "ECDHE+AESGCM+aRSA:@SECLEVEL=2", want: []string{"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"}},
		{name: "legacy exclusions", in: "ALL:!EXPORT:!LOW:!aNULL:!eNULL:!RC4:!MD5:!DES:!3DES:!PSK:!SRP:!DSS:!CAMELLIA:!SEED:!IDEA:!kECDH:!aECDH:!KRB5:!SSLv2", want: secure},
		{name: "unsupported exclusions", in: "HIGH:!DHE:!EDH:!ARIA:!AESCCM:!SHA384", want: secure},
		{name: "old style with EDH moves", in: "EECDH+AESGCM:AES256+EECDH:-EDH", want: []string{
			"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
			"ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
		}},
		// Insecure suites: only by name or by naming all their weaknesses.
		{name: "broad keywords skip insecure", in: "ALL:AES:HIGH:MEDIUM:SHA1:TLSv1.2:COMPLEMENTOFDEFAULT", want: secure},
		{name: "kRSA", in: "ALL:kRSA", want: concat(secure, rsaKx), wantInsecure: rsaKx},
		{name: "RSA alias", in: "ECDHE+AESGCM+aRSA:RSA+AESGCM", want: []string{
			"ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-GCM-SHA256",
		}, wantInsecure: []string{"AES256-GCM-SHA384", "AES128-GCM-SHA256"}},
		{name: "RC4 without kRSA", in: "RC4", want: []string{"ECDHE-ECDSA-RC4-SHA", "ECDHE-RSA-RC4-SHA"}, wantInsecure: []string{"ECDHE-ECDSA-RC4-SHA", "ECDHE-RSA-RC4-SHA"}},
		{name: "kRSA and RC4", in: "kRSA+RC4", want: []string{"RC4-SHA"}, wantInsecure: []string{"RC4-SHA"}},
		{name: "3DES", in: "3DES:kRSA+3DES", want: []string{"ECDHE-RSA-DES-CBC3-SHA", "DES-CBC3-SHA"}, wantInsecure: []string{"ECDHE-RSA-DES-CBC3-SHA", "DES-CBC3-SHA"}},
		{name: "SHA256", in: "ECDHE+SHA256", want: []string{"ECDHE-ECDSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA256"}, wantInsecure: []string{"ECDHE-ECDSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA256"}},
		{name: "by name", in: "ECDHE-RSA-AES128-GCM-SHA256:RC4-SHA:DES-CBC3-SHA:AES128-SHA256", want: []string{
			"ECDHE-RSA-AES128-GCM-SHA256", "RC4-SHA", "DES-CBC3-SHA", "AES128-SHA256",
		}, wantInsecure: []string{"RC4-SHA", "DES-CBC3-SHA", "AES128-SHA256"}},
		{name: "insecure removed again", in: "ALL:kRSA:!AES128", want: []string{
			"ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
			"ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA", "AES256-GCM-SHA384", "AES256-SHA",
		}, wantInsecure: []string{"AES256-GCM-SHA384", "AES256-SHA"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, suiteNames(got.Suites), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse(%q) suites mismatch (-want +got):\n%s", tt.in, diff)
			}
			if diff := cmp.Diff(tt.wantInsecure, got.Insecure, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parse(%q) insecure mismatch (-want +got):\n%s", tt.in, diff)
			}
			if tt.want == nil {
				return
			}
			again, err := Parse(got.String())
			if err != nil {
				t.Fatalf("Parse(%q) of String(): %v", got.String(), err)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("String round trip mismatch (-first +second):\n%s", diff)
			}
		})
	}
}

func suiteNames(ids []uint16) []string {
	var out []string
	for _, id := range ids {
		out = append(out, Name(id))
	}
	return out
}

func TestParseErrors(t *testing.T) {
	type wantErr struct {
		err  error
		text string
	}
	tests := []struct {
		name string
		in   string
		want []wantErr
	}{
		{name: "unknown", in: "HIHG", want: []wantErr{{ErrUnknown, `"HIHG": unknown cipher name`}}},
		{name: "case", in: "high:!anull", want: []wantErr{{ErrUnknown, "did you mean HIGH?"}, {ErrUnknown, "did you mean aNULL?"}}},
		{name: "unknown in exclusion", in: "HIGH:!aNUL", want: []wantErr{{ErrUnknown, `"!aNUL": unknown`}}},
		{name: "unknown within and", in: "ECDHE+AESGMC", want: []wantErr{{ErrUnknown, `"AESGMC" in "ECDHE+AESGMC"`}}},
		{name: "unsupported suite", in: "DHE-RSA-AES128-GCM-SHA256", want: []wantErr{{ErrUnsupported, `"DHE-RSA-AES128-GCM-SHA256": not supported by this implementation`}}},
		{name: "null encryption", in: "HIGH:eNULL:COMPLEMENTOFALL", want: []wantErr{{ErrUnsupported, "eNULL"}, {ErrUnsupported, "COMPLEMENTOFALL"}}},
		{name: "unsupported keyword", in: "HIGH:CAMELLIA", want: []wantErr{{ErrUnsupported, `"CAMELLIA": not supported`}}},
		{name: "unsupported within and", in: "EECDH+AESGCM:EDH+AESGCM", want: []wantErr{{ErrUnsupported, `"EDH" in "EDH+AESGCM"`}}},
		{name: "mozilla intermediate has DHE", in: "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305", want: []wantErr{
			{ErrUnsupported, "DHE-RSA-AES128-GCM-SHA256"}, {ErrUnsupported, "DHE-RSA-AES256-GCM-SHA384"}, {ErrUnsupported, "DHE-RSA-CHACHA20-POLY1305"},
		}},
		{name: "unsupported combination", in: "kRSA+AES256+SHA256", want: []wantErr{{ErrUnsupported, "selects only AES256-SHA256"}}},
		{name: "unsupported legacy alias", in: "EDH-RSA-DES-CBC3-SHA", want: []wantErr{{ErrUnsupported, ""}}},
		{name: "every error at once", in: "FOO:CAMELLIA:+:BAR", want: []wantErr{{ErrUnknown, "FOO"}, {ErrUnsupported, "CAMELLIA"}, {ErrSyntax, `"+"`}, {ErrUnknown, "BAR"}}},
		{name: "empty and", in: "ECDHE++AES:AES+", want: []wantErr{{ErrSyntax, "empty name"}, {ErrSyntax, "empty name"}}},
		{name: "suite in and", in: "AESGCM+ECDHE-RSA-AES128-GCM-SHA256", want: []wantErr{{ErrSyntax, "cannot be combined"}}},
		{name: "DEFAULT later", in: "HIGH:DEFAULT", want: []wantErr{{ErrSyntax, "DEFAULT may only start the list"}}},
		{name: "bad at", in: "@STRENGTH:@FOO:@SECLEVEL=6", want: []wantErr{{ErrUnknown, "@FOO"}, {ErrSyntax, "0 to 5"}}},
		{name: "nothing selected", in: "ECDHE+AESGCM:!ECDHE", want: []wantErr{{ErrNoSuites, ""}}},
		{name: "only empty keywords", in: "LOW:EXPORT", want: []wantErr{{ErrNoSuites, ""}}},
		{name: "only tls 1.3", in: "TLS_AES_128_GCM_SHA256", want: []wantErr{{ErrNoSuites, ""}}},
		{name: "only insecure by broad keyword", in: "MEDIUM", want: []wantErr{{ErrNoSuites, "insecure suites such as"}}},
		{name: "kRSA alone does not bring RC4", in: "RC4+aRSA+SHA1:!ECDHE", want: []wantErr{{ErrNoSuites, "RC4-SHA"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tt.in, got)
			}
			if len(tt.want) == 1 && errors.Is(tt.want[0].err, ErrNoSuites) {
				if !errors.Is(err, ErrNoSuites) || !strings.Contains(err.Error(), tt.want[0].text) {
					t.Errorf("Parse(%q) error = %v, want %v containing %q", tt.in, err, ErrNoSuites, tt.want[0].text)
				}
				return
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse(%q) error = %v (%T), want Errors", tt.in, err, err)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("Parse(%q): got %d errors (%v), want %d", tt.in, len(errs), err, len(tt.want))
			}
			for i, w := range tt.want {
				if !errors.Is(errs[i], w.err) || !strings.Contains(errs[i].Error(), w.text) {
					t.Errorf("error %d = %v, want %v containing %q", i, errs[i], w.err, w.text)
				}
			}
		})
	}
}

func TestResultUsableByTLS(t *testing.T) {
	r, err := Parse("HIGH:!aNULL:kRSA+AESGCM")
	if err != nil {
		t.Fatal(err)
	}
	known := map[uint16]bool{}
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		known[cs.ID] = true
	}
	for _, id := range r.Suites {
		if !known[id] {
			t.Errorf("suite %#04x is not a crypto/tls suite", id)
		}
	}
	if Name(tls.TLS_AES_128_GCM_SHA256) != "" || Name(0xffff) != "" {
		t.Errorf("Name of a TLS 1.3 or unknown ID is not empty")
	}
	if got, want := Name(tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256), "ECDHE-RSA-CHACHA20-POLY1305"; got != want {
		t.Errorf("Name(TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256) = %q, want %q", got, want)
	}
}
