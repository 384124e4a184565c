package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/internal/postfix"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// startPostfix runs a private Postfix that takes mail for example.com on its
// own loopback port and relays it to relayhost, as a company's mail server
// pointed at a sensor does.
func startPostfix(t *testing.T, relayhost string) string {
	t.Helper()
	requirePeer(t, "postfix")
	if os.Geteuid() != 0 {
		t.Skip("a private Postfix instance needs root here (its daemons drop to the postfix user)")
	}
	in, err := postfix.Start(t.TempDir(), loopbackPort(t), map[string]string{
		"relay_domains":        "example.com",
		"relayhost":            "[" + strings.Replace(relayhost, ":", "]:", 1),
		"queue_run_delay":      "1s",
		"minimal_backoff_time": "1s",
		"maximal_backoff_time": "2s",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Stop()
		if t.Failed() {
			t.Logf("postfix log:\n%s", in.Log())
		}
	})
	return in.Addr
}

// TestPostfixRelaysToSensor: Postfix with the sensor as its relayhost;
// mail submitted to Postfix reaches the sensor's spool and is uploaded.
func TestPostfixRelaysToSensor(t *testing.T) {
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	sensorAddr := loopbackPort(t)
	cfg := smtpConfig(sensorAddr)
	d.enableSMTP(t, cfg)
	postfixAddr := startPostfix(t, sensorAddr)

	const n = 20
	for i := range n {
		if err := sendOne(postfixAddr, fmt.Sprintf("relayed-%d@example.org", i)); err != nil {
			t.Fatalf("submit to postfix: %v", err)
		}
	}
	recs := d.waitRecords(t, fmt.Sprintf("%d relayed messages", n), func(r []*ospreyv1.MessageRecord) bool { return len(r) >= n })
	for _, r := range recs {
		env := r.GetEnvelope()
		if !strings.HasPrefix(env.GetMailFrom(), "relayed-") || env.GetHelo() != "relay.test" {
			t.Errorf("record %v: want a message relayed by relay.test", env)
		}
	}
	if len(recs) != n {
		t.Errorf("got %d records, want %d", len(recs), n)
	}
}
