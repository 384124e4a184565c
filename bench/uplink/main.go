// Command uplink measures an SCN's alerts going up the distributed mode's
// link to its PCN: the latency from RecordScan on the SCN to the alert
// stored on the PCN, and the catch-up rate after an outage.
//
// It runs, in this process, a PCN and an SCN as central nodes run them:
// each with its own embedded etcd and SQL store (SQLite files, or databases
// of one PostgreSQL from Debian's package with -store postgres), the PCN's
// HierarchyService on a real gRPC server over TLS, the SCN's link over
// mutual TLS, with the uplink's channels (central/uplink); a TCP proxy
// between them cuts the link for the outage. The SCN's alerts are written
// with Store.RecordScan, the scanner's path; the PCN's store wakes a
// watcher at each commit, which notes when each alert arrived.
//
//   - Latency: -alerts alerts at -rate a second; p50, p99 and max.
//   - Outage: the link is cut for -outage while alerts keep coming at
//     -outage-rate a second; then restored. Reported: the alerts queued,
//     the time from the restore to the last one stored, and the catch-up
//     rate from the first one stored after the restore to the last (the
//     SCN's reconnection backoff, up to 30 s, is the difference).
//
// Usage: go run ./bench/uplink -alerts 2000 -rate 50 -outage 10m -outage-rate 100
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/clusterca"
	"github.com/ospreysec/osprey/central/etcdembed"
	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/central/uplink"
	"github.com/ospreysec/osprey/internal/pgtest"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

const (
	account  = "branch"
	password = "the branch account's password"
	tenant   = "branches"
)

func main() {
	alerts := flag.Int("alerts", 1000, "alerts for the latency")
	rate := flag.Float64("rate", 50, "alerts a second for the latency")
	outage := flag.Duration("outage", time.Minute, "how long the link is cut")
	outageRate := flag.Float64("outage-rate", 100, "alerts a second during the outage")
	kind := flag.String("store", "sqlite", "sqlite or postgres")
	flag.Parse()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	work, err := os.MkdirTemp("", "uplink-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	pcnURL, scnURL := filepath.Join(work, "pcn.db"), filepath.Join(work, "scn.db")
	if *kind == "postgres" {
		srv, err := pgtest.StartDurable(ctx)
		if err != nil {
			log.Fatal(err)
		}
		defer srv.Close()
		for _, u := range []*string{&pcnURL, &scnURL} {
			if _, *u, err = srv.CreateDB(ctx); err != nil {
				log.Fatal(err)
			}
		}
	}
	pcnDB, scnDB := openSQL(ctx, pcnURL), openSQL(ctx, scnURL)
	defer pcnDB.Close()
	defer scnDB.Close()

	pcnStore := store.New(startEtcd(ctx, work, "pcn"))
	addr := startPCN(ctx, pcnStore, pcnDB)
	px := startProxy(addr)
	scnCli := startEtcd(ctx, work, "scn")
	kek := make([]byte, pki.KEKSize)
	_, _ = rand.Read(kek)
	scn := hierarchy.NewSecondary(hierarchy.SecondaryOptions{
		Store: store.New(scnCli), Client: scnCli, KEK: kek, NodeName: "scn-1",
		Channels: []hierarchy.SecondaryChannel{uplink.NewSender(uplink.SenderOptions{Messages: scnDB})},
	})
	go func() { _ = scn.Run(ctx) }()
	fp, err := hierarchy.FetchFingerprint(ctx, px.ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	if _, err := scn.Join(ctx, hierarchy.JoinInput{Address: px.ln.Addr().String(), Fingerprint: fp, Name: "branch", Username: account, Password: password}); err != nil {
		log.Fatal(err)
	}
	w := newWatcher(ctx, pcnDB)
	primary := hierarchy.NewPrimary(hierarchy.PrimaryOptions{Store: pcnStore})
	for {
		if _, err := primary.Accept(ctx, store.AllTenants(), "branch", tenant); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for v, _ := scn.View(ctx); !v.Online; v, _ = scn.View(ctx) {
		time.Sleep(100 * time.Millisecond)
	}

	// Latency.
	sent := map[string]time.Time{}
	n := 0
	pace(*alerts, *rate, func() {
		id := fmt.Sprintf("m%07d", n)
		n++
		sent[id] = time.Now()
		record(ctx, scnDB, id)
	})
	w.waitFor(n)
	var lat []time.Duration
	for id, at := range sent {
		lat = append(lat, w.at(id).Sub(at))
	}
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	fmt.Printf("store %s; latency, RecordScan on the SCN to stored on the PCN, %d alerts at %.0f/s: p50 %v, p99 %v, max %v\n",
		*kind, len(lat), *rate, q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))

	// Outage.
	px.cut(true)
	before := n
	pace(int(outage.Seconds()**outageRate), *outageRate, func() {
		record(ctx, scnDB, fmt.Sprintf("m%07d", n))
		n++
	})
	queued := n - before
	if got := w.count(); got != before {
		log.Fatalf("the PCN stored %d alerts during the outage, want %d", got, before)
	}
	up := time.Now()
	px.up()
	w.waitFor(n)
	last := time.Now()
	first := w.firstAfter(before)
	fmt.Printf("outage %v, %d alerts queued at %.0f/s: all stored %v after the restore; catch-up from the first stored: %.0f alerts/s (%v)\n",
		*outage, queued, *outageRate, last.Sub(up).Round(time.Millisecond), float64(queued)/last.Sub(first).Seconds(), last.Sub(first).Round(time.Millisecond))
	if got := w.count(); got != n {
		log.Fatalf("the PCN holds %d alerts, want %d", got, n)
	}
}

// pace calls f n times at rate a second.
func pace(n int, rate float64, f func()) {
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
		f()
	}
}

func record(ctx context.Context, db *sqlstore.Store, id string) {
	rec := &ospreyv1.MessageRecord{Tenant: "default", SensorId: "s1", MessageId: id, Verdict: "detected"}
	a := &ospreyv1.Alert{Severity: ospreyv1.Severity_SEVERITY_HIGH, Verdict: "detected",
		Headers: &ospreyv1.HeaderSummary{Subject: "Invoice " + id, From: "bad@evil.example"}}
	if _, _, err := db.RecordScan(ctx, store.AllTenants(), rec, a, time.Now()); err != nil {
		log.Fatal(err)
	}
}

// watcher notes when each alert reached the PCN's store.
type watcher struct {
	mu      sync.Mutex
	arrived map[string]time.Time
	order   []time.Time
	changed chan struct{}
}

func newWatcher(ctx context.Context, db *sqlstore.Store) *watcher {
	w := &watcher{arrived: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	go func() {
		var seq int64
		for ctx.Err() == nil {
			added := db.AlertsAdded()
			got, err := db.AlertsAfter(ctx, store.AllTenants(), tenant, seq, 1000)
			if err != nil {
				return
			}
			now := time.Now()
			w.mu.Lock()
			for _, a := range got {
				seq = a.Seq
				if _, dup := w.arrived[a.Alert.GetMessageId()]; dup {
					log.Fatalf("alert of %s stored twice on the PCN", a.Alert.GetMessageId())
				}
				w.arrived[a.Alert.GetMessageId()] = now
				w.order = append(w.order, now)
			}
			w.mu.Unlock()
			select {
			case w.changed <- struct{}{}:
			default:
			}
			if len(got) == 1000 {
				continue
			}
			select {
			case <-added:
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}
	}()
	return w
}

func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.arrived)
}

func (w *watcher) at(id string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.arrived[id]
}

func (w *watcher) firstAfter(n int) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.order[n]
}

func (w *watcher) waitFor(n int) {
	for w.count() < n {
		<-w.changed
	}
}

// openSQL opens a store whose retention keeps every alert of the run (by
// default a tenant keeps 20,000: a longer outage would have the SCN drop
// the oldest before they are sent, by design, and the count would not
// meet).
func openSQL(ctx context.Context, url string) *sqlstore.Store {
	st, err := sqlstore.Open(ctx, sqlstore.Options{URL: url, AlertRetention: sqlstore.AlertRetention{MaxAlerts: sqlstore.MaxMaxAlerts}})
	if err != nil {
		log.Fatal(err)
	}
	return st
}

func startEtcd(ctx context.Context, dir, name string) *clientv3.Client {
	srv, err := etcdembed.Start(ctx, etcdembed.Options{
		Name: name, Dir: filepath.Join(dir, name+"-etcd"), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	return srv.Client()
}

// startPCN serves the PCN's hierarchy service with the uplink's receiver.
func startPCN(ctx context.Context, st *store.Store, db *sqlstore.Store) string {
	ca, err := pki.NewCA("bench PCN CA", 0)
	if err != nil {
		log.Fatal(err)
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		log.Fatal(err)
	}
	all := store.AllTenants()
	if _, err := st.CreateUser(ctx, all, &ospreyv1.User{Name: account, Role: ospreyv1.Role_ROLE_ADMIN, PasswordHash: hash, CreatedAt: timestamppb.Now()}); err != nil {
		log.Fatal(err)
	}
	if _, err := st.CreateTenant(ctx, all, &ospreyv1.Tenant{Id: tenant, Name: "Branches"}); err != nil {
		log.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(auth.Options{
		Users: auth.UsersFunc(func(ctx context.Context, name string) (*ospreyv1.User, error) {
			u, _, err := st.GetUser(ctx, all, name)
			return u, err
		}),
		NotFound: []error{store.ErrNotFound, store.ErrInvalidID},
	})
	if err != nil {
		log.Fatal(err)
	}
	p := hierarchy.NewPrimary(hierarchy.PrimaryOptions{
		Store: st, CA: ca, Passwords: authn, NodeName: "pcn-1",
		Channels: []hierarchy.PrimaryChannel{uplink.NewReceiver(uplink.ReceiverOptions{Messages: db, Servers: st})},
	})
	cert, err := clusterca.NewServerCert(ca, []string{"127.0.0.1"}, nil)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS12, GetCertificate: cert.GetCertificate, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool,
	})))
	p.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	go func() { _ = p.Run(ctx) }()
	return ln.Addr().String()
}

// proxy forwards TCP connections to the PCN and cuts them on demand.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func startProxy(target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			up, err := net.Dial("tcp", target)
			if down || err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}
