package queue

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ospreysec/osprey/sensor/delivery"
)

// BenchmarkEnqueue enqueues 5 KB messages of one recipient from parallel
// goroutines (GOMAXPROCS × 16), each durable on return: the group
// commit's rate.
func BenchmarkEnqueue(b *testing.B) {
	q, err := Open(b.Context(), Options{Dir: b.TempDir(), Deliverer: newTestDeliverer()})
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	body := []byte("Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 5<<10/78))
	var n atomic.Int64
	b.SetBytes(int64(len(body)))
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := "b" + strconv.FormatInt(n.Add(1), 10)
			if _, err := q.Enqueue(context.Background(), Message{ID: id, From: "s@example.org", Rcpts: []string{"r@a.test"}, Direction: Inbound, Body: body}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// firstDeliverer reports its first delivery.
type firstDeliverer struct {
	*testDeliverer
	first chan struct{}
	once  atomic.Bool
}

func (d *firstDeliverer) Deliver(ctx context.Context, r delivery.Request) delivery.Result {
	if d.once.CompareAndSwap(false, true) {
		close(d.first)
	}
	return d.testDeliverer.Deliver(ctx, r)
}

// BenchmarkMillionDeferred fills a queue with 1,000,000 deferred
// messages (1 KB bodies, next attempts spread over five days), adds 1,000
// due now, then measures a restart: Open, Run, and the first delivery.
// It reports the heap in use once the queue runs, and the time the
// restart took. OSPREY_QUEUE_BENCH_DIR keeps the filled queue between
// runs (it is filled once). It runs only under -bench.
func BenchmarkMillionDeferred(b *testing.B) {
	if testing.Short() {
		b.Skip("fills a million messages")
	}
	const total, due = 1_000_000, 1000
	dir := os.Getenv("OSPREY_QUEUE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	d := newTestDeliverer()
	if _, err := os.Stat(dir + "/queue.db"); err != nil {
		start := time.Now()
		if err := fill(b, dir, d, "f", total, true); err != nil {
			b.Fatal(err)
		}
		b.Logf("filled %d messages in %v", total, time.Since(start))
	}
	var heap, took, listTook float64
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		if err := fill(b, dir, d, fmt.Sprintf("due%d-%d-", time.Now().UnixNano(), i), due, false); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		runtime.GC()
		start := time.Now()
		fd := &firstDeliverer{testDeliverer: d, first: make(chan struct{})}
		q, err := Open(b.Context(), Options{Dir: dir, Deliverer: fd})
		if err != nil {
			b.Fatal(err)
		}
		opened := time.Since(start)
		ctx, cancel := context.WithCancel(b.Context())
		done := make(chan error, 1)
		go func() { done <- q.Run(ctx) }()
		<-fd.first
		took += time.Since(start).Seconds()
		st := q.Stats()
		ls := time.Now()
		if _, err := q.List(b.Context(), Filter{State: StateDeferred, Limit: 100}); err != nil {
			b.Fatal(err)
		}
		listTook += time.Since(ls).Seconds()
		// A filter nothing matches reads every message.
		ls = time.Now()
		if _, err := q.List(b.Context(), Filter{State: StateHeld, Limit: 100}); err != nil {
			b.Fatal(err)
		}
		b.Logf("a listing that matches nothing: %v", time.Since(ls))
		// Let the due ones go (they are delivered), so that the heap
		// reads the running queue.
		cancel()
		<-done
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap += float64(ms.HeapInuse)
		b.Logf("open %v, first delivery after %v; %+v", opened, time.Since(start), st)
		if err := q.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(took/float64(b.N)*1000, "ms-to-first-delivery")
	b.ReportMetric(listTook/float64(b.N)*1000, "ms-list-page")
	b.ReportMetric(heap/float64(b.N)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(rssKiB())/1024, "rss-MiB")
}

// fill writes n messages straight into the queue's tables, in
// transactions of 10,000 (Enqueue would take as long as its group
// commits): deferred after one attempt, spread over five days, or due
// now.
func fill(b *testing.B, dir string, d Deliverer, prefix string, n int, deferred bool) error {
	q, err := Open(b.Context(), Options{Dir: dir, Deliverer: d})
	if err != nil {
		return err
	}
	defer q.Close()
	body := []byte("Subject: deferred\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 1<<10/78))
	now := time.Now()
	const batch = 10000
	for i := 0; i < n; i += batch {
		err := q.w.do(b.Context(), func(t *tx) error {
			for j := i; j < min(i+batch, n); j++ {
				id := fmt.Sprintf("%s%08d", prefix, j)
				st, next := stDeferred, now.Add(time.Hour+time.Duration(j)*(5*24*time.Hour/time.Duration(n)))
				if !deferred {
					st, next = stActive, now
				}
				if _, err := t.ExecContext(t.ctx, `INSERT INTO messages (id, sender, arrival, size, verdict, direction, unscanned, kind)
					VALUES (?, 's@example.org', ?, ?, 'clean', 'inbound', 0, '')`, id, micros(now), len(body)); err != nil {
					return err
				}
				if _, err := t.ExecContext(t.ctx, "INSERT INTO bodies (id, body) VALUES (?, ?)", id, body); err != nil {
					return err
				}
				dest := fmt.Sprintf("d%03d.test", j%500)
				if _, err := t.ExecContext(t.ctx, `INSERT INTO rcpts (msg, rcpt, dest, state, attempts, next_attempt, last_code, last_text)
					VALUES (?, ?, ?, ?, ?, ?, 451, 'try again later')`, id, "r@"+dest, dest, st, boolInt(st == stDeferred), micros(next)); err != nil {
					return err
				}
				t.delta[st]++
				t.delta[countMessages]++
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// rssKiB is the process's resident set (Linux), 0 elsewhere.
func rssKiB() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
