package tests

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/syslogtest"
)

// untar extracts a .tar.gz into dir.
func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, filepath.Clean("/"+h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(name, 0o700); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			out, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode).Perm())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, tr); err != nil {
				t.Fatal(err)
			}
			out.Close()
		}
	}
}

// TestUpgradeMovesRecordsAndAlertsOutOfEtcd starts `osprey dev` on a data
// dir that the version before the SQL store made (see
// testdata/upgrade/README.md): 13 messages recorded, 8 of them alerts, the
// first 5 exported to a SIEM and the last 3 not. The node moves them from
// etcd into its SQLite store: the API lists every record and alert once,
// etcd keeps none, the export sends the 3 it had not sent and none of the
// others, and a second start moves nothing more. Its admin gets the
// product's role.
func TestUpgradeMovesRecordsAndAlertsOutOfEtcd(t *testing.T) {
	dir := t.TempDir()
	untar(t, "testdata/upgrade/dev-etcd-records.tar.gz", dir)
	dataDir := filepath.Join(dir, "data")
	password, err := os.ReadFile(filepath.Join(dataDir, "initial-admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"OSPREY_DATA_DIR=" + dataDir,
		"OSPREY_HTTP_ADDR=127.0.0.1:0", "OSPREY_GRPC_ADDR=127.0.0.1:0",
		"OSPREY_ETCD_CLIENT_ADDR=127.0.0.1:0", "OSPREY_ETCD_PEER_ADDR=127.0.0.1:0",
		"OSPREY_GOSSIP_ADDR=127.0.0.1:0", "OSPREY_DNS_ADDR=127.0.0.1:0",
		// The alerts were made on the day the data dir was; keep them
		// however long ago that is.
		"OSPREY_ALERT_MAX_AGE=87600h",
	}
	p := start(t, env, "dev")
	base := p.waitLine(t, apiLine)[1]
	etcdURL := p.waitLine(t, etcdLine)[1]
	c, err := api.NewClient(api.Config{Address: base, Username: "admin", Password: strings.TrimSpace(string(password))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	alerts, err := c.Alerts(ctx, api.AlertQuery{Tenant: "default", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	bySubject := map[string]string{}
	for _, a := range alerts.Alerts {
		subjects = append(subjects, a.Headers.Subject)
		bySubject[a.Headers.Subject] = a.ID
	}
	slices.Sort(subjects)
	want := []string{"eicar 1", "eicar 2", "eicar 3", "eicar 4", "eicar 5", "eicar 6", "eicar 7", "eicar 8"}
	if !slices.Equal(subjects, want) {
		t.Fatalf("alerts after the upgrade: %q, want %q", subjects, want)
	}
	// The admin the version before made (role admin, no tenant) is an
	// Administrator of all tenants now, as stored.
	users, err := c.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users[0].Role != api.RoleAdministrator || !users[0].AllTenants {
		t.Errorf("users after the upgrade: %+v, want admin, an administrator of all tenants", users)
	}
	msgs, err := c.Messages(ctx, api.MessageQuery{Tenant: "default", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs.Messages) != 13 {
		t.Errorf("message records after the upgrade: %d, want 13", len(msgs.Messages))
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for _, prefix := range []string{"/osprey/v1/alerts/", "/osprey/v1/messages/", "/osprey/v1/pop3-seen/", "/osprey/v1/cluster/siem-cursor/"} {
		resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count != 0 {
			t.Errorf("%d keys left in etcd under %s", resp.Count, prefix)
		}
	}

	// The export, pointed at a receiver that is up: what was not sent
	// before the upgrade is sent now, and nothing that was. Alerts go in
	// the order they were made, so the first five would come first.
	r := syslogtest.Listen(t)
	e, v, err := c.Export(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	if !e.Enabled {
		t.Fatalf("export after the upgrade: %+v, want it enabled as it was", e)
	}
	e.Address = r.Addr()
	if _, _, err := c.PutExport(ctx, "default", e, v); err != nil {
		t.Fatal(err)
	}
	r.WaitIDs(t, 60*time.Second, bySubject["eicar 6"], bySubject["eicar 7"], bySubject["eicar 8"])
	for _, s := range want[:5] {
		if n := r.Count(bySubject[s]); n != 0 {
			t.Errorf("alert %q, exported before the upgrade, was sent again %d times", s, n)
		}
	}
	p.interrupt(t)

	// A second start finds nothing more to move and keeps what it has.
	p = start(t, env, "dev")
	c, err = api.NewClient(api.Config{Address: p.waitLine(t, apiLine)[1], Username: "admin", Password: strings.TrimSpace(string(password))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	again, err := c.Alerts(ctx, api.AlertQuery{Tenant: "default", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Alerts) != len(want) {
		t.Errorf("alerts after a second start: %d, want %d", len(again.Alerts), len(want))
	}
	p.interrupt(t)
}
