package rspamdtest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/internal/rspamdtest"
	"github.com/ospreysec/osprey/internal/testwait"
)

func TestStartAnswersAndStops(t *testing.T) {
	s := rspamdtest.New(t, rspamdtest.Options{})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	msg := "From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
	resp, err := client.Post(s.URL+"/checkv2", "application/octet-stream", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("checkv2: got status %d, want 200", resp.StatusCode)
	}
	// The worker (running as rspamd's user, as root) logs each message.
	testwait.For(t, "rspamd to log the message", func() bool { return strings.Contains(s.Log(), "rspamd_task_write_log") })
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if resp, err := client.Get(s.URL + "/ping"); err == nil {
		resp.Body.Close()
		t.Error("rspamd still answers after Stop")
	}
}
