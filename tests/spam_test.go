package tests

import (
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/scan/scantest"
	"github.com/ospreysec/osprey/internal/rspamdtest"
	"github.com/ospreysec/osprey/internal/testwait"
)

// TestRspamdOpinionInTheMessageLog: a dev node that asks a real rspamd
// (--rspamd-url, from the environment) records with each message swaks
// sends it rspamd's opinion, which the API returns (GTUBE: rejected, with
// its symbol); GET /api/v1/nodes says rspamd works. Once rspamd is gone it
// says it fails (osprey ctl nodes list too), and the next message is
// recorded all the same, without a spam result.
func TestRspamdOpinionInTheMessageLog(t *testing.T) {
	swaks := requirePeer(t, "swaks")
	srv := rspamdtest.New(t, rspamdtest.Options{})
	d := startDev(t, filepath.Join(t.TempDir(), "data"), "OSPREY_RSPAMD_URL="+srv.URL, "OSPREY_RSPAMD_TIMEOUT=2s")
	listen := loopbackPort(t)
	d.enableSMTP(t, smtpConfig(listen))
	host, port, _ := net.SplitHostPort(listen)
	send := func(subject, body string) {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), swaks, "--server", host, "--port", port, "--timeout", "20",
			"--from", "mallory@evil.example", "--to", "bob@example.com", "--header", "Subject: "+subject, "--body", body).CombinedOutput()
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
	}
	message := func(subject string) api.MessageRecord {
		t.Helper()
		var found *api.MessageRecord
		testwait.For(t, "the record of "+subject, func() bool {
			list, err := d.api.Messages(t.Context(), api.MessageQuery{Tenant: "default", Sensor: "dev"})
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(list.Messages, func(m api.MessageRecord) bool { return m.Headers != nil && m.Headers.Subject == subject })
			if i >= 0 {
				found = &list.Messages[i]
			}
			return found != nil
		})
		return *found
	}
	rspamdHealth := func(want bool) {
		t.Helper()
		testwait.For(t, "the node's rspamd health to be "+map[bool]string{true: "ok", false: "failing"}[want], func() bool {
			list, err := d.api.Nodes(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(list.Nodes, func(n api.Node) bool { return n.Self })
			return i >= 0 && list.Nodes[i].Health.Rspamd != nil && *list.Nodes[i].Health.Rspamd == want
		})
	}

	send("cheap offer", "Buy now.\n"+scantest.GTUBE+"\n")
	m := message("cheap offer")
	if s := m.Spam; s == nil || s.Action != "reject" || s.Score < s.RequiredScore ||
		!slices.ContainsFunc(s.Symbols, func(sym api.SpamSymbol) bool { return sym.Name == "GTUBE" }) {
		t.Errorf("record of GTUBE: spam %+v, want rejected by rspamd with the GTUBE symbol", m.Spam)
	}
	if m.Verdict != "clean" || m.AlertID != "" {
		t.Errorf("record of GTUBE: verdict %q, alert %q; want clean and none (the spam opinion is no verdict)", m.Verdict, m.AlertID)
	}
	rspamdHealth(true)

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	rspamdHealth(false)
	// The command line says so too.
	r := runOsprey(t, []string{"OSPREY_ADDRESS=" + d.base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword}, "ctl", "nodes", "list")
	if lines := strings.Split(r.stdout, "\n"); r.code != 0 || len(lines) < 2 || !strings.HasPrefix(lines[1], "dev (this)") ||
		!strings.HasSuffix(strings.TrimSpace(lines[1]), " rspamd") {
		t.Errorf("osprey ctl nodes list: exit %d\n%s%s\nwant the node with rspamd failing", r.code, r.stdout, r.stderr)
	}
	send("another offer", "Buy again.\n"+scantest.GTUBE+"\n")
	if m := message("another offer"); m.Spam == nil || (m.Spam.NotChecked != "error" && m.Spam.NotChecked != "paused") || m.Spam.Score != 0 || m.Verdict != "clean" {
		t.Errorf("record without rspamd: spam %+v, verdict %q; want not checked (error or paused), clean", m.Spam, m.Verdict)
	}
}
