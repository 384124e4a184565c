package rspamdtest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/internal/rspamdtest"
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
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if resp, err := client.Get(s.URL + "/ping"); err == nil {
		resp.Body.Close()
		t.Error("rspamd still answers after Stop")
	}
}
