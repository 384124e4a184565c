package store

import (
	"strings"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// A read never returns an integration's secret to people (package convert
// turns it into password_set or key_set), so a read edited and written back
// leaves it empty. The store's writes keep the stored secret then, when the
// write still names what it belongs to.

// mergePOP3Secrets gives incoming, a write that left the password empty, the stored
// password, so that a read edited and written back keeps it.
//
// The stored password is kept only while incoming polls the same mailbox: the same server
// (compared case-insensitively) and the same user name. Otherwise a caller who may write the
// configuration but was never told the password could point the sensor at a server of their
// own and receive it; a write that changes either must carry the password again.
func mergePOP3Secrets(stored, incoming *ospreyv1.Pop3Integration) {
	if incoming == nil || incoming.Password != "" || stored.GetPassword() == "" {
		return
	}
	if !strings.EqualFold(strings.TrimSuffix(incoming.Server, "."), strings.TrimSuffix(stored.GetServer(), ".")) ||
		incoming.Username != stored.GetUsername() {
		return
	}
	incoming.Password = stored.GetPassword()
}

// mergeSMTPSecrets gives incoming, a write that left a TLS private key empty, the stored
// key, so that a read edited and written back keeps it: the monitor listener's and each
// gateway listener's, each from the same listener of stored. A key is kept only with its
// certificate: when incoming carries that listener's stored certificate unchanged. A new
// certificate needs its key, and an empty certificate (the sensor makes a self-signed one)
// needs none.
func mergeSMTPSecrets(stored, incoming *ospreyv1.SmtpIntegration) {
	mergeTLSKey(stored.GetTls(), incoming.GetTls())
	in, st := incoming.GetGateway(), stored.GetGateway()
	mergeTLSKey(st.GetInbound().GetTls(), in.GetInbound().GetTls())
	mergeTLSKey(st.GetOutbound().GetTls(), in.GetOutbound().GetTls())
	mergeTLSKey(st.GetSubmission().GetListener().GetTls(), in.GetSubmission().GetListener().GetTls())
	mergeSearchPassword(st.GetSubmission().GetLdap(), in.GetSubmission().GetLdap())
}

// mergeSearchPassword gives in, the LDAP source of a write that left the search password
// empty, the stored one, while in searches as the same account of the same directory: the
// same url (compared without case) and search_bind_dn. Otherwise, as for POP3, a caller
// who may write the configuration but was never told the password could point the sensor
// at a directory of their own and receive it in a bind.
func mergeSearchPassword(st, in *ospreyv1.LdapAuth) {
	if in == nil || in.SearchBindPassword != "" || in.SearchBindDn == "" || st.GetSearchBindPassword() == "" {
		return
	}
	if !strings.EqualFold(strings.TrimSuffix(in.Url, "/"), strings.TrimSuffix(st.GetUrl(), "/")) || in.SearchBindDn != st.GetSearchBindDn() {
		return
	}
	in.SearchBindPassword = st.GetSearchBindPassword()
}

// mergeTLSKey gives in the key of st when in has none and the same certificate.
func mergeTLSKey(st, in *ospreyv1.SmtpTls) {
	if in == nil || in.KeyPem != "" || in.CertPem == "" {
		return
	}
	if st.GetKeyPem() == "" || strings.TrimSpace(st.GetCertPem()) != strings.TrimSpace(in.CertPem) {
		return
	}
	in.KeyPem = st.GetKeyPem()
}
