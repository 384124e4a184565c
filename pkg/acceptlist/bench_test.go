package acceptlist

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/pkg/netlist"
)

// benchEntries returns n distinct entries, made up the same way every
// time: three quarters IPv4 (addresses and /24 prefixes), the rest IPv6
// /64 prefixes, and the addresses to look up that they hold.
func benchEntries(n int) (entries []string, hits []netip.Addr) {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{}
	for len(entries) < n {
		var e string
		var hit netip.Addr
		switch i := len(entries); {
		case i%4 == 3:
			var b [16]byte
			b[0], b[1] = 0x20, 0x01
			for j := 2; j < 8; j++ {
				b[j] = byte(rng.UintN(256))
			}
			p := netip.PrefixFrom(netip.AddrFrom16(b), 64)
			e = p.String()
			b[15] = 1
			hit = netip.AddrFrom16(b)
		case i%2 == 0:
			a := netip.AddrFrom4([4]byte{byte(11 + rng.UintN(200)), byte(rng.UintN(256)), byte(rng.UintN(256)), byte(rng.UintN(256))})
			e, hit = a.String(), a
		default:
			a := netip.AddrFrom4([4]byte{byte(11 + rng.UintN(200)), byte(rng.UintN(256)), byte(rng.UintN(256)), 0})
			e = netip.PrefixFrom(a, 24).String()
			hit = a.Next()
		}
		if seen[e] {
			continue
		}
		seen[e] = true
		entries = append(entries, e)
		hits = append(hits, hit)
	}
	return entries, hits
}

// BenchmarkContains looks up addresses (spread over the whole list) in a list of 100,000 entries: hits
// (each entry's own address), and misses (addresses outside every entry),
// and, for reference, the same hits in package netlist's list, which
// scans its prefixes (as the trusted networks were matched before).
func BenchmarkContains(b *testing.B) {
	const n = 100_000
	entries, hits := benchEntries(n)
	m, err := Compile(entries)
	if err != nil {
		b.Fatal(err)
	}
	misses := make([]netip.Addr, 1024)
	for i := range misses {
		misses[i] = netip.AddrFrom4([4]byte{byte(220 + i%30), byte(i), 1, 1}) // 220/8 and up: no entry there
	}
	b.Run("hit", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if !m.Contains(hits[(i*7919)%len(hits)]) {
				b.Fatalf("%s not matched", hits[(i*7919)%len(hits)])
			}
			i++
		}
	})
	b.Run("miss", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if m.Contains(misses[i%len(misses)]) {
				b.Fatalf("%s matched", misses[i%len(misses)])
			}
			i++
		}
	})
	b.Run("netlist-scan", func(b *testing.B) {
		prefixes := make([]netip.Prefix, len(entries))
		for i, e := range entries {
			p, err := netlist.ParsePrefix(e)
			if err != nil {
				b.Fatal(err)
			}
			prefixes[i] = p
		}
		nl := netlist.FromPrefixes(prefixes)
		i := 0
		for b.Loop() {
			if !nl.Contains(hits[(i*7919)%len(hits)]) {
				b.Fatalf("%s not matched", hits[(i*7919)%len(hits)])
			}
			i++
		}
	})
}

// BenchmarkCompile parses and compiles a list of 100,000 entries in its
// canonical order, as a sensor does when a configuration with it arrives.
func BenchmarkCompile(b *testing.B) {
	entries, _ := benchEntries(100_000)
	l, err := Parse(entries)
	if err != nil {
		b.Fatal(err)
	}
	entries = l.Entries()
	for b.Loop() {
		if _, err := Compile(entries); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkImport reads a file of 100,000 entries in no order.
func BenchmarkImport(b *testing.B) {
	entries, _ := benchEntries(100_000)
	text := strings.Join(entries, "\n")
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := Import(strings.NewReader(text), nil); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBenchEntries(t *testing.T) {
	entries, hits := benchEntries(1000)
	m, err := Compile(entries)
	if err != nil {
		t.Fatal(err)
	}
	if m.Len() != len(entries) {
		t.Errorf("compiled %d entries, want %d", m.Len(), len(entries))
	}
	for i, h := range hits {
		if !m.Contains(h) {
			t.Fatalf("%s (of %s) not matched", h, entries[i])
		}
	}
}
