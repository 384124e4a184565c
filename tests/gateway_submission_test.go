package tests

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/slapdtest"
	"github.com/ospreysec/osprey/internal/testwait"
)

// TestGatewaySubmission: the dev node's sensor as an outbound gateway with
// its submission listener, checking credentials against a real OpenLDAP
// directory. swaks logs in with PLAIN and with LOGIN over STARTTLS and its
// mail reaches the next hop (smtp-sink); the central's record of it names
// the user. Without AUTH the mail is refused; without TLS AUTH is not
// offered; a guesser is throttled; the refusals are in the audit log,
// without the passwords. A directory that stops makes AUTH a temporary
// failure (but for a login the cache remembers) and a problem of the
// sensor's status until it is back.
func TestGatewaySubmission(t *testing.T) {
	swaks := requirePeer(t, "swaks")
	dir := slapdtest.Start(t, slapdtest.Options{Users: map[string]string{"alice": "alice pw", "bob": "bob-pw", "carol": "carol-pw"}})
	sink := startSMTPSink(t)
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	outbound, submission := loopbackPort(t), loopbackPort(t)
	d.enableSMTP(t, &api.SMTPIntegration{
		Enabled:        true,
		Mode:           api.SMTPOutbound,
		MaxMessageSize: &api.SizeLimit{Value: 1, Unit: api.MB},
		Gateway: &api.SMTPGateway{
			Outbound: &api.GatewayListener{Listen: outbound},
			// Nobody relays through the outbound listener here: its
			// acceptance list is empty.
			RelayHosts: []api.NextHop{hop(t, sink.addr)},
			HeloName:   "gw.example.com",
			Submission: &api.SubmissionSettings{
				Enabled:  true,
				Listener: &api.GatewayListener{Listen: submission, TLS: &api.SMTPTLS{Mode: api.TLSRequire}},
				Source:   api.AuthSourceLDAP,
				LDAP: &api.LDAPAuth{URL: dir.URL, BaseDN: slapdtest.PeopleDN, Filter: slapdtest.Filter,
					SearchBindDN: slapdtest.SearchDN, SearchBindPassword: slapdtest.SearchPassword},
				MaxFailuresPerUser: 3,
			},
		},
	})
	read, _, err := d.api.SMTP(t.Context(), "dev")
	if err != nil {
		t.Fatal(err)
	}
	if l := read.Gateway.Submission.LDAP; l.SearchBindPassword != "" || !l.SearchBindPasswordSet {
		t.Errorf("read LDAP settings %+v, want search_bind_password_set and no password", l)
	}

	host, subPort, _ := net.SplitHostPort(submission)
	run := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.CommandContext(t.Context(), swaks, append([]string{"--server", host, "--port", subPort, "--timeout", "20",
			"--ehlo", "laptop.example.com", "--from", "alice@example.com", "--to", "partner@elsewhere.test"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		out, err := run("--tls", "--auth", mech, "--auth-user", "alice", "--auth-password", "alice pw",
			"--header", "Subject: sent with "+mech)
		if err != nil || !strings.Contains(out, "235 2.7.0 ") {
			t.Fatalf("swaks --auth %s: %v\n%s", mech, err, out)
		}
	}
	var got []string
	testwait.For(t, "both messages delivered to the next hop", func() bool {
		got = sink.messages(t)
		return len(got) >= 2
	})
	for _, m := range got {
		if !strings.Contains(m, " with ESMTPSA id ") || !strings.Contains(m, "X-Osprey-Verdict: clean") {
			t.Errorf("delivered without the authenticated Received header or the verdict:\n%s", m)
		}
	}
	page, err := d.api.Messages(t.Context(), api.MessageQuery{Tenant: "default", Sensor: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 2 {
		t.Fatalf("%d message records, want 2", len(page.Messages))
	}
	for _, m := range page.Messages {
		if m.Envelope.AuthUser != "alice" {
			t.Errorf("message %s: auth_user %q, want alice", m.MessageID, m.Envelope.AuthUser)
		}
	}

	// Refused: no AUTH; AUTH without TLS (not offered); a guesser.
	if out, err := run("--tls"); err == nil || !strings.Contains(out, "530 5.7.0 Authentication required") {
		t.Errorf("swaks without AUTH: %v, want 530 in:\n%s", err, out)
	}
	if out, err := run("--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "alice pw"); err == nil ||
		!strings.Contains(out, "did not advertise authentication") {
		t.Errorf("swaks --auth without TLS: %v, want AUTH not offered in:\n%s", err, out)
	}
	for i := range 3 {
		if out, err := run("--tls", "--auth", "PLAIN", "--auth-user", "bob", "--auth-password", "guess-"+strconv.Itoa(i)); err == nil || !strings.Contains(out, "535 5.7.8 ") {
			t.Errorf("guess %d: %v, want 535 in:\n%s", i, err, out)
		}
	}
	if out, err := run("--tls", "--auth", "PLAIN", "--auth-user", "bob", "--auth-password", "bob-pw"); err == nil || !strings.Contains(out, "454 4.7.0 ") {
		t.Errorf("the right password after 3 failures: %v, want 454 in:\n%s", err, out)
	}
	reasons := map[string]int64{}
	testwait.For(t, "the refusals in the audit log", func() bool {
		list, err := d.api.Audit(t.Context(), api.AuditQuery{Tenant: "default", Sensor: "dev", Kind: "refused", Limit: 500})
		if err != nil {
			return false
		}
		clear(reasons)
		for _, e := range list.Events {
			r := e.Refusal
			reasons[r.Reason] += r.Count
			if strings.Contains(r.Detail, "guess-") || strings.Contains(r.Detail, "bob-pw") {
				t.Fatalf("a refusal holds a password: %+v", r)
			}
		}
		return reasons["auth_required"] >= 1 && reasons["auth_failed"] >= 3 && reasons["auth_throttled"] >= 1
	})

	// The directory stops: AUTH answers 454, but for a login the cache
	// remembers; a problem of the sensor; back, the problem goes.
	dir.Stop()
	if out, err := run("--tls", "--auth", "PLAIN", "--auth-user", "carol", "--auth-password", "carol-pw"); err == nil || !strings.Contains(out, "454 4.7.0 ") {
		t.Errorf("AUTH with the directory down: %v, want 454 in:\n%s", err, out)
	}
	if out, err := run("--tls", "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "alice pw"); err != nil {
		t.Errorf("a cached login with the directory down: %v\n%s", err, out)
	}
	s := waitSensor(t, d.api, "dev", "the directory's problem in the status", func(s *api.Sensor) bool {
		return hasProblem(s.Problems, api.ProblemWarning, dir.URL)
	})
	if s.SMTPStatus == nil || !hasProblem(s.SMTPStatus.Problems, api.ProblemWarning, dir.URL) {
		t.Errorf("the SMTP integration's status %+v, want the directory's problem", s.SMTPStatus)
	}
	dir.Start()
	waitSensor(t, d.api, "dev", "the directory's problem gone", func(s *api.Sensor) bool {
		return !hasProblem(s.Problems, api.ProblemWarning, dir.URL)
	})
	if out, err := run("--tls", "--auth", "LOGIN", "--auth-user", "carol", "--auth-password", "carol-pw"); err != nil {
		t.Errorf("AUTH with the directory back: %v\n%s", err, out)
	}
}
