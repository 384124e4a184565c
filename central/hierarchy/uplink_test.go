package hierarchy_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/central/uplink"
	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// proxy forwards TCP connections to a target that can change, and cuts
// them on demand: the network between an SCN and its PCN.
type proxy struct {
	ln net.Listener

	mu     sync.Mutex
	target string
	down   bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut(true)
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target, down := p.target, p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		for _, pair := range [][2]net.Conn{{c, up}, {up, c}} {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				_, _ = io.Copy(pair[0], pair[1])
				pair[0].Close()
				pair[1].Close()
			}()
		}
	}
}

// cut drops every connection and, when down, refuses new ones until up.
func (p *proxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) up(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down, p.target = false, target
}

func openSQL(t *testing.T, path string) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), sqlstore.Options{URL: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// recordAlerts stores n alerts on an SCN, as its scanner does, with a
// subject of subjectBytes.
func recordAlerts(t *testing.T, st *sqlstore.Store, from, n int, subjectBytes ...int) {
	t.Helper()
	subject := ""
	if len(subjectBytes) > 0 {
		subject = strings.Repeat("x", subjectBytes[0])
	}
	for i := from; i < from+n; i++ {
		rec := &ospreyv1.MessageRecord{Tenant: "default", SensorId: "s1", MessageId: fmt.Sprintf("m%03d", i), Verdict: "detected"}
		alert := &ospreyv1.Alert{Severity: ospreyv1.Severity_SEVERITY_HIGH, Verdict: "detected", Headers: &ospreyv1.HeaderSummary{Subject: subject}}
		if _, _, err := st.RecordScan(t.Context(), store.AllTenants(), rec, alert, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

// waitAlerts waits until the PCN holds want alerts of the SCN branch, and
// checks that they are the SCN's messages, each once.
func waitAlerts(t *testing.T, pcnDB *sqlstore.Store, want int) {
	t.Helper()
	testwait.For(t, fmt.Sprintf("%d alerts of the SCN on the PCN", want), func() bool {
		d, err := pcnDB.ServersData(t.Context(), store.AllTenants())
		return err == nil && d["branch"].Alerts >= int64(want)
	})
	page, err := pcnDB.ListAlerts(t.Context(), store.AllTenants(), sqlstore.AlertQuery{ServerID: "branch", Limit: sqlstore.MaxPageLimit})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range page.Alerts {
		if seen[a.GetMessageId()] {
			t.Errorf("alert of %s twice on the PCN", a.GetMessageId())
		}
		seen[a.GetMessageId()] = true
		if a.GetTenant() != "branches" || a.GetServerId() != "branch" {
			t.Errorf("alert of %s: tenant %q, server %q; want branches, branch", a.GetMessageId(), a.GetTenant(), a.GetServerId())
		}
	}
	for i := range want {
		if id := fmt.Sprintf("m%03d", i); !seen[id] {
			t.Errorf("alert of %s missing on the PCN", id)
		}
	}
	if len(page.Alerts) != want {
		t.Errorf("the PCN holds %d alerts of the SCN, want %d", len(page.Alerts), want)
	}
}

// TestUplinkAcrossOutages sends an SCN's alerts to its PCN across a cut
// link, a PCN restart and a move of the link to another node of the SCN:
// every alert arrives, once. Then the PCN disconnects the SCN: the SCN's
// alerts leave the PCN, its summaries stay, the SCN keeps its own.
func TestUplinkAcrossOutages(t *testing.T) {
	dir := t.TempDir()
	pcnPath, scnPath := filepath.Join(dir, "pcn.db"), filepath.Join(dir, "scn.db")
	pcnDB := openSQL(t, pcnPath)
	hb := 200 * time.Millisecond
	p := startPCN(t, hierarchy.PrimaryOptions{Heartbeat: hb})
	// startPCN served without the channel; serve again with it.
	p.stop()
	recv := uplink.NewReceiver(uplink.ReceiverOptions{Messages: pcnDB, Servers: p.store})
	p.serve(t, hierarchy.PrimaryOptions{Heartbeat: hb, Channels: []hierarchy.PrimaryChannel{recv}})
	px := startProxy(t, p.addr)

	scnDB1, scnDB2 := openSQL(t, scnPath), openSQL(t, scnPath)
	sender := func(db *sqlstore.Store) hierarchy.SecondaryChannel {
		return uplink.NewSender(uplink.SenderOptions{Messages: db, Batch: 7, Window: 2, Poll: 50 * time.Millisecond, SummaryEvery: 100 * time.Millisecond})
	}
	cli := etcdtest.Client(t)
	kek := make([]byte, pki.KEKSize)
	if _, err := rand.Read(kek); err != nil {
		t.Fatal(err)
	}
	s1, stop1 := startSCNNode(t, cli, kek, "scn-1", sender(scnDB1))
	ctx := t.Context()
	recordAlerts(t, scnDB1, 0, 15) // before the join: backfilled
	fp, err := hierarchy.FetchFingerprint(ctx, px.addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Join(ctx, hierarchy.JoinInput{Address: px.addr(), Fingerprint: fp, Name: "branch", Username: account, Password: password}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.primary.Accept(ctx, store.AllTenants(), "branch", "branches"); err != nil {
		t.Fatal(err)
	}
	recordAlerts(t, scnDB1, 15, 5)
	waitAlerts(t, pcnDB, 20)

	// The link is cut while alerts keep coming, some large (batches are
	// cut by size, within gRPC's message limit).
	px.cut(true)
	recordAlerts(t, scnDB1, 20, 20)
	recordAlerts(t, scnDB1, 40, 10, 450<<10)
	px.up(p.addr)
	waitAlerts(t, pcnDB, 50)

	// The PCN goes away and comes back, on a store opened again.
	p.stop()
	px.cut(true)
	recordAlerts(t, scnDB1, 50, 10)
	pcnDB.Close()
	pcnDB = openSQL(t, pcnPath)
	recv = uplink.NewReceiver(uplink.ReceiverOptions{Messages: pcnDB, Servers: p.store})
	p.serve(t, hierarchy.PrimaryOptions{Heartbeat: hb, Channels: []hierarchy.PrimaryChannel{recv}})
	px.up(p.addr)
	waitAlerts(t, pcnDB, 60)

	// The link moves to another node of the SCN.
	s2, _ := startSCNNode(t, cli, kek, "scn-2", sender(scnDB2))
	stop1()
	recordAlerts(t, scnDB2, 60, 10)
	waitAlerts(t, pcnDB, 70)
	if v, err := s2.View(ctx); err != nil || v.Node != "scn-2" {
		t.Errorf("the link's SCN node: %q, %v; want scn-2", v.Node, err)
	}
	testwait.For(t, "the SCN's summaries on the PCN", func() bool {
		tt, err := pcnDB.SummaryTotals(ctx, store.AllTenants(), time.Now().Add(-time.Hour))
		return err == nil && len(tt) == 1 && tt[0].ServerID == "branch" && tt[0].Tenant == "branches" && tt[0].Messages == 70 && tt[0].Detected == 70
	})

	if _, err := p.primary.Disconnect(ctx, store.AllTenants(), "branch"); err != nil {
		t.Fatal(err)
	}
	if err := recv.Clean(ctx); err != nil {
		t.Fatal(err)
	}
	if d, err := pcnDB.ServersData(ctx, store.AllTenants()); err != nil || d["branch"].Alerts != 0 {
		t.Errorf("after the disconnect the PCN holds %d of the SCN's alerts, %v; want none", d["branch"].Alerts, err)
	}
	if tt, err := pcnDB.SummaryTotals(ctx, store.AllTenants(), time.Now().Add(-time.Hour)); err != nil || len(tt) != 1 || tt[0].Messages != 70 {
		t.Errorf("after the disconnect the PCN's summaries: %+v, %v; want the SCN's 70 messages", tt, err)
	}
	if seqs, err := scnDB2.AlertSeqs(ctx, store.AllTenants()); err != nil || seqs["default"] != 70 {
		t.Errorf("the SCN's alerts: %v, %v; want its 70", seqs, err)
	}
}
