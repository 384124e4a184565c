// Command smtpingest measures how many messages per second a sensor accepts
// with 250, every one fsynced before its reply, driven by Postfix's
// smtp-source over loopback, side by side in the same run with:
//
//   - Postfix's own smtpd queueing into its queue (cleanup fsyncs every
//     message before the 250): the durable reference;
//   - Postfix's smtp-sink, which keeps nothing: the ceiling of the load tool.
//
// By default (-topology split) the central and the sensor are two
// processes, `osprey central` and `osprey sensor`, as they are deployed on
// different hosts; the sensor is driven twice, with its uploads going on
// (the central competes for the same two cores) and with the central
// stopped by SIGSTOP for the round (the sensor alone, as when the central
// nodes run on other hosts; its uploads catch up after the round). Between
// targets the bench waits until the sensor's spool has drained, so no
// upload backlog takes CPU from the next target. -topology dev runs
// `osprey dev`, central and sensor in one process. Each target is driven in
// turn, rounds interleaved, and the median of the rounds is reported, with
// the sensor's peak RSS.
//
// With -acceptance N the bench measures instead what a gateway's acceptance
// list costs: the sensor becomes an inbound gateway (delivering to
// smtp-sink), and its inbound listener is driven in turn taking every
// client (inbound_acceptance all) and taking only the clients of an inbound
// acceptance list of N entries, which holds the load tool's address
// (listed), rounds interleaved; the table gives both medians and their
// ratio, and the median of the ratios of each round's pair.
//
// Usage (as root, with postfix installed): go run ./bench/smtpingest -rounds 5
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

const password = "smtpingest bench password"

func main() {
	rounds := flag.Int("rounds", 3, "rounds per target and size")
	sessions := flag.Int("sessions", 20, "concurrent SMTP sessions (smtp-source -s)")
	topology := flag.String("topology", "split", `"split": osprey central and osprey sensor in two processes; "dev": osprey dev, both in one`)
	sizeList := flag.String("sizes", "5,100", "message sizes in KB, comma-separated")
	messages := flag.Int("messages", 20000, "messages per round (smtp-source -m)")
	acceptance := flag.Int("acceptance", 0, "entries of an inbound acceptance list: compare a gateway's inbound listener taking every client with it taking only the list's (0: the usual targets)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the sensor's process, taken during its first round of the first size (central paused in the split topology), to this file")
	flag.Parse()
	work, err := os.MkdirTemp("", "smtpingest")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)

	pprofAddr := ""
	if *cpuProfile != "" {
		pprofAddr = freePort()
	}
	o := startOsprey(work, *topology, pprofAddr)
	defer o.stop()
	pf, err := postfix.Start(filepath.Join(work, "postfix"), freePort(), map[string]string{
		// Accept into the queue, fsynced, then throw away: Postfix's durable accept path.
		"default_transport":                   "discard",
		"relay_domains":                       "example.com",
		"smtpd_client_connection_count_limit": "0",
		"smtpd_client_connection_rate_limit":  "0",
		// No flow-control pauses: measure smtpd into the queue, not qmgr.
		"in_flow_delay": "0",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pf.Stop()
	sinkAddr := freePort()
	sink := exec.Command("smtp-sink", "-u", "postfix", sinkAddr, "1000")
	if err := sink.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { sink.Process.Kill(); sink.Wait() }()
	waitListen(sinkAddr)
	if *acceptance > 0 {
		benchAcceptance(o, sinkAddr, *acceptance, *sessions, *rounds, *sizeList, *messages, *topology)
		return
	}

	type size struct {
		bytes, messages int
	}
	var sizes []size
	for _, f := range strings.Split(*sizeList, ",") {
		kb, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || kb <= 0 {
			log.Fatalf("-sizes: %q is not a size in KB", f)
		}
		sizes = append(sizes, size{kb << 10, *messages})
	}
	type target struct {
		name, addr string
		pause      bool // SIGSTOP the central during the round (split topology)
	}
	targets := []target{{"sensor", o.smtpAddr, false}}
	if *topology == "split" {
		targets = append(targets, target{"sensor, central paused", o.smtpAddr, true})
	}
	targets = append(targets, target{"postfix smtpd (queue)", pf.Addr, false}, target{"smtp-sink", sinkAddr, false})
	fmt.Printf("topology %s, smtp-source -s %d, %d rounds each, medians (msg/s accepted with 250)\n\n", *topology, *sessions, *rounds)
	header, rule := "| message size | messages |", "|---:|---:|"
	for _, tg := range targets {
		header += " " + tg.name + " |"
		rule += "---:|"
	}
	fmt.Println(header + " sensor / postfix | sensor / sink |")
	fmt.Println(rule + "---:|---:|")
	for _, sz := range sizes {
		rates := map[string][]float64{}
		for range *rounds {
			for _, tg := range targets {
				var profiled chan struct{}
				if tg.name == targets[len(targets)-3].name && *cpuProfile != "" && len(rates[tg.name]) == 0 && sz == sizes[0] {
					profiled = make(chan struct{})
					go func() { defer close(profiled); benchproc.Profile(pprofAddr, *cpuProfile, 5*time.Second) }()
				}
				if tg.pause {
					o.pauseCentral(true)
				}
				rates[tg.name] = append(rates[tg.name], drive(tg.addr, *sessions, sz.bytes, sz.messages))
				if tg.pause {
					o.pauseCentral(false)
				}
				if profiled != nil {
					<-profiled
				}
				// The next target starts with no upload backlog taking CPU.
				o.drained()
			}
		}
		line := fmt.Sprintf("| %d KB | %d |", sz.bytes>>10, sz.messages)
		for _, tg := range targets {
			line += fmt.Sprintf(" %.0f |", median(rates[tg.name]))
		}
		best := median(rates[targets[len(targets)-3].name])
		p, sk := median(rates["postfix smtpd (queue)"]), median(rates["smtp-sink"])
		fmt.Printf("%s %.2f | %.2f |\n", line, best/p, best/sk)
	}
	what := "osprey dev process"
	if *topology == "split" {
		what = "osprey sensor process"
	}
	fmt.Printf("\nsensor (%s) peak RSS: %d MB\n", what, benchproc.PeakRSS(o.sensorPID)>>10)
	fmt.Println("the ratios are of the last sensor column (central paused in the split topology)")
}

// drive runs smtp-source against addr and returns messages per second.
func drive(addr string, sessions, size, messages int) float64 {
	start := time.Now()
	cmd := exec.Command("smtp-source", "-s", strconv.Itoa(sessions), "-l", strconv.Itoa(size), "-m", strconv.Itoa(messages),
		"-f", "bench@example.org", "-t", "bench@example.com", addr)
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("smtp-source %s: %v\n%s", addr, err, out)
	}
	return float64(messages) / time.Since(start).Seconds()
}

var (
	apiLine      = regexp.MustCompile(`API:\s+(https?://\S+)/api/v1`)
	grpcLine     = regexp.MustCompile(`Sensors connect:\s+(\S+)`)
	enrolledLine = regexp.MustCompile(`Enrolled as sensor (\S+) in tenant`)
)

// osprey is the system under test: the sensor's SMTP address, the process
// whose RSS is reported, and a way to wait until the sensor has uploaded
// everything it spooled.
type osprey struct {
	api        *api.Client
	sensorID   string
	smtpAddr   string
	sensorPID  int
	centralPID int    // 0 in the dev topology, where the central is the sensor's process
	metrics    string // the sensor's /metrics URL (split topology)
	procs      []*exec.Cmd
}

func (o *osprey) stop() {
	for i := len(o.procs) - 1; i >= 0; i-- {
		o.procs[i].Process.Signal(syscall.SIGTERM)
		o.procs[i].Wait()
	}
}

// pauseCentral stops (SIGSTOP) or resumes (SIGCONT) the central process.
func (o *osprey) pauseCentral(pause bool) {
	sig := syscall.SIGCONT
	if pause {
		sig = syscall.SIGSTOP
	}
	if err := syscall.Kill(o.centralPID, sig); err != nil {
		log.Fatalf("signal central: %v", err)
	}
}

// drained waits until the sensor's spool is empty (split topology).
func (o *osprey) drained() {
	if o.metrics == "" {
		return
	}
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		if n, ok := promtext.Get(http.DefaultClient, o.metrics, "", "osprey_sensor_spool_messages"); ok && n == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	log.Fatal("the sensor's spool did not drain in 10 minutes")
}

// startOsprey runs the topology and enables the sensor's SMTP integration.
// "dev": `osprey dev`, the central and its own sensor in one process.
// "split": `osprey central` and `osprey sensor`, two processes.
func startOsprey(work, topology, pprofAddr string) *osprey {
	bin := filepath.Join(work, "osprey")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/osprey").CombinedOutput(); err != nil {
		log.Fatalf("build: %v\n%s", err, out)
	}
	o := &osprey{}
	common := []string{"--data-dir", filepath.Join(work, "central"),
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0",
		"--gossip-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
		"--bootstrap-admin-password", password, "--log-level", "warn"}
	var args []string
	switch topology {
	case "dev":
		args = append([]string{"dev"}, common...)
		args = append(args, "--pprof-addr", pprofAddr)
	case "split":
		args = append([]string{"central"}, common...)
		args = append(args, "--gossip-key", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", "--log-format", "text")
	default:
		log.Fatalf("unknown topology %q", topology)
	}
	central, lines := run(bin, args...)
	o.procs = append(o.procs, central)
	base := waitFor(lines, apiLine)
	grpcAddr := waitFor(lines, grpcLine)
	c, err := api.NewClient(api.Config{Address: base, Username: "admin", Password: password,
		TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	sensorID := "dev"
	o.sensorPID = central.Process.Pid
	if topology == "split" {
		o.centralPID = central.Process.Pid
		tok, err := c.CreateToken(ctx, api.TokenRequest{Kind: api.TokenJoin, Tenant: "default", TTLSeconds: 600, MaxUses: 1})
		if err != nil {
			log.Fatal(err)
		}
		metricsAddr := freePort()
		sn, slines := run(bin, "sensor", "--central", grpcAddr, "--join-token", tok.Secret,
			"--data-dir", filepath.Join(work, "sensor"), "--name", "bench", "--metrics-addr", metricsAddr,
			"--log-level", "warn", "--log-format", "text", "--pprof-addr", pprofAddr)
		o.procs = append(o.procs, sn)
		o.sensorPID = sn.Process.Pid
		o.metrics = "http://" + metricsAddr + "/metrics"
		sensorID = waitFor(slines, enrolledLine)
		if _, err := c.ApproveSensor(ctx, sensorID); err != nil {
			log.Fatal(err)
		}
	}
	o.api, o.sensorID = c, sensorID
	o.smtpAddr = freePort()
	o.apply(&api.SMTPIntegration{Enabled: true, Listen: o.smtpAddr,
		DestinationDomains: []string{"example.com"}, Clients: []string{"127.0.0.0/8"},
		MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB},
		Limits:         &api.SMTPLimits{MaxConnectionsPerClient: 200}})
	waitListen(o.smtpAddr)
	return o
}

// apply writes the sensor's SMTP integration and waits until it runs it.
func (o *osprey) apply(cfg *api.SMTPIntegration) {
	ctx := context.Background()
	_, v, err := o.api.PutSMTP(ctx, o.sensorID, cfg, 0)
	if err != nil {
		log.Fatal(err)
	}
	o.waitApplied(v)
}

// waitApplied waits until the sensor runs version v or a later one.
func (o *osprey) waitApplied(v int64) {
	for {
		s, err := o.api.Sensor(context.Background(), o.sensorID)
		if err == nil && s.AppliedVersion >= v {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run starts bin with args; its stdout lines arrive on the channel.
func run(bin string, args ...string) (*exec.Cmd, <-chan string) {
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody waits for more lines
			}
		}
	}()
	return cmd, lines
}

// waitFor returns the first submatch of re in the lines, within a minute.
func waitFor(lines <-chan string, re *regexp.Regexp) string {
	timeout := time.After(time.Minute)
	for {
		select {
		case l := <-lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m[1]
			}
		case <-timeout:
			log.Fatalf("no line matching %s within a minute", re)
		}
	}
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListen(addr string) {
	for i := 0; i < 300; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Fatalf("nothing listens on %s", addr)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
