package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/testwait"
)

// TestGatewayQuarantine: an osprey sensor process as an inbound gateway
// in front of smtp-sink, with the tenant's policy and rules deciding each
// message's fate: the EICAR test file is quarantined (the default), one
// rule's match is delivered tagged, another's dropped with a notice to
// its recipient. The quarantined message is listed across sensors,
// previewed and downloaded as it arrived; an auditor may look but not
// release; a copy is released to another address; the sensor stopped, a
// release waits, and is carried out once the sensor is back.
func TestGatewayQuarantine(t *testing.T) {
	ctx := t.Context()
	grpc := loopbackPort(t)
	d := startDevAt(t, filepath.Join(t.TempDir(), "data"), grpc)
	next := loopbackPort(t)
	sink := runSink(t, next, t.TempDir()).smtpSink
	nextHost, nextPort, _ := net.SplitHostPort(next)
	port, err := strconv.ParseUint(nextPort, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	listen := loopbackPort(t)
	s := startGatewaySensor(t, d, grpc, "gw1", listen, &api.SMTPIntegration{
		Enabled: true, Mode: api.SMTPInbound, MaxMessageSize: &api.SizeLimit{Value: 1, Unit: api.MB},
		Gateway: &api.SMTPGateway{
			Inbound:      &api.GatewayListener{Listen: listen},
			LocalDomains: []api.LocalDomain{{Domain: "example.com", Hosts: []api.NextHop{{Host: nextHost, Port: uint32(port)}}}},
			HeloName:     "gw.example.com",
		},
	})
	for _, r := range []api.Rule{
		{Kind: api.RuleSender, Value: "tagme@partner.test", Severity: api.SeverityLow, Action: api.ActionTag},
		{Kind: api.RuleSender, Value: "dropme@partner.test", Severity: api.SeverityHigh, Action: api.ActionDropNotifyRecipient},
	} {
		if _, err := d.api.CreateRule(ctx, "default", r); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := d.api.PutPolicy(ctx, "default", &api.VerdictPolicy{SubjectTag: "[suspect]",
		TagHeaders: []api.HeaderField{{Name: "X-Tagged-By", Value: "osprey"}}}, 0); err != nil {
		t.Fatal(err)
	}

	sendEICAR(t, listen, "EICAR to hold")
	for _, from := range []string{"tagme@partner.test", "dropme@partner.test"} {
		msg := "From: " + from + "\r\nTo: bob@example.com\r\nSubject: from " + from + "\r\n\r\nhello\r\n"
		if err := smtpSend(listen, "partner.test", from, "bob@example.com", false, msg); err != nil {
			t.Fatal(err)
		}
	}
	find := func(what string, match func(m string) bool) string {
		t.Helper()
		var found string
		testwait.For(t, what, func() bool {
			for _, m := range sink.messages(t) {
				if match(m) {
					found = m
					return true
				}
			}
			return false
		})
		return found
	}
	tagged := find("the tagged message delivered", func(m string) bool { return strings.Contains(m, "from tagme@partner.test") })
	if !strings.Contains(tagged, "Subject: [suspect] from tagme@partner.test\n") || !strings.Contains(tagged, "X-Tagged-By: osprey\n") {
		t.Errorf("the tagged message:\n%s", tagged)
	}
	notice := find("the notice of the dropped message", func(m string) bool { return strings.Contains(m, "Message withheld") })
	if !strings.Contains(notice, "dropme@partner.test") || !strings.Contains(notice, "bob@example.com") {
		t.Errorf("the notice:\n%s", notice)
	}
	for _, m := range sink.messages(t) {
		if strings.Contains(m, "Subject: from dropme@partner.test") || strings.Contains(m, "EICAR to hold") {
			t.Errorf("a withheld message was delivered:\n%s", m)
		}
	}

	var held api.QuarantinedMessage
	testwait.For(t, "the EICAR message listed in the quarantine", func() bool {
		l, err := d.api.Quarantine(ctx, api.QuarantineQuery{State: api.QuarantineHeld})
		if err != nil || len(l.Messages) != 1 {
			return false
		}
		held = l.Messages[0]
		return true
	})
	if held.SensorID != s.id || held.Subject != "EICAR to hold" || held.Sender != "mallory@evil.example" || !held.Available ||
		!strings.Contains(held.Reason, "EICAR") {
		t.Errorf("listed %+v", held)
	}

	// An auditor looks but may not release.
	if _, err := d.api.CreateUser(ctx, api.User{Name: "audrey", Role: api.RoleSecurityAuditor, AllTenants: true, Password: "a long password for audrey"}); err != nil {
		t.Fatal(err)
	}
	auditor, err := api.NewClient(api.Config{Address: d.base, Username: "audrey", Password: "a long password for audrey"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := auditor.QuarantinedMessage(ctx, s.id, held.MessageID, true)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(eicarTestFile))
	if p := m.Preview; p == nil || len(p.Attachments) != 1 || p.Attachments[0].Filename != "eicar.com" ||
		p.Attachments[0].SHA256 != hex.EncodeToString(sum[:]) || !strings.Contains(p.Text, "See the attached file.") {
		t.Errorf("preview %+v (%s)", m.Preview, m.PreviewError)
	}
	var eml bytes.Buffer
	if err := auditor.DownloadQuarantined(ctx, s.id, held.MessageID, &eml); err != nil {
		t.Fatal(err)
	}
	if int64(eml.Len()) != held.Size || !strings.Contains(eml.String(), "Subject: EICAR to hold") {
		t.Errorf("downloaded %d bytes (want %d):\n%.300s", eml.Len(), held.Size, eml.String())
	}
	// The same through osprey ctl.
	ctlEnv := []string{"OSPREY_ADDRESS=" + d.base, "OSPREY_USERNAME=audrey", "OSPREY_PASSWORD=a long password for audrey"}
	if r := runOsprey(t, ctlEnv, "ctl", "quarantine", "list", "--state", "quarantined"); r.code != 0 ||
		!strings.Contains(r.stdout, held.MessageID) || !strings.Contains(r.stdout, "EICAR to hold") {
		t.Errorf("ctl quarantine list: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	emlFile := filepath.Join(t.TempDir(), "held.eml")
	if r := runOsprey(t, ctlEnv, "ctl", "quarantine", "download", s.id, held.MessageID, "--out", emlFile); r.code != 0 {
		t.Errorf("ctl quarantine download: %d\n%s%s", r.code, r.stdout, r.stderr)
	} else if b, err := os.ReadFile(emlFile); err != nil || !bytes.Equal(b, eml.Bytes()) {
		t.Errorf("ctl's download differs from the API's: %d bytes, %v", len(b), err)
	}
	if r := runOsprey(t, ctlEnv, "ctl", "quarantine", "delete", s.id, held.MessageID); r.code == 0 || !strings.Contains(r.stderr, "forbidden") {
		t.Errorf("the auditor's ctl quarantine delete: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var apiErr *api.Error
	if _, err := auditor.ReleaseQuarantined(ctx, s.id, held.MessageID, nil); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden {
		t.Errorf("the auditor's release: %v, want 403", err)
	}

	// A copy to another address; the message stays.
	res, err := d.api.ReleaseQuarantined(ctx, s.id, held.MessageID, []string{"admin@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Done || res.QueueID == "" || res.Message.State != api.QuarantineHeld {
		t.Errorf("release to admin: %+v", res)
	}
	copyMsg := find("the copy to admin delivered", func(m string) bool {
		return strings.Contains(m, "EICAR to hold") && strings.Contains(m, "admin@example.com")
	})
	if !strings.Contains(copyMsg, "X-Osprey-Verdict: released\n") {
		t.Errorf("the released copy:\n%s", copyMsg)
	}

	// The sensor stopped: the release waits for it, then is done.
	s.interrupt(t)
	waitSensor(t, d.api, s.id, "offline", func(s *api.Sensor) bool { return !s.Online })
	res, err = d.api.ReleaseQuarantined(ctx, s.id, held.MessageID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Done || res.Message.Pending != "release" || res.Message.Available {
		t.Errorf("release while the sensor is offline: %+v, want it pending", res)
	}
	s.restart(t)
	testwait.For(t, "the pending release carried out", func() bool {
		m, err := d.api.QuarantinedMessage(ctx, s.id, held.MessageID, false)
		return err == nil && m.State == api.QuarantineReleased
	})
	find("the released message delivered to bob", func(m string) bool {
		return strings.Contains(m, "EICAR to hold") && strings.Contains(m, "bob@example.com") && !strings.Contains(m, "admin@example.com")
	})
	m, err = d.api.QuarantinedMessage(ctx, s.id, held.MessageID, false)
	if err != nil {
		t.Fatal(err)
	}
	var history []string
	for _, e := range m.History {
		history = append(history, e.Action+" by "+e.Actor)
	}
	want := []string{"quarantined by central", "released_to by admin", "release by admin", "released by admin"}
	if strings.Join(history, ", ") != strings.Join(want, ", ") {
		t.Errorf("history %q, want %q", history, want)
	}
}
