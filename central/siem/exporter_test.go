package siem

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/ospreysec/osprey/internal/syslogtest"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func alert(tenant, id string) *ospreyv1.Alert {
	a := testAlert()
	a.Tenant, a.Id = tenant, id
	return a
}

// newExporter returns an Exporter that runs until the test ends.
func newExporter(t *testing.T, opts Options) (*Exporter, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 20 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 100 * time.Millisecond
	}
	if opts.Hostname == "" {
		opts.Hostname = "central-1"
	}
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e, reg
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestExportTCP(t *testing.T) {
	r := syslogtest.Start(t, listen(t))
	e, reg := newExporter(t, Options{Version: "v9"})
	if err := e.Apply("acme", &ospreyv1.SyslogExport{Enabled: true, Address: r.Addr(), Facility: 4, AppName: "osprey-test"}); err != nil {
		t.Fatal(err)
	}
	if e.Enqueue(alert("other", "o1"), 0) {
		t.Error("an alert of a tenant without export was queued")
	}
	for i := range 3 {
		if !e.Enqueue(alert("acme", fmt.Sprint("a", i)), 0) {
			t.Fatalf("alert %d not queued", i)
		}
	}
	msgs := r.WaitIDs(t, 20*time.Second, "a0", "a1", "a2")
	want := "<35>1 2026-03-02T10:04:05.123456Z central-1 osprey-test "
	if !strings.HasPrefix(msgs[0], want) || !strings.Contains(msgs[0], " alert - CEF:0|Osprey|Osprey|v9|eicar:EICAR-Test-File|") {
		t.Errorf("got %q, want it to start with %q and carry the CEF event", msgs[0], want)
	}
	for i, m := range msgs {
		if !strings.Contains(m, fmt.Sprintf("externalId=a%d ", i)) {
			t.Errorf("message %d is %q: out of order", i, m)
		}
	}
	// The receiver may read the alerts before the sender counts them.
	testwait.For(t, "3 alerts to be counted as sent", func() bool {
		return testutil.ToFloat64(e.metrics.sent.WithLabelValues("acme")) == 3
	})
	if n, err := testutil.GatherAndCount(reg, "osprey_siem_queue_length"); err != nil || n != 1 {
		t.Errorf("queue length gauge: %d series, %v", n, err)
	}
}

func TestExportTLS(t *testing.T) {
	ca, err := pki.NewCA("siem test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := ca.SignServer(key.Public(), []string{"siem.test"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.TLSCertificate(der, key)
	if err != nil {
		t.Fatal(err)
	}
	// Each case has its own receiver, so that the connections it sees are
	// the case's own.
	receiver := func(t *testing.T) *syslogtest.Receiver {
		return syslogtest.Start(t, tls.NewListener(listen(t), &tls.Config{Certificates: []tls.Certificate{cert}}))
	}
	verified := func(addr string) *ospreyv1.SyslogExport {
		return &ospreyv1.SyslogExport{Enabled: true, Address: addr, Tls: true, CaPem: string(ca.CertPEM()), ServerName: "siem.test"}
	}
	// refused checks that e gives up on r's certificate and delivers
	// nothing: r sees two connections (the first attempt and a retry) end
	// before any message.
	refused := func(t *testing.T, r *syslogtest.Receiver, id, why string) {
		t.Helper()
		testwait.For(t, "the exporter to give up two connections", func() bool { return len(r.Abandoned()) >= 2 })
		for _, m := range r.Messages() {
			if strings.Contains(m, "externalId="+id+" ") {
				t.Fatalf("delivered to %s", why)
			}
		}
	}

	t.Run("verified", func(t *testing.T) {
		r := receiver(t)
		e, _ := newExporter(t, Options{})
		if err := e.Apply("acme", verified(r.Addr())); err != nil {
			t.Fatal(err)
		}
		e.Enqueue(alert("acme", "tls1"), 0)
		r.WaitIDs(t, 20*time.Second, "tls1")
	})
	t.Run("wrong name", func(t *testing.T) {
		r := receiver(t)
		e, _ := newExporter(t, Options{})
		// The certificate is for siem.test, not 127.0.0.1.
		if err := e.Apply("acme", &ospreyv1.SyslogExport{Enabled: true, Address: r.Addr(), Tls: true, CaPem: string(ca.CertPEM())}); err != nil {
			t.Fatal(err)
		}
		e.Enqueue(alert("acme", "tls2"), 0)
		refused(t, r, "tls2", "a receiver whose certificate does not match")
		// Fixing the settings delivers the queued alert.
		if err := e.Apply("acme", verified(r.Addr())); err != nil {
			t.Fatal(err)
		}
		r.WaitIDs(t, 20*time.Second, "tls2")
	})
	t.Run("untrusted", func(t *testing.T) {
		r := receiver(t)
		other, err := pki.NewCA("another CA", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := newExporter(t, Options{})
		if err := e.Apply("acme", &ospreyv1.SyslogExport{Enabled: true, Address: r.Addr(), Tls: true, CaPem: string(other.CertPEM()), ServerName: "siem.test"}); err != nil {
			t.Fatal(err)
		}
		e.Enqueue(alert("acme", "tls3"), 0)
		refused(t, r, "tls3", "an untrusted receiver")
		// Trusting the receiver's CA delivers the queued alert.
		if err := e.Apply("acme", verified(r.Addr())); err != nil {
			t.Fatal(err)
		}
		r.WaitIDs(t, 20*time.Second, "tls3")
	})
}

// waitQueued waits until tenant's queue holds n alerts.
func waitQueued(t *testing.T, e *Exporter, tenant string, n int) {
	t.Helper()
	testwait.For(t, fmt.Sprintf("the queue of %s to hold %d alerts", tenant, n), func() bool {
		return testutil.ToFloat64(e.metrics.queue.WithLabelValues(tenant)) == float64(n)
	})
}

// TestReceiverDownThenUp queues alerts while nothing listens, and delivers
// them once the receiver comes up.
func TestReceiverDownThenUp(t *testing.T) {
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close() // down
	e, _ := newExporter(t, Options{})
	if err := e.Apply("acme", &ospreyv1.SyslogExport{Enabled: true, Address: addr}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		e.Enqueue(alert("acme", fmt.Sprint("d", i)), 0)
	}
	waitQueued(t, e, "acme", 5)
	ln, err := net.Listen("tcp", addr) // up, on the same port
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	r := syslogtest.Start(t, ln)
	r.WaitIDs(t, 20*time.Second, "d0", "d1", "d2", "d3", "d4")
	waitQueued(t, e, "acme", 0)
}

// TestQueueFull fills a queue that nothing drains (Run does not run, as
// for a receiver that is down): Enqueue never waits, and every drop is
// counted. In the bubble, an Enqueue that waited on a channel would be a
// deadlock, and one that waited on a timer would move the clock.
func TestQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		e, err := New(Options{QueueSize: 5, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Apply("acme", &ospreyv1.SyslogExport{Enabled: true, Address: "127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		queued := 0
		for i := range 1000 {
			if e.Enqueue(alert("acme", fmt.Sprint("f", i)), 0) {
				queued++
			}
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("1000 Enqueue calls waited %v", d)
		}
		if queued != 5 {
			t.Errorf("%d queued, want 5", queued)
		}
		if got := testutil.ToFloat64(e.metrics.dropped.WithLabelValues("acme", DropQueueFull)); got != 995 {
			t.Errorf("dropped: got %v, want 995", got)
		}
		// Disabling the export counts what was queued.
		if err := e.Apply("acme", &ospreyv1.SyslogExport{Enabled: false}); err != nil {
			t.Fatal(err)
		}
		if got := testutil.ToFloat64(e.metrics.dropped.WithLabelValues("acme", DropDisabled)); got != 5 {
			t.Errorf("dropped when disabled: got %v, want 5", got)
		}
		if n, err := testutil.GatherAndCount(reg, "osprey_siem_dropped_total"); err != nil || n != 2 {
			t.Errorf("dropped series: %d, %v", n, err)
		}
	})
}

// TestResendAfterBreak closes the connection behind the exporter's back:
// what it wrote lately is sent again on the next connection, so nothing
// written just before the break is lost.
func TestResendAfterBreak(t *testing.T) {
	r := syslogtest.Start(t, listen(t))
	e, _ := newExporter(t, Options{})
	if err := e.Apply("acme", &ospreyv1.SyslogExport{Enabled: true, Address: r.Addr()}); err != nil {
		t.Fatal(err)
	}
	e.Enqueue(alert("acme", "b1"), 0)
	r.WaitIDs(t, 20*time.Second, "b1")
	r.DropConns() // the receiver restarts
	e.Enqueue(alert("acme", "b2"), 0)
	msgs := r.WaitIDs(t, 20*time.Second, "b1", "b2")
	n := 0
	for _, m := range msgs {
		if strings.Contains(m, "externalId=b1 ") {
			n++
		}
	}
	if n != 2 {
		t.Errorf("b1 received %d times, want twice (sent again after the break)", n)
	}
}

// TestRunOwnsTheSenders: New and Apply start nothing, and an alert
// enqueued before Run waits in its queue; Run sends it, and leaves no
// goroutine behind once ctx ends.
func TestRunOwnsTheSenders(t *testing.T) {
	r := syslogtest.Listen(t)
	others := goleak.IgnoreCurrent()
	e, err := New(Options{Hostname: "central-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply("acme", &ospreyv1.SyslogExport{Enabled: true, Address: r.Addr()}); err != nil {
		t.Fatal(err)
	}
	if !e.Enqueue(alert("acme", "w1"), 1) {
		t.Fatal("alert not queued before Run")
	}
	goleak.VerifyNone(t, others)
	if got := testutil.ToFloat64(e.metrics.queue.WithLabelValues("acme")); got != 1 {
		t.Errorf("queued before Run: got %v, want 1", got)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	r.WaitIDs(t, 20*time.Second, "w1")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if _, ok := e.Delivered("acme"); ok {
		t.Error("the sink outlived Run")
	}
	goleak.VerifyNone(t, others)
}

func TestApplyValidates(t *testing.T) {
	e, _ := newExporter(t, Options{})
	err := e.Apply("acme", &ospreyv1.SyslogExport{Enabled: true, Address: "no port", Facility: 99})
	if err == nil || !strings.Contains(err.Error(), "address") || !strings.Contains(err.Error(), "facility") {
		t.Errorf("got %v, want errors for address and facility", err)
	}
	if err := e.Apply("acme", &ospreyv1.SyslogExport{Enabled: true, Address: "127.0.0.1:1", Tls: true, CaPem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}); err == nil {
		t.Error("a CA PEM without a certificate was accepted")
	}
}

// waitDelivered waits until Delivered reports want for tenant.
func waitDelivered(t *testing.T, e *Exporter, tenant string, want int64) {
	t.Helper()
	testwait.For(t, fmt.Sprintf("Delivered(%s) to be %d", tenant, want), func() bool {
		got, ok := e.Delivered(tenant)
		return ok && got == want
	})
}

// TestDeliveredAndRoom follows what the feeder reads: Delivered stays
// before the oldest alert queued or in the resend window, and reaches the
// last revision once the window has passed; Room keeps places for the
// window's alerts, which a break puts back in the queue.
func TestDeliveredAndRoom(t *testing.T) {
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close() // down
	e, _ := newExporter(t, Options{QueueSize: 10, ResendWindow: 300 * time.Millisecond})
	if _, ok := e.Delivered("acme"); ok || e.Room("acme") != 0 {
		t.Error("a tenant without export has a Delivered or Room")
	}
	if err := e.Apply("acme", &ospreyv1.SyslogExport{Enabled: true, Address: addr}); err != nil {
		t.Fatal(err)
	}
	for rev := int64(101); rev <= 104; rev++ {
		e.Enqueue(alert("acme", fmt.Sprint("r", rev)), rev)
	}
	waitQueued(t, e, "acme", 4)
	if got, _ := e.Delivered("acme"); got != 100 {
		t.Errorf("receiver down: Delivered = %d, want 100", got)
	}
	if got := e.Room("acme"); got != 6 {
		t.Errorf("receiver down: Room = %d, want 6", got)
	}

	ln, err := net.Listen("tcp", addr) // up
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	r := syslogtest.Start(t, ln)
	r.WaitIDs(t, 20*time.Second, "r101", "r102", "r103", "r104")
	waitQueued(t, e, "acme", 0)
	// Written, but in the window: not yet delivered, and still holding
	// their places.
	if got, _ := e.Delivered("acme"); got != 100 {
		t.Errorf("in the window: Delivered = %d, want 100", got)
	}
	if got := e.Room("acme"); got != 6 {
		t.Errorf("in the window: Room = %d, want 6", got)
	}
	waitDelivered(t, e, "acme", 104)
	if got := e.Room("acme"); got != 10 {
		t.Errorf("window passed: Room = %d, want 10", got)
	}

	// A break puts the window back in the queue: Delivered goes back.
	e.Enqueue(alert("acme", "r105"), 105)
	r.WaitIDs(t, 20*time.Second, "r105")
	waitQueued(t, e, "acme", 0)
	if got, _ := e.Delivered("acme"); got != 104 {
		t.Errorf("r105 in the window: Delivered = %d, want 104", got)
	}
	r.DropConns()
	e.Enqueue(alert("acme", "r106"), 106)
	msgs := r.WaitIDs(t, 20*time.Second, "r105", "r106")
	if n := strings.Count(strings.Join(msgs, "\n"), "externalId=r105 "); n != 2 {
		t.Errorf("r105 received %d times, want twice", n)
	}
	waitDelivered(t, e, "acme", 106)
}
