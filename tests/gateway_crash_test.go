package tests

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/testwait"
)

// An osprey sensor process as a gateway, enrolled with an osprey dev
// node: the sensor killed (-9) while it delivers, and the central down
// past the hold timeout.

// startDevAt runs osprey dev on dataDir with its gRPC listener on grpc, so
// that its sensors find it again after a restart.
func startDevAt(t *testing.T, dataDir, grpc string) *devNode {
	t.Helper()
	p := start(t, []string{
		"OSPREY_DATA_DIR=" + dataDir,
		"OSPREY_HTTP_ADDR=127.0.0.1:0", "OSPREY_GRPC_ADDR=" + grpc,
		"OSPREY_ETCD_CLIENT_ADDR=127.0.0.1:0", "OSPREY_ETCD_PEER_ADDR=127.0.0.1:0",
		"OSPREY_GOSSIP_ADDR=127.0.0.1:0", "OSPREY_DNS_ADDR=127.0.0.1:0",
		"OSPREY_BOOTSTRAP_ADMIN_PASSWORD=" + adminPassword,
	}, "dev")
	base := p.waitLine(t, apiLine)[1]
	c, err := api.NewClient(api.Config{Address: base, Username: "admin", Password: adminPassword})
	if err != nil {
		t.Fatal(err)
	}
	return &devNode{proc: p, base: base, api: c}
}

// gatewaySensor is an osprey sensor process whose SMTP integration is a
// gateway.
type gatewaySensor struct {
	*proc
	id      string
	args    []string
	listen  string // the inbound listener
	metrics string // its /metrics, /healthz and /readyz
}

// startGatewaySensor enrolls an osprey sensor named name with the dev
// node (gRPC at grpc), approves it and applies cfg, the SMTP integration
// of an inbound gateway on listen.
func startGatewaySensor(t *testing.T, d *devNode, grpc, name, listen string, cfg *api.SMTPIntegration) *gatewaySensor {
	t.Helper()
	ctx := t.Context()
	tok, err := d.api.CreateToken(ctx, api.TokenRequest{Kind: api.TokenJoin, Tenant: "default", TTLSeconds: 600, MaxUses: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The metrics listener's address is configured here: the sensor
	// prints none.
	s := &gatewaySensor{listen: listen, metrics: loopbackPort(t)}
	s.args = []string{"sensor", "--central", grpc, "--data-dir", filepath.Join(t.TempDir(), name), "--name", name,
		"--metrics-addr", s.metrics, "--log-format", "text"}
	s.proc = start(t, nil, append(s.args, "--join-token", tok.Secret)...)
	s.id = s.waitLine(t, enrolledLine)[1]
	if _, err := d.api.ApproveSensor(ctx, s.id); err != nil {
		t.Fatal(err)
	}
	_, v, err := d.api.PutSMTP(ctx, s.id, cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitSensor(t, d.api, s.id, fmt.Sprintf("online with version %d applied", v), func(s *api.Sensor) bool {
		return s.Online && s.AppliedVersion == v
	})
	return s
}

// restart starts the sensor again on its data dir (it is enrolled) and
// waits until its gateway listener answers.
func (s *gatewaySensor) restart(t *testing.T) {
	t.Helper()
	s.proc = start(t, nil, s.args...)
	testwait.For(t, "the restarted sensor's gateway greeting on "+s.listen, func() bool {
		c, err := smtp.Dial(s.listen)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// metric returns the sum of the sensor's samples of a metric (all labels).
func (s *gatewaySensor) metric(t *testing.T, name string) float64 {
	t.Helper()
	return queueSamples(t, "http://"+s.metrics, name, "")
}

// tokenLine matches the unique token of a load message and its end.
var tokenLine = regexp.MustCompile(`(?m)^Subject: load (\S+)$[\s\S]*^end of (\S+)$`)

// loadSend sends one load message carrying token through listen, and
// reports whether the gateway answered 250 to its data.
func loadSend(listen, token string) bool {
	c, err := smtp.Dial(listen)
	if err != nil {
		return false
	}
	defer c.Close()
	if c.Hello("partner.test") != nil || c.Mail("alice@partner.test") != nil || c.Rcpt("bob@example.com") != nil {
		return false
	}
	w, err := c.Data()
	if err != nil {
		return false
	}
	body := "From: alice@partner.test\r\nTo: bob@example.com\r\nSubject: load " + token + "\r\nMessage-ID: <" + token +
		"@partner.test>\r\n\r\n" + strings.Repeat("load test line\r\n", 50) + "end of " + token + "\r\n"
	if _, err := io.WriteString(w, body); err != nil {
		return false
	}
	if w.Close() != nil {
		return false
	}
	c.Quit()
	return true
}

// delivered counts the load tokens in the complete dumps of the sink (the
// message's last line, "end of <token>", is in the dump).
func delivered(t *testing.T, dir string) map[string]int {
	t.Helper()
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m := tokenLine.FindSubmatch([]byte(strings.ReplaceAll(string(b), "\r\n", "\n")))
		if m != nil && string(m[1]) == string(m[2]) {
			got[string(m[1])]++
		}
	}
	return got
}

// TestGatewaySensorKilledWhileDelivering: a load generator sends to an
// osprey sensor (an inbound gateway in front of smtp-sink) without pause;
// the sensor is killed (-9) ten times at random points while it delivers,
// and started again each time. Every message it answered 250 is delivered
// at least once; the log says how many were delivered twice.
func TestGatewaySensorKilledWhileDelivering(t *testing.T) {
	sink := startSMTPSink(t)
	grpc := loopbackPort(t)
	d := startDevAt(t, filepath.Join(t.TempDir(), "data"), grpc)
	listen := loopbackPort(t)
	s := startGatewaySensor(t, d, grpc, "gw-1", listen, inboundGateway(t, listen, "example.com", sink.addr))

	var (
		mu    sync.Mutex
		acked []string
		tries int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				token := fmt.Sprintf("w%d-%05d", w, i)
				ok := loadSend(listen, token)
				mu.Lock()
				tries++
				if ok {
					acked = append(acked, token)
				}
				mu.Unlock()
				if !ok {
					time.Sleep(50 * time.Millisecond) // the sensor is down: not too fast
				}
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	const kills = 10
	for k := range kills {
		// A random point while deliveries run: after 1 to 20 more
		// messages reached the sink since the last start.
		base := len(delivered(t, sink.dir))
		more := 1 + rand.IntN(20)
		testwait.For(t, fmt.Sprintf("kill %d: %d more deliveries", k+1, more), func() bool {
			return len(delivered(t, sink.dir)) >= base+more
		})
		s.kill(t)
		s.restart(t)
	}
	// A last stretch of load after the last restart, then stop.
	base := len(delivered(t, sink.dir))
	testwait.For(t, "deliveries after the last restart", func() bool { return len(delivered(t, sink.dir)) >= base+10 })
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	var got map[string]int
	testwait.For(t, fmt.Sprintf("each of the %d acknowledged messages delivered", len(acked)), func() bool {
		got = delivered(t, sink.dir)
		for _, tok := range acked {
			if got[tok] == 0 {
				return false
			}
		}
		return true
	})
	twice, extra := 0, 0
	for tok, n := range got {
		if n > 1 {
			twice++
			extra += n - 1
			t.Logf("%s delivered %d times", tok, n)
		}
	}
	t.Logf("%d kills: %d sends, %d acknowledged (250), %d distinct delivered, %d delivered more than once (%d extra copies)",
		kills, tries, len(acked), len(got), twice, extra)
	if len(got) < len(acked) {
		t.Errorf("%d distinct messages delivered, want at least the %d acknowledged", len(got), len(acked))
	}
}

// TestGatewayCentralDownPastHoldTimeout: two osprey sensor gateways in
// front of one internal server; the central is killed; each takes a
// message. The one with on_timeout deliver_unscanned delivers its message
// marked unscanned once the 10 s hold timeout passed; by then the other
// one's (keep_holding, sent first) has waited past its timeout too, and
// is still in its spool, undelivered. Once the central is back, it is
// delivered with its verdict, and the unscanned one is not delivered again.
func TestGatewayCentralDownPastHoldTimeout(t *testing.T) {
	sink := startSMTPSink(t)
	grpc := loopbackPort(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	d := startDevAt(t, dataDir, grpc)
	gateway := func(name string, onTimeout api.HoldTimeoutAction) *gatewaySensor {
		listen := loopbackPort(t)
		cfg := inboundGateway(t, listen, "example.com", sink.addr)
		cfg.Gateway.HoldTimeoutSeconds, cfg.Gateway.OnTimeout = 10, onTimeout
		return startGatewaySensor(t, d, grpc, name, listen, cfg)
	}
	late := gateway("late", api.DeliverUnscanned)
	hold := gateway("hold", api.KeepHolding)

	d.kill(t)
	sendSubject(t, hold.listen, "kept until scanned")
	sent := time.Now()
	sendSubject(t, late.listen, "delivered unscanned")
	var got []string
	testwait.For(t, "the message delivered unscanned after the hold timeout", func() bool {
		got = sink.messages(t)
		return len(got) > 0
	})
	if waited := time.Since(sent); waited < 10*time.Second {
		t.Errorf("delivered %v after its 250, before the 10 s hold timeout", waited)
	}
	if len(got) != 1 || !strings.Contains(got[0], "Subject: delivered unscanned\n") || !strings.Contains(got[0], "X-Osprey-Verdict: unscanned\n") {
		t.Fatalf("the internal server took %q, want the deliver_unscanned gateway's message marked unscanned", got)
	}
	// The keep_holding gateway's message, older, is past its timeout too:
	// still in its spool, not in its queue.
	if n := hold.metric(t, "osprey_sensor_spool_messages"); n != 1 {
		t.Errorf("the keep_holding gateway's spool holds %v messages, want its 1", n)
	}
	if n := hold.metric(t, `osprey_sensor_queue_depth`); n != 0 {
		t.Errorf("the keep_holding gateway's queue holds %v (recipients and messages), want nothing", n)
	}

	startDevAt(t, dataDir, grpc)
	testwait.For(t, "the held message delivered once the central is back", func() bool {
		got = sink.messages(t)
		return len(got) >= 2
	})
	var kept string
	for _, m := range got {
		if strings.Contains(m, "Subject: kept until scanned\n") {
			kept = m
		}
	}
	if !strings.Contains(kept, "X-Osprey-Verdict: clean\n") {
		t.Errorf("the held message was delivered as:\n%s\nwant it with its verdict, clean", kept)
	}
	// The unscanned message is uploaded and scanned too once the central
	// answers; its verdict must not deliver it a second time.
	testwait.For(t, "the unscanned message uploaded and its queue empty", func() bool {
		return late.metric(t, "osprey_sensor_spool_messages") == 0 && late.metric(t, "osprey_sensor_queue_depth") == 0
	})
	if got = sink.messages(t); len(got) != 2 {
		t.Errorf("the internal server took %d messages, want 2 (each once):\n%s", len(got), strings.Join(got, "\n----\n"))
	}
}
