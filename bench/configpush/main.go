// Command configpush measures how fast one configuration change reaches N
// connected sensors through a Central Node.
//
// It builds and starts `osprey central` as its own process (embedded etcd),
// makes N approved sensors in one tenant with certificates from the cluster
// CA (read with the cluster key from the node's data dir, as a second node
// would), and connects N simulated sensors from this process: real gRPC
// clients over loopback with mutual TLS, each with its own certificate, each
// acknowledging every configuration as soon as it arrives. Then, for each
// change, it applies a new SMTP integration to the whole tenant with one API
// call (PUT /api/v1/tenants/{t}/smtp, authenticated with an API token) and
// times from the moment that call returns, and from the moment it started, to
// the last acknowledgement sent. The tenant's sensors are written in batches
// of 64 per etcd transaction, so the first batches are often acknowledged
// before the call returns. Acknowledgements are timed where
// they are sent: over loopback the central has them a few microseconds later.
// It also reports the central's resident memory with N streams open.
//
// Usage: go run ./bench/configpush -n 1,100,1000,10000 -changes 20
package main

import (
	"bufio"
	"context"
	"crypto/tls"
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

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/clusterca"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/nodeproc"
	"github.com/ospreysec/osprey/internal/sensorsim"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

const password = "configpush bench password"

// profileDir is where run saves the central's profiles (-profile).
var profileDir string

// gossipKey encrypts the node's gossip (base64 of 32 bytes); the node is alone.
const gossipKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func main() {
	ns := flag.String("n", "1,100,1000", "comma-separated sensor counts")
	changes := flag.Int("changes", 20, "configuration changes timed per count")
	flag.StringVar(&profileDir, "profile", "", "directory for the central's heap and goroutine profiles with N streams open (empty: none)")
	flag.Parse()
	nodeproc.RaiseFileLimit()
	bin, err := nodeproc.Build("configpush")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("| sensors | changes | call returned → last ACK, median | p99 | call started → last ACK, median | p99 | API call, median | central RSS | per stream |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			log.Fatalf("-n: %v", err)
		}
		if err := run(bin, n, *changes); err != nil {
			log.Fatalf("n=%d: %v", n, err)
		}
	}
}

var (
	apiLine  = regexp.MustCompile(`API:\s+(https?://\S+)/api/v1`)
	grpcLine = regexp.MustCompile(`Sensors connect:\s+(\S+)`)
	etcdLine = regexp.MustCompile(`Embedded etcd:\s+(\S+)`)
)

func run(bin string, n, changes int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dataDir, err := os.MkdirTemp("", "configpush-central")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	cmd := exec.CommandContext(ctx, bin, "central", "--node-name", "bench", "--data-dir", dataDir,
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0",
		"--gossip-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0", "--gossip-key", gossipKey,
		"--bootstrap-admin-password", password, "--log-level", "warn")
	var pprofAddr string
	if profileDir != "" {
		if pprofAddr, err = freeAddr(); err != nil {
			return err
		}
		cmd.Args = append(cmd.Args, "--pprof-addr", pprofAddr)
		log.Printf("central pprof: http://%s/debug/pprof/", pprofAddr)
	}
	// The central gets the raised file limit too (rlimits are inherited).
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	var apiURL, grpcAddr, etcdURL string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && (apiURL == "" || grpcAddr == "" || etcdURL == "") {
		line := sc.Text()
		if m := apiLine.FindStringSubmatch(line); m != nil {
			apiURL = m[1]
		}
		if m := grpcLine.FindStringSubmatch(line); m != nil {
			grpcAddr = m[1]
		}
		if m := etcdLine.FindStringSubmatch(line); m != nil {
			etcdURL = m[1]
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer cli.Close()
	st := store.New(cli)
	kek, err := pki.LoadOrCreateKEK(filepath.Join(dataDir, "cluster.key"))
	if err != nil {
		return err
	}
	ca, err := clusterca.Load(ctx, st, kek)
	if err != nil {
		return err
	}
	const tenant = "bench"
	all := store.AllTenants()
	if _, err := st.CreateTenant(ctx, all, &ospreyv1.Tenant{Id: tenant, Name: "Bench"}); err != nil {
		return err
	}
	fleet, err := sensorsim.NewFleet(ctx, st, ca, tenant, "b", n)
	if err != nil {
		return err
	}
	defer fleet.Close()
	idle := rssKB(cmd.Process.Pid)
	if err := fleet.Connect(ctx, grpcAddr); err != nil {
		return err
	}
	sensors := fleet.Sensors
	// Every sensor has its first configuration (the empty one) before timing.
	if err := waitNewer(sensors, nil, 2*time.Minute); err != nil {
		return err
	}
	rss := rssKB(cmd.Process.Pid)
	if profileDir != "" {
		if err := saveProfiles(pprofAddr, n); err != nil {
			return err
		}
	}

	// Automation uses an API token: a bcrypt check per call (HTTP Basic)
	// would dominate the timing.
	basic, err := api.NewClient(api.Config{Address: apiURL, Username: "admin", Password: password,
		TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		return err
	}
	tok, err := basic.CreateToken(ctx, api.TokenRequest{Kind: api.TokenAPI, Description: "configpush bench"})
	if err != nil {
		return err
	}
	c, err := api.NewClient(api.Config{Address: apiURL, Token: tok.Secret, TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		return err
	}
	var toLast, fromStart, calls []time.Duration
	for i := range changes {
		cfg := &api.SMTPIntegration{Enabled: false, Listen: "0.0.0.0:25",
			DestinationDomains: []string{fmt.Sprintf("change%d.example.com", i)},
			MaxMessageSize:     &api.SizeLimit{Value: 10, Unit: api.MB}}
		before := sensorsim.Versions(sensors)
		start := time.Now()
		res, err := c.ApplySMTP(ctx, tenant, cfg)
		if err != nil {
			return err
		}
		returned := time.Now()
		if res.Changed != n {
			return fmt.Errorf("change %d: %d sensors changed, want %d", i, res.Changed, n)
		}
		if err := waitNewer(sensors, before, time.Minute); err != nil {
			return err
		}
		var last time.Time
		for _, s := range sensors {
			if t := s.AckedAt(s.Version()); t.After(last) {
				last = t
			}
		}
		toLast = append(toLast, max(0, last.Sub(returned)))
		fromStart = append(fromStart, last.Sub(start))
		calls = append(calls, returned.Sub(start))
	}
	fmt.Printf("| %d | %d | %s | %s | %s | %s | %s | %.0f MB | %.1f KB |\n", n, changes,
		ms(median(toLast)), ms(pct(toLast, 0.99)), ms(median(fromStart)), ms(pct(fromStart, 0.99)), ms(median(calls)),
		float64(rss)/1024, float64(rss-idle)/float64(n))
	return nil
}

// waitNewer waits until every sensor acknowledged a version newer than the
// one it had before (nil: any version at all).
func waitNewer(sensors []*sensorsim.Sensor, before []int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return sensorsim.WaitNewer(ctx, sensors, before)
}

func rssKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

func median(d []time.Duration) time.Duration { return pct(d, 0.5) }

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// freeAddr returns a loopback address that was free a moment ago, for the
// central's pprof listener (whose address the central logs only at info).
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// saveProfiles saves the central's heap and goroutine profiles, taken with
// n streams open, in profileDir.
func saveProfiles(addr string, n int) error {
	for _, p := range []string{"heap?gc=1", "goroutine", "allocs", "heap?debug=1"} {
		resp, err := http.Get("http://" + addr + "/debug/pprof/" + p)
		if err != nil {
			return fmt.Errorf("profile %s: %w", p, err)
		}
		name := filepath.Join(profileDir, fmt.Sprintf("%s-%d.pb.gz", strings.SplitN(p, "?", 2)[0], n))
		if strings.HasSuffix(p, "debug=1") {
			name = filepath.Join(profileDir, fmt.Sprintf("memstats-%d.txt", n))
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("profile %s: %w", p, err)
		}
		if err := os.WriteFile(name, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
