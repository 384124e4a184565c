package central

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ospreysec/osprey/central/gossip"
	"github.com/ospreysec/osprey/internal/clocktest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestEtcdProbeGrace: the quorum holds while the last successful read is
// younger than the grace, so a failed read or two (a leader election) do
// not drop it, and a lasting failure does.
func TestEtcdProbeGrace(t *testing.T) {
	clock := clocktest.New(time.Unix(1000, 0))
	var fail bool
	p := newEtcdProbe(func(context.Context) error {
		if fail {
			return errors.New("etcdserver: request timed out")
		}
		return nil
	}, clock.Now)
	if !p.OK() {
		t.Fatal("a new probe: not OK, want OK (the node just read etcd to start)")
	}
	fail = true
	for i := range 2 {
		clock.Advance(time.Second)
		p.probe(t.Context())
		if !p.OK() {
			t.Fatalf("%d s after the last good read: not OK, want OK within the %v grace", i+1, etcdGrace)
		}
	}
	clock.Advance(time.Second)
	p.probe(t.Context())
	if p.OK() {
		t.Fatalf("%v after the last good read: OK, want not OK", etcdGrace)
	}
	fail = false
	p.probe(t.Context())
	if !p.OK() {
		t.Fatal("after a good read: not OK, want OK")
	}
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.2:25":  "127.0.0.2:25",
		":2525":         "0.0.0.0:2525",
		"0.0.0.0:25":    "0.0.0.0:25",
		"[::]:25":       "[::]:25",
		"[fd00::1]:25":  "[fd00::1]:25",
		"localhost:587": "", // resolved: any loopback address will do
	} {
		got, err := listenAddr(t.Context(), in)
		if err != nil {
			t.Errorf("listenAddr(%q): %v", in, err)
			continue
		}
		if want == "" {
			if !got.Addr().IsLoopback() || got.Port() != 587 {
				t.Errorf("listenAddr(%q) = %v, want a loopback address, port 587", in, got)
			}
			continue
		}
		if got.String() != want {
			t.Errorf("listenAddr(%q) = %v, want %s", in, got, want)
		}
	}
	if _, err := listenAddr(t.Context(), "no-port"); err == nil {
		t.Error("listenAddr without a port: got nil, want an error")
	}
}

// recorder is a metaSetter that keeps what it was given.
type recorder struct{ metas []gossip.Meta }

func (r *recorder) SetMeta(_ context.Context, m gossip.Meta) error {
	r.metas = append(r.metas, m)
	return nil
}

// TestHealthMonitorGossipsChanges: the monitor reports each component as
// it finds it, takes the SMTP address from the node's own integration, and
// gossips only when something changed.
func TestHealthMonitorGossipsChanges(t *testing.T) {
	smtpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer smtpLn.Close()
	go func() {
		for {
			c, err := smtpLn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(smtpLn.Addr().String())
	var cfgMu sync.Mutex
	cfg := &ospreyv1.SmtpIntegration{Enabled: true, Listen: "0.0.0.0:" + port}
	rec := &recorder{}
	closedGRPC := mustClosedAddr(t)
	var sqlDown, spamDown atomic.Bool
	sqlDown.Store(true)
	h := newHealthMonitor(healthOptions{
		cluster:  rec,
		etcd:     newEtcdProbe(func(context.Context) error { return nil }, nil),
		base:     gossip.Meta{Roles: []gossip.Role{gossip.RoleCentral, gossip.RoleSensor}, GRPCAddr: closedGRPC.String()},
		grpcAddr: closedGRPC,
		ca:       &x509.Certificate{},
		httpURL:  "http://" + mustClosedAddr(t).String(),
		smtpConfig: func(context.Context) (*ospreyv1.SmtpIntegration, error) {
			cfgMu.Lock()
			defer cfgMu.Unlock()
			return cfg, nil
		},
		sqlPing: func(context.Context) error {
			if sqlDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		},
		spamHealth: func(context.Context) error {
			if spamDown.Load() {
				return errors.New("3 spam checks in a row failed")
			}
			return nil
		},
		selfIP: netip.MustParseAddr("127.0.0.1"),
		log:    slog.New(slog.DiscardHandler),
	})
	defer h.http.CloseIdleConnections()

	h.update(t.Context())
	h.update(t.Context()) // nothing changed: nothing gossiped
	if len(rec.metas) != 1 {
		t.Fatalf("gossiped %d times, want once", len(rec.metas))
	}
	m := rec.metas[0]
	want := gossip.Health{Etcd: true, SMTP: true, Spool: true, RspamdUsed: true, Rspamd: true}
	if m.Health != want || m.SMTPAddr != "0.0.0.0:"+port {
		t.Errorf("first report: health %+v smtp %q, want %+v and 0.0.0.0:%s (dialled at the gossip IP)", m.Health, m.SMTPAddr, want, port)
	}

	cfgMu.Lock()
	cfg = &ospreyv1.SmtpIntegration{Enabled: false, Listen: "0.0.0.0:" + port}
	cfgMu.Unlock()
	h.update(t.Context())
	if len(rec.metas) != 2 || rec.metas[1].Health.SMTP {
		t.Fatalf("after SMTP was disabled: %+v, want a second report without SMTP", rec.metas)
	}

	// The SQL store answers again: a report says so.
	sqlDown.Store(false)
	h.update(t.Context())
	if len(rec.metas) != 3 || !rec.metas[2].Health.SQL {
		t.Fatalf("after the SQL store came back: %+v, want a third report with SQL", rec.metas)
	}

	// Rspamd fails: a report says so, and the node is still a healthy
	// central and sensor as far as the rest goes.
	spamDown.Store(true)
	h.update(t.Context())
	if len(rec.metas) != 4 || rec.metas[3].Health.Rspamd || !rec.metas[3].Health.RspamdUsed || !rec.metas[3].Health.SQL {
		t.Fatalf("after rspamd failed: %+v, want a fourth report with rspamd used and failing", rec.metas)
	}
}

// mustClosedAddr returns a loopback address nothing listens on.
func mustClosedAddr(t *testing.T) net.Addr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr()
	ln.Close()
	return addr
}
