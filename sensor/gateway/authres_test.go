package gateway

import (
	"strings"
	"testing"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestAppendWithoutOurs(t *testing.T) {
	const id = "gw.example.com"
	tests := []struct{ name, in, want string }{
		{"none", "Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\nbody\r\n"},
		{"ours goes", "Received: x\r\nAuthentication-Results: gw.example.com; spf=pass\r\nSubject: a\r\n\r\nbody\r\n", "Received: x\r\nSubject: a\r\n\r\nbody\r\n"},
		{"folded, any case", "authentication-results:\r\n\tGW.example.com;\r\n\tdmarc=pass\r\nSubject: a\r\n\r\nb\r\n", "Subject: a\r\n\r\nb\r\n"},
		{"another's stays", "Authentication-Results: mx.google.com; spf=pass\r\n\r\nb\r\n", "Authentication-Results: mx.google.com; spf=pass\r\n\r\nb\r\n"},
		{"in the body it stays", "Subject: a\r\n\r\nAuthentication-Results: gw.example.com; spf=pass\r\n", "Subject: a\r\n\r\nAuthentication-Results: gw.example.com; spf=pass\r\n"},
		{"no body", "Authentication-Results: gw.example.com; none\r\nSubject: a\r\n", "Subject: a\r\n"},
		{"no final line end", "Subject: a\r\nAuthentication-Results: gw.example.com; none", "Subject: a\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendWithoutOurs(nil, []byte(tt.in), id)); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzAppendWithoutOurs checks that only header fields go: the body comes
// through whole, and no field of ours is left in the header.
func FuzzAppendWithoutOurs(f *testing.F) {
	f.Add("Authentication-Results: gw.example.com; spf=pass\r\nSubject: a\r\n\r\nbody\r\n")
	f.Add("Subject: a\r\n Authentication-Results: gw.example.com\r\n\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		got := string(appendWithoutOurs(nil, []byte(in), "gw.example.com"))
		if i := strings.Index(in, "\r\n\r\n"); i >= 0 && !strings.HasSuffix(got, in[i+2:]) {
			t.Errorf("the body of %q did not come through: %q", in, got)
		}
		head := got
		if i := strings.Index(head, "\n\r\n"); i >= 0 {
			head = head[:i]
		}
		for line := range strings.SplitSeq(head, "\n") {
			if strings.HasPrefix(strings.ToLower(line), "authentication-results: gw.example.com;") {
				t.Errorf("%q kept the field in its header: %q", in, got)
			}
		}
	})
}

// TestAuthHeaders: with sender authentication on, a checked message gets
// the header of its results on top and loses the forged one of ours; an
// unchecked one only loses the forged one; with it off, nothing changes.
func TestAuthHeaders(t *testing.T) {
	const msg = "Received: from mx.example.org\r\nAuthentication-Results: gw.test; dmarc=pass header.from=example.org\r\nSubject: hi\r\n\r\nbody\r\n"
	checked := &ospreyv1.Envelope{MailFrom: "a@example.org", Auth: &ospreyv1.AuthResults{Spf: "fail", SpfDomain: "example.org", Dmarc: "fail", DmarcPolicy: "reject", FromDomain: "example.org"}}
	tests := []struct {
		name string
		sa   *ospreyv1.SenderAuthSettings
		env  *ospreyv1.Envelope
		want string
	}{
		{"off", nil, checked, msg},
		{"checked, the HELO name as id", &ospreyv1.SenderAuthSettings{Enabled: true}, checked,
			"Authentication-Results: gw.test;\r\n\tspf=fail smtp.mailfrom=a@example.org;\r\n\tdkim=none;\r\n\tdmarc=fail (p=reject) header.from=example.org\r\n" +
				"Received: from mx.example.org\r\nSubject: hi\r\n\r\nbody\r\n"},
		{"unchecked", &ospreyv1.SenderAuthSettings{Enabled: true}, &ospreyv1.Envelope{},
			"Received: from mx.example.org\r\nSubject: hi\r\n\r\nbody\r\n"},
		{"another id", &ospreyv1.SenderAuthSettings{Enabled: true, AuthservId: "auth.example.com"}, &ospreyv1.Envelope{}, msg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := openGateway(t, Options{Dir: t.TempDir(), Hostname: "gw.test"})
			cfg := &ospreyv1.SmtpIntegration{Enabled: true, Mode: ospreyv1.SmtpMode_SMTP_MODE_INBOUND, Gateway: &ospreyv1.SmtpGateway{
				LocalDomains: []*ospreyv1.LocalDomain{{Domain: "example.com"}}, SenderAuth: tt.sa}}
			if err := g.Apply(cfg); err != nil {
				t.Fatal(err)
			}
			if got := string(g.authHeaders([]byte(msg), tt.env)); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}
