package spool

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// BenchmarkPut spools 5 KB messages from one goroutine, and from
// GOMAXPROCS × 1 and × 20 goroutines (b.SetParallelism). It reports
// messages per second and Puts per commit (per fdatasync).
//
// On the development VM (2 vCPUs, ext4 on a virtio disk, shared with other
// engineers' builds: load average 4-11 during the runs, so the spread is
// wide), go test -run '^$' -bench BenchmarkPut -count 5, medians of five
// runs, the design of one file per message (a fsync per file, a group
// committed directory fsync) against the log, run back to back, twice:
//
//	                                 file per message     log
//	                                 msgs/s  puts/commit  msgs/s  puts/commit
//	sequential (1 goroutine)          TODO
//	parallelism=1 (2 goroutines)      TODO
//	parallelism=20 (40 goroutines)    TODO
//
// One writer waits for a fdatasync per message, so the sequential rate is
// the disk's sync latency; it is 2-4 times better than with a file per
// message, which took a fsync of the file, a rename and a fsync of the
// directory. Two goroutines barely batch: the committer starts the next
// sync as soon as one returns, for whoever queued meanwhile. With 40 the
// batches hold 11-18 Puts and the rate is bounded by the CPU that
// encoding, copying and checksumming take, 15-25 times the rate of a file
// per message and well above the SMTP ingest's 3,500 messages/s.
func BenchmarkPut(b *testing.B) {
	body := make([]byte, 5<<10)
	rand.NewChaCha8([32]byte{1}).Read(body)
	for _, bc := range []struct {
		name        string
		parallelism int // 0: one goroutine
	}{
		{name: "sequential"},
		{name: "parallelism=1", parallelism: 1},
		{name: "parallelism=20", parallelism: 20},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := Open(Options{Dir: b.TempDir(), MaxMessages: 1 << 30, MaxBytes: 1 << 40})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			if bc.parallelism == 0 {
				for b.Loop() {
					if _, err := s.Put(b.Context(), smtpMeta(), bytes.NewReader(body)); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(bc.parallelism)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := s.Put(b.Context(), smtpMeta(), bytes.NewReader(body)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			st := s.Stats()
			b.ReportMetric(float64(st.Puts)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(st.Puts)/float64(max(st.Commits, 1)), "puts/commit")
		})
	}
}
