// Command endtoend measures how many messages per second `osprey dev`
// takes end to end: accepted over SMTP (250, fsynced in the sensor's
// spool), uploaded to the central, scanned and recorded, with the message
// records and alerts in the node's SQL store. Postfix's smtp-source drives
// it over loopback.
//
// It runs, side by side and rounds interleaved, the binary built from this
// tree and one built from a baseline commit (-baseline; by default the last
// one that kept the records in etcd), each round on a fresh data dir. A
// round ends when the node's osprey_central_uploads_total reaches the
// messages sent; the rate is the messages over the time from the first
// connection to the last record. It also reports what the round left in
// each store: etcd's database size (etcd_mvcc_db_total_size_in_bytes) and
// the SQL store's file, and the node's peak RSS. -duration instead of
// -messages sends for that long, at the rate the node takes.
//
// Usage (as root, with postfix installed):
//
//	go run ./bench/endtoend -rounds 3
//	go run ./bench/endtoend -rounds 1 -duration 10m -baseline ''
//	go run ./bench/endtoend -rounds 1 -baseline '' -cpuprofile /tmp/e2e.pprof
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
)

const password = "endtoend bench password"

// defaultBaseline is the last commit whose central kept message records and
// alerts in etcd.
const defaultBaseline = "2f60dba"

func main() {
	rounds := flag.Int("rounds", 3, "rounds per binary")
	messages := flag.Int("messages", 20000, "messages per round")
	duration := flag.Duration("duration", 0, "send for this long instead of -messages (smtp-source in a loop)")
	size := flag.Int("size", 5, "message size in KB")
	sessions := flag.Int("sessions", 20, "concurrent SMTP sessions (smtp-source -s)")
	baseline := flag.String("baseline", defaultBaseline, "git revision to compare with (empty: none)")
	profile := flag.String("cpuprofile", "", "write a 10 s CPU profile of this tree's node, taken during the first round, to this file")
	flag.Parse()
	if _, err := exec.LookPath("smtp-source"); err != nil {
		log.Fatal("smtp-source not found: install postfix (make peers)")
	}
	work, err := os.MkdirTemp("", "endtoend")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	type target struct {
		name, bin string
		rates     []float64
		etcd, sql []int64
		rss       []int64
	}
	targets := []*target{{name: "this tree", bin: build(work, "", "osprey")}}
	if *baseline != "" {
		targets = append(targets, &target{name: "baseline " + *baseline, bin: build(work, *baseline, "osprey-baseline")})
	}
	for r := range *rounds {
		for _, t := range targets {
			prof := ""
			if r == 0 && t == targets[0] {
				prof = *profile
			}
			res := runRound(work, t.bin, *messages, *duration, *size, *sessions, prof)
			log.Printf("round %d, %s: %d messages in %s: %.0f msg/s; etcd %d KB, SQL %d KB, RSS %d MB",
				r+1, t.name, res.sent, res.elapsed.Round(time.Millisecond), res.rate, res.etcdBytes>>10, res.sqlBytes>>10, res.rssKB>>10)
			t.rates = append(t.rates, res.rate)
			t.etcd, t.sql, t.rss = append(t.etcd, res.etcdBytes), append(t.sql, res.sqlBytes), append(t.rss, res.rssKB)
		}
	}
	fmt.Printf("\n| binary | messages/s (median of %d) | each round | etcd db after | SQL store after | peak RSS |\n|---|---:|---|---:|---:|---:|\n", *rounds)
	for _, t := range targets {
		var each []string
		for _, r := range t.rates {
			each = append(each, fmt.Sprintf("%.0f", r))
		}
		fmt.Printf("| %s | %.0f | %s | %d KB | %d KB | %d MB |\n", t.name, median(t.rates), strings.Join(each, ", "),
			medianInt(t.etcd)>>10, medianInt(t.sql)>>10, medianInt(t.rss)>>10)
	}
	if len(targets) == 2 {
		var ratios []float64
		for i := range targets[0].rates {
			ratios = append(ratios, targets[0].rates[i]/targets[1].rates[i])
		}
		fmt.Printf("\nthis tree ÷ baseline, round by round: %s; median %.2f\n", fmtFloats(ratios), median(ratios))
	}
}

// build builds the binary of rev (empty: this tree) into work.
func build(work, rev, name string) string {
	bin := filepath.Join(work, name)
	dir := "."
	if rev != "" {
		dir = filepath.Join(work, "src-"+rev)
		if out, err := exec.Command("git", "worktree", "add", "--detach", dir, rev).CombinedOutput(); err != nil {
			log.Fatalf("git worktree add %s: %v\n%s", rev, err, out)
		}
		defer exec.Command("git", "worktree", "remove", "--force", dir).Run()
	}
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/osprey")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		log.Fatalf("build %s: %v\n%s", cmp(rev, "this tree"), err, out)
	}
	return bin
}

func cmp(a, b string) string {
	if a == "" {
		return b
	}
	return a
}

type result struct {
	sent                int
	elapsed             time.Duration
	rate                float64
	etcdBytes, sqlBytes int64
	rssKB               int64
}

var (
	apiLine  = regexp.MustCompile(`API:\s+(https?://\S+)/api/v1`)
	etcdLine = regexp.MustCompile(`Embedded etcd:\s+(\S+)`)
)

// runRound starts a node on a fresh data dir, sends the messages, and waits
// until every one is recorded; with profile set, it writes a CPU profile of
// the node taken from 2 s into the sending to that file.
func runRound(work, bin string, messages int, duration time.Duration, size, sessions int, profile string) result {
	dataDir, err := os.MkdirTemp(work, "data")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dataDir)
	cmd := exec.Command(bin, "dev", "--data-dir", dataDir,
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0",
		"--gossip-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0",
		"--bootstrap-admin-password", password, "--log-level", "warn")
	pprofAddr := ""
	if profile != "" {
		pprofAddr = freePort()
		cmd.Args = append(cmd.Args, "--pprof-addr", pprofAddr)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	base := waitFor(lines, apiLine)
	etcdURL := waitFor(lines, etcdLine)
	ctx := context.Background()
	admin, err := api.NewClient(api.Config{Address: base, Username: "admin", Password: password})
	if err != nil {
		log.Fatal(err)
	}
	tok, err := admin.CreateToken(ctx, api.TokenRequest{Kind: api.TokenAPI, Description: "endtoend bench"})
	if err != nil {
		log.Fatal(err)
	}
	c, err := api.NewClient(api.Config{Address: base, Token: tok.Secret})
	if err != nil {
		log.Fatal(err)
	}
	smtpAddr := freePort()
	_, v, err := c.PutSMTP(ctx, "dev", &api.SMTPIntegration{Enabled: true, Listen: smtpAddr,
		DestinationDomains: []string{"example.com"}, Clients: []string{"127.0.0.0/8"},
		MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB},
		Limits:         &api.SMTPLimits{MaxConnectionsPerClient: 200}}, 0)
	if err != nil {
		log.Fatal(err)
	}
	for {
		s, err := c.Sensor(ctx, "dev")
		if err == nil && s.AppliedVersion == v {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitListen(smtpAddr)
	metrics := func(url string, bearer string, name string) float64 {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
				n, _ := strconv.ParseFloat(f[1], 64)
				return n
			}
		}
		return -1
	}
	uploads := func() float64 { return metrics(base+"/metrics", tok.Secret, "osprey_central_uploads_total") }

	start := time.Now()
	if profile != "" {
		go func() {
			time.Sleep(2 * time.Second)
			if err := fetchProfile("http://"+pprofAddr+"/debug/pprof/profile?seconds=10", profile); err != nil {
				log.Printf("CPU profile: %v", err)
			}
		}()
	}
	sent := 0
	args := func(n int) []string {
		return []string{"-s", strconv.Itoa(sessions), "-l", strconv.Itoa(size << 10), "-m", strconv.Itoa(n),
			"-f", "bench@example.org", "-t", "bench@example.com", smtpAddr}
	}
	if duration > 0 {
		// Batches of 2,000 until the time is up.
		for time.Since(start) < duration {
			if out, err := exec.Command("smtp-source", args(2000)...).CombinedOutput(); err != nil {
				log.Fatalf("smtp-source: %v\n%s", err, out)
			}
			sent += 2000
		}
	} else {
		if out, err := exec.Command("smtp-source", args(messages)...).CombinedOutput(); err != nil {
			log.Fatalf("smtp-source: %v\n%s", err, out)
		}
		sent = messages
	}
	deadline := time.Now().Add(30 * time.Minute)
	for uploads() < float64(sent) {
		if time.Now().After(deadline) {
			log.Fatalf("%.0f of %d recorded after 30 minutes", uploads(), sent)
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	res := result{sent: sent, elapsed: elapsed, rate: float64(sent) / elapsed.Seconds(), rssKB: peakRSS(cmd.Process.Pid)}
	res.etcdBytes = int64(metrics(etcdURL+"/metrics", "", "etcd_mvcc_db_total_size_in_bytes"))
	for _, f := range []string{"osprey.db", "osprey.db-wal"} {
		if st, err := os.Stat(filepath.Join(dataDir, f)); err == nil {
			res.sqlBytes += st.Size()
		}
	}
	return res
}

// fetchProfile saves what url answers to file.
func fetchProfile(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

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
	for range 300 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Fatalf("nothing listens on %s", addr)
}

// peakRSS is the process's peak resident set, in KB.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianInt(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtFloats(v []float64) string {
	var s []string
	for _, f := range v {
		s = append(s, fmt.Sprintf("%.2f", f))
	}
	return strings.Join(s, ", ")
}
