package rspamdtest_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/internal/rspamdtest"
)

func TestStartAnswersAndStops(t *testing.T) {
	start := time.Now()
	s := rspamdtest.New(t, rspamdtest.Options{})
	t.Logf("rspamd answered after %v", time.Since(start))
	msg := "From: a@example.com\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
	resp, err := http.Post(s.URL+"/checkv2", "application/octet-stream", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("checkv2: got status %d, want 200", resp.StatusCode)
	}
	st := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("stopped after %v\n%s", time.Since(st), s.Log())
	if _, err := http.Get(s.URL + "/ping"); err == nil {
		t.Error("rspamd still answers after Stop")
	}
}
