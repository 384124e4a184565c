package tests

import (
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/testwait"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// devNode is an `osprey dev` process: a central node and its own sensor.
type devNode struct {
	*proc
	// base is the API's base URL; api its client as admin.
	base  string
	api   *api.Client
	store *store.Store
	// db is the node's SQL store, the SQLite file in its data dir, opened
	// beside the node (SQLite's WAL lets two processes share it).
	db *sqlstore.Store
	// etcd is a client of its embedded etcd, for what the API no longer
	// writes (an earlier version's values).
	etcd *clientv3.Client
}

var etcdLine = regexp.MustCompile(`Embedded etcd:\s+(\S+)`)

func startDev(t *testing.T, dataDir string, env ...string) *devNode {
	t.Helper()
	p := start(t, append([]string{
		"OSPREY_DATA_DIR=" + dataDir,
		"OSPREY_HTTP_ADDR=127.0.0.1:0", "OSPREY_GRPC_ADDR=127.0.0.1:0",
		"OSPREY_ETCD_CLIENT_ADDR=127.0.0.1:0", "OSPREY_ETCD_PEER_ADDR=127.0.0.1:0",
		"OSPREY_GOSSIP_ADDR=127.0.0.1:0", "OSPREY_DNS_ADDR=127.0.0.1:0",
		"OSPREY_BOOTSTRAP_ADMIN_PASSWORD=" + adminPassword,
	}, env...), "dev")
	base := p.waitLine(t, apiLine)[1]
	etcd := p.waitLine(t, etcdLine)[1]
	c, err := api.NewClient(api.Config{Address: base, Username: "admin", Password: adminPassword})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	db, err := sqlstore.Open(t.Context(), sqlstore.Options{URL: filepath.Join(dataDir, "osprey.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &devNode{proc: p, base: base, api: c, store: store.New(cli), db: db, etcd: cli}
}

// freePort returns a loopback port nobody listens on now, for a listener
// that is configured rather than bound here (the sensor's SMTP address).
func loopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// enableSMTP configures the dev sensor's SMTP integration and waits until the
// sensor applied it.
func (d *devNode) enableSMTP(t *testing.T, cfg *api.SMTPIntegration) {
	t.Helper()
	_, v, err := d.api.PutSMTP(t.Context(), "dev", cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitSensor(t, d.api, "dev", fmt.Sprintf("version %d applied", v), func(s *api.Sensor) bool { return s.AppliedVersion == v })
}

// records returns what the central recorded of the dev sensor's uploads.
func (d *devNode) records(t *testing.T) []*ospreyv1.MessageRecord {
	t.Helper()
	var recs []*ospreyv1.MessageRecord
	q := sqlstore.MessageQuery{Tenant: "default", SensorID: "dev", Limit: sqlstore.MaxPageLimit}
	for {
		page, err := d.db.ListMessages(t.Context(), store.AllTenants(), q)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, page.Messages...)
		if q.PageToken = page.NextPageToken; q.PageToken == "" {
			return recs
		}
	}
}

// waitRecords waits until ok accepts the recorded uploads, and returns them.
func (d *devNode) waitRecords(t *testing.T, what string, ok func([]*ospreyv1.MessageRecord) bool) []*ospreyv1.MessageRecord {
	t.Helper()
	var recs []*ospreyv1.MessageRecord
	testwait.For(t, "uploads: "+what, func() bool {
		recs = d.records(t)
		return ok(recs)
	})
	return recs
}

// requirePeer finds a peer program, failing under OSPREY_REQUIRE_PEERS=1.
func requirePeer(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("OSPREY_REQUIRE_PEERS") == "1" {
		t.Fatalf("%s is missing (scripts/install-peers.sh installs it): %v", name, err)
	}
	t.Skipf("%s is missing: %v", name, err)
	return ""
}

func smtpConfig(listen string) *api.SMTPIntegration {
	return &api.SMTPIntegration{Enabled: true, Listen: listen,
		DestinationDomains: []string{"example.com", "!hr.example.com"},
		Clients:            []string{"127.0.0.0/8"},
		MaxMessageSize:     &api.SizeLimit{Value: 64, Unit: api.KB},
		TLS:                &api.SMTPTLS{Mode: api.TLSAccept, ClientCert: api.ClientCertOff}}
}

// TestSMTPIngestWithSwaks: the dev node's sensor takes mail from swaks
// (plain and STARTTLS), refuses what its policy refuses with the right codes,
// and hands every accepted message to the central.
func TestSMTPIngestWithSwaks(t *testing.T) {
	swaks := requirePeer(t, "swaks")
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	listen := loopbackPort(t)
	d.enableSMTP(t, smtpConfig(listen))
	host, port, _ := net.SplitHostPort(listen)

	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(t.Context(), swaks, append([]string{"--server", host, "--port", port, "--timeout", "20"}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tt := range []struct {
		name string
		args []string
		want string // a reply line swaks must show
		ok   bool
	}{
		{"plain", []string{"--from", "plain@example.org", "--to", "a@example.com"}, "250 2.0.0", true},
		{"STARTTLS", []string{"--tls", "--from", "tls@example.org", "--to", "b@sub.example.com"}, "250 2.0.0", true},
		{"refused recipient", []string{"--from", "x@example.org", "--to", "c@hr.example.com"}, "550 5.7.1", false},
		{"open relay attempt", []string{"--from", "x@example.org", "--to", "user%evil.net@example.com"}, "550", false},
		{"over the size limit", []string{"--from", "big@example.org", "--to", "a@example.com", "--body", strings.Repeat("0123456789abcde\n", 5000)}, "552", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(tt.args...)
			if !strings.Contains(out, tt.want) {
				t.Errorf("swaks %v: want %q in the transcript:\n%s", tt.args, tt.want, out)
			}
			if (err == nil) != tt.ok {
				t.Errorf("swaks exit: %v, want success %v", err, tt.ok)
			}
		})
	}
	recs := d.waitRecords(t, "two messages", func(r []*ospreyv1.MessageRecord) bool { return len(r) >= 2 })
	from := map[string]bool{}
	for _, r := range recs {
		from[r.GetEnvelope().GetMailFrom()] = true
		if r.GetSource() != ospreyv1.MailSource_MAIL_SOURCE_SMTP || r.GetSize() == 0 || len(r.GetSha256()) != 64 {
			t.Errorf("record %+v: want an SMTP message with its size and hash", r)
		}
	}
	if len(recs) != 2 || !from["plain@example.org"] || !from["tls@example.org"] {
		t.Errorf("recorded senders %v, want plain@ and tls@ only", from)
	}
	for _, r := range recs {
		if r.GetMessageId() == "" || !strings.HasPrefix(r.GetEnvelope().GetClientAddr(), "127.0.0.1") {
			t.Errorf("record %v: want its id and the client's address", r)
		}
		if r.GetEnvelope().GetMailFrom() == "tls@example.org" && (!r.GetEnvelope().GetTls() || !strings.HasPrefix(r.GetEnvelope().GetTlsVersion(), "TLS 1.")) {
			t.Errorf("the STARTTLS message is not recorded as received over TLS: %v", r.GetEnvelope())
		}
	}

	// The refused attempts reach the audit log with the sensor's next
	// status, as the accepted messages do with their uploads.
	// Counts are per minute: the two recipients refused may fall in two.
	var list *api.AuditList
	testwait.For(t, "2 recipients and 1 message refused in the audit log", func() bool {
		var err error
		if list, err = d.api.Audit(t.Context(), api.AuditQuery{Kind: api.AuditRefused, ClientIP: "127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
		counts := map[string]int64{}
		for _, e := range list.Events {
			counts[e.Refusal.Reason] += e.Refusal.Count
		}
		return counts["recipient_refused"] == 2 && counts["message_too_large"] == 1
	})
	for _, e := range list.Events {
		if e.Refusal.Reason == "recipient_refused" && e.Refusal.MailFrom != "x@example.org" {
			t.Errorf("recipient refusal: %+v, want the sender x@example.org", e.Refusal)
		}
	}
}

// TestSensorCrashLosesNothing sends a stream of tracked messages while
// smtp-source loads the sensor, kills the node (-9) in the middle, restarts
// it, and checks that every message that got a 250 is uploaded, and none is
// recorded twice.
func TestSensorCrashLosesNothing(t *testing.T) {
	smtpSource := requirePeer(t, "smtp-source")
	dataDir := filepath.Join(t.TempDir(), "data")
	d := startDev(t, dataDir)
	listen := loopbackPort(t)
	cfg := smtpConfig(listen)
	cfg.TLS = nil
	d.enableSMTP(t, cfg)

	load := exec.Command(smtpSource, "-s", "10", "-l", "5000", "-m", "100000", "-f", "load@example.org", "-t", "load@example.com", listen)
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { load.Process.Kill(); load.Wait() })

	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				from := fmt.Sprintf("w%d-m%d@example.org", w, i)
				if sendOne(listen, from) == nil {
					mu.Lock()
					acked[from] = true
					mu.Unlock()
				}
			}
		}()
	}
	// Kill once a good number of messages got their 250.
	testwait.For(t, "200 messages with a 250", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 200
	})
	d.kill(t)
	close(stop)
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d messages got a 250 before the kill", len(acked))
	}

	d = startDev(t, dataDir)
	recs := d.waitRecords(t, fmt.Sprintf("all %d acknowledged messages", len(acked)), func(recs []*ospreyv1.MessageRecord) bool {
		seen := map[string]bool{}
		for _, r := range recs {
			seen[r.GetEnvelope().GetMailFrom()] = true
		}
		for from := range acked {
			if !seen[from] {
				return false
			}
		}
		return true
	})
	count := map[string]int{}
	for _, r := range recs {
		count[r.GetEnvelope().GetMailFrom()]++
	}
	for from, n := range count {
		if from != "load@example.org" && n > 1 {
			t.Errorf("%s recorded %d times", from, n)
		}
	}
	t.Logf("%d tracked messages acknowledged before the kill, all uploaded; %d records in all (with smtp-source's)", len(acked), len(recs))
}

// sendOne sends one small message from from; nil means the server said 250.
func sendOne(addr, from string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt("rcpt@example.com"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: %s\r\nTo: rcpt@example.com\r\nSubject: tracked %s\r\n\r\nbody\r\n", from, from)
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
