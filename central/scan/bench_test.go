package scan_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ospreysec/osprey/central/scan"
	"github.com/ospreysec/osprey/central/scan/ioc"
	"github.com/ospreysec/osprey/central/scan/scantest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// benchRules is a tenant with a few hundred rules of every kind.
func benchRules(b *testing.B) *ioc.RuleSet {
	var rules []*ospreyv1.Rule
	add := func(kind ospreyv1.RuleKind, v string) {
		rules = append(rules, &ospreyv1.Rule{Id: fmt.Sprintf("r%d", len(rules)), Kind: kind, Value: v, Severity: ospreyv1.Severity_SEVERITY_HIGH})
	}
	for i := range 150 {
		s := sha256.Sum256([]byte(fmt.Sprint("bad", i)))
		add(ospreyv1.RuleKind_RULE_KIND_SHA256, hex.EncodeToString(s[:]))
	}
	for i := range 50 {
		s := sha256.Sum256([]byte(fmt.Sprint("md5", i)))
		add(ospreyv1.RuleKind_RULE_KIND_MD5, hex.EncodeToString(s[:16]))
		add(ospreyv1.RuleKind_RULE_KIND_SENDER_DOMAIN, fmt.Sprintf("spam%d.example", i))
		add(ospreyv1.RuleKind_RULE_KIND_URL_HOST, fmt.Sprintf("phish%d.example", i))
		add(ospreyv1.RuleKind_RULE_KIND_URL, fmt.Sprintf("http://landing%d.example/login", i))
	}
	for i := range 20 {
		add(ospreyv1.RuleKind_RULE_KIND_SENDER, fmt.Sprintf("ceo%d@spoof.example", i))
		add(ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_NAME, fmt.Sprintf("invoice_%d_*.pdf", i))
	}
	for _, e := range []string{"iso", "img", "vhd", "one", "lnk", "hta", "wsf", "jse", "vbe", "cab"} {
		add(ospreyv1.RuleKind_RULE_KIND_ATTACHMENT_EXTENSION, e)
	}
	rs, err := ioc.Compile(rules)
	if err != nil {
		b.Fatal(err)
	}
	return rs
}

// text returns n bytes of prose with a few URLs.
func text(rng *rand.Rand, n int) string {
	words := strings.Fields("the quarterly report is attached please review before the meeting on thursday " +
		"and send comments to the team see https://intranet.example.com/docs/q3 for details thanks")
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(12) == 0 {
			sb.WriteString("\r\n")
		} else {
			sb.WriteByte(' ')
		}
	}
	return sb.String()[:n]
}

// mix is the benchmark's message mix: 70% plain text of 5 KB, 25% with a
// 200 KB attachment, 5% with a zip.
func mix(b *testing.B) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var msgs [][]byte
	for i := range 100 {
		hdr := scantest.Headers(fmt.Sprintf("user%d@example.com", i), "team@example.org", fmt.Sprintf("message %d", i))
		switch {
		case i%20 == 0: // 5%
			files := []scantest.File{
				{Name: "notes.txt", Data: []byte(text(rng, 40<<10))},
				{Name: "data.csv", Data: []byte(text(rng, 60<<10))},
				{Name: "image.bin", Data: randBytes(rng, 30<<10)},
			}
			msgs = append(msgs, scantest.Message(hdr, scantest.Multipart("mixed", "mix", scantest.Text(text(rng, 2<<10)),
				scantest.Attachment("archive.zip", "application/zip", scantest.Zip(files...)))))
		case i%4 == 1: // 25%
			msgs = append(msgs, scantest.Message(hdr, scantest.Multipart("mixed", "mix",
				scantest.Multipart("alternative", "alt", scantest.Text(text(rng, 2<<10)), scantest.HTML("<p>"+text(rng, 3<<10)+"</p>")),
				scantest.Attachment("report.pdf", "application/pdf", randBytes(rng, 200<<10)))))
		default: // 70%
			msgs = append(msgs, scantest.Message(hdr, scantest.Text(text(rng, 5<<10))))
		}
	}
	return msgs
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// BenchmarkScanMix scans a realistic mix with the ioc (a few hundred
// rules), structure and eicar engines, one message per op: "serial" on one
// goroutine, "parallel" on GOMAXPROCS goroutines as a central node scans
// concurrent uploads; "plain5KB" is the mix's most common class alone, the
// messages of the SMTP ingest benchmark, as "plain100KB" is of its large
// ones.
func BenchmarkScanMix(b *testing.B) {
	all := mix(b)
	var plain [][]byte
	for i, m := range all {
		if i%20 != 0 && i%4 != 1 {
			plain = append(plain, m)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var plain100 [][]byte
	for i := range 20 {
		hdr := scantest.Headers(fmt.Sprintf("user%d@example.com", i), "team@example.org", fmt.Sprintf("long message %d", i))
		plain100 = append(plain100, scantest.Message(hdr, scantest.Text(text(rng, 100<<10))))
	}
	rules := benchRules(b)
	s, err := scan.New(scan.Options{TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	for _, set := range []struct {
		name string
		msgs [][]byte
	}{{"mix", all}, {"plain5KB", plain}, {"plain100KB", plain100}} {
		var total int
		for _, m := range set.msgs {
			total += len(m)
		}
		scanOne := func(b *testing.B, i int) {
			res, err := s.Scan(b.Context(), bytes.NewReader(set.msgs[i%len(set.msgs)]), nil, rules)
			if err != nil {
				b.Fatal(err)
			}
			if res.Verdict != scan.VerdictClean {
				b.Fatalf("message %d: verdict %q %v", i%len(set.msgs), res.Verdict, res.Matches)
			}
		}
		b.Run(set.name+"/serial", func(b *testing.B) {
			b.SetBytes(int64(total / len(set.msgs)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				scanOne(b, i)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
		b.Run(set.name+"/parallel", func(b *testing.B) {
			b.SetBytes(int64(total / len(set.msgs)))
			b.ReportAllocs()
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					scanOne(b, int(next.Add(1)))
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
