package senderauth

import (
	"testing"

	"github.com/emersion/go-msgauth/authres"
	"github.com/google/go-cmp/cmp"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestHeader(t *testing.T) {
	tests := []struct {
		name string
		env  *ospreyv1.Envelope
		want string
	}{
		{"not checked", &ospreyv1.Envelope{MailFrom: "a@example.org"}, ""},
		{
			"all results",
			&ospreyv1.Envelope{MailFrom: "alice@example.org", Auth: &ospreyv1.AuthResults{Spf: Pass, SpfDomain: "example.org",
				Dkim:  []*ospreyv1.DkimResult{{Result: Pass, Domain: "example.org", Selector: "s1"}, {Result: Fail, Domain: "example.net", Selector: "ed"}},
				Dmarc: Pass, DmarcPolicy: "reject", FromDomain: "example.org"}},
			"Authentication-Results: gw.example.com;\r\n" +
				"\tspf=pass smtp.mailfrom=alice@example.org;\r\n" +
				"\tdkim=pass header.d=example.org header.s=s1;\r\n" +
				"\tdkim=fail header.d=example.net header.s=ed;\r\n" +
				"\tdmarc=pass (p=reject) header.from=example.org\r\n",
		},
		{
			"null sender, no signature, no policy",
			&ospreyv1.Envelope{Auth: &ospreyv1.AuthResults{Spf: SoftFail, SpfDomain: "mx.example.net", Dmarc: None, FromDomain: "example.net"}},
			"Authentication-Results: gw.example.com;\r\n" +
				"\tspf=softfail smtp.helo=mx.example.net;\r\n" +
				"\tdkim=none;\r\n" +
				"\tdmarc=none header.from=example.net\r\n",
		},
		{
			"odd sender quoted",
			&ospreyv1.Envelope{MailFrom: `"a b"@example.org`, Auth: &ospreyv1.AuthResults{Spf: TempError, SpfDomain: "example.org"}},
			"Authentication-Results: gw.example.com;\r\n" +
				"\tspf=temperror smtp.mailfrom=\"\\\"a b\\\"@example.org\"\r\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Header("gw.example.com", tc.env)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("header (-want +got):\n%s", diff)
			}
			if got == "" {
				return
			}
			// What we write, a reader of RFC 8601 reads back.
			id, results, err := authres.Parse(unfold(got[len(HeaderName)+1:]))
			if err != nil || id != "gw.example.com" || len(results) == 0 {
				t.Errorf("authres.Parse: id %q, %d results, %v", id, len(results), err)
			}
			if !IsOurs(got, "gw.example.com") {
				t.Error("IsOurs does not recognise the header Header writes")
			}
		})
	}
}

func unfold(s string) string {
	out := []byte{}
	for i := 0; i < len(s); i++ {
		if s[i] != '\r' && s[i] != '\n' {
			out = append(out, s[i])
		}
	}
	return string(out)
}

func TestIsOurs(t *testing.T) {
	tests := []struct {
		field string
		want  bool
	}{
		{"Authentication-Results: gw.example.com; spf=pass smtp.mailfrom=a@example.org", true},
		{"authentication-results:GW.Example.COM;dkim=pass", true},
		{"Authentication-Results: gw.example.com. 1; none", true},
		{"Authentication-Results: gw.example.com 1; none", true},
		{"Authentication-Results:\r\n\tgw.example.com;\r\n\tdmarc=pass", true},
		{"Authentication-Results: (forged (nested) comment) gw.example.com; none", true},
		{`Authentication-Results: "gw.example.com"; none`, true},
		{"Authentication-Results: gw.example.com(comment); none", true},
		{"Authentication-Results: mx.google.com; spf=pass", false},
		{"Authentication-Results: gw.example.com.evil.net; spf=pass", false},
		{"Authentication-Results: evil-gw.example.com; spf=pass", false},
		{"Authentication-Results: ; spf=pass", false},
		{"Authentication-Results: (unterminated gw.example.com; spf=pass", false},
		{"ARC-Authentication-Results: i=1; gw.example.com; spf=pass", false},
		{"X-Authentication-Results: gw.example.com; spf=pass", false},
		{"Subject: Authentication-Results: gw.example.com", false},
		{"no colon", false},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			if got := IsOurs(tc.field, "gw.example.com"); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
