package ciphersuite

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that Parse never panics, that a failure is one of the
// package's errors, and that a result survives String → Parse.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"HIGH:!aNULL",
		"DEFAULT:!AES128",
		"ECDHE+AESGCM:ECDHE+CHACHA20:+AES256",
		"ALL:-SHA1:ECDHE-RSA-AES128-SHA:@STRENGTH",
		"ALL:kRSA+RC4:!3DES",
		"EECDH+AESGCM:EDH+AESGCM",
		"TLS_AES_128_GCM_SHA256:TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		"high:@SECLEVEL=2",
		"++::!,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) && !errors.Is(err, ErrNoSuites) {
				t.Fatalf("Parse(%q) error %v (%T) is neither Errors nor ErrNoSuites", s, err, err)
			}
			return
		}
		if r.Suites == nil {
			return
		}
		again, err := Parse(r.String())
		if err != nil {
			t.Fatalf("Parse(%q) of String of %q: %v", r.String(), s, err)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Fatalf("round trip of %q mismatch (-first +second):\n%s", s, diff)
		}
	})
}
