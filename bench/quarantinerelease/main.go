// Command quarantinerelease measures how long a message released from a
// gateway's quarantine takes to reach its next hop: from the API call that
// releases it (POST /api/v1/sensors/dev/quarantine/{msg}/release) to the
// moment Postfix's smtp-sink, the next hop, has taken it.
//
// It runs `osprey dev` (built from the module) with its own sensor as an
// inbound gateway for example.com in front of smtp-sink. Each round sends
// -messages messages with the EICAR test file through the gateway (the
// default policy quarantines a detection), waits until the central lists
// them all as quarantined, then releases half of them one at a time (each
// release waits for the sink to take the message before the next: the
// latency of one release on an idle gateway) and the other half all at
// once from -concurrency clients (the rate at which a burst of releases is
// delivered). A release is one request to the sensor through the central
// (an etcd request key, the sensor's stream), the message put in the
// delivery queue (fsynced), and its delivery.
//
// Usage (as root, with postfix installed for smtp-sink, from the module's
// root):
//
//	go run ./bench/quarantinerelease -rounds 3 -messages 100
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/benchproc"
	"github.com/ospreysec/osprey/internal/nodeproc"
)

// eicar is the EICAR anti-virus test file.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

func main() {
	rounds := flag.Int("rounds", 3, "rounds; the figures are their medians")
	messages := flag.Int("messages", 100, "messages quarantined and released per round (half one at a time, half at once)")
	concurrency := flag.Int("concurrency", 4, "clients releasing the second half at once (a sensor takes 4 requests at a time; more are answered busy and retried)")
	flag.Parse()
	log.SetFlags(0)
	if *messages < 2 {
		fatalf("-messages: at least 2")
	}

	work, err := os.MkdirTemp("", "quarantinerelease-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "osprey")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/osprey").CombinedOutput(); err != nil {
		fatalf("build: %v\n%s", err, out)
	}
	sink, err := benchproc.StartSink()
	if err != nil {
		fatalf("%v", err)
	}
	atExit(sink.Stop)
	node := &nodeproc.Node{Name: "dev", IP: "127.0.0.1", LogFile: filepath.Join(work, "dev.log"), Args: []string{bin, "dev",
		"--data-dir", filepath.Join(work, "data"), "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0",
		"--dns-addr", "127.0.0.1:0", "--bootstrap-admin-password", nodeproc.AdminPassword, "--log-level", "warn"}}
	if err := node.Start(); err != nil {
		fatalf("%v", err)
	}
	atExit(func() { node.Stop() })
	defer cleanUp()
	c, err := api.NewClient(api.Config{Address: node.Ready.API, Username: "admin", Password: nodeproc.AdminPassword,
		TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		fatalf("%v", err)
	}
	gw := configure(c, sink.Addr)

	var seq, burst []float64
	fmt.Printf("%-6s %10s %10s %14s\n", "round", "p50 (ms)", "p99 (ms)", "burst msg/s")
	for r := range *rounds {
		ids := quarantine(c, gw, r, *messages)
		one := releaseOneByOne(c, sink, ids[:len(ids)/2])
		rate := releaseAtOnce(c, sink, ids[len(ids)/2:], *concurrency)
		slices.Sort(one)
		p50, p99 := quantile(one, 0.5), quantile(one, 0.99)
		fmt.Printf("%-6d %10.1f %10.1f %14.1f\n", r+1, p50, p99, rate)
		seq = append(seq, p50, p99)
		burst = append(burst, rate)
	}
	var p50s, p99s []float64
	for i := 0; i < len(seq); i += 2 {
		p50s, p99s = append(p50s, seq[i]), append(p99s, seq[i+1])
	}
	fmt.Printf("median: release to delivered p50 %.1f ms, p99 %.1f ms (%d releases a round, one at a time); a burst of %d releases from %d clients delivered at %.1f msg/s\n",
		benchproc.Median(p50s), benchproc.Median(p99s), *messages/2, *messages-*messages/2, *concurrency, benchproc.Median(burst))
}

// configure makes the dev node's sensor an inbound gateway for example.com
// in front of the sink, and returns its listener's address.
func configure(c *api.Client, sinkAddr string) string {
	ctx := context.Background()
	gw, err := benchproc.FreePort()
	if err != nil {
		fatalf("%v", err)
	}
	host, portText, _ := net.SplitHostPort(sinkAddr)
	port, _ := strconv.ParseUint(portText, 10, 16)
	_, v, err := c.PutSMTP(ctx, "dev", &api.SMTPIntegration{
		Enabled: true, Mode: api.SMTPInbound, MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB},
		Gateway: &api.SMTPGateway{
			Inbound:      &api.GatewayListener{Listen: gw},
			LocalDomains: []api.LocalDomain{{Domain: "example.com", Hosts: []api.NextHop{{Host: host, Port: uint32(port)}}}},
			HeloName:     "gw.bench.test",
		},
	}, 0)
	if err != nil {
		fatalf("configure the gateway: %v", err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		if s, err := c.Sensor(ctx, "dev"); err == nil && s.AppliedVersion == v {
			break
		}
		if time.Now().After(deadline) {
			fatalf("the sensor did not apply the gateway configuration within a minute")
		}
	}
	if err := benchproc.WaitListen(gw); err != nil {
		fatalf("%v", err)
	}
	return gw
}

// quarantine sends n messages with the EICAR file through the gateway and
// returns their ids once the central lists them all as quarantined.
func quarantine(c *api.Client, gw string, round, n int) []string {
	tag := fmt.Sprintf("bench r%d ", round)
	for i := range n {
		msg := "From: mallory@evil.example\r\nTo: bob@example.com\r\nSubject: " + tag + strconv.Itoa(i) +
			"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n" +
			strings.Repeat("quarantine benchmark line\r\n", 150) +
			"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=eicar.com\r\n\r\n" + eicar + "\r\n--b--\r\n"
		if err := smtp.SendMail(gw, nil, "mallory@evil.example", []string{"bob@example.com"}, []byte(msg)); err != nil {
			fatalf("send message %d: %v", i, err)
		}
	}
	ctx := context.Background()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var ids []string
		q := api.QuarantineQuery{State: api.QuarantineHeld, Subject: tag, Limit: 500}
		for {
			l, err := c.Quarantine(ctx, q)
			if err != nil {
				fatalf("%v", err)
			}
			for _, m := range l.Messages {
				ids = append(ids, m.MessageID)
			}
			if l.NextPageToken == "" {
				break
			}
			q.PageToken = l.NextPageToken
		}
		if len(ids) == n {
			return ids
		}
		if time.Now().After(deadline) {
			fatalf("round %d: %d of %d messages quarantined after two minutes", round, len(ids), n)
		}
	}
}

// releaseOneByOne releases each message and waits for the sink to take it
// before the next, and returns the latencies in milliseconds.
func releaseOneByOne(c *api.Client, sink *benchproc.Sink, ids []string) []float64 {
	var out []float64
	for _, id := range ids {
		base := sink.Count()
		start := time.Now()
		release(c, id)
		times, err := sink.WaitFor(base+1, time.Minute)
		if err != nil {
			fatalf("release %s: %v", id, err)
		}
		out = append(out, float64(times[base].Sub(start).Microseconds())/1000)
	}
	return out
}

// releaseAtOnce releases the messages from clients at once and returns the
// rate at which the sink took them, from the first release.
func releaseAtOnce(c *api.Client, sink *benchproc.Sink, ids []string, clients int) float64 {
	base := sink.Count()
	start := time.Now()
	work := make(chan string)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for id := range work {
				release(c, id)
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	times, err := sink.WaitFor(base+len(ids), time.Minute)
	if err != nil {
		fatalf("burst: %v", err)
	}
	return float64(len(ids)) / times[len(times)-1].Sub(start).Seconds()
}

// release releases one message, again while the sensor answers that it is
// busy with other requests (409, as the API says: retry).
func release(c *api.Client, id string) {
	for {
		_, err := c.ReleaseQuarantined(context.Background(), "dev", id, nil)
		var apiErr *api.Error
		if errors.As(err, &apiErr) && apiErr.StatusCode == 409 && strings.Contains(apiErr.Message, "busy") {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if err != nil {
			fatalf("release %s: %v", id, err)
		}
		return
	}
}

var cleanups []func()

func atExit(f func()) { cleanups = append(cleanups, f) }

func cleanUp() {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

func fatalf(format string, args ...any) {
	log.Printf(format, args...)
	cleanUp()
	os.Exit(1)
}

func quantile(sorted []float64, q float64) float64 {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}
