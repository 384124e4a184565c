package main

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/benchproc"
	"github.com/ospreysec/osprey/internal/nodeproc"
	"github.com/ospreysec/osprey/internal/promtext"
)

// result is what a round measured.
type result struct {
	sent                            int
	elapsed                         time.Duration
	rate                            float64
	etcdBefore, etcdBytes, sqlBytes int64
	rssKB                           int64
}

// insecure is the TLS of the harness's requests: a central node's API
// certificate is self-signed, and every node is on loopback.
var insecure = &tls.Config{InsecureSkipVerify: true}

var httpClient = &http.Client{Transport: &http.Transport{TLSClientConfig: insecure}, Timeout: 10 * time.Second}

// deployment is what a round loads: `osprey dev`, or a cluster's nodes, each
// node taking mail on its own sensor's SMTP listener.
type deployment struct {
	nodes []*nodeproc.Node
	smtp  []string // each node's SMTP listener
	pprof string   // the first node's /debug/pprof/ endpoints, if profiled
	// The SQL store: the dev node's SQLite in dataDir, or the cluster's
	// PostgreSQL.
	dataDir string
	pg      *sql.DB
	stop    func()
}

// startDev starts `osprey dev` on a fresh data dir under work.
func startDev(work, bin string, profile bool) *deployment {
	dataDir, err := os.MkdirTemp(work, "data")
	if err != nil {
		log.Fatal(err)
	}
	n := &nodeproc.Node{Name: "dev", IP: "127.0.0.1", Args: []string{bin, "dev", "--data-dir", dataDir,
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0",
		"--gossip-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
		"--bootstrap-admin-password", nodeproc.AdminPassword, "--log-level", "warn"}}
	d := &deployment{nodes: []*nodeproc.Node{n}, smtp: []string{mustFreePort()}, dataDir: dataDir}
	if profile {
		d.pprof = mustFreePort()
		n.Args = append(n.Args, "--pprof-addr", d.pprof)
	}
	d.stop = func() {
		if err := n.Stop(); err != nil {
			log.Print(err)
		}
		os.RemoveAll(dataDir)
	}
	if err := n.Start(); err != nil {
		d.stop()
		log.Fatal(err)
	}
	return d
}

// startCluster starts nodes `osprey central --sensor` sharing a PostgreSQL.
func startCluster(ctx context.Context, bin string, nodes int, profile bool) *deployment {
	d := &deployment{}
	if profile {
		d.pprof = mustFreePort() // on 127.0.0.1, n1's address
	}
	c, err := nodeproc.Start(ctx, nodeproc.Options{Bin: bin, Nodes: nodes, Args: func(n *nodeproc.Node) []string {
		if n.Name == "n1" && d.pprof != "" {
			return []string{"--sensor", "--pprof-addr", d.pprof}
		}
		return []string{"--sensor"}
	}})
	if err != nil {
		log.Fatal(err)
	}
	d.nodes = c.Nodes
	for _, n := range c.Nodes {
		d.smtp = append(d.smtp, c.Addr(n, "smtp"))
	}
	if d.pg, err = sql.Open("pgx", c.DBURL); err != nil {
		c.Stop()
		log.Fatal(err)
	}
	d.stop = func() {
		d.pg.Close()
		if err := c.Stop(); err != nil {
			log.Print(err)
		}
	}
	return d
}

// enableSMTP turns on each node's own sensor's SMTP listener, waits until
// every one takes mail, and returns an API token that reads the nodes'
// /metrics.
func (d *deployment) enableSMTP(ctx context.Context) string {
	admin, err := api.NewClient(api.Config{Address: d.nodes[0].Ready.API, Username: "admin", Password: nodeproc.AdminPassword, TLSConfig: insecure})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := admin.CreateToken(ctx, api.TokenRequest{Kind: api.TokenAPI, Description: "endtoend bench"})
	if err != nil {
		log.Fatal(err)
	}
	for i, n := range d.nodes {
		c, err := api.NewClient(api.Config{Address: n.Ready.API, Token: tok.Secret, TLSConfig: insecure})
		if err != nil {
			log.Fatal(err)
		}
		id := n.Ready.LocalSensor
		_, v, err := c.PutSMTP(ctx, id, &api.SMTPIntegration{Enabled: true, Listen: d.smtp[i],
			DestinationDomains: []string{"example.com"}, Clients: []string{"127.0.0.0/8"},
			MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB},
			Limits:         &api.SMTPLimits{MaxConnectionsPerClient: 200}}, 0)
		if err != nil {
			log.Fatalf("enable SMTP on %s's sensor %q: %v", n.Name, id, err)
		}
		for {
			s, err := c.Sensor(ctx, id)
			if err == nil && s.AppliedVersion == v {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := benchproc.WaitListen(d.smtp[i]); err != nil {
			log.Fatal(err)
		}
	}
	return tok.Secret
}

// runRound starts the node or nodes, sends the messages, and waits until
// every one is recorded; with profile set, it writes a CPU profile of the
// (first) node taken from 2 s into the sending to that file.
func runRound(work, bin string, nodes int, l load, profile string) result {
	ctx := context.Background()
	var d *deployment
	if nodes == 0 {
		d = startDev(work, bin, profile != "")
	} else {
		d = startCluster(ctx, bin, nodes, profile != "")
	}
	defer d.stop()
	token := d.enableSMTP(ctx)
	uploads := func() []float64 { return d.metric(token, "osprey_central_uploads_total") }
	res := result{etcdBefore: d.etcdBytes()}

	start := time.Now()
	if profile != "" {
		go func() {
			time.Sleep(2 * time.Second)
			if err := fetchProfile("http://"+d.pprof+"/debug/pprof/profile?seconds=10", profile); err != nil {
				log.Printf("CPU profile: %v", err)
			}
		}()
	}
	res.sent = send(d.smtp, l, start)
	deadline := time.Now().Add(30 * time.Minute)
	for sum(uploads()) < float64(res.sent) {
		if time.Now().After(deadline) {
			log.Fatalf("%.0f of %d recorded after 30 minutes", sum(uploads()), res.sent)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res.elapsed = time.Since(start)
	res.rate = float64(res.sent) / res.elapsed.Seconds()
	var rssSum int64
	for _, n := range d.nodes {
		rss := benchproc.PeakRSS(n.Pid())
		res.rssKB = max(res.rssKB, rss)
		rssSum += rss
	}
	res.etcdBytes = d.etcdBytes()
	if d.pg == nil {
		for _, f := range []string{"osprey.db", "osprey.db-wal"} {
			if st, err := os.Stat(filepath.Join(d.dataDir, f)); err == nil {
				res.sqlBytes += st.Size()
			}
		}
		return res
	}
	// Each message is one record in the store the nodes share, whichever
	// node recorded it.
	var records int
	if err := d.pg.QueryRowContext(ctx, "SELECT count(*) FROM messages").Scan(&records); err != nil {
		log.Fatalf("count the message records: %v", err)
	}
	if err := d.pg.QueryRowContext(ctx, "SELECT pg_database_size(current_database())").Scan(&res.sqlBytes); err != nil {
		log.Fatalf("PostgreSQL database size: %v", err)
	}
	var each []string
	for i, u := range uploads() {
		each = append(each, fmt.Sprintf("%s %.0f", d.nodes[i].Name, u))
	}
	log.Printf("uploads recorded by node: %s; PostgreSQL holds %d message records; peak RSS summed over the nodes %d MB",
		strings.Join(each, ", "), records, rssSum>>10)
	if records != res.sent {
		log.Fatalf("%d messages sent, %d message records in PostgreSQL", res.sent, records)
	}
	return res
}

// metric reads the counter or gauge name from each node's /metrics; a node
// that does not answer gives -1.
func (d *deployment) metric(token, name string) []float64 {
	var out []float64
	for _, n := range d.nodes {
		out = append(out, readMetric(n.Ready.API+"/metrics", token, name))
	}
	return out
}

// etcdBytes is the largest etcd_mvcc_db_total_size_in_bytes of the nodes'
// embedded etcd members.
func (d *deployment) etcdBytes() int64 {
	var size float64
	for _, n := range d.nodes {
		size = max(size, readMetric(n.Ready.Etcd[0]+"/metrics", "", "etcd_mvcc_db_total_size_in_bytes"))
	}
	return int64(size)
}

// sum adds up v, or is -1 if any is.
func sum(v []float64) float64 {
	var s float64
	for _, f := range v {
		if f < 0 {
			return -1
		}
		s += f
	}
	return s
}

// readMetric reads the sample of name, without labels, at url; -1 if there
// is none.
func readMetric(url, bearer, name string) float64 {
	if v, ok := promtext.Get(httpClient, url, bearer, name); ok {
		return v
	}
	return -1
}
