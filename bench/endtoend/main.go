// Command endtoend measures how many messages per second Osprey takes end
// to end: accepted over SMTP (250, fsynced in the sensor's spool), uploaded
// to the central, scanned and recorded, with the message records and
// alerts in the SQL store. Postfix's smtp-source drives it over loopback.
//
// By default it runs `osprey dev` (one process, SQLite in its data dir)
// and, side by side and rounds interleaved, the binary built from this tree
// and one built from a baseline commit (-baseline; by default the last one
// that kept the records in etcd), each round on a fresh data dir. With
// -cluster N it runs this tree's binary as N `osprey central --sensor`
// processes on 127.0.0.1 to 127.0.0.N (an embedded etcd quorum, gossip)
// sharing one PostgreSQL (internal/pgtest's, with fsync on as in production),
// enables each node's own sensor's SMTP listener, and drives all of them at
// once, the sessions and messages split among them; there is no baseline
// then, as the baseline's cluster kept its records in etcd and had no
// --db-url.
//
// A round ends when osprey_central_uploads_total, summed over the nodes,
// reaches the messages sent: a node counts a message the first time it is
// recorded in the SQL store the nodes share, so each message counts once
// whichever node took it (in a cluster, the round also checks that
// PostgreSQL holds exactly the messages sent). The rate is the messages
// over the time from the first connection to the last record. It also
// reports etcd's database size (etcd_mvcc_db_total_size_in_bytes; in a
// cluster the largest member's) before the sending and after the round,
// the SQL store's size after it (SQLite's files, or pg_database_size), and
// the node's peak RSS (in a cluster the largest node's). -duration
// instead of -messages sends for that long, to each node, at the rate the
// nodes take.
//
// Usage (as root, with postfix installed):
//
//	go run ./bench/endtoend -rounds 3
//	go run ./bench/endtoend -rounds 1 -duration 10m -baseline ''
//	go run ./bench/endtoend -rounds 1 -baseline '' -cpuprofile /tmp/e2e.pprof
//	go run ./bench/endtoend -cluster 3 -rounds 1 -duration 10m
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ospreysec/osprey/internal/benchproc"
)

// defaultBaseline is the last commit whose central kept message records and
// alerts in etcd.
const defaultBaseline = "2f60dba"

func main() {
	rounds := flag.Int("rounds", 3, "rounds per binary")
	messages := flag.Int("messages", 20000, "messages per round (split among the nodes)")
	duration := flag.Duration("duration", 0, "send for this long instead of -messages (smtp-source in a loop, to each node)")
	size := flag.Int("size", 5, "message size in KB")
	sessions := flag.Int("sessions", 20, "concurrent SMTP sessions (smtp-source -s; split among the nodes)")
	baseline := flag.String("baseline", defaultBaseline, "git revision to compare with (empty: none)")
	nodes := flag.Int("cluster", 0, "run this many central nodes (osprey central --sensor) sharing a PostgreSQL instead of osprey dev; no baseline (0: dev)")
	profile := flag.String("cpuprofile", "", "write a 10 s CPU profile of this tree's node (in a cluster, n1), taken during the first round, to this file")
	flag.Parse()
	if _, err := exec.LookPath("smtp-source"); err != nil {
		log.Fatal("smtp-source not found: install postfix (make peers)")
	}
	l := load{messages: *messages, duration: *duration, size: *size, sessions: *sessions}
	if *nodes < 0 {
		log.Fatalf("-cluster %d: want a number of nodes, or 0 for `osprey dev`", *nodes)
	}
	if *nodes > 0 {
		explicit := false
		flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "baseline" })
		if explicit && *baseline != "" {
			log.Fatal("-cluster has no baseline (the baseline's cluster kept its records in etcd and had no --db-url): drop -baseline or give -baseline ''")
		}
		*baseline = ""
	}
	if err := l.check(max(*nodes, 1)); err != nil {
		log.Fatal(err)
	}
	work, err := os.MkdirTemp("", "endtoend")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	type target struct {
		name, bin        string
		rates            []float64
		etcdBefore, etcd []int64
		sql, rss         []int64
	}
	name := "this tree"
	if *nodes > 0 {
		name = fmt.Sprintf("this tree, %d nodes", *nodes)
	}
	targets := []*target{{name: name, bin: build(work, "", "osprey")}}
	if *baseline != "" {
		targets = append(targets, &target{name: "baseline " + *baseline, bin: build(work, *baseline, "osprey-baseline")})
	}
	for r := range *rounds {
		for _, t := range targets {
			prof := ""
			if r == 0 && t == targets[0] {
				prof = *profile
			}
			res := runRound(work, t.bin, *nodes, l, prof)
			log.Printf("round %d, %s: %d messages in %s: %.0f msg/s; etcd %d KB before, %d KB after, SQL %d KB, RSS %d MB",
				r+1, t.name, res.sent, res.elapsed.Round(time.Millisecond), res.rate, res.etcdBefore>>10, res.etcdBytes>>10, res.sqlBytes>>10, res.rssKB>>10)
			t.rates = append(t.rates, res.rate)
			t.etcdBefore, t.etcd = append(t.etcdBefore, res.etcdBefore), append(t.etcd, res.etcdBytes)
			t.sql, t.rss = append(t.sql, res.sqlBytes), append(t.rss, res.rssKB)
		}
	}
	fmt.Printf("\n| binary | messages/s (median of %d) | each round | etcd db before | etcd db after | SQL store after | peak RSS |\n|---|---:|---|---:|---:|---:|---:|\n", *rounds)
	for _, t := range targets {
		var each []string
		for _, r := range t.rates {
			each = append(each, fmt.Sprintf("%.0f", r))
		}
		fmt.Printf("| %s | %.0f | %s | %d KB | %d KB | %d KB | %d MB |\n", t.name, benchproc.Median(t.rates), strings.Join(each, ", "),
			benchproc.Median(t.etcdBefore)>>10, benchproc.Median(t.etcd)>>10, benchproc.Median(t.sql)>>10, benchproc.Median(t.rss)>>10)
	}
	if *nodes > 0 {
		fmt.Printf("\n%d nodes sharing one PostgreSQL: etcd db is the largest member's, SQL store the database's pg_database_size, peak RSS the largest node's.\n", *nodes)
	}
	if len(targets) == 2 {
		var ratios []float64
		for i := range targets[0].rates {
			ratios = append(ratios, targets[0].rates[i]/targets[1].rates[i])
		}
		fmt.Printf("\nthis tree ÷ baseline, round by round: %s; median %.2f\n", fmtFloats(ratios), benchproc.Median(ratios))
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

func fmtFloats(v []float64) string {
	var s []string
	for _, f := range v {
		s = append(s, fmt.Sprintf("%.2f", f))
	}
	return strings.Join(s, ", ")
}

// mustFreePort is a loopback address with a port free now.
func mustFreePort() string {
	addr, err := benchproc.FreePort()
	if err != nil {
		log.Fatal(err)
	}
	return addr
}
