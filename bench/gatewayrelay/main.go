// Command gatewayrelay measures how many messages per second a sensor in
// gateway mode relays, from the first message sent to the last one
// delivered at the next hop, side by side in the same run with Postfix
// configured as a relay with its durable queue, both delivering to the
// same Postfix smtp-sink.
//
// The Osprey path is the whole gateway: `osprey dev` (the central and its
// own sensor in one process, built once, with its own data directory)
// configured in inbound mode; its gateway listener spools each message
// (fsynced before the 250), uploads it to the central on the same host
// (scanned, recorded in SQLite), hands it to the delivery queue (SQLite,
// group commit) once the verdict is known, and the delivery client takes
// it to smtp-sink. The reference is a private Postfix (internal/postfix):
// relay_domains=example.com, relay_transport pointing at the sink, Postfix's
// defaults otherwise (cleanup fsyncs each message before the 250; qmgr,
// then the relay smtp client, deliver it). Both take the same load from
// Postfix's smtp-source (-s sessions, -m messages, -l size) on loopback.
//
// What is counted and how. smtp-source -c and smtp-sink -c print a running
// counter on each 250 after DATA and on each message received; the harness
// reads both as they come and stamps each step, so a round's throughput is
// messages / (the last delivery - the start of smtp-source), and
// "250 to delivered" is, for the k-th message, the time of the k-th
// delivery minus the time of the k-th 250 (exact when both relays deliver
// in order of arrival; otherwise it pairs the distribution's order
// statistics, whose mean is still exact). For Osprey the queue's own
// histogram, osprey_sensor_queue_delivered_latency_seconds (250 to
// delivered, per recipient, buckets ×4 from 10 ms), is read from the dev
// node's /metrics before and after each round and its p50 and p99 are
// interpolated as Prometheus' histogram_quantile does: a cross-check with
// the coarseness of its buckets. CPU time per message is the dev node's
// utime+stime, and for Postfix the sum over its process group (master,
// its live children and the children it reaped), from /proc. Disk bytes
// written per message are the machine's disks' (/proc/diskstats) during
// the round: meaningful on a quiet machine only.
//
// Targets run in turn, the order rotating each round; each round waits
// until every message reached the sink and the gateway's spool and queue
// are empty, and the median of the rounds is reported.
//
// With -senderauth the same osprey dev is a third target, "osprey+auth":
// before each of its rounds the gateway is configured with sender
// authentication on (SPF, DKIM, DMARC; off again for the "osprey" rounds),
// asking a DNS server the harness runs (internal/dnstest, given as
// --dns-server) that publishes partner.test's SPF record, DKIM key (RSA
// 2048) and DMARC policy, with a TTL of an hour: after the first message
// every answer comes from the sensor's cache. Every target then sends the
// same DKIM-signed message of each size (smtp-source -F), so each osprey
// round's messages all pass SPF, DKIM and DMARC, and the rounds without
// the checks carry the same bytes.
//
// Usage (as root, with postfix installed, from the module's root):
//
//	go run ./bench/gatewayrelay -rounds 3 -sizes 5k,100k -messages 5000
//	go run ./bench/gatewayrelay -rounds 3 -sizes 5k -senderauth
//	go run ./bench/gatewayrelay -rounds 1 -sizes 5k -cpuprofile /tmp/gw.pprof
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/benchproc"
	"github.com/ospreysec/osprey/internal/postfix"
	"github.com/ospreysec/osprey/internal/promtext"
)

const (
	password = "gatewayrelay bench password"
	// latencyMetric is the delivery queue's 250-to-delivered histogram
	// (sensor/queue/metrics.go).
	latencyMetric = "osprey_sensor_queue_delivered_latency_seconds"
	// concurrency is the deliveries in parallel to the one destination, on
	// both sides: the gateway's default destination_concurrency and
	// Postfix's default_destination_concurrency_limit, both 20.
	concurrency = 20
	// clockTicks is USER_HZ, the unit of /proc/PID/stat's times on Linux.
	clockTicks = 100
)

func main() {
	rounds := flag.Int("rounds", 3, "rounds per target and size")
	sessions := flag.Int("sessions", 20, "concurrent SMTP sessions (smtp-source -s)")
	sizeList := flag.String("sizes", "5k,100k", "message sizes, comma-separated: bytes, or with a k suffix KB")
	messages := flag.Int("messages", 5000, "messages per round (smtp-source -m)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the osprey dev process, taken over the first 10 s of its first round of the first size, to this file")
	senderAuth := flag.Bool("senderauth", false, "also run the gateway with sender authentication on (osprey+auth), all targets sending a DKIM-signed message")
	flag.Parse()
	sizes, err := parseSizes(*sizeList)
	if err != nil {
		fatalf("-sizes: %v", err)
	}
	work, err := os.MkdirTemp("", "gatewayrelay")
	if err != nil {
		fatalf("%v", err)
	}
	atExit(func() { os.RemoveAll(work) })

	sink := startSink()
	pprofAddr := ""
	if *cpuProfile != "" {
		pprofAddr = freePort()
	}
	var signer *authWorld
	dnsAddr := ""
	if *senderAuth {
		signer = startAuthWorld()
		dnsAddr = signer.dns.Addr
	}
	o := startOsprey(work, sink.Addr, pprofAddr, dnsAddr)
	sinkHost, sinkPort, _ := net.SplitHostPort(sink.Addr)
	pf, err := postfix.Start(filepath.Join(work, "postfix"), freePort(), map[string]string{
		"relay_domains":   "example.com",
		"relay_transport": "relay:[" + sinkHost + "]:" + sinkPort,
		// Postfix's default, written out: the same parallelism per
		// destination as the gateway's queue.
		"default_destination_concurrency_limit": strconv.Itoa(concurrency),
		"smtpd_client_connection_count_limit":   "0",
		"smtpd_client_connection_rate_limit":    "0",
		// No flow-control pauses of smtpd while qmgr catches up: the
		// gateway does not slow its clients down either.
		"in_flow_delay": "0",
	})
	if err != nil {
		fatalf("%v", err)
	}
	atExit(pf.Stop)
	pfGroup := postfixGroup(filepath.Join(work, "postfix", "queue"))

	osprCPU := func() float64 { return cpuSeconds([]int{o.pid}) }
	targets := []*target{
		{name: "osprey", addr: o.gwAddr, cpu: osprCPU, o: o},
		{name: "postfix", addr: pf.Addr, cpu: func() float64 { return cpuSeconds(groupPIDs(pfGroup)) }},
	}
	if *senderAuth {
		targets = append(targets, &target{name: authTarget, addr: o.gwAddr, cpu: osprCPU, o: o, auth: true})
	}
	fmt.Printf("smtp-source -s %d to each relay, both delivering to one smtp-sink; %d rounds, medians; %d cores\n\n",
		*sessions, *rounds, runtime.NumCPU())
	type row struct {
		size   int
		res    map[string][]result
		hist50 map[string][]float64
		hist99 map[string][]float64
	}
	var rows []row
	profiled := false
	for _, size := range sizes {
		r := row{size: size, res: map[string][]result{}, hist50: map[string][]float64{}, hist99: map[string][]float64{}}
		msgFile := ""
		if signer != nil {
			msgFile = signer.message(work, size)
		}
		for i := range *rounds {
			order := append(slices.Clone(targets[i%len(targets):]), targets[:i%len(targets)]...)
			for _, tg := range order {
				if tg.o != nil && signer != nil {
					tg.o.configure(tg.auth)
				}
				var done chan struct{}
				if tg.o != nil && *cpuProfile != "" && !profiled {
					profiled, done = true, make(chan struct{})
					go func() { defer close(done); benchproc.Profile(pprofAddr, *cpuProfile, 10*time.Second) }()
				}
				var h0 histogram
				if tg.o != nil {
					h0 = o.histogram()
				}
				started := time.Now()
				res := tg.round(sink, *sessions, size, *messages, msgFile)
				if tg.auth {
					o.checkAuth(started)
				}
				if tg.o != nil {
					o.idle()
					h := o.histogram().minus(h0)
					r.hist50[tg.name] = append(r.hist50[tg.name], h.quantile(0.5))
					r.hist99[tg.name] = append(r.hist99[tg.name], h.quantile(0.99))
				}
				if done != nil {
					<-done
				}
				peak := ""
				if tg.o != nil {
					peak = fmt.Sprintf("; at most %.0f messages in the spool (before the verdict) and %.0f in the queue", res.peak[0], res.peak[1])
				}
				log.Printf("%s %s round %d: %.0f msg/s relayed (%.0f msg/s answered 250), 250 to delivered p50 %s p99 %s, %.2f ms CPU and %.0f KB written to disk a message%s",
					tg.name, sizeName(size), i+1, res.rate, res.accept, ms(res.p50), ms(res.p99), res.cpuPerMsg*1000, res.diskPerMsg/1024, peak)
				r.res[tg.name] = append(r.res[tg.name], res)
			}
		}
		rows = append(rows, r)
	}

	fmt.Println("| size | messages | osprey msg/s | postfix msg/s | osprey / postfix | osprey 250→delivered p50 / p99 | osprey queue histogram p50 / p99 | postfix 250→delivered p50 / p99 | CPU ms/msg osprey / postfix | disk KB written/msg osprey / postfix |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		ob, pb := r.res["osprey"], r.res["postfix"]
		orate, prate := medianOf(ob, func(x result) float64 { return x.rate }), medianOf(pb, func(x result) float64 { return x.rate })
		fmt.Printf("| %s | %d | %.0f | %.0f | %.2f | %s / %s | %s / %s | %s / %s | %.2f / %.2f | %.0f / %.0f |\n",
			sizeName(r.size), *messages, orate, prate, orate/prate,
			ms(medianOf(ob, func(x result) float64 { return x.p50 })), ms(medianOf(ob, func(x result) float64 { return x.p99 })),
			ms(benchproc.Median(r.hist50["osprey"])), ms(benchproc.Median(r.hist99["osprey"])),
			ms(medianOf(pb, func(x result) float64 { return x.p50 })), ms(medianOf(pb, func(x result) float64 { return x.p99 })),
			1000*medianOf(ob, func(x result) float64 { return x.cpuPerMsg }), 1000*medianOf(pb, func(x result) float64 { return x.cpuPerMsg }),
			medianOf(ob, func(x result) float64 { return x.diskPerMsg })/1024, medianOf(pb, func(x result) float64 { return x.diskPerMsg })/1024)
	}
	if signer != nil {
		fmt.Println()
		fmt.Println("| size | osprey msg/s | osprey+auth msg/s | auth / no auth | 250→delivered p50 / p99 no auth | 250→delivered p50 / p99 auth | CPU ms/msg no auth / auth |")
		fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
		for _, r := range rows {
			authRow(sizeName(r.size), r.res["osprey"], r.res[authTarget])
		}
	}
	fmt.Printf("\nosprey dev peak RSS: %d MB\n", benchproc.PeakRSS(o.pid)>>10)
	cleanUp()
}

// cleanups stop what the harness started, last first, also when it fails.
var cleanups []func()

func atExit(f func()) { cleanups = append(cleanups, f) }

func cleanUp() {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

// fatalf logs, stops what the harness started and exits.
func fatalf(format string, args ...any) {
	log.Printf(format, args...)
	cleanUp()
	os.Exit(1)
}

// target is one relay under test.
type target struct {
	name, addr string
	cpu        func() float64 // CPU seconds used so far
	o          *osprey        // nil for Postfix
	auth       bool           // the gateway checks senders (-senderauth)
}

// result is one round of one target.
type result struct {
	rate      float64 // messages delivered per second
	p50, p99  float64 // 250 to delivered, seconds
	cpuPerMsg float64 // CPU seconds per message
	// diskPerMsg is the bytes the machine's disks wrote during the round,
	// per message: both relays run on the same disk in turn, so on a
	// quiet machine it is what each writes (the spool, the queues, their
	// databases' logs and checkpoints), Postfix's queue files included.
	diskPerMsg float64
	accept     float64 // messages answered 250 per second
	peak       [2]float64
}

// round sends messages of size bytes through tg with smtp-source (those of
// msgFile when it is set) and waits until the sink has taken them all.
func (tg *target) round(sink *sink, sessions, size, messages int, msgFile string) result {
	base := sink.Count()
	cpu0, disk0 := tg.cpu(), diskWritten()
	content := []string{"-l", strconv.Itoa(size)}
	if msgFile != "" {
		content = []string{"-F", msgFile}
	}
	args := append(append([]string{"-c", "-s", strconv.Itoa(sessions)}, content...), "-m", strconv.Itoa(messages),
		"-f", "bench@partner.test", "-t", "bench@example.com", tg.addr)
	cmd := exec.Command("smtp-source", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fatalf("%v", err)
	}
	var peak <-chan [2]float64
	stop := make(chan struct{})
	if tg.o != nil {
		peak = tg.o.watch(stop)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		fatalf("%v", err)
	}
	var accepted benchproc.Counter
	accepted.Read(out, func(s string) (int, bool) {
		n, err := strconv.Atoi(s)
		return n, err == nil
	})
	if err := cmd.Wait(); err != nil {
		fatalf("smtp-source %s: %v\n%s", tg.addr, err, stderr.Bytes())
	}
	if accepted.Count() != messages {
		fatalf("smtp-source %s: %d messages accepted, want %d", tg.addr, accepted.Count(), messages)
	}
	delivered := sink.waitFor(base+messages, tg.name)
	close(stop)
	var peaks [2]float64
	if peak != nil {
		peaks = <-peak
	}
	lat := make([]float64, messages)
	for k := range messages {
		lat[k] = delivered[base+k].Sub(accepted.At(k)).Seconds()
	}
	slices.Sort(lat)
	return result{
		rate:       float64(messages) / delivered[base+messages-1].Sub(start).Seconds(),
		p50:        quantile(lat, 0.5),
		p99:        quantile(lat, 0.99),
		cpuPerMsg:  (tg.cpu() - cpu0) / float64(messages),
		diskPerMsg: float64(diskWritten()-disk0) / float64(messages),
		accept:     float64(messages) / accepted.At(messages-1).Sub(start).Seconds(),
		peak:       peaks,
	}
}

// sink is the next hop of both relays: smtp-sink with its running counter.
type sink struct{ *benchproc.Sink }

func startSink() *sink {
	s, err := benchproc.StartSink()
	if err != nil {
		fatalf("%v", err)
	}
	atExit(s.Stop)
	return &sink{s}
}

// waitFor waits until the sink has taken n messages, and returns the time
// of each one so far. It gives up when none arrived for two minutes.
func (s *sink) waitFor(n int, who string) []time.Time {
	t, err := s.WaitFor(n, 2*time.Minute)
	if err != nil {
		fatalf("%s: the sink's messages: %v", who, err)
	}
	return t
}

var apiLine = regexp.MustCompile(`API:\s+(https?://\S+)/api/v1`)

// osprey is the system under test: `osprey dev` with its sensor in inbound
// gateway mode in front of the sink.
type osprey struct {
	gwAddr  string
	pid     int
	metrics string // the node's /metrics URL
	token   string // an API token that may read it
	proc    *exec.Cmd
	client  *http.Client
	api     *api.Client
	sink    api.NextHop
}

func (o *osprey) stop() {
	o.proc.Process.Signal(syscall.SIGTERM)
	o.proc.Wait()
}

// startOsprey builds osprey, runs `osprey dev` (asking the DNS server
// dnsAddr, when set) and configures its sensor as an inbound gateway for
// example.com that delivers to sinkAddr.
func startOsprey(work, sinkAddr, pprofAddr, dnsAddr string) *osprey {
	bin := filepath.Join(work, "osprey")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/osprey").CombinedOutput(); err != nil {
		fatalf("build: %v\n%s", err, out)
	}
	args := []string{"dev", "--data-dir", filepath.Join(work, "data"),
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0",
		"--gossip-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
		"--bootstrap-admin-password", password, "--log-level", "warn"}
	if pprofAddr != "" {
		args = append(args, "--pprof-addr", pprofAddr)
	}
	if dnsAddr != "" {
		args = append(args, "--dns-server", dnsAddr)
	}
	o := &osprey{proc: exec.Command(bin, args...)}
	stdout, err := o.proc.StdoutPipe()
	if err != nil {
		fatalf("%v", err)
	}
	o.proc.Stderr = os.Stderr
	if err := o.proc.Start(); err != nil {
		fatalf("%v", err)
	}
	atExit(o.stop)
	o.pid = o.proc.Process.Pid
	base := waitForLine(stdout, apiLine)
	insecure := &tls.Config{InsecureSkipVerify: true}
	o.client = &http.Client{Transport: &http.Transport{TLSClientConfig: insecure}}
	o.metrics = base + "/metrics"
	c, err := api.NewClient(api.Config{Address: base, Username: "admin", Password: password, TLSConfig: insecure})
	if err != nil {
		fatalf("%v", err)
	}
	ctx := context.Background()
	tok, err := c.CreateToken(ctx, api.TokenRequest{Kind: api.TokenAPI, Description: "gatewayrelay bench"})
	if err != nil {
		fatalf("%v", err)
	}
	o.token = tok.Secret
	host, portText, _ := net.SplitHostPort(sinkAddr)
	port, _ := strconv.ParseUint(portText, 10, 16)
	o.gwAddr, o.api, o.sink = freePort(), c, api.NextHop{Host: host, Port: uint32(port)}
	o.configure(false)
	waitListen(o.gwAddr)
	return o
}

// configure applies the gateway's configuration, with sender
// authentication on or off, and waits until the sensor runs it.
func (o *osprey) configure(senderAuth bool) {
	ctx := context.Background()
	cfg := &api.SMTPIntegration{
		Enabled:        true,
		Mode:           api.SMTPInbound,
		MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB},
		Limits:         &api.SMTPLimits{MaxConnectionsPerClient: 200},
		Gateway: &api.SMTPGateway{
			Inbound:      &api.GatewayListener{Listen: o.gwAddr},
			LocalDomains: []api.LocalDomain{{Domain: "example.com", Hosts: []api.NextHop{o.sink}}},
			HeloName:     "gw.bench.test",
			Queue:        &api.DeliveryQueueSettings{DestinationConcurrency: concurrency},
			SenderAuth:   &api.SenderAuthSettings{Enabled: senderAuth},
		},
	}
	cur, version, err := o.api.SMTP(ctx, "dev")
	if err != nil {
		fatalf("read the gateway's configuration: %v", err)
	}
	if cur.Gateway.SenderAuth.Enabled == senderAuth && cur.Enabled {
		return
	}
	_, v, err := o.api.PutSMTP(ctx, "dev", cfg, version)
	if err != nil {
		fatalf("configure the gateway: %v", err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		s, err := o.api.Sensor(ctx, "dev")
		if err == nil && s.AppliedVersion == v {
			return
		}
		if time.Now().After(deadline) {
			fatalf("the sensor did not apply the gateway configuration within a minute")
		}
	}
}

// idle waits until the gateway's spool and delivery queue are empty, so
// that no work of this round takes CPU from the next.
func (o *osprey) idle() {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if v := o.gauges(); v[0] == 0 && v[1] == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Printf("osprey: the spool or the queue is not empty a minute after the last delivery")
}

// gauges reads the messages in the gateway's spool (waiting for upload and
// verdict) and in its delivery queue; -1 for one it could not read.
func (o *osprey) gauges() [2]float64 {
	out := [2]float64{-1, -1}
	body, err := o.get()
	if err != nil {
		return out
	}
	for i, name := range []string{"osprey_sensor_spool_messages", `osprey_sensor_queue_depth{state="messages"}`} {
		if v, ok := promtext.Value(bytes.NewReader(body), name); ok {
			out[i] = v
		}
	}
	return out
}

// watch samples gauges every 250 ms until stop is closed and returns the
// largest values seen.
func (o *osprey) watch(stop <-chan struct{}) <-chan [2]float64 {
	peak := make(chan [2]float64, 1)
	go func() {
		var p [2]float64
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peak <- p
				return
			case <-tick.C:
				v := o.gauges()
				p = [2]float64{max(p[0], v[0]), max(p[1], v[1])}
			}
		}
	}()
	return peak
}

// get reads the node's /metrics.
func (o *osprey) get() ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, o.metrics, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+o.token)
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// histogram is a cumulative Prometheus histogram: upper bounds and counts.
type histogram struct {
	le     []float64
	counts []float64
}

// histogram reads the delivery queue's latency histogram from /metrics.
func (o *osprey) histogram() histogram {
	body, err := o.get()
	if err != nil {
		fatalf("read %s: %v", o.metrics, err)
	}
	var h histogram
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	prefix := latencyMetric + `_bucket{le="`
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		bound, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		le, err1 := strconv.ParseFloat(bound, 64)
		v, err2 := strconv.ParseFloat(value, 64)
		if err1 == nil && err2 == nil {
			h.le, h.counts = append(h.le, le), append(h.counts, v)
		}
	}
	return h
}

// minus is h with the counts of an earlier reading subtracted.
func (h histogram) minus(before histogram) histogram {
	out := histogram{le: h.le, counts: slices.Clone(h.counts)}
	if len(before.counts) == len(h.counts) {
		for i := range out.counts {
			out.counts[i] -= before.counts[i]
		}
	}
	return out
}

// quantile interpolates linearly within the bucket that holds q, as
// Prometheus' histogram_quantile does; NaN without observations.
func (h histogram) quantile(q float64) float64 {
	if len(h.counts) == 0 || h.counts[len(h.counts)-1] == 0 {
		return math.NaN()
	}
	rank := q * h.counts[len(h.counts)-1]
	lower, below := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			if math.IsInf(h.le[i], 1) {
				return lower
			}
			return lower + (h.le[i]-lower)*(rank-below)/(c-below)
		}
		lower, below = h.le[i], c
	}
	return lower
}

// postfixGroup is the process group of the private Postfix whose queue
// directory is queue: its master's (Postfix writes the master's pid there).
func postfixGroup(queue string) int {
	b, err := os.ReadFile(filepath.Join(queue, "pid", "master.pid"))
	if err != nil {
		fatalf("postfix master pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		fatalf("postfix master pid: %v", err)
	}
	f := procStat(pid)
	if f == nil {
		fatalf("postfix master %d is not running", pid)
	}
	g, _ := strconv.Atoi(f[4])
	return g
}

// groupPIDs lists the processes of process group g.
func groupPIDs(g int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := procStat(pid); f != nil {
			if pg, _ := strconv.Atoi(f[4]); pg == g {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// cpuSeconds is the user and system time of the processes and of the
// children they reaped.
func cpuSeconds(pids []int) float64 {
	var ticks int64
	for _, pid := range pids {
		f := procStat(pid)
		if f == nil {
			continue
		}
		for _, i := range []int{13, 14, 15, 16} { // utime stime cutime cstime
			v, _ := strconv.ParseInt(f[i], 10, 64)
			ticks += v
		}
	}
	return float64(ticks) / clockTicks
}

// procStat returns the fields of /proc/PID/stat, numbered as in proc(5)
// from 0 (the command's name, which may hold spaces, is one field).
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return append([]string{strconv.Itoa(pid), s[strings.IndexByte(s, '(') : i+1]}, strings.Fields(s[i+1:])...)
}

// waitForLine returns the first submatch of re in r's lines, within a
// minute, and keeps draining r.
func waitForLine(r io.Reader, re *regexp.Regexp) string {
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case s := <-found:
		return s
	case <-time.After(time.Minute):
		fatalf("no line matching %s within a minute", re)
		return ""
	}
}

func freePort() string {
	addr, err := benchproc.FreePort()
	if err != nil {
		fatalf("%v", err)
	}
	return addr
}

func waitListen(addr string) {
	if err := benchproc.WaitListen(addr); err != nil {
		fatalf("%v", err)
	}
}

func parseSizes(list string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(list, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		mult := 1
		if s, ok := strings.CutSuffix(f, "k"); ok {
			f, mult = s, 1<<10
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a size", f)
		}
		sizes = append(sizes, n*mult)
	}
	return sizes, nil
}

func sizeName(b int) string {
	if b%(1<<10) == 0 {
		return fmt.Sprintf("%d KB", b>>10)
	}
	return fmt.Sprintf("%d B", b)
}

// quantile of sorted values, nearest rank.
func quantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func medianOf(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return benchproc.Median(v)
}

// ms formats seconds as milliseconds, or seconds from 1 s on.
func ms(s float64) string {
	switch {
	case math.IsNaN(s):
		return "–"
	case s >= 1:
		return fmt.Sprintf("%.1f s", s)
	default:
		return fmt.Sprintf("%.0f ms", s*1000)
	}
}

// diskWritten returns the bytes the machine's disks have written since
// boot: the sectors written of each whole disk in /proc/diskstats (those
// in /sys/block, less loop, ram and zram devices), 512 bytes each.
func diskWritten() uint64 {
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return 0
	}
	var total uint64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		name := f[2]
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "zram") {
			continue
		}
		if _, err := os.Stat("/sys/block/" + name); err != nil {
			continue // a partition: its disk counts it
		}
		n, _ := strconv.ParseUint(f[9], 10, 64)
		total += n * 512
	}
	return total
}
