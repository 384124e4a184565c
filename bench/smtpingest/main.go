// Command smtpingest measures how many messages per second a sensor accepts
// with 250, every one fsynced before its reply, driven by Postfix's
// smtp-source over loopback, side by side in the same run with:
//
//   - Postfix's own smtpd queueing into its queue (cleanup fsyncs every
//     message before the 250): the durable reference;
//   - Postfix's smtp-sink, which keeps nothing: the ceiling of the load tool.
//
// The sensor is the one `osprey dev` runs (its central takes the uploads in
// the same process, on the same two cores). Each target is driven in turn,
// rounds interleaved, and the median of the rounds is reported, with the
// sensor's peak RSS.
//
// Usage (as root, with postfix installed): go run ./bench/smtpingest -rounds 3
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
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
	"github.com/ospreysec/osprey/internal/postfix"
)

const password = "smtpingest bench password"

func main() {
	rounds := flag.Int("rounds", 3, "rounds per target and size")
	sessions := flag.Int("sessions", 20, "concurrent SMTP sessions (smtp-source -s)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the osprey process, taken during its first 5 KB round, to this file")
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
	sensor, stopSensor, pid := startSensor(work, pprofAddr)
	defer stopSensor()
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

	type size struct {
		bytes, messages int
	}
	sizes := []size{{5 << 10, 20000}, {100 << 10, 5000}}
	targets := []struct{ name, addr string }{{"osprey sensor", sensor}, {"postfix smtpd (queue)", pf.Addr}, {"smtp-sink", sinkAddr}}
	fmt.Printf("smtp-source -s %d, %d rounds each, medians (msg/s accepted with 250)\n\n", *sessions, *rounds)
	fmt.Println("| message size | messages | osprey sensor | postfix smtpd (queue) | smtp-sink | sensor / postfix | sensor / sink |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|")
	for _, sz := range sizes {
		rates := map[string][]float64{}
		for range *rounds {
			for _, tg := range targets {
				var profiled chan struct{}
				if tg.addr == sensor && *cpuProfile != "" && len(rates[tg.name]) == 0 && sz == sizes[0] {
					profiled = make(chan struct{})
					go func() { defer close(profiled); profile(pprofAddr, *cpuProfile, 5*time.Second) }()
				}
				rates[tg.name] = append(rates[tg.name], drive(tg.addr, *sessions, sz.bytes, sz.messages))
				if profiled != nil {
					<-profiled
				}
			}
		}
		o, p, s := median(rates["osprey sensor"]), median(rates["postfix smtpd (queue)"]), median(rates["smtp-sink"])
		fmt.Printf("| %d KB | %d | %.0f | %.0f | %.0f | %.2f | %.2f |\n", sz.bytes>>10, sz.messages, o, p, s, o/p, o/s)
	}
	fmt.Printf("\nsensor (osprey dev process) peak RSS: %d MB\n", peakRSS(pid)>>10)
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
	apiLine = regexp.MustCompile(`API:\s+(https?://\S+)/api/v1`)
)

// startSensor runs `osprey dev` and enables its sensor's SMTP integration.
func startSensor(work, pprofAddr string) (addr string, stop func(), pid int) {
	bin := filepath.Join(work, "osprey")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/osprey").CombinedOutput(); err != nil {
		log.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "dev", "--data-dir", filepath.Join(work, "dev"),
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0",
		"--gossip-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
		"--bootstrap-admin-password", password, "--log-level", "warn", "--pprof-addr", pprofAddr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var base string
	for base == "" && sc.Scan() {
		if m := apiLine.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	c, err := api.NewClient(api.Config{Address: base, Username: "admin", Password: password})
	if err != nil {
		log.Fatal(err)
	}
	addr = freePort()
	_, v, err := c.PutSMTP(context.Background(), "dev", &api.SMTPIntegration{Enabled: true, Listen: addr,
		DestinationDomains: []string{"example.com"}, Clients: []string{"127.0.0.0/8"},
		MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB},
		Limits:         &api.SMTPLimits{MaxConnectionsPerClient: 200}}, 0)
	if err != nil {
		log.Fatal(err)
	}
	for {
		s, err := c.Sensor(context.Background(), "dev")
		if err == nil && s.AppliedVersion == v {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitListen(addr)
	return addr, func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }, cmd.Process.Pid
}

// profile saves a CPU profile of the osprey process taken over d.
func profile(pprofAddr, file string, d time.Duration) {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, int(d.Seconds())))
	if err != nil {
		log.Printf("cpu profile: %v", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		log.Printf("cpu profile: %v", err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		log.Printf("cpu profile: %v", err)
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

// peakRSS is the process's peak resident set, in KB.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}
