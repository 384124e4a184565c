// Command remotesensor measures how long a sensor setting written on a PCN
// takes to show as applied there: from the API call on the PCN that writes
// an SCN's sensor's SMTP settings (PUT
// /api/v1/servers/{id}/sensors/{sensor}/smtp) to the moment the PCN's
// sensor list (GET /api/v1/servers/{id}/sensors) shows the sensor's ACK of
// the new version.
//
// It runs two `osprey dev` processes (built from the module), a PCN on
// 127.0.0.2 and an SCN on 127.0.0.3, each with its own Sensor component,
// joins the SCN to the PCN and waits for the link. Each write adds a
// destination domain; the path it measures is the PCN's request key, the
// link down to the SCN, the SCN's API handler and etcd write, its push to
// its sensor and the sensor's ACK, the SCN's debounced list (100 ms) up the
// link, and the PCN's etcd key, which the harness polls every 5 ms.
//
// Usage (from the module's root):
//
//	go run ./bench/remotesensor -writes 50
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/benchproc"
	"github.com/ospreysec/osprey/internal/nodeproc"
)

const server = "branch-1"

func main() {
	writes := flag.Int("writes", 50, "writes measured, one after the other")
	flag.Parse()
	log.SetFlags(0)
	work, err := os.MkdirTemp("", "remotesensor-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "osprey")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/osprey").CombinedOutput(); err != nil {
		fatalf("build: %v\n%s", err, out)
	}
	start := func(name, ip string, extra ...string) (*api.Client, string) {
		grpc, err := benchproc.FreePort()
		if err != nil {
			fatalf("%v", err)
		}
		grpc = ip + grpc[len("127.0.0.1"):]
		n := &nodeproc.Node{Name: name, IP: ip, LogFile: filepath.Join(work, name+".log"), Args: append([]string{bin, "dev",
			"--data-dir", filepath.Join(work, name), "--http-addr", ip + ":0", "--grpc-addr", grpc,
			"--etcd-client-addr", "127.0.0.1:0", "--etcd-peer-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0",
			"--dns-addr", "127.0.0.1:0", "--bootstrap-admin-password", nodeproc.AdminPassword, "--log-level", "warn"}, extra...)}
		if err := n.Start(); err != nil {
			fatalf("%v", err)
		}
		atExit(func() { n.Stop() })
		c, err := api.NewClient(api.Config{Address: n.Ready.API, Username: "admin", Password: nodeproc.AdminPassword})
		if err != nil {
			fatalf("%v", err)
		}
		return c, grpc
	}
	pcn, pcnGRPC := start("pcn", "127.0.0.2", "--pcn", "--hierarchy-heartbeat", "2s")
	scn, _ := start("scn", "127.0.0.3")
	ctx := context.Background()
	const user, password = "branch-1", "the branch account's long password"
	if _, err := pcn.CreateUser(ctx, api.User{Name: user, Role: api.RoleAdministrator, AllTenants: true, Password: password}); err != nil {
		fatalf("%v", err)
	}
	fp, err := scn.PCNFingerprint(ctx, pcnGRPC)
	if err != nil {
		fatalf("%v", err)
	}
	if _, err := scn.JoinPCN(ctx, api.JoinPCN{Address: pcnGRPC, Fingerprint: fp.Fingerprint, Name: server, Username: user, Password: password}); err != nil {
		fatalf("join: %v", err)
	}
	if _, err := pcn.AcceptServer(ctx, server, "default"); err != nil {
		fatalf("accept: %v", err)
	}
	var sensor string
	waitFor("the SCN's sensor listed on the PCN, applied", time.Minute, time.Second, func() bool {
		l, err := pcn.ServerSensors(ctx, server)
		if err != nil || !l.Online || len(l.Sensors) != 1 || l.Sensors[0].Config != api.ConfigApplied {
			return false
		}
		sensor = l.Sensors[0].ID
		return true
	})

	fmt.Printf("load average before: %s\n", benchproc.LoadAvg())
	var calls, acks []float64
	for i := range *writes {
		cfg, version, err := pcn.ServerSensorSMTP(ctx, server, sensor)
		if err != nil {
			fatalf("read: %v", err)
		}
		cfg.DestinationDomains = append(cfg.DestinationDomains, fmt.Sprintf("w%d.bench.example", i))
		t0 := time.Now()
		_, newVersion, err := pcn.PutServerSensorSMTP(ctx, server, sensor, cfg, version)
		if err != nil {
			fatalf("write: %v", err)
		}
		calls = append(calls, ms(time.Since(t0)))
		waitFor("the ACK on the PCN", 30*time.Second, 5*time.Millisecond, func() bool {
			l, err := pcn.ServerSensors(ctx, server)
			return err == nil && len(l.Sensors) == 1 && l.Sensors[0].AppliedVersion >= newVersion
		})
		acks = append(acks, ms(time.Since(t0)))
	}
	fmt.Printf("load average after: %s\n", benchproc.LoadAvg())
	slices.Sort(calls)
	slices.Sort(acks)
	fmt.Println("| writes | API call on the PCN, median | p99 | write → ACK shown on the PCN, median | p99 |")
	fmt.Println("|---:|---:|---:|---:|---:|")
	fmt.Printf("| %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms |\n", len(acks), quantile(calls, 0.5), quantile(calls, 0.99), quantile(acks, 0.5), quantile(acks, 0.99))
	cleanUp()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// waitFor polls cond every interval until it holds, exiting after limit.
func waitFor(what string, limit, interval time.Duration, cond func() bool) {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(interval)
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
