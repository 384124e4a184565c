package tests

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/testwait"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// greetingFrom connects to addr from the loopback address from and
// returns the server's first line.
func greetingFrom(t *testing.T, from, addr string) string {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	conn, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("greeting of %s to %s: %v", addr, from, err)
	}
	return line
}

// TestTrustedNetworksMoveToTheOutboundList: an outbound gateway that an
// earlier version configured with trusted networks keeps relaying for
// them, before the upgrade of its central (its sensor runs them as its
// outbound list) and after it (the central moved them into the outbound
// acceptance list when it started); the list is then edited with osprey
// ctl, and its export is one entry a line.
func TestTrustedNetworksMoveToTheOutboundList(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	d := startDev(t, dataDir)
	outbound := loopbackPort(t)
	legacy := &ospreyv1.SmtpIntegration{
		Enabled: true, Mode: ospreyv1.SmtpMode_SMTP_MODE_OUTBOUND,
		MaxMessageSize: &ospreyv1.SizeLimit{Value: 1, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB},
		Gateway: &ospreyv1.SmtpGateway{
			Outbound: &ospreyv1.GatewayListener{Listen: outbound},
			//lint:ignore SA1019 what an earlier version stored
			TrustedNetworks: []string{"127.0.0.1"},
		},
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(legacy)
	if err != nil {
		t.Fatal(err)
	}
	put, err := d.etcd.Put(t.Context(), "/osprey/v1/tenants/default/sensors/dev/smtp", string(b))
	if err != nil {
		t.Fatal(err)
	}
	waitSensor(t, d.api, "dev", "the earlier version's configuration applied", func(s *api.Sensor) bool { return s.AppliedVersion == put.Header.Revision })
	if g := greetingFrom(t, "127.0.0.1", outbound); !strings.HasPrefix(g, "220 ") {
		t.Errorf("before the move, 127.0.0.1 was greeted %q, want 220", g)
	}
	if g := greetingFrom(t, "127.0.0.2", outbound); !strings.HasPrefix(g, "554 ") {
		t.Errorf("before the move, 127.0.0.2 was greeted %q, want 554", g)
	}

	// The central restarts: it moves the trusted networks.
	d.interrupt(t)
	d = startDevAt(t, dataDir, "127.0.0.1:0")
	ctx := t.Context()
	page, err := d.api.Acceptance(ctx, "dev", api.AcceptanceOutbound, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != 1 || page.Entries[0] != "127.0.0.1" {
		t.Errorf("outbound list after the move: %+v, want 127.0.0.1", page)
	}
	cfg, _, err := d.api.SMTP(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 moved
	if n := cfg.Gateway.TrustedNetworks; len(n) != 0 {
		t.Errorf("the SMTP integration still holds trusted networks %q", n)
	}
	sn, err := d.api.Sensor(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	waitSensor(t, d.api, "dev", fmt.Sprintf("version %d applied", sn.ConfigVersion), func(s *api.Sensor) bool { return s.Online && s.AppliedVersion == sn.ConfigVersion })
	if g := greetingFrom(t, "127.0.0.1", outbound); !strings.HasPrefix(g, "220 ") {
		t.Errorf("after the move, 127.0.0.1 was greeted %q, want 220", g)
	}

	// Edited with osprey ctl: 127.0.0.2 may relay too.
	ctl := []string{"OSPREY_ADDRESS=" + d.base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword}
	r := runOsprey(t, ctl, "ctl", "acceptance", "add", "dev", "outbound", "127.0.0.2", "bad/entry")
	if r.code != 1 || !strings.Contains(r.stderr, `add[1]: "bad/entry"`) {
		t.Errorf("ctl acceptance add of a bad entry: exit status %d, stderr %q; want 1 naming add[1]", r.code, r.stderr)
	}
	r = runOsprey(t, ctl, "ctl", "acceptance", "add", "dev", "outbound", "127.0.0.2")
	if r.code != 0 || !strings.Contains(r.stdout, "changed, 2 entries") {
		t.Fatalf("ctl acceptance add: exit status %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	testwait.For(t, "127.0.0.2 greeted by the outbound listener", func() bool {
		return strings.HasPrefix(greetingFrom(t, "127.0.0.2", outbound), "220 ")
	})
	r = runOsprey(t, ctl, "ctl", "acceptance", "export", "dev", "outbound")
	if r.code != 0 || r.stdout != "127.0.0.1\n127.0.0.2\n" {
		t.Errorf("ctl acceptance export: exit status %d, stdout %q", r.code, r.stdout)
	}
	r = runOsprey(t, ctl, "ctl", "acceptance", "list", "dev", "outbound", "--offset", "1")
	if r.code != 0 || r.stdout != "127.0.0.2\n# entries 2 to 2 of 2 (version "+versionOf(t, d, api.AcceptanceOutbound)+")\n" {
		t.Errorf("ctl acceptance list: exit status %d, stdout %q", r.code, r.stdout)
	}
	var file bytes.Buffer
	file.WriteString("10.0.0.0/8;192.0.2.1\n10.0.0.1/8\n")
	r = runOsprey(t, ctl, "ctl", "acceptance", "import", "dev", "inbound", "--file", writeFile(t, file.Bytes()))
	if r.code != 1 || !strings.Contains(r.stderr, "line 2: \"10.0.0.1/8\": host bits set, did you mean 10.0.0.0/8") {
		t.Errorf("ctl acceptance import of a bad file: exit status %d, stderr %q", r.code, r.stderr)
	}
}

func versionOf(t *testing.T, d *devNode, kind api.AcceptanceListKind) string {
	t.Helper()
	p, err := d.api.Acceptance(t.Context(), "dev", kind, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(p.Version)
}

// writeFile writes b to a file of the test's and returns its name.
func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "list.txt")
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}
