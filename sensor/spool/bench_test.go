package spool

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// BenchmarkPut spools 5 KB messages from one goroutine, and from
// GOMAXPROCS × 1 and × 20 goroutines (b.SetParallelism). It reports
// messages per second and Puts per commit (per fdatasync of the log).
//
// On the development VM (2 vCPUs, ext4 on a virtio disk, shared with other
// engineers' builds: load average 3-9 during the runs, so the spread is
// wide), go test -run '^$' -bench BenchmarkPut -count 5, medians of the
// five runs, the earlier design (a file per message: a fsync per file,
// then a group-committed fsync of the directory) against the log, run back
// to back, twice (round 1 / round 2):
//
//	                                 file per message         log
//	                                 msgs/s      per commit   msgs/s         per commit
//	sequential (1 goroutine)          642 / 943   1            3402 / 4055    1
//	parallelism=1 (2 goroutines)      858 / 1181  1            4669 / 3714    1
//	parallelism=20 (40 goroutines)   1794 / 1071  3.5 - 4.6    27858 / 21766  17 - 19
//
// ("per commit" is Puts per directory fsync for a file per message, and
// Puts per fdatasync for the log.) One writer waits for one fdatasync per
// message, so the sequential rate is the disk's sync latency for an
// append, about 250 µs here: 4-5 times the rate of a file per message,
// which took a fsync of the file, a rename and a fsync of the directory.
// Two goroutines hardly batch: the committer starts the next sync as soon
// as one returns, for whoever queued meanwhile, and adds no delay to
// gather more. With 40 the batches hold 17-19 Puts: 15-20 times the rate
// of a file per message, whose file fsyncs the journal merged only in
// part. The rate then depends on the two shared cores (a CPU profile
// shows half the time in pwrite and fdatasync; the envelope, once encoded
// with protojson and the largest part of the rest, is now written with
// encoding/json in the same form) and on how long the
// shared disk takes per sync: single runs ranged from 10,000 to 43,000
// messages/s over the day.
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
