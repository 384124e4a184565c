// Command rcptverify measures recipient verification on a gateway's
// inbound listener: the cache hit rate of its callouts and the latency a
// RCPT gains from them, against a real Postfix that knows its users.
//
// It starts a private Postfix (internal/postfix, root needed) as the mail
// server of example.com with -users users in a relay recipient table, and
// in this process the sensor's SMTP server (sensor/smtpd) as the inbound
// listener of a gateway for example.com, its spool in a temporary
// directory, recipient verification (sensor/rcptverify) probing Postfix.
// A client on 127.0.0.2 (not a trusted network) sends EHLO, MAIL and then
// RCPTs, never DATA, and times each RCPT from the command written to the
// reply read. Each round runs four modes, in an order that rotates from
// round to round so that the machine's load falls on each alike:
//
//   - off: verification disabled, the reference;
//   - cold: a new, empty cache; -rcpts distinct recipients (a share
//     -unknown of them not in Postfix's table), each probed;
//   - warm: the same recipients again, on the cache cold filled;
//   - zipf: a new, empty cache; -rcpts recipients drawn from the users
//     by a Zipf law (s=1.1; a few users get most mail), with the same
//     share of unknown ones, so that the cache's hit rate is what such
//     traffic gives it.
//
// It reports, per mode, the medians over the rounds of the hit rate (the
// lookups answered from the cache), of the RCPT latency's p50 and p99,
// and of the p50 added to off's. The machine's load average is printed
// before and after.
//
// Usage (as root, with postfix installed): go run ./bench/rcptverify -rounds 5
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ospreysec/osprey/internal/benchproc"
	"github.com/ospreysec/osprey/internal/postfix"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/delivery"
	"github.com/ospreysec/osprey/sensor/rcptverify"
	"github.com/ospreysec/osprey/sensor/smtpd"
	"github.com/ospreysec/osprey/sensor/spool"
)

func main() {
	rounds := flag.Int("rounds", 5, "rounds of the four modes")
	users := flag.Int("users", 1000, "users Postfix knows")
	rcpts := flag.Int("rcpts", 1000, "RCPTs per mode and round")
	unknown := flag.Float64("unknown", 0.2, "share of recipients Postfix does not know")
	flag.Parse()
	ctx := context.Background()
	log.Printf("load average before: %s", loadavg())

	dir, err := os.MkdirTemp("", "rcptverify-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	route, stop, err := startPostfix(dir, *users)
	if err != nil {
		log.Fatal(err)
	}
	defer stop()

	sp, err := spool.Open(spool.Options{Dir: filepath.Join(dir, "spool")})
	if err != nil {
		log.Fatal(err)
	}
	defer sp.Close()
	var current atomic.Pointer[rcptverify.Verifier]
	srv := smtpd.New(smtpd.Options{
		Spool:    sp,
		Hostname: "gw.bench.test",
		Role:     smtpd.Role{Direction: ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND},
		Verifier: verifierFunc(func(ctx context.Context, rcpt string) rcptverify.Result { return current.Load().Verify(ctx, rcpt) }),
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx) }()
	defer func() {
		cancel()
		<-done
	}()
	apply := func(verify bool) {
		if err := srv.Apply(ctx, gatewayConfig(route, verify)); err != nil {
			log.Fatal(err)
		}
	}
	apply(false)
	addr := srv.Addr().String()

	modes := []string{"off", "cold", "warm", "zipf"}
	res := map[string][]stats{}
	for r := range *rounds {
		set := recipients(r, *rcpts, *users, *unknown, nil)
		zipf := recipients(r, *rcpts, *users, *unknown, rand.NewZipf(rand.New(rand.NewPCG(uint64(r), 7)), 1.1, 1, uint64(*users-1)))
		var cold *rcptverify.Verifier
		order := append(slices.Clone(modes[r%len(modes):]), modes[:r%len(modes)]...)
		// warm needs cold's cache: it runs right after cold.
		order = slices.DeleteFunc(order, func(m string) bool { return m == "warm" })
		i := slices.Index(order, "cold")
		order = slices.Insert(order, i+1, "warm")
		for _, mode := range order {
			var v *rcptverify.Verifier
			list := set
			switch mode {
			case "cold":
				v = openVerifier(ctx, filepath.Join(dir, fmt.Sprintf("cache-%d", r)), route)
				cold = v
			case "warm":
				v = cold
			case "zipf":
				v = openVerifier(ctx, filepath.Join(dir, fmt.Sprintf("zipf-%d", r)), route)
				list = zipf
			}
			current.Store(v)
			apply(v != nil)
			var before rcptverify.Stats
			if v != nil {
				before = v.Stats()
			}
			lat, err := send(addr, list)
			if err != nil {
				log.Fatalf("round %d, %s: %v", r, mode, err)
			}
			st := stats{p50: pct(lat, 0.5), p99: pct(lat, 0.99)}
			if v != nil {
				after := v.Stats()
				hits := (after.CacheGood + after.CacheBad) - (before.CacheGood + before.CacheBad)
				all := hits + (after.ProbeGood + after.ProbeBad + after.TempFail) - (before.ProbeGood + before.ProbeBad + before.TempFail)
				if t := after.TempFail - before.TempFail; t > 0 {
					log.Fatalf("round %d, %s: %d lookups failed for now: Postfix did not answer", r, mode, t)
				}
				st.hitRate = float64(hits) / float64(max(all, 1))
			}
			res[mode] = append(res[mode], st)
			log.Printf("round %d %-4s: p50 %s p99 %s hits %.0f %%", r, mode, ms(st.p50), ms(st.p99), 100*st.hitRate)
			if mode == "warm" || mode == "zipf" {
				closeVerifier(v)
			}
		}
	}

	off := median(res["off"], func(s stats) float64 { return s.p50.Seconds() })
	fmt.Printf("| mode | cache hit rate | RCPT p50 | RCPT p99 | p50 added to off |\n|---|---:|---:|---:|---:|\n")
	for _, m := range modes {
		p50 := median(res[m], func(s stats) float64 { return s.p50.Seconds() })
		p99 := median(res[m], func(s stats) float64 { return s.p99.Seconds() })
		hit := median(res[m], func(s stats) float64 { return s.hitRate })
		added := "—"
		if m != "off" {
			added = ms(seconds(p50 - off))
		}
		rate := "—"
		if m != "off" {
			rate = fmt.Sprintf("%.0f %%", 100*hit)
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", m, rate, ms(seconds(p50)), ms(seconds(p99)), added)
	}
	log.Printf("load average after: %s", loadavg())
}

// stats is one mode's round.
type stats struct {
	p50, p99 time.Duration
	hitRate  float64
}

type verifierFunc func(ctx context.Context, rcpt string) rcptverify.Result

func (f verifierFunc) Verify(ctx context.Context, rcpt string) rcptverify.Result { return f(ctx, rcpt) }

// startPostfix runs Postfix as the mail server of example.com with users
// user0..user(n-1), and returns the route to it.
func startPostfix(dir string, n int) (delivery.Config, func(), error) {
	known := make([]string, n)
	for i := range known {
		known[i] = fmt.Sprintf("user%d@example.com", i)
	}
	pf, err := postfix.StartRecipients(dir, []string{"example.com"}, known)
	if err != nil {
		return delivery.Config{}, nil, err
	}
	_, p, _ := net.SplitHostPort(pf.Addr)
	port, _ := strconv.Atoi(p)
	return delivery.Config{HeloName: "gw.bench.test", Routes: []delivery.Route{
		{Domain: "example.com", Hosts: []delivery.Host{{Host: "127.0.0.1", Port: uint16(port)}}},
	}}, pf.Stop, nil
}

func gatewayConfig(route delivery.Config, verify bool) *ospreyv1.SmtpIntegration {
	h := route.Routes[0].Hosts[0]
	return &ospreyv1.SmtpIntegration{
		Enabled:        true,
		Mode:           ospreyv1.SmtpMode_SMTP_MODE_INBOUND,
		MaxMessageSize: &ospreyv1.SizeLimit{Unlimited: true},
		// A session of perSession RCPTs, up to a fifth unknown (550), stays
		// within both.
		Limits: &ospreyv1.SmtpLimits{MaxRecipients: perSession, MaxErrors: 1000},
		Gateway: &ospreyv1.SmtpGateway{
			Inbound:               &ospreyv1.GatewayListener{Listen: "127.0.0.1:0"},
			LocalDomains:          []*ospreyv1.LocalDomain{{Domain: "example.com", Hosts: []*ospreyv1.NextHop{{Host: h.Host, Port: uint32(h.Port)}}}},
			RecipientVerification: &ospreyv1.RecipientVerification{Enabled: verify},
		},
	}
}

func openVerifier(ctx context.Context, dir string, route delivery.Config) *rcptverify.Verifier {
	v, err := rcptverify.Open(ctx, rcptverify.Options{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	if err := v.Apply(rcptverify.ConfigFrom(nil, route)); err != nil {
		log.Fatal(err)
	}
	return v
}

func closeVerifier(v *rcptverify.Verifier) {
	if err := v.Close(); err != nil {
		log.Printf("close the verifier: %v", err)
	}
}

// recipients returns n recipients of round r: a share unknown of them not
// known to Postfix (distinct), the others users drawn at random, or by
// zipf when it is not nil (then repeats are the point).
func recipients(r, n, users int, unknown float64, zipf *rand.Zipf) []string {
	rng := rand.New(rand.NewPCG(uint64(r), 1))
	out := make([]string, n)
	perm := rng.Perm(users)
	for i := range out {
		switch {
		case rng.Float64() < unknown:
			out[i] = fmt.Sprintf("nobody-%d-%d@example.com", r, i)
		case zipf != nil:
			out[i] = fmt.Sprintf("user%d@example.com", zipf.Uint64())
		default:
			out[i] = fmt.Sprintf("user%d@example.com", perm[i%users])
		}
	}
	return out
}

// perSession bounds the RCPTs of one session.
const perSession = 500

// send sends the recipients from 127.0.0.2, perSession a session, and
// returns the latency of each RCPT.
func send(addr string, rcpts []string) ([]time.Duration, error) {
	var lat []time.Duration
	for chunk := range slices.Chunk(rcpts, perSession) {
		l, err := session(addr, chunk)
		if err != nil {
			return nil, err
		}
		lat = append(lat, l...)
	}
	return lat, nil
}

// session sends rcpts in one session and returns the latency of each RCPT.
func session(addr string, rcpts []string) ([]time.Duration, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	cmd := func(line string) (string, error) {
		if line != "" {
			if _, err := fmt.Fprintf(c, "%s\r\n", line); err != nil {
				return "", err
			}
		}
		for {
			s, err := r.ReadString('\n')
			if err != nil {
				return "", err
			}
			if len(s) < 4 || s[3] != '-' {
				return strings.TrimRight(s, "\r\n"), nil
			}
		}
	}
	expect := func(line, code string) error {
		got, err := cmd(line)
		if err == nil && !strings.HasPrefix(got, code) {
			err = fmt.Errorf("%q: got %q, want %s", line, got, code)
		}
		return err
	}
	for _, step := range [][2]string{{"", "220"}, {"EHLO client.bench.test", "250"}, {"MAIL FROM:<sender@elsewhere.test>", "250"}} {
		if err := expect(step[0], step[1]); err != nil {
			return nil, err
		}
	}
	lat := make([]time.Duration, len(rcpts))
	for i, rcpt := range rcpts {
		t0 := time.Now()
		got, err := cmd("RCPT TO:<" + rcpt + ">")
		lat[i] = time.Since(t0)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(got, "250") && !strings.HasPrefix(got, "550") {
			return nil, fmt.Errorf("RCPT TO:<%s>: %q", rcpt, got)
		}
	}
	return lat, expect("QUIT", "221")
}

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// median is the median of f over the rounds.
func median(ss []stats, f func(stats) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	return benchproc.Median(v)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
