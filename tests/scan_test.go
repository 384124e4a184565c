package tests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/testwait"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// eicarTestFile is the EICAR anti-virus test file.
const eicarTestFile = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// waitAlert polls the API until exactly the alerts matching q are there
// (want of them), and returns them.
func waitAlert(t *testing.T, c *api.Client, q api.AlertQuery, want int) []api.Alert {
	t.Helper()
	var list *api.AlertList
	testwait.For(t, fmt.Sprintf("%d alerts for %+v", want, q), func() bool {
		var err error
		if list, err = c.Alerts(t.Context(), q); err != nil {
			t.Fatal(err)
		}
		return len(list.Alerts) >= want
	})
	if len(list.Alerts) != want {
		t.Fatalf("alerts for %+v: got %d, want %d: %+v", q, len(list.Alerts), want, list.Alerts)
	}
	return list.Alerts
}

// TestEICARFromSwaksRaisesAnAlert: swaks sends the EICAR file as an
// attachment to the dev node's sensor; the central scans the upload and
// the alert is returned by the API with the message's details, once. An
// indicator rule added through the API applies to the next message.
func TestEICARFromSwaksRaisesAnAlert(t *testing.T) {
	swaks := requirePeer(t, "swaks")
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	listen := loopbackPort(t)
	d.enableSMTP(t, smtpConfig(listen))
	host, port, _ := net.SplitHostPort(listen)
	dir := t.TempDir()
	attachment := filepath.Join(dir, "eicar.com")
	if err := os.WriteFile(attachment, []byte(eicarTestFile), 0o600); err != nil {
		t.Fatal(err)
	}
	send := func(subject string, args ...string) {
		t.Helper()
		args = append([]string{"--server", host, "--port", port, "--timeout", "20",
			"--from", "mallory@evil.example", "--to", "bob@example.com", "--header", "Subject: " + subject}, args...)
		if out, err := exec.CommandContext(t.Context(), swaks, args...).CombinedOutput(); err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
	}
	send("quarterly report", "--body", "See the attached file.", "--attach", attachment)

	alerts := waitAlert(t, d.api, api.AlertQuery{Tenant: "default", Q: "quarterly report"}, 1)
	a := alerts[0]
	if a.Tenant != "default" || a.SensorID != "dev" || a.Source != api.SourceSMTP || a.Verdict != "detected" || a.Severity != api.SeverityHigh {
		t.Errorf("alert: tenant %q sensor %q source %q verdict %q severity %q; want default, dev, smtp, detected, high",
			a.Tenant, a.SensorID, a.Source, a.Verdict, a.Severity)
	}
	if a.Envelope == nil || a.Envelope.MailFrom != "mallory@evil.example" || !slices.Equal(a.Envelope.RcptTo, []string{"bob@example.com"}) {
		t.Errorf("alert envelope %+v", a.Envelope)
	}
	if a.Headers == nil || a.Headers.Subject != "quarterly report" || len(a.Headers.Received) == 0 {
		t.Errorf("alert headers %+v: want the subject and the sensor's Received header", a.Headers)
	}
	if !slices.ContainsFunc(a.Matches, func(m api.Match) bool { return m.Engine == "eicar" && m.RuleID == "EICAR-Test-File" }) {
		t.Errorf("alert matches %+v: want the eicar engine's EICAR-Test-File", a.Matches)
	}
	sum := sha256.Sum256([]byte(eicarTestFile))
	if !slices.ContainsFunc(a.Attachments, func(at api.Attachment) bool {
		return at.Filename == "eicar.com" && at.SHA256 == hex.EncodeToString(sum[:])
	}) {
		t.Errorf("alert attachments %+v: want eicar.com with the EICAR file's SHA-256", a.Attachments)
	}
	byID, err := d.api.Alert(t.Context(), "default", a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if byID.ID != a.ID || byID.MessageID != a.MessageID {
		t.Errorf("GET /alerts/%s returned %+v", a.ID, byID)
	}
	msgs, err := d.api.Messages(t.Context(), api.MessageQuery{Tenant: "default", Sensor: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(msgs.Messages, func(m api.MessageRecord) bool {
		return m.MessageID == a.MessageID && m.Verdict == "detected" && m.AlertID == a.ID
	}) {
		t.Errorf("message records %+v: want %s detected with alert %s", msgs.Messages, a.MessageID, a.ID)
	}

	// A clean message raises nothing, until a rule names its URL's host.
	send("payment link", "--body", "Pay here: https://pay.evil.example/invoice/42")
	waitRecordsN(t, d, 2)
	waitAlert(t, d.api, api.AlertQuery{Tenant: "default", Q: "payment link"}, 0)
	if _, err := d.api.CreateRule(t.Context(), "default", api.Rule{Kind: api.RuleURLHost, Value: "evil.example",
		Severity: api.SeverityCritical, Description: "phishing host"}); err != nil {
		t.Fatal(err)
	}
	send("payment link again", "--body", "Pay here: https://pay.evil.example/invoice/43")
	b := waitAlert(t, d.api, api.AlertQuery{Tenant: "default", Q: "payment link again"}, 1)[0]
	if b.Severity != api.SeverityCritical || !slices.ContainsFunc(b.Matches, func(m api.Match) bool { return m.Engine == "ioc" }) {
		t.Errorf("alert of the URL rule: severity %q, matches %+v", b.Severity, b.Matches)
	}
	// Each detected message raised exactly one alert.
	waitAlert(t, d.api, api.AlertQuery{Tenant: "default"}, 2)
}

// waitRecordsN waits until the dev sensor has n recorded uploads.
func waitRecordsN(t *testing.T, d *devNode, n int) {
	t.Helper()
	d.waitRecords(t, "all uploaded", func(recs []*ospreyv1.MessageRecord) bool { return len(recs) >= n })
}

// TestAlertsReachTheSIEM: a tenant's syslog export, set through the API,
// sends each alert to a real receiver (socat on loopback, writing what it
// gets to a file) as one RFC 5424 message in CEF, framed by octet counting.
func TestAlertsReachTheSIEM(t *testing.T) {
	swaks := requirePeer(t, "swaks")
	socat := requirePeer(t, "socat")
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	received := filepath.Join(t.TempDir(), "siem.log")
	siemAddr := loopbackPort(t)
	_, siemPort, _ := net.SplitHostPort(siemAddr)
	receiver := exec.Command(socat, "-u", "TCP-LISTEN:"+siemPort+",bind=127.0.0.1,reuseaddr,fork", "OPEN:"+received+",creat,append")
	if err := receiver.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { receiver.Process.Kill(); receiver.Wait() })
	if _, _, err := d.api.PutExport(t.Context(), "default", &api.SyslogExport{Enabled: true, Address: siemAddr}, 0); err != nil {
		t.Fatal(err)
	}

	listen := loopbackPort(t)
	d.enableSMTP(t, smtpConfig(listen))
	host, port, _ := net.SplitHostPort(listen)
	attachment := filepath.Join(t.TempDir(), "eicar.com")
	if err := os.WriteFile(attachment, []byte(eicarTestFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(t.Context(), swaks, "--server", host, "--port", port, "--timeout", "20",
		"--from", "mallory@evil.example", "--to", "bob@example.com", "--header", "Subject: for the SIEM",
		"--body", "attached", "--attach", attachment).CombinedOutput(); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	a := waitAlert(t, d.api, api.AlertQuery{Tenant: "default", Q: "for the SIEM"}, 1)[0]

	var b []byte
	var frames []string
	var rest []byte
	testwait.For(t, "a frame at the SIEM", func() bool {
		b, _ = os.ReadFile(received)
		frames, rest = syslogFrames(b)
		return len(frames) > 0
	})
	if len(frames) != 1 || len(rest) != 0 {
		t.Fatalf("want one octet-counted frame, got %d frames and %d bytes left over: %q", len(frames), len(rest), b)
	}
	f := frames[0]
	for _, want := range []string{"<", ">1 ", " osprey ", "CEF:0|Osprey|Osprey|", "EICAR-Test-File", a.ID, "mallory@evil.example", "bob@example.com"} {
		if !strings.Contains(f, want) {
			t.Errorf("syslog message lacks %q:\n%s", want, f)
		}
	}
}

// syslogFrames splits RFC 6587 octet-counted frames ("LEN SP MSG").
func syslogFrames(b []byte) (frames []string, rest []byte) {
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 {
			return frames, b
		}
		n, err := strconv.Atoi(string(b[:sp]))
		if err != nil || n <= 0 || len(b) < sp+1+n {
			return frames, b
		}
		frames = append(frames, string(b[sp+1:sp+1+n]))
		b = b[sp+1+n:]
	}
	return frames, nil
}
