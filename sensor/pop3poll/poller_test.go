package pop3poll

import (
	"strings"
	"testing"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestApplyValidates(t *testing.T) {
	p := newPoller(t, Options{Spool: openSpool(t, t.TempDir())})
	bad := &ospreyv1.SensorConfig{Pop3: &ospreyv1.Pop3Integration{
		Enabled: true, Server: "mail.example.com", Port: 995, IntervalSeconds: 5,
		Tls: true, TlsCertificate: ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY,
		CipherSuite: "HIHG", Password: "hunter2",
	}}
	err := p.Apply(t.Context(), bad)
	if err == nil {
		t.Fatal("Apply took an invalid integration")
	}
	for _, want := range []string{"interval_seconds", "cipher_suite", "username"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q shows the password", err)
	}
	if j, _ := p.current(); j != nil {
		t.Errorf("a refused configuration was taken: %+v", j)
	}

	good := plainIntegration("127.0.0.1:110")
	if err := p.Apply(t.Context(), good); err != nil {
		t.Fatal(err)
	}
	j, stop := p.current()
	if j == nil || j.mailbox != "alice@127.0.0.1:110" {
		t.Fatalf("job %+v, want mailbox alice@127.0.0.1:110", j)
	}
	// The same configuration again changes nothing; another interval keeps
	// the session going; another server stops it.
	if err := p.Apply(t.Context(), good); err != nil {
		t.Fatal(err)
	}
	longer := plainIntegration("127.0.0.1:110")
	longer.Pop3.IntervalSeconds = 60
	if err := p.Apply(t.Context(), longer); err != nil {
		t.Fatal(err)
	}
	if isClosed(stop) {
		t.Error("a new interval stopped the session")
	}
	if err := p.Apply(t.Context(), plainIntegration("127.0.0.2:110")); err != nil {
		t.Fatal(err)
	}
	if !isClosed(stop) {
		t.Error("a new server did not stop the session")
	}
	if got := Mailbox(&ospreyv1.Pop3Integration{Username: "bob", Server: "::1", Port: 995}); got != "bob@[::1]:995" {
		t.Errorf("Mailbox = %q", got)
	}
}

func TestBackoff(t *testing.T) {
	p := newPoller(t, Options{Spool: openSpool(t, t.TempDir()), MinBackoff: time.Second, MaxBackoff: 10 * time.Second})
	var got []time.Duration
	for n := range 6 {
		p.st.failures = n
		got = append(got, p.backoff())
	}
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoffs %v, want %v", got, want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	err := Options{BatchMessages: -1, StopGrace: -time.Second}.Validate()
	for _, want := range []string{"spool", "batch_messages", "stop_grace"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem with %s", err, want)
		}
	}
}
