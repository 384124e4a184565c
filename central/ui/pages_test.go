package ui_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// validSMTP is a form of an SMTP integration that validates.
func validSMTP() url.Values {
	return url.Values{
		"enabled":             {"on"},
		"listen":              {"127.0.0.1:2525"},
		"destination_domains": {"example.com", "!hr.example.com"},
		"clients":             {"10.0.0.0/8", "!10.0.0.5"},
		"size_value":          {"10"},
		"size_unit":           {"MB"},
		"tls_mode":            {"off"},
		"tls_client_cert":     {"off"},
		"version":             {"0"},
	}
}

func TestServerListShowsSensorsInScope(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		user      string
		see, hide []string
	}{
		{"root", []string{"sensor-s1", "sensor-s2"}, nil},
		{"alice", []string{"sensor-s1"}, []string{"sensor-s2"}},
		{"bob", []string{"sensor-s2"}, []string{"sensor-s1"}},
		{"audrey", []string{"sensor-s1"}, []string{"sensor-s2"}},
	} {
		t.Run(tc.user, func(t *testing.T) {
			p := e.signedIn(tc.user).get("/sensors")
			if p.status != http.StatusOK {
				t.Fatalf("got %d", p.status)
			}
			for _, s := range tc.see {
				if !strings.Contains(p.body, s) {
					t.Errorf("%s does not see %s", tc.user, s)
				}
			}
			for _, s := range tc.hide {
				if strings.Contains(p.body, s) {
					t.Errorf("%s sees %s of another tenant", tc.user, s)
				}
			}
			hasApprove := strings.Contains(p.body, `action="/sensors/`) && strings.Contains(p.body, `/approve"`)
			if want := tc.user != "audrey"; hasApprove != want {
				t.Errorf("%s: approve buttons shown %v, want %v", tc.user, hasApprove, want)
			}
		})
	}
}

func TestApproveRejectRevoke(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	state := func(id string) ospreyv1.SensorState {
		sn, _, err := e.store.GetSensor(t.Context(), store.AllTenants(), id)
		if err != nil {
			t.Fatal(err)
		}
		return sn.GetState()
	}
	p := b.post("/sensors/s1/approve", url.Values{"return": {"/sensors?state=pending"}})
	if p.status != http.StatusSeeOther || p.location != "/sensors?state=pending" {
		t.Fatalf("approve: got %d to %q", p.status, p.location)
	}
	if got := state("s1"); got != ospreyv1.SensorState_SENSOR_STATE_APPROVED {
		t.Fatalf("s1 is %v after approve", got)
	}
	if p := b.get("/sensors"); !strings.Contains(p.body, "Sensor s1 approved.") {
		t.Errorf("no confirmation after approve")
	}
	if p := b.post("/sensors/s2/reject", url.Values{"return": {"https://evil.example/"}}); p.location != "/sensors" {
		t.Errorf("reject went to %q, want /sensors", p.location)
	}
	if got := state("s2"); got != ospreyv1.SensorState_SENSOR_STATE_REVOKED {
		t.Fatalf("s2 is %v after reject", got)
	}
	b.post("/sensors/s1/revoke", nil)
	if got := state("s1"); got != ospreyv1.SensorState_SENSOR_STATE_REVOKED {
		t.Fatalf("s1 is %v after revoke", got)
	}
	// The Sensor component of a central node cannot be revoked.
	if _, err := e.store.CreateSensor(t.Context(), store.AllTenants(), &ospreyv1.Sensor{
		Id: "node-1", Tenant: "default", Name: "node-1", State: ospreyv1.SensorState_SENSOR_STATE_APPROVED, Local: true,
	}); err != nil {
		t.Fatal(err)
	}
	b.get("/sensors")
	b.post("/sensors/node-1/revoke", nil)
	if got := state("node-1"); got != ospreyv1.SensorState_SENSOR_STATE_APPROVED {
		t.Errorf("the local sensor is %v after revoke, want approved", got)
	}
	if p := b.get("/sensors"); !strings.Contains(p.body, "cannot be revoked") {
		t.Errorf("no message saying the local sensor cannot be revoked")
	}
}

func TestTenantOperatorCannotReachOtherTenant(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("bob") // tenant acme; s1 is in default
	for _, path := range []string{"/sensors/s1", "/sensors/s1/smtp", "/sensors/s1/pop3", "/sensors/nonexistent/smtp"} {
		if p := b.get(path); p.status != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want 404", path, p.status)
		}
	}
	for _, path := range []string{"/sensors/s1/approve", "/sensors/s1/reject", "/sensors/s1/revoke", "/sensors/s1/smtp", "/sensors/s1/pop3"} {
		if p := b.post(path, validSMTP()); p.status != http.StatusNotFound {
			t.Errorf("POST %s: got %d, want 404", path, p.status)
		}
	}
	sn, _, err := e.store.GetSensor(t.Context(), store.AllTenants(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if sn.GetState() != ospreyv1.SensorState_SENSOR_STATE_PENDING {
		t.Errorf("s1 is %v, want pending", sn.GetState())
	}
	if _, v, _ := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1"); v != 0 {
		t.Errorf("s1's SMTP integration was written (version %d)", v)
	}
	var live struct {
		Sensors []struct{ ID string } `json:"sensors"`
		Total   int                   `json:"total"`
	}
	p := b.get("/sensors.json?id=s1&id=s2")
	if err := json.Unmarshal([]byte(p.body), &live); err != nil {
		t.Fatalf("live status: %v: %s", err, p.body)
	}
	if len(live.Sensors) != 1 || live.Sensors[0].ID != "s2" || live.Total != 1 {
		t.Errorf("live status for bob: %+v, want s2 only", live)
	}
	if p := b.get("/cluster"); p.status != http.StatusForbidden {
		t.Errorf("GET /cluster as a tenant administrator: got %d, want 403", p.status)
	}
	// Users of another tenant are not listed; users are created by an
	// administrator of all tenants only.
	if p := b.get("/users"); strings.Contains(p.body, "alice") || !strings.Contains(p.body, "bob") {
		t.Errorf("bob's user list shows another tenant's users, or not his own")
	}
	form := url.Values{"name": {"mallory"}, "role": {"administrator"}, "tenants": {"acme"}, "password": {testPassword}, "confirm": {testPassword}}
	if p := b.post("/users", form); p.status != http.StatusForbidden {
		t.Fatalf("create user as an administrator of one tenant: got %d, want 403", p.status)
	}
	if _, _, err := e.store.GetUser(t.Context(), store.AllTenants(), "mallory"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("bob's new user: %v; want none", err)
	}
}

func TestAuditorIsReadOnly(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("audrey")
	for _, path := range []string{"/sensors/s1/smtp", "/sensors/s1/pop3", "/users", "/tokens"} {
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("GET %s: got %d", path, p.status)
		}
		if !strings.Contains(p.body, `<fieldset class="plain" disabled>`) {
			t.Errorf("GET %s: the form is not read-only for an auditor", path)
		}
	}
	for _, path := range []string{"/sensors/s1/approve", "/sensors/s1/reject", "/sensors/s1/revoke", "/sensors/s1/smtp", "/sensors/s1/pop3", "/users", "/tokens"} {
		form := validSMTP()
		form.Set("name", "eve")
		form.Set("password", testPassword)
		form.Set("confirm", testPassword)
		form.Set("ttl", "1")
		form.Set("ttl_unit", "hours")
		if p := b.post(path, form); p.status != http.StatusForbidden {
			t.Errorf("POST %s as an auditor: got %d, want 403", path, p.status)
		}
	}
	if _, v, _ := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1"); v != 0 {
		t.Errorf("an auditor's POST wrote the SMTP integration (version %d)", v)
	}
	if _, _, err := e.store.GetUser(t.Context(), store.AllTenants(), "eve"); err == nil {
		t.Errorf("an auditor created a user")
	}
}

func TestSMTPErrorsShownBesideFields(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("alice")
	b.get("/sensors/s1/smtp")
	form := validSMTP()
	form["clients"] = []string{"10.0.0.0/8", "10.0.0.1/8", "", "192.0.2.300"}
	form.Set("listen", "somewhere")
	form.Set("size_value", "ten")
	form.Set("max_recipients", "20000")
	p := b.post("/sensors/s1/smtp", form)
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("invalid form: got %d, want 422", p.status)
	}
	for _, tc := range []struct{ id, want string }{
		{"smtp-listen", "must be host:port"},
		{"smtp-size-value", "must be a whole number"},
		{"smtp-limits-max-recipients", "at most 10000"},
	} {
		if got := fieldError(t, p, tc.id); !strings.Contains(got, tc.want) {
			t.Errorf("error beside #%s: %q, want %q in it", tc.id, got, tc.want)
		}
	}
	// A list entry's error is beside that entry (the blank entry was dropped,
	// so 192.0.2.300 is the third), not under the list.
	for _, tc := range []struct{ id, want string }{
		{"smtp-clients-1", "host bits set"},
		{"smtp-clients-2", "not an IP address"},
	} {
		if got := entryError(t, p, tc.id); !strings.Contains(got, tc.want) {
			t.Errorf("error beside entry #%s: %q, want %q in it", tc.id, got, tc.want)
		}
	}
	doc := p.doc(t)
	if got := entryError(t, p, "smtp-clients-0"); got != "" {
		t.Errorf("the good client entry has the error %q", got)
	}
	if list := byID(doc, "smtp-clients-err"); list != nil {
		t.Errorf("errors under the list, not beside their entries: %q", text(list))
	}
	if in := byID(doc, "smtp-clients-1"); !strings.Contains(attr(in, "aria-describedby"), "smtp-clients-1-err") {
		t.Errorf("the bad entry is not described by its error: aria-describedby %q", attr(in, "aria-describedby"))
	}
	if in := byID(doc, "smtp-clients-1"); in == nil || attr(in, "aria-invalid") != "true" || attr(in, "value") != "10.0.0.1/8" {
		t.Errorf("the bad client entry is not marked invalid with its value")
	}
	if in := byID(doc, "smtp-clients-0"); in == nil || attr(in, "aria-invalid") != "" {
		t.Errorf("the good client entry is marked invalid")
	}
	if summary := text(byID(doc, "error-summary")); !strings.Contains(summary, "Nothing was saved: 5 problems") ||
		!strings.Contains(summary, `Clients, entry 2 ("10.0.0.1/8")`) {
		t.Errorf("error summary: %q", summary)
	}
	if in := byID(doc, "smtp-listen"); attr(in, "value") != "somewhere" {
		t.Errorf("the form does not show what was typed")
	}
	if _, v, _ := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1"); v != 0 {
		t.Fatalf("an invalid form was saved (version %d)", v)
	}

	// Fixed, it is saved, and the page shows it.
	p = b.post("/sensors/s1/smtp", validSMTP())
	if p.status != http.StatusSeeOther || p.location != "/sensors/s1/smtp" {
		t.Fatalf("valid form: got %d to %q\n%s", p.status, p.location, p.body)
	}
	cfg, version, err := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1")
	if err != nil || version == 0 {
		t.Fatalf("after apply: version %d, %v", version, err)
	}
	want := &ospreyv1.SmtpIntegration{
		Enabled: true, Listen: "127.0.0.1:2525",
		DestinationDomains: []string{"example.com", "!hr.example.com"}, Clients: []string{"10.0.0.0/8", "!10.0.0.5"},
		MaxMessageSize: &ospreyv1.SizeLimit{Value: 10, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB},
	}
	if diff := cmp.Diff(want, cfg, protocmp.Transform()); diff != "" {
		t.Errorf("stored (-want +got):\n%s", diff)
	}
	p = b.get("/sensors/s1/smtp")
	if !strings.Contains(p.body, fmt.Sprintf("SMTP integration applied: configuration version %d.", version)) {
		t.Errorf("no confirmation naming version %d", version)
	}
	if in := byID(p.doc(t), "smtp-clients-1"); in == nil || attr(in, "value") != "!10.0.0.5" {
		t.Errorf("the saved clients are not shown")
	}
	// Applying the form unchanged writes nothing new.
	form = validSMTP()
	form.Set("version", strconv.FormatInt(version, 10))
	b.post("/sensors/s1/smtp", form)
	if _, v, _ := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1"); v != version {
		t.Errorf("an unchanged apply made version %d from %d", v, version)
	}
	// The server list shows the stored version.
	if p := b.get("/sensors"); !strings.Contains(p.body, fmt.Sprintf(`<span data-live="stored">%d</span>`, version)) {
		t.Errorf("the server list does not show stored version %d", version)
	}
}

// TestSMTPSizeZeroIsAtLeastOne: a size of 0 is refused with what is wanted,
// in the words the API uses too.
func TestSMTPSizeZeroIsAtLeastOne(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	form := validSMTP()
	form.Set("size_value", "0")
	p := b.post("/sensors/s1/smtp", form)
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("got %d, want 422", p.status)
	}
	if got := fieldError(t, p, "smtp-size-value"); got != "must be at least 1 unless unlimited" {
		t.Errorf("size error: %q, want %q", got, "must be at least 1 unless unlimited")
	}
}

func TestSMTPUnknownChoiceIsAFieldError(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	form := validSMTP()
	form.Set("size_unit", "TB")
	form.Set("tls_mode", "sometimes")
	p := b.post("/sensors/s1/smtp", form)
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("got %d, want 422", p.status)
	}
	if got := fieldError(t, p, "smtp-size-value"); !strings.Contains(got, "unknown size unit") {
		t.Errorf("size unit error: %q", got)
	}
	if got := fieldError(t, p, "smtp-tls-mode"); !strings.Contains(got, "unknown TLS mode") {
		t.Errorf("TLS mode error: %q", got)
	}
}

func TestSMTPConcurrentChangeIsReported(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	page := b.get("/sensors/s1/smtp")
	if in := byID(page.doc(t), "smtp-listen"); in == nil {
		t.Fatal("no listen field")
	}
	// Someone else writes while this user edits.
	theirs := &ospreyv1.SmtpIntegration{Enabled: true, Listen: "0.0.0.0:25", MaxMessageSize: &ospreyv1.SizeLimit{Unlimited: true}}
	theirVersion, err := e.store.PutSMTP(t.Context(), store.AllTenants(), "s1", theirs, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := b.post("/sensors/s1/smtp", validSMTP()) // version 0, from the page read before
	if p.status != http.StatusConflict {
		t.Fatalf("stale form: got %d, want 409", p.status)
	}
	if !strings.Contains(p.body, "Someone else changed this SMTP integration") {
		t.Errorf("the conflict is not explained")
	}
	doc := p.doc(t)
	if in := byID(doc, "smtp-listen"); attr(in, "value") != "0.0.0.0:25" {
		t.Errorf("the form does not show the current values: listen %q", attr(in, "value"))
	}
	if !strings.Contains(p.body, fmt.Sprintf(`name="version" value="%d"`, theirVersion)) {
		t.Errorf("the form does not carry the current version %d", theirVersion)
	}
	cfg, v, _ := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1")
	if v != theirVersion || !proto.Equal(cfg, theirs) {
		t.Errorf("the other write was overwritten: version %d, %v", v, cfg)
	}
}

func TestPOP3PasswordIsNeverShown(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	const secret = "Pa55-w0rd-only-the-server-knows"
	form := url.Values{
		"enabled": {"on"}, "server": {"mail.example.com"}, "port": {"995"}, "interval_seconds": {"60"},
		"tls": {"on"}, "tls_mode": {"implicit"}, "username": {"journal"}, "password": {secret},
		"tls_certificate": {"trusted_only"}, "cipher_suite": {"HIGH:!aNULL"}, "version": {"0"},
	}
	// With another field wrong, the typed password is not shown back either.
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("cipher_suite", "HIHG:CAMELLIA")
	p := b.post("/sensors/s1/pop3", bad)
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad cipher suite: got %d, want 422", p.status)
	}
	if got := fieldError(t, p, "pop3-cipher-suite"); !strings.Contains(got, "HIHG") || !strings.Contains(got, "CAMELLIA") {
		t.Errorf("cipher suite error: %q, want both bad names", got)
	}
	if strings.Contains(p.body, secret) {
		t.Fatal("the refused form shows the password")
	}

	p = b.post("/sensors/s1/pop3", form)
	if p.status != http.StatusSeeOther {
		t.Fatalf("apply: got %d\n%s", p.status, p.body)
	}
	cfg, version, _ := e.store.GetPOP3(t.Context(), store.AllTenants(), "s1")
	if cfg.GetPassword() != secret {
		t.Fatalf("stored password %q, want the one typed", cfg.GetPassword())
	}
	p = b.get("/sensors/s1/pop3")
	if strings.Contains(p.body, secret) {
		t.Fatal("the settings page shows the password")
	}
	if !strings.Contains(p.body, "A password is stored") {
		t.Errorf("the page does not say a password is stored")
	}
	// Blank keeps it.
	form.Set("password", "")
	form.Set("interval_seconds", "120")
	form.Set("version", strconv.FormatInt(version, 10))
	if p := b.post("/sensors/s1/pop3", form); p.status != http.StatusSeeOther {
		t.Fatalf("apply with a blank password: got %d", p.status)
	}
	cfg, version, _ = e.store.GetPOP3(t.Context(), store.AllTenants(), "s1")
	if cfg.GetPassword() != secret || cfg.GetIntervalSeconds() != 120 {
		t.Fatalf("after a blank password: password kept %v, interval %d", cfg.GetPassword() == secret, cfg.GetIntervalSeconds())
	}
	// Another server with a blank password: it must be typed again.
	form.Set("server", "mail.attacker.example")
	form.Set("version", strconv.FormatInt(version, 10))
	p = b.post("/sensors/s1/pop3", form)
	if got := fieldError(t, p, "pop3-password"); p.status != http.StatusUnprocessableEntity || !strings.Contains(got, "enter the password again") {
		t.Errorf("new server, blank password: got %d, error %q", p.status, got)
	}
	if cfg, _, _ := e.store.GetPOP3(t.Context(), store.AllTenants(), "s1"); cfg.GetServer() != "mail.example.com" {
		t.Errorf("the server changed to %q without the password", cfg.GetServer())
	}
}

// pop3TLSFields are the ids of the POP3 settings that apply only with TLS.
var pop3TLSFields = []string{"pop3-tls-mode", "pop3-tls-certificate", "pop3-cipher-suite", "pop3-ca"}

// TestPOP3TLSFieldsFollowUseTLS: the settings that apply only with TLS are
// disabled, and marked so, while "Use TLS" is off; a form sent without them
// (a browser does not send disabled fields) keeps what is stored.
func TestPOP3TLSFieldsFollowUseTLS(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	stored := &ospreyv1.Pop3Integration{
		Enabled: true, Server: "mail.example.com", Port: 110, IntervalSeconds: 60, Username: "journal", Password: "Pa55-w0rd",
		TlsMode: ospreyv1.Pop3TlsMode_POP3_TLS_MODE_STARTTLS, TlsCertificate: ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_SELF_SIGNED,
		CipherSuite: "HIGH:!aNULL",
	}
	version, err := e.store.PutPOP3(t.Context(), store.AllTenants(), "s1", stored, 0)
	if err != nil {
		t.Fatal(err)
	}
	disabled := func(p page) map[string]bool {
		doc := p.doc(t)
		out := map[string]bool{}
		for _, id := range pop3TLSFields {
			in := byID(doc, id)
			if in == nil {
				t.Fatalf("no #%s", id)
			}
			_, off := attrOK(in, "disabled")
			group := in
			for group != nil && attr(group, "data-enabled-by") == "" {
				group = group.Parent
			}
			if group == nil || attr(group, "data-enabled-by") != "pop3-tls" {
				t.Fatalf("#%s is in no group that follows #pop3-tls", id)
			}
			if marked := strings.Contains(" "+attr(group, "class")+" ", " is-disabled "); marked != off {
				t.Errorf("#%s: disabled %v, but its group marked disabled %v", id, off, marked)
			}
			out[id] = off
		}
		return out
	}
	all := func(v bool) map[string]bool {
		m := map[string]bool{}
		for _, id := range pop3TLSFields {
			m[id] = v
		}
		return m
	}
	if diff := cmp.Diff(all(true), disabled(b.get("/sensors/s1/pop3"))); diff != "" {
		t.Errorf("TLS off: disabled fields (-want +got):\n%s", diff)
	}

	// What a browser posts with the TLS fields disabled: they are kept.
	p := b.post("/sensors/s1/pop3", url.Values{
		"enabled": {"on"}, "server": {"mail.example.com"}, "port": {"110"}, "interval_seconds": {"120"},
		"username": {"journal"}, "password": {""}, "version": {strconv.FormatInt(version, 10)},
	})
	if p.status != http.StatusSeeOther {
		t.Fatalf("apply: got %d\n%s", p.status, p.body)
	}
	got, version, err := e.store.GetPOP3(t.Context(), store.AllTenants(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	want := proto.Clone(stored).(*ospreyv1.Pop3Integration)
	want.IntervalSeconds = 120
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("stored after a form without the TLS fields (-want +got):\n%s", diff)
	}

	// With TLS on they are enabled, and what they send is written, an
	// empty cipher suite too.
	got.Tls = true
	if version, err = e.store.PutPOP3(t.Context(), store.AllTenants(), "s1", got, version); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(all(false), disabled(b.get("/sensors/s1/pop3"))); diff != "" {
		t.Errorf("TLS on: disabled fields (-want +got):\n%s", diff)
	}
	p = b.post("/sensors/s1/pop3", url.Values{
		"enabled": {"on"}, "server": {"mail.example.com"}, "port": {"995"}, "interval_seconds": {"120"},
		"tls": {"on"}, "tls_mode": {"implicit"}, "tls_certificate": {"trusted_only"}, "cipher_suite": {""}, "ca_pem": {""},
		"username": {"journal"}, "password": {""}, "version": {strconv.FormatInt(version, 10)},
	})
	if p.status != http.StatusSeeOther {
		t.Fatalf("apply with TLS: got %d\n%s", p.status, p.body)
	}
	got, _, err = e.store.GetPOP3(t.Context(), store.AllTenants(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	want = proto.Clone(stored).(*ospreyv1.Pop3Integration)
	want.Port, want.IntervalSeconds, want.Tls, want.CipherSuite = 995, 120, true, ""
	want.TlsMode, want.TlsCertificate = ospreyv1.Pop3TlsMode_POP3_TLS_MODE_IMPLICIT, ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("stored after a form with TLS (-want +got):\n%s", diff)
	}
	// A refused form with TLS off shows them disabled again.
	p = b.post("/sensors/s1/pop3", url.Values{"enabled": {"on"}, "server": {"mail.example.com:110"}, "version": {"0"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("invalid form: got %d, want 422", p.status)
	}
	if diff := cmp.Diff(all(true), disabled(p)); diff != "" {
		t.Errorf("refused form, TLS off: disabled fields (-want +got):\n%s", diff)
	}
}

func TestPOP3ErrorsShownBesideFields(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	p := b.post("/sensors/s1/pop3", url.Values{
		"enabled": {"on"}, "server": {"mail.example.com:995"}, "port": {"70000"}, "interval_seconds": {"5"},
		"tls": {"on"}, "tls_certificate": {""}, "version": {"0"},
	})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("got %d, want 422", p.status)
	}
	for _, tc := range []struct{ id, want string }{
		{"pop3-server", "must not include a port"},
		{"pop3-port", "must be 1 to 65535"},
		{"pop3-interval", "must be 10 to 86400"},
		{"pop3-username", "required"},
		{"pop3-tls-certificate", "required with tls"},
	} {
		if got := fieldError(t, p, tc.id); !strings.Contains(got, tc.want) {
			t.Errorf("error beside #%s: %q, want %q in it", tc.id, got, tc.want)
		}
	}
	if _, v, _ := e.store.GetPOP3(t.Context(), store.AllTenants(), "s1"); v != 0 {
		t.Errorf("an invalid form was saved (version %d)", v)
	}
}

func TestServerListFiltersAndPages(t *testing.T) {
	e := newEnv(t)
	for i := range 120 {
		id := fmt.Sprintf("branch-%03d", i)
		state := ospreyv1.SensorState_SENSOR_STATE_APPROVED
		if i%10 == 0 {
			state = ospreyv1.SensorState_SENSOR_STATE_PENDING
		}
		if _, err := e.store.CreateSensor(t.Context(), store.AllTenants(), &ospreyv1.Sensor{Id: id, Tenant: "default", Name: id, State: state}); err != nil {
			t.Fatal(err)
		}
	}
	b := e.signedIn("root")
	rows := func(p page) int { return strings.Count(p.body, "<tr data-sensor=") }
	for _, tc := range []struct {
		query   string
		rows    int
		showing string
	}{
		{"", 50, "Showing 1–50 of 122"},
		{"?page=3", 22, "Showing 101–122 of 122"},
		{"?page=99", 22, "Page 3 of 3"},
		{"?q=branch-01", 10, "Showing 1–10 of 10 matching (122 in all)"},
		{"?state=pending", 14, "Showing 1–14 of 14 matching"},
		{"?tenant=acme", 1, "Showing 1–1 of 1 matching"},
		{"?conn=online", 0, "No sensor matches the filter."},
	} {
		p := b.get("/sensors" + tc.query)
		if got := rows(p); got != tc.rows || !strings.Contains(p.body, tc.showing) {
			t.Errorf("/sensors%s: %d rows, want %d, and %q in the page", tc.query, got, tc.rows, tc.showing)
		}
	}
	// The live status reports a sensor coming online.
	lease, err := e.store.Lease(t.Context(), 60)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutStatuses(t.Context(), lease, []store.StatusWrite{{Status: &ospreyv1.SensorRuntime{
		SensorId: "branch-005", Tenant: "default", Online: true, Node: "node-1", AppliedVersion: 0,
	}}}); err != nil {
		t.Fatal(err)
	}
	var live struct {
		Sensors []struct {
			ID     string `json:"id"`
			Online bool   `json:"online"`
			Node   string `json:"node"`
		} `json:"sensors"`
		Pending int `json:"pending"`
	}
	p := b.get("/sensors.json?id=branch-005&id=branch-006&id=nonexistent")
	if err := json.Unmarshal([]byte(p.body), &live); err != nil {
		t.Fatal(err)
	}
	if len(live.Sensors) != 2 || !live.Sensors[0].Online || live.Sensors[0].Node != "node-1" || live.Sensors[1].Online || live.Pending != 14 {
		t.Errorf("live status: %+v", live)
	}
	if p := b.get("/sensors?conn=online"); rows(p) != 1 {
		t.Errorf("online filter: %d rows, want 1", rows(p))
	}
}

func TestUsersPage(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	p := b.get("/users")
	for _, name := range []string{"root", "alice", "bob", "audrey", "sam"} {
		if !strings.Contains(p.body, ">"+name+"<") {
			t.Errorf("the user list lacks %s", name)
		}
	}
	for _, title := range []string{"Administrator", "Local administrator", "Senior security officer", "Security officer", "Security auditor"} {
		if !strings.Contains(p.body, title) {
			t.Errorf("the page does not name the role %s", title)
		}
	}
	p = b.post("/users", url.Values{"name": {"alice"}, "role": {"security-officer"}, "password": {"short"}, "confirm": {"short"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad user: got %d", p.status)
	}
	if got := fieldError(t, p, "user-password"); !strings.Contains(got, "between 12 and 72") {
		t.Errorf("password error: %q", got)
	}
	if got := fieldError(t, p, "user-tenants"); !strings.Contains(got, "at least one tenant") {
		t.Errorf("tenants error: %q", got)
	}
	p = b.post("/users", url.Values{"name": {"alice"}, "role": {"security-auditor"}, "all_tenants": {"on"}, "password": {testPassword}, "confirm": {testPassword}})
	if got := fieldError(t, p, "user-name"); !strings.Contains(got, "already exists") {
		t.Errorf("duplicate name error: %q", got)
	}
	p = b.post("/users", url.Values{"name": {"carol"}, "role": {"senior-security-officer"}, "tenants": {"acme", "default"}, "password": {testPassword}, "confirm": {testPassword + "x"}})
	if got := fieldError(t, p, "user-confirm"); !strings.Contains(got, "does not match") {
		t.Errorf("confirm error: %q", got)
	}
	if strings.Contains(p.body, testPassword) {
		t.Errorf("a refused form shows the password")
	}
	p = b.post("/users", url.Values{"name": {"carol"}, "role": {"senior-security-officer"}, "tenants": {"default", "acme"}, "password": {testPassword}, "confirm": {testPassword}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("create carol: got %d\n%s", p.status, p.body)
	}
	if u, _, err := e.store.GetUser(t.Context(), store.AllTenants(), "carol"); err != nil || u.GetRole() != ospreyv1.Role_ROLE_SENIOR_OFFICER ||
		!slices.Equal(u.GetTenants(), []string{"acme", "default"}) {
		t.Errorf("carol: %v, %v", u, err)
	}
	if p := b.get("/users"); !strings.Contains(p.body, "User carol created.") || !strings.Contains(p.body, ">carol<") || !strings.Contains(p.body, "acme, default") {
		t.Errorf("the list does not show carol of acme and default")
	}

	// An administrator of one tenant reads users but creates none.
	a := e.signedIn("alice")
	if p := a.get("/users"); p.status != http.StatusOK || !strings.Contains(p.body, `<fieldset class="plain" disabled>`) {
		t.Errorf("alice's users page: %d, or the form is not read-only", p.status)
	}
	if p := a.post("/users", url.Values{"name": {"dave"}, "role": {"administrator"}, "tenants": {"default"}, "password": {testPassword}, "confirm": {testPassword}}); p.status != http.StatusForbidden {
		t.Errorf("tenant administrator making a user: got %d, want 403", p.status)
	}
	if _, _, err := e.store.GetUser(t.Context(), store.AllTenants(), "dave"); err == nil {
		t.Errorf("an administrator of one tenant made a user")
	}
}

func TestJoinTokens(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	b.get("/tokens")
	p := b.post("/tokens", url.Values{"tenant": {"acme"}, "ttl": {"2"}, "ttl_unit": {"hours"}, "max_uses": {"3"}, "description": {"branch offices"}})
	if p.status != http.StatusCreated {
		t.Fatalf("create: got %d\n%s", p.status, p.body)
	}
	secret := attr(byID(p.doc(t), "issued-secret"), "value")
	if !strings.HasPrefix(secret, "ospj_") {
		t.Fatalf("issued token %q", secret)
	}
	wantCmd := "osprey sensor --central " + strings.TrimPrefix(e.url, "http://")[:len("127.0.0.1")] + ":7443 --join-token " + secret +
		" --data-dir /var/lib/osprey-sensor --name NAME"
	if got := text(byID(p.doc(t), "issued-command")); got != wantCmd {
		t.Errorf("command line:\n got %q\nwant %q", got, wantCmd)
	}
	tokens, err := e.store.ListTokens(t.Context(), store.AllTenants())
	if err != nil || len(tokens) != 1 {
		t.Fatalf("tokens: %v, %v", tokens, err)
	}
	tok := tokens[0]
	if tok.GetTenant() != "acme" || tok.GetMaxUses() != 3 || tok.GetExpiresAt().AsTime().Sub(tok.GetCreatedAt().AsTime()).Hours() != 2 {
		t.Errorf("stored token: %v", tok)
	}
	p = b.get("/tokens")
	if strings.Contains(p.body, secret) {
		t.Errorf("the token list shows the secret again")
	}
	if !strings.Contains(p.body, tok.GetId()) || !strings.Contains(p.body, "3 of 3 left") {
		t.Errorf("the token list lacks the new token")
	}
	// Bob sees it (tenant acme), Alice does not.
	if p := e.signedIn("alice").get("/tokens"); strings.Contains(p.body, tok.GetId()) {
		t.Errorf("alice sees a token of tenant acme")
	}
	bob := e.signedIn("bob")
	if p := bob.get("/tokens"); !strings.Contains(p.body, tok.GetId()) {
		t.Errorf("bob does not see his tenant's token")
	}
	// Errors beside the fields.
	p = b.post("/tokens", url.Values{"tenant": {"acme"}, "ttl": {"many"}, "ttl_unit": {"hours"}, "max_uses": {"-1"}})
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad token form: got %d", p.status)
	}
	if fieldError(t, p, "token-ttl") == "" || fieldError(t, p, "token-max-uses") == "" {
		t.Errorf("no errors beside TTL and maximum enrollments")
	}
	// Delete.
	if p := bob.post("/tokens/"+tok.GetId()+"/delete", nil); p.status != http.StatusSeeOther {
		t.Fatalf("delete: got %d", p.status)
	}
	if _, _, err := e.store.GetToken(t.Context(), store.AllTenants(), tok.GetId()); err == nil {
		t.Errorf("the token is still there")
	}
}

func TestClusterPage(t *testing.T) {
	e := newEnv(t)
	p := e.signedIn("root").get("/cluster")
	if p.status != http.StatusOK {
		t.Fatalf("got %d", p.status)
	}
	// The etcd member of etcdtest is named "test".
	for _, want := range []string{"node-1", "0.0.0.0:7443", `<td class="strong">test`, strings.TrimPrefix(e.url, "http://"),
		// The members from gossip, with state, health and addresses.
		`data-node="node-2"`, `<span class="badge node-dead" data-field="state">dead</span>`,
		`<span class="badge health-failing" data-component="smtp">smtp</span>`, "<code>10.0.0.2:25</code>",
		`<span class="badge health-failing" data-component="rspamd">rspamd</span>`,
		// The DNS answers.
		"<code>cluster.example.</code>", "<code>central.cluster.example.</code>", "<code>10.0.0.2</code>", "no healthy node"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the cluster page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "SERVFAIL") {
		t.Error("the cluster page says the node answers SERVFAIL, but it has the quorum")
	}
	// node-1 runs no sensor: no smtp or spool health is shown for it.
	row := p.body[strings.Index(p.body, `data-node="node-1"`):strings.Index(p.body, `data-node="node-2"`)]
	if strings.Contains(row, `data-component="smtp"`) {
		t.Error("node-1 shows SMTP health without the sensor role")
	}
	// nor Rspamd's, which it does not ask.
	if strings.Contains(row, `data-component="rspamd"`) {
		t.Error("node-1 shows Rspamd's health without using it")
	}
}

func TestNotFoundPage(t *testing.T) {
	e := newEnv(t)
	p := e.signedIn("root").get("/no/such/page")
	if p.status != http.StatusNotFound || !strings.Contains(p.body, "There is no such page.") {
		t.Errorf("got %d", p.status)
	}
}
