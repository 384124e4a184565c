package main

import (
	"context"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ospreysec/osprey/api"
)

// benchAcceptance compares a gateway's inbound listener taking every client
// with it taking only the clients of an inbound acceptance list of n
// entries (the load tool's 127.0.0.1 among them), rounds interleaved.
func benchAcceptance(o *osprey, sinkAddr string, n, sessions, rounds int, sizeList string, messages int, topology string) {
	ctx := context.Background()
	host, port, _ := net.SplitHostPort(sinkAddr)
	p, _ := strconv.Atoi(port)
	listen := freePort()
	gateway := func(mode api.AcceptanceMode) *api.SMTPIntegration {
		return &api.SMTPIntegration{Enabled: true, Mode: api.SMTPInbound,
			MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB},
			Limits:         &api.SMTPLimits{MaxConnectionsPerClient: 200},
			Gateway: &api.SMTPGateway{
				Inbound:           &api.GatewayListener{Listen: listen},
				LocalDomains:      []api.LocalDomain{{Domain: "example.com", Hosts: []api.NextHop{{Host: host, Port: uint32(p)}}}},
				InboundAcceptance: mode,
			}}
	}
	res, err := o.api.ImportAcceptance(ctx, o.sensorID, api.AcceptanceInbound, strings.NewReader(acceptanceFile(n)), false, 0)
	if err != nil {
		log.Fatal(err)
	}
	if res.Total != n {
		log.Fatalf("the inbound list holds %d entries, want %d", res.Total, n)
	}
	o.waitApplied(res.Version)
	o.apply(gateway(api.AcceptanceAll))
	waitListen(listen)

	all, listed := "inbound, accept all", fmt.Sprintf("inbound, listed (%d entries)", n)
	fmt.Printf("topology %s, smtp-source -s %d, %d rounds each, medians (msg/s accepted with 250) of a gateway's inbound listener\n\n", topology, sessions, rounds)
	fmt.Printf("| message size | messages | %s | %s | listed / all | median of the rounds' listed / all |\n|---:|---:|---:|---:|---:|---:|\n", all, listed)
	for _, f := range strings.Split(sizeList, ",") {
		kb, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || kb <= 0 {
			log.Fatalf("-sizes: %q is not a size in KB", f)
		}
		rates := map[string][]float64{}
		for range rounds {
			for _, mode := range []api.AcceptanceMode{api.AcceptanceAll, api.AcceptanceListed} {
				o.apply(gateway(mode))
				name := all
				if mode == api.AcceptanceListed {
					name = listed
				}
				rates[name] = append(rates[name], drive(listen, sessions, kb<<10, messages))
				o.drained()
			}
		}
		// Each round drives both one after the other: the ratio of a
		// round's pair is less swayed by what else loads the machine.
		var paired []float64
		for i := range rates[all] {
			paired = append(paired, rates[listed][i]/rates[all][i])
		}
		a, l := median(rates[all]), median(rates[listed])
		fmt.Printf("| %d KB | %d | %.0f | %.0f | %.2f | %.2f |\n", kb, messages, a, l, l/a, median(paired))
	}
}

// acceptanceFile is an import file of n entries: 127.0.0.1 (the load
// tool's address) and addresses, /24 prefixes and IPv6 /64 prefixes made up
// the same way every time, outside 127/8.
func acceptanceFile(n int) string {
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[string]bool{"127.0.0.1": true}
	var b strings.Builder
	b.WriteString("127.0.0.1\n")
	for len(seen) < n {
		var e string
		switch len(seen) % 3 {
		case 0:
			e = netip.AddrFrom4([4]byte{byte(1 + rng.UintN(126)), byte(rng.UintN(256)), byte(rng.UintN(256)), byte(rng.UintN(256))}).String()
		case 1:
			e = netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(128 + rng.UintN(96)), byte(rng.UintN(256)), byte(rng.UintN(256)), 0}), 24).String()
		default:
			var a [16]byte
			a[0], a[1] = 0x20, 0x01
			for i := 2; i < 8; i++ {
				a[i] = byte(rng.UintN(256))
			}
			e = netip.PrefixFrom(netip.AddrFrom16(a), 64).String()
		}
		if !seen[e] {
			seen[e] = true
			b.WriteString(e + "\n")
		}
	}
	return b.String()
}
