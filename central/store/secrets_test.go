package store

import (
	"testing"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestMergePOP3Secrets(t *testing.T) {
	stored := &ospreyv1.Pop3Integration{Server: "mail.example.com", Port: 995, Username: "journal", Password: "old"}
	tests := []struct {
		name     string
		stored   *ospreyv1.Pop3Integration
		incoming *ospreyv1.Pop3Integration
		want     string
	}{
		{name: "empty keeps the stored password", stored: stored, incoming: &ospreyv1.Pop3Integration{Server: "mail.example.com", Username: "journal", IntervalSeconds: 30}, want: "old"},
		{name: "server compared without case or final dot", stored: stored, incoming: &ospreyv1.Pop3Integration{Server: "MAIL.example.com.", Username: "journal"}, want: "old"},
		{name: "a new password replaces it", stored: stored, incoming: &ospreyv1.Pop3Integration{Server: "mail.example.com", Username: "journal", Password: "new"}, want: "new"},
		{name: "another server needs the password again", stored: stored, incoming: &ospreyv1.Pop3Integration{Server: "evil.example.net", Username: "journal"}, want: ""},
		{name: "another user needs the password again", stored: stored, incoming: &ospreyv1.Pop3Integration{Server: "mail.example.com", Username: "ceo"}, want: ""},
		{name: "nothing stored", stored: nil, incoming: &ospreyv1.Pop3Integration{Server: "mail.example.com", Username: "journal"}, want: ""},
		{name: "stored without a password", stored: &ospreyv1.Pop3Integration{Server: "mail.example.com", Username: "journal"}, incoming: &ospreyv1.Pop3Integration{Server: "mail.example.com", Username: "journal"}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mergePOP3Secrets(tt.stored, tt.incoming)
			if got := tt.incoming.GetPassword(); got != tt.want {
				t.Errorf("password: got %q, want %q", got, tt.want)
			}
		})
	}
	mergePOP3Secrets(stored, nil) // must not panic
	if stored.Password != "old" {
		t.Errorf("stored password: got %q, want it unchanged", stored.Password)
	}
}

func TestMergeSMTPSecrets(t *testing.T) {
	stored := &ospreyv1.SmtpIntegration{Tls: &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_REQUIRE, CertPem: "CERT\n", KeyPem: "KEY"}}
	withTLS := func(cert, key string) *ospreyv1.SmtpIntegration {
		return &ospreyv1.SmtpIntegration{Tls: &ospreyv1.SmtpTls{CertPem: cert, KeyPem: key}}
	}
	tests := []struct {
		name     string
		stored   *ospreyv1.SmtpIntegration
		incoming *ospreyv1.SmtpIntegration
		want     string
	}{
		{name: "same certificate keeps the key", stored: stored, incoming: withTLS("CERT", ""), want: "KEY"},
		{name: "a new key replaces it", stored: stored, incoming: withTLS("CERT", "NEWKEY"), want: "NEWKEY"},
		{name: "a new certificate needs its key", stored: stored, incoming: withTLS("OTHER", ""), want: ""},
		{name: "no certificate needs no key", stored: stored, incoming: withTLS("", ""), want: ""},
		{name: "no TLS section", stored: stored, incoming: &ospreyv1.SmtpIntegration{}, want: ""},
		{name: "nothing stored", stored: nil, incoming: withTLS("CERT", ""), want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mergeSMTPSecrets(tt.stored, tt.incoming)
			if got := tt.incoming.GetTls().GetKeyPem(); got != tt.want {
				t.Errorf("key: got %q, want %q", got, tt.want)
			}
		})
	}
	mergeSMTPSecrets(stored, nil) // must not panic
}

func TestMergeSMTPSecretsOfGatewayListeners(t *testing.T) {
	tlsOf := func(cert, key string) *ospreyv1.SmtpTls { return &ospreyv1.SmtpTls{CertPem: cert, KeyPem: key} }
	gw := func(in, out *ospreyv1.SmtpTls) *ospreyv1.SmtpIntegration {
		return &ospreyv1.SmtpIntegration{Mode: ospreyv1.SmtpMode_SMTP_MODE_INBOUND_OUTBOUND, Tls: tlsOf("MON", ""), Gateway: &ospreyv1.SmtpGateway{
			Inbound:  &ospreyv1.GatewayListener{Listen: ":25", Tls: in},
			Outbound: &ospreyv1.GatewayListener{Listen: ":587", Tls: out},
		}}
	}
	stored := gw(tlsOf("IN\n", "IN-KEY"), tlsOf("OUT", "OUT-KEY"))
	stored.Tls.KeyPem = "MON-KEY"
	tests := []struct {
		name          string
		stored        *ospreyv1.SmtpIntegration
		incoming      *ospreyv1.SmtpIntegration
		wantMon       string
		wantIn, wantO string
	}{
		{name: "each listener keeps its own key", stored: stored, incoming: gw(tlsOf("IN", ""), tlsOf("OUT", "")),
			wantMon: "MON-KEY", wantIn: "IN-KEY", wantO: "OUT-KEY"},
		{name: "a new certificate on one listener needs its key", stored: stored, incoming: gw(tlsOf("IN", ""), tlsOf("NEW", "")),
			wantMon: "MON-KEY", wantIn: "IN-KEY", wantO: ""},
		{name: "a new key replaces the stored one", stored: stored, incoming: gw(tlsOf("IN", "IN-KEY2"), tlsOf("OUT", "")),
			wantMon: "MON-KEY", wantIn: "IN-KEY2", wantO: "OUT-KEY"},
		{name: "keys do not move between listeners", stored: stored, incoming: gw(tlsOf("OUT", ""), tlsOf("IN", "")),
			wantMon: "MON-KEY", wantIn: "", wantO: ""},
		{name: "no certificate needs no key", stored: stored, incoming: gw(tlsOf("", ""), nil),
			wantMon: "MON-KEY", wantIn: "", wantO: ""},
		{name: "stored without a gateway", stored: &ospreyv1.SmtpIntegration{}, incoming: gw(tlsOf("IN", ""), tlsOf("OUT", "")),
			wantMon: "", wantIn: "", wantO: ""},
		{name: "incoming without a gateway", stored: stored, incoming: &ospreyv1.SmtpIntegration{Tls: tlsOf("MON", "")},
			wantMon: "MON-KEY", wantIn: "", wantO: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mergeSMTPSecrets(tt.stored, tt.incoming)
			g := tt.incoming.GetGateway()
			got := [3]string{tt.incoming.GetTls().GetKeyPem(), g.GetInbound().GetTls().GetKeyPem(), g.GetOutbound().GetTls().GetKeyPem()}
			if want := [3]string{tt.wantMon, tt.wantIn, tt.wantO}; got != want {
				t.Errorf("keys (monitor, inbound, outbound): got %q, want %q", got, want)
			}
		})
	}
	if stored.Gateway.Inbound.Tls.KeyPem != "IN-KEY" || stored.Gateway.Outbound.Tls.KeyPem != "OUT-KEY" {
		t.Error("the stored keys changed")
	}
}

func TestMergeSubmissionSecrets(t *testing.T) {
	ldap := func(url, dn, pw string) *ospreyv1.SmtpIntegration {
		key := "" // a read edited and written back: no key
		if pw != "" {
			key = pw + "-KEY"
		}
		return &ospreyv1.SmtpIntegration{Gateway: &ospreyv1.SmtpGateway{Submission: &ospreyv1.SubmissionSettings{
			Listener: &ospreyv1.GatewayListener{Tls: &ospreyv1.SmtpTls{CertPem: "CERT", KeyPem: key}},
			Ldap:     &ospreyv1.LdapAuth{Url: url, BaseDn: "dc=example", Filter: "(uid=%s)", SearchBindDn: dn, SearchBindPassword: pw},
		}}}
	}
	stored := ldap("ldaps://ldap.example.com", "cn=gw,dc=example", "old")
	tests := []struct {
		name     string
		stored   *ospreyv1.SmtpIntegration
		incoming *ospreyv1.SmtpIntegration
		want     string
	}{
		{name: "empty keeps the stored password", stored: stored, incoming: ldap("ldaps://ldap.example.com", "cn=gw,dc=example", ""), want: "old"},
		{name: "url compared without case or final slash", stored: stored, incoming: ldap("LDAPS://LDAP.example.com/", "cn=gw,dc=example", ""), want: "old"},
		{name: "a new password replaces it", stored: stored, incoming: ldap("ldaps://ldap.example.com", "cn=gw,dc=example", "new"), want: "new"},
		{name: "another directory needs the password again", stored: stored, incoming: ldap("ldap://evil.example.net", "cn=gw,dc=example", ""), want: ""},
		{name: "another account needs the password again", stored: stored, incoming: ldap("ldaps://ldap.example.com", "cn=admin,dc=example", ""), want: ""},
		{name: "an anonymous search needs none", stored: stored, incoming: ldap("ldaps://ldap.example.com", "", ""), want: ""},
		{name: "nothing stored", stored: nil, incoming: ldap("ldaps://ldap.example.com", "cn=gw,dc=example", ""), want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mergeSMTPSecrets(tt.stored, tt.incoming)
			sub := tt.incoming.GetGateway().GetSubmission()
			if got := sub.GetLdap().GetSearchBindPassword(); got != tt.want {
				t.Errorf("search password: got %q, want %q", got, tt.want)
			}
			// The listener's key comes with its certificate, as the others'.
			if tt.stored != nil && sub.GetListener().GetTls().GetKeyPem() == "" {
				t.Errorf("the submission listener's key was not kept")
			}
		})
	}
}
