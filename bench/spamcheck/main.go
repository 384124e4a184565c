// Command spamcheck measures the latency of the central's spam check: how
// long the rspamd client (central/scan/rspamd) takes to have a message
// checked by a real Rspamd, from the first byte sent to the answer parsed,
// which is what an upload waits for besides its scan.
//
// It starts Rspamd 3.4 from Debian's package with its packaged rules and
// no Redis (internal/rspamdtest), with as many normal workers as the
// machine has cores, and waits until its rules are compiled with
// Hyperscan, as a production Rspamd runs. Then, for each message size, it
// sends -messages distinct text messages (with a couple of URLs, from a
// public client address, so Rspamd runs its DNS-based checks too: the
// machine's resolver answers them) at each concurrency, in -rounds rounds,
// and reports the medians over the rounds of the p50 and p99 latency per
// message and of the messages per second. The same messages are scanned
// by the central's own engines (package scan, serially, in this process)
// in the same run, for the scale of what the spam check runs beside.
//
// The machine's load average is printed before and after: the figures
// move with what else runs.
//
// Usage (with rspamd installed): go run ./bench/spamcheck -rounds 5
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/ospreysec/osprey/central/scan"
	"github.com/ospreysec/osprey/central/scan/rspamd"
	"github.com/ospreysec/osprey/central/scan/scantest"
	"github.com/ospreysec/osprey/internal/benchproc"
	"github.com/ospreysec/osprey/internal/rspamdtest"
)

func main() {
	rounds := flag.Int("rounds", 3, "rounds per size and concurrency")
	messages := flag.Int("messages", 1000, "messages per round")
	sizeList := flag.String("sizes", "5,100", "message sizes in KB, comma-separated")
	concList := flag.String("concurrency", "1,4", "checks at once, comma-separated")
	workers := flag.Int("workers", runtime.NumCPU(), "Rspamd's normal workers")
	flag.Parse()
	ctx := context.Background()
	log.Printf("load average before: %s", loadavg())

	ns, err := startResolver()
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Shutdown()
	start := time.Now()
	srv, err := rspamdtest.Start(ctx, rspamdtest.Options{Workers: *workers, WaitCompiled: true, Nameserver: ns.PacketConn.LocalAddr().String()})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Stop()
	log.Printf("rspamd ready in %v with %d workers, rules compiled", time.Since(start).Round(time.Millisecond), *workers)
	client, err := rspamd.New(rspamd.Options{URL: srv.URL})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	scanner, err := scan.New(scan.Options{TempDir: os.TempDir()})
	if err != nil {
		log.Fatal(err)
	}

	fmt.Printf("| size | checks at once | msg/s | p50 | p99 | scan p50 (same messages, for scale) |\n|---|---:|---:|---:|---:|---:|\n")
	for _, kb := range ints(*sizeList) {
		msgs := corpus(*messages, kb<<10)
		// Warm up: the first checks of a size load Rspamd's caches.
		if _, err := run(ctx, client, msgs[:min(len(msgs), 100)], 2); err != nil {
			log.Fatal(err)
		}
		scanP50 := scanLatency(ctx, scanner, msgs)
		for _, conc := range ints(*concList) {
			var p50s, p99s, rates []float64
			for range *rounds {
				r, err := run(ctx, client, msgs, conc)
				if err != nil {
					log.Fatal(err)
				}
				p50s, p99s, rates = append(p50s, r.p50), append(p99s, r.p99), append(rates, r.rate)
			}
			fmt.Printf("| %d KB | %d | %.0f | %s | %s | %s |\n", kb, conc, benchproc.Median(rates), ms(benchproc.Median(p50s)), ms(benchproc.Median(p99s)), ms(scanP50))
		}
	}
	log.Printf("load average after: %s", loadavg())
}

// result is one round's latencies (seconds) and rate.
type result struct{ p50, p99, rate float64 }

// run checks every message once, conc at a time, and returns the round's
// percentiles and rate.
func run(ctx context.Context, c *rspamd.Client, msgs [][]byte, conc int) (result, error) {
	lat := make([]float64, len(msgs))
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	for w := range conc {
		wg.Go(func() {
			for i := range next {
				env := rspamd.Envelope{From: fmt.Sprintf("user%d@example.com", i), Rcpt: []string{"team@example.org"},
					IP: fmt.Sprintf("203.0.113.%d", 1+(i+w)%250), Helo: "mail.example.net", QueueID: strconv.Itoa(i)}
				t0 := time.Now()
				res, err := c.Check(ctx, bytes.NewReader(msgs[i]), int64(len(msgs[i])), env)
				lat[i] = time.Since(t0).Seconds()
				if err == nil && res.GetRequiredScore() == 0 {
					err = fmt.Errorf("message %d: an answer without rspamd's threshold: %v", i, res)
				}
				if err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range msgs {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return result{}, firstErr
	}
	elapsed := time.Since(start).Seconds()
	slices.Sort(lat)
	return result{p50: percentile(lat, 0.50), p99: percentile(lat, 0.99), rate: float64(len(msgs)) / elapsed}, nil
}

// scanLatency is the median time of the central's scan of each message.
func scanLatency(ctx context.Context, s *scan.Scanner, msgs [][]byte) float64 {
	lat := make([]float64, 0, len(msgs))
	for _, m := range msgs {
		t0 := time.Now()
		if _, err := s.Scan(ctx, bytes.NewReader(m), nil, nil); err != nil {
			log.Fatal(err)
		}
		lat = append(lat, time.Since(t0).Seconds())
	}
	slices.Sort(lat)
	return percentile(lat, 0.5)
}

// corpus returns n distinct text messages of about size bytes each.
func corpus(n, size int) [][]byte {
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	words := strings.Fields("the quarterly report is attached please review before the meeting on thursday " +
		"and send comments to the team see https://intranet.example.com/docs/q3 for details thanks " +
		"budget forecast numbers slides draft final version customer contract renewal https://www.example.org/offer")
	msgs := make([][]byte, n)
	for i := range msgs {
		hdr := scantest.Headers(fmt.Sprintf("user%d@example.com", i), "team@example.org", fmt.Sprintf("report %d", i))
		hdr = strings.Replace(hdr, "Mon, 02 Mar 2026 10:00:00 +0000", time.Now().Format(time.RFC1123Z), 1)
		var sb strings.Builder
		for sb.Len() < size-len(hdr)-100 {
			sb.WriteString(words[rng.IntN(len(words))])
			if rng.IntN(12) == 0 {
				sb.WriteString("\r\n")
			} else {
				sb.WriteByte(' ')
			}
		}
		msgs[i] = scantest.Message(hdr, scantest.Text(sb.String()+"\r\n"))
	}
	return msgs
}

// startResolver answers every DNS question on a loopback port at once with
// NXDOMAIN: what a warm local cache answers for clean mail (no list names
// the client, its URLs or its domains), so the figures are Rspamd's and
// not the network's.
func startResolver() (*dns.Server, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		m.RecursionAvailable = true
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	return srv, nil
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func ms(sec float64) string { return fmt.Sprintf("%.2f ms", sec*1000) }

func ints(list string) []int {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			log.Fatalf("%q: want positive numbers, comma-separated", list)
		}
		out = append(out, n)
	}
	return out
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}
