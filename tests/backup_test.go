package tests

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/pgtest"
)

// The restore drills: a node alone (osprey dev, SQLite) and an embedded
// three-node cluster (PostgreSQL) are backed up while they run, changed
// after the backup, stopped and wiped (data dirs, and the database), then
// restored with osprey admin restore (and pg_restore) and started: they
// come back as they were at the backup (tenants, users, rules, sensors,
// alerts, message records, the audit log, and every row of every SQL
// table), every sensor reconnects with the identity it has (no
// enrollment), and mail flows again.

// apiState is what a node's API shows of the data a backup must keep,
// without what changes by itself (who is online, since when).
type apiState struct {
	Tenants  []api.Tenant
	Users    []api.User
	Rules    map[string][]api.Rule
	Sensors  []api.Sensor
	Alerts   []api.Alert
	Messages []api.MessageRecord
	Audit    []api.AuditEvent
}

// readState reads the API's view of every tenant's data. Sensors keep
// their identity (the fingerprint, but of the central nodes' own sensors
// when reenrolled is set: they may enroll again after a restore).
func readState(t *testing.T, c *api.Client, reenrolled bool) apiState {
	t.Helper()
	ctx := t.Context()
	var s apiState
	var err error
	if s.Tenants, err = c.Tenants(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Users, err = c.Users(ctx); err != nil {
		t.Fatal(err)
	}
	s.Rules = map[string][]api.Rule{}
	for _, tn := range s.Tenants {
		if s.Rules[tn.ID], err = c.Rules(ctx, tn.ID); err != nil {
			t.Fatal(err)
		}
		alerts, err := c.Alerts(ctx, api.AlertQuery{Tenant: tn.ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		s.Alerts = append(s.Alerts, alerts.Alerts...)
		msgs, err := c.Messages(ctx, api.MessageQuery{Tenant: tn.ID, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		s.Messages = append(s.Messages, msgs.Messages...)
		audit, err := c.Audit(ctx, api.AuditQuery{Tenant: tn.ID, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		s.Audit = append(s.Audit, audit.Events...)
	}
	sensors, err := c.Sensors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range sensors {
		id := api.Sensor{ID: sn.ID, Name: sn.Name, Tenant: sn.Tenant, State: sn.State, CertFingerprint: sn.CertFingerprint, Local: sn.Local, CreatedAt: sn.CreatedAt}
		if sn.Local && reenrolled {
			id.CertFingerprint = ""
		}
		s.Sensors = append(s.Sensors, id)
	}
	slices.SortFunc(s.Sensors, func(a, b api.Sensor) int { return strings.Compare(a.ID, b.ID) })
	return s
}

// check checks that s holds what the drills made before their backup: the
// tenant acme and its admin, a rule in each tenant, the sensor branch-1,
// and the alerts, message records and accepted messages in the audit log
// of the n messages sent.
func (s apiState) check(t *testing.T, n int) {
	t.Helper()
	rules := 0
	for _, rs := range s.Rules {
		rules += len(rs)
	}
	if !slices.ContainsFunc(s.Tenants, func(tn api.Tenant) bool { return tn.ID == "acme" }) ||
		!slices.ContainsFunc(s.Users, func(u api.User) bool { return u.Name == "acme-admin" }) || rules != 2 ||
		!slices.ContainsFunc(s.Sensors, func(sn api.Sensor) bool { return sn.Name == "branch-1" && sn.State == api.SensorApproved }) ||
		len(s.Alerts) != n || len(s.Messages) != n || len(s.Audit) != n {
		t.Fatalf("before the backup: tenants %v, users %v, %d rules, sensors %v, %d alerts, %d records, %d audit events; want acme, acme-admin, 2 rules, branch-1 approved, %d alerts, records and events",
			s.Tenants, s.Users, rules, s.Sensors, len(s.Alerts), len(s.Messages), len(s.Audit), n)
	}
}

// sqlRows reads every row of every table of a database (driver "sqlite"
// or "pgx"), each row as a line, sorted: a table added to the SQL store is
// compared without a change here.
func sqlRows(t *testing.T, driver, dsn string) map[string][]string {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	list := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if driver == "pgx" {
		list = `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`
	}
	rows, err := db.QueryContext(ctx, list)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, table := range tables {
		rows, err := db.QueryContext(ctx, `SELECT * FROM "`+table+`"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		lines := []string{}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			cells := make([]string, len(vals))
			for i, v := range vals {
				switch x := v.(type) {
				case nil:
					cells[i] = "NULL"
				case []byte:
					cells[i] = fmt.Sprintf("%x", x)
				case time.Time:
					cells[i] = x.UTC().Format(time.RFC3339Nano)
				default:
					cells[i] = fmt.Sprint(x)
				}
			}
			lines = append(lines, strings.Join(cells, "|"))
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(lines)
		out[table] = lines
	}
	return out
}

// pgTool finds a client program of Debian's postgresql package, failing
// under OSPREY_REQUIRE_PEERS=1 when it is missing.
func pgTool(t *testing.T, name string) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return pgMajor(b) - pgMajor(a) })
	for _, d := range dirs {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	return requirePeer(t, name)
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// runTool runs a program to its end and returns its output.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
	}
	return string(out)
}

func copyKey(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitReconnected waits until the sensor is online and was heard from
// after since: a status written before the restore may still say online
// until its lease expires.
func waitReconnected(t *testing.T, c *api.Client, id string, since time.Time) *api.Sensor {
	t.Helper()
	return waitSensor(t, c, id, "reconnected after "+since.Format(time.TimeOnly), func(s *api.Sensor) bool {
		return s.Online && s.LastSeen.After(since)
	})
}

// setupSensor enrolls an osprey sensor process (branch-1) with the central
// at grpc, approves it and makes it take mail on SMTP; it returns the
// process, its id and its SMTP address.
func setupSensor(t *testing.T, c *api.Client, grpc string) (*proc, string, string) {
	t.Helper()
	ctx := t.Context()
	tok, err := c.CreateToken(ctx, api.TokenRequest{Kind: api.TokenJoin, Tenant: "default", TTLSeconds: 600, MaxUses: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := start(t, sensorEnv, "sensor", "--central", grpc, "--data-dir", filepath.Join(t.TempDir(), "sensor"),
		"--name", "branch-1", "--join-token", tok.Secret, "--log-format", "text")
	id := s.waitLine(t, enrolledLine)[1]
	if _, err := c.ApproveSensor(ctx, id); err != nil {
		t.Fatal(err)
	}
	listen := loopbackPort(t)
	_, v, err := c.PutSMTP(ctx, id, smtpConfig(listen), 0)
	if err != nil {
		t.Fatal(err)
	}
	waitSensor(t, c, id, fmt.Sprintf("online with version %d", v), func(s *api.Sensor) bool { return s.Online && s.AppliedVersion == v })
	return s, id, listen
}

// configure makes a tenant, a user and a rule: configuration a backup keeps.
func configure(t *testing.T, c *api.Client) {
	t.Helper()
	ctx := t.Context()
	if _, err := c.CreateTenant(ctx, api.Tenant{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateUser(ctx, api.User{Name: "acme-admin", Role: api.RoleAdministrator, Tenants: []string{"acme"}, Password: "a long password for acme"}); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"default", "acme"} {
		if _, err := c.CreateRule(ctx, tenant, api.Rule{Kind: api.RuleSenderDomain, Value: "evil.example", Severity: api.SeverityHigh, Description: "known phisher"}); err != nil {
			t.Fatal(err)
		}
	}
}

func sendEICAR(t *testing.T, addr, subject string) {
	t.Helper()
	sendMail(t, addr, subject, "See the attached file.", "eicar.com", []byte(eicarTestFile))
}

var backupKeyLine = regexp.MustCompile(`cluster key:\s+not included: keep a copy of (\S+) apart`)

// TestRestoreDrillDev: an osprey dev node with a tenant, a user, rules, its
// own sensor and an osprey sensor (enrolled, approved), which both raised
// alerts, is backed up while it runs; the data dir is wiped; restored with
// the cluster key kept apart, the node has it all back (the SQLite store
// row for row), both sensors reconnect with their certificates, and mail
// flows through both again.
func TestRestoreDrillDev(t *testing.T) {
	work := t.TempDir()
	dataDir := filepath.Join(work, "data")
	// The sensor reconnects where it enrolled: the node keeps its gRPC
	// address across the restore.
	grpc := loopbackPort(t)
	env := []string{
		"OSPREY_DATA_DIR=" + dataDir,
		"OSPREY_HTTP_ADDR=127.0.0.1:0", "OSPREY_GRPC_ADDR=" + grpc,
		"OSPREY_ETCD_CLIENT_ADDR=127.0.0.1:0", "OSPREY_ETCD_PEER_ADDR=127.0.0.1:0",
		"OSPREY_GOSSIP_ADDR=127.0.0.1:0", "OSPREY_DNS_ADDR=127.0.0.1:0",
		"OSPREY_BOOTSTRAP_ADMIN_PASSWORD=" + adminPassword,
	}
	startNode := func() (*proc, *api.Client, string) {
		t.Helper()
		p := start(t, env, "dev")
		base := p.waitLine(t, apiLine)[1]
		etcd := p.waitLine(t, etcdLine)[1]
		c, err := api.NewClient(api.Config{Address: base, Username: "admin", Password: adminPassword})
		if err != nil {
			t.Fatal(err)
		}
		return p, c, etcd
	}
	p, c, etcd := startNode()
	configure(t, c)
	s, id, sensorSMTP := setupSensor(t, c, grpc)
	devSMTP := loopbackPort(t)
	_, v, err := c.PutSMTP(t.Context(), "dev", smtpConfig(devSMTP), 0)
	if err != nil {
		t.Fatal(err)
	}
	waitSensor(t, c, "dev", fmt.Sprintf("version %d applied", v), func(s *api.Sensor) bool { return s.AppliedVersion == v })
	sendEICAR(t, devSMTP, "through the node's own sensor")
	sendEICAR(t, sensorSMTP, "through branch-1")
	waitAlert(t, c, api.AlertQuery{Tenant: "default"}, 2)
	before := readState(t, c, false)
	before.check(t, 2)

	// The backup, from the running node, as docs/operations.md shows it.
	backupDir := filepath.Join(work, "backups", "osprey-1")
	out, err := run(t, nil, "", "admin", "backup", "--data-dir", dataDir, "--etcd-endpoints", etcd, "--out", backupDir)
	if err != nil {
		t.Fatalf("osprey admin backup: %v\n%s", err, out)
	}
	t.Logf("osprey admin backup:\n%s", out)
	m := backupKeyLine.FindStringSubmatch(out)
	if m == nil || m[1] != filepath.Join(dataDir, "cluster.key") {
		t.Fatalf("the backup's output does not say to keep %s/cluster.key apart:\n%s", dataDir, out)
	}
	keptKey := filepath.Join(work, "kept", "cluster.key")
	copyKey(t, m[1], keptKey)

	// A change after the backup, which the restore does not bring back.
	if _, err := c.CreateTenant(t.Context(), api.Tenant{ID: "later", Name: "Later"}); err != nil {
		t.Fatal(err)
	}
	p.interrupt(t)
	rows := sqlRows(t, "sqlite", filepath.Join(dataDir, "osprey.db"))
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}

	// The restore wants the cluster key first.
	out, err = run(t, nil, "", "admin", "restore", "--from", backupDir, "--data-dir", dataDir)
	if err == nil || !strings.Contains(out, "cluster key "+filepath.Join(dataDir, "cluster.key")+" is missing") {
		t.Fatalf("restore without the cluster key: %v\n%s\nwant it refused, naming the missing key", err, out)
	}
	copyKey(t, keptKey, filepath.Join(dataDir, "cluster.key"))
	out, err = run(t, nil, "", "admin", "restore", "--from", backupDir, "--data-dir", dataDir)
	if err != nil {
		t.Fatalf("osprey admin restore: %v\n%s", err, out)
	}
	t.Logf("osprey admin restore:\n%s", out)
	if diff := cmp.Diff(rows, sqlRows(t, "sqlite", filepath.Join(dataDir, "osprey.db"))); diff != "" {
		t.Errorf("SQLite rows, restored (-at the backup +restored):\n%s", diff)
	}

	restarted := time.Now()
	p, c, _ = startNode()
	if diff := cmp.Diff(before, readState(t, c, false)); diff != "" {
		t.Errorf("after the restore (-at the backup +restored):\n%s", diff)
	}
	for _, sensor := range []string{id, "dev"} {
		waitReconnected(t, c, sensor, restarted)
	}
	if n := strings.Count(s.stdout.String(), "Enrolled as sensor"); n != 1 {
		t.Errorf("branch-1 enrolled %d times, want once (before the backup)", n)
	}
	sendEICAR(t, devSMTP, "through the node's own sensor, restored")
	sendEICAR(t, sensorSMTP, "through branch-1, restored")
	waitAlert(t, c, api.AlertQuery{Tenant: "default"}, 4)
	p.interrupt(t)
}

// TestRestoreDrillCluster: three osprey central --sensor nodes (an
// embedded etcd cluster, one PostgreSQL), with a tenant, a user, rules and
// an osprey sensor that raised an alert, are backed up while they run
// (etcd with osprey admin backup from one node, the database with
// pg_dump); the nodes are stopped, their data dirs wiped and the database
// dropped; each node is restored from the one backup, the database with
// pg_restore; started together, the cluster has it all back, the sensor and
// the nodes' own sensors reconnect, and mail flows.
func TestRestoreDrillCluster(t *testing.T) {
	pgDump, pgRestore := pgTool(t, "pg_dump"), pgTool(t, "pg_restore")
	c := startCluster(t)
	all := []string{"n1", "n2", "n3"}
	waitCluster(t, c.nodes, "three healthy members", allHealthy(all...))
	n1, n2 := c.nodes[0], c.nodes[1]
	configure(t, n1.api)
	var targets []string
	for _, n := range c.nodes {
		targets = append(targets, net.JoinHostPort(n.ip, strconv.Itoa(c.ports.grpc)))
	}
	s, id, sensorSMTP := setupSensor(t, n1.api, strings.Join(targets, ","))
	sendEICAR(t, sensorSMTP, "through branch-1")
	waitAlert(t, n1.api, api.AlertQuery{Tenant: "default"}, 1)
	for _, name := range all {
		waitSensor(t, n1.api, name, "the node's own sensor online", func(s *api.Sensor) bool { return s.Online })
	}
	before := readState(t, n1.api, true)
	before.check(t, 1)

	// The backup: etcd through n2's member, the database with pg_dump.
	work := t.TempDir()
	backupDir := filepath.Join(work, "osprey-1")
	out, err := run(t, nil, "", "admin", "backup", "--data-dir", n2.dataDir, "--cluster-key-file", c.keyFile, "--db-url", c.dbURL,
		"--etcd-client-addr", net.JoinHostPort(n2.ip, strconv.Itoa(c.ports.etcdClient)), "--out", backupDir)
	if err != nil {
		t.Fatalf("osprey admin backup: %v\n%s", err, out)
	}
	t.Logf("osprey admin backup:\n%s", out)
	if !strings.Contains(out, "PostgreSQL: NOT in this backup") {
		t.Errorf("the backup's output does not say the PostgreSQL is not in it:\n%s", out)
	}
	dump := filepath.Join(work, "osprey-1.pgdump")
	runTool(t, pgDump, "--format=custom", "--file="+dump, c.dbURL)

	// A change after the backup, which the restore does not bring back.
	if _, err := n1.api.CreateTenant(t.Context(), api.Tenant{ID: "later", Name: "Later"}); err != nil {
		t.Fatal(err)
	}

	// Stop the cluster; wipe every data dir and the database.
	for _, n := range c.nodes {
		if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.nodes {
		n.waitExit(t, "SIGTERM")
	}
	rows := sqlRows(t, "pgx", c.dbURL)
	for _, n := range c.nodes {
		if err := os.RemoveAll(n.dataDir); err != nil {
			t.Fatal(err)
		}
	}
	recreateDB(t, c.dbURL)

	// Restore: the database, then each node from the one backup.
	runTool(t, pgRestore, "--dbname="+c.dbURL, dump)
	if diff := cmp.Diff(rows, sqlRows(t, "pgx", c.dbURL)); diff != "" {
		t.Errorf("PostgreSQL rows, restored (-at the backup +restored):\n%s", diff)
	}
	initial := n1.args[slices.Index(n1.args, "--etcd-initial-cluster")+1]
	for _, n := range c.nodes {
		out, err := run(t, nil, "", "admin", "restore", "--from", backupDir, "--data-dir", n.dataDir, "--node-name", n.name,
			"--etcd-initial-cluster", initial, "--cluster-key-file", c.keyFile)
		if err != nil {
			t.Fatalf("osprey admin restore on %s: %v\n%s", n.name, err, out)
		}
		t.Logf("osprey admin restore on %s:\n%s", n.name, out)
	}
	restarted := time.Now()
	for _, n := range c.nodes {
		n.proc = start(t, sensorEnv, n.args...)
	}
	for _, n := range c.nodes {
		c.ready(n)
	}
	waitCluster(t, c.nodes, "three healthy members after the restore", allHealthy(all...))
	for _, n := range c.nodes {
		if diff := cmp.Diff(before, readState(t, n.api, true)); diff != "" {
			t.Errorf("%s after the restore (-at the backup +restored):\n%s", n.name, diff)
		}
	}
	// branch-1 and every node's own sensor reconnect; branch-1 with its
	// certificate, never enrolling again.
	for _, sensor := range append([]string{id}, all...) {
		waitReconnected(t, c.nodes[2].api, sensor, restarted)
	}
	if n := strings.Count(s.stdout.String(), "Enrolled as sensor"); n != 1 {
		t.Errorf("branch-1 enrolled %d times, want once (before the backup)", n)
	}
	sendEICAR(t, sensorSMTP, "through branch-1, restored")
	waitAlert(t, c.nodes[2].api, api.AlertQuery{Tenant: "default"}, 2)
}

// recreateDB drops the database of dbURL and makes it anew, empty.
func recreateDB(t *testing.T, dbURL string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	db, err := sql.Open("pgx", pgtest.Shared(t).URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{"DROP DATABASE " + name + " WITH (FORCE)", "CREATE DATABASE " + name} {
		if _, err := db.ExecContext(t.Context(), stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}
