package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"net/smtp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/nodeproc"
)

// smtpReport is the outcome of the SMTP run.
type smtpReport struct {
	kills, conns, accepted, retried, lost, late, dups int
	median, p99, max                                  time.Duration
	detection                                         []time.Duration
	elapsed                                           time.Duration
}

func (r *smtpReport) print() {
	slices.Sort(r.detection)
	fmt.Printf("\n| SMTP stream | kills | accepted (250) | tries refused or cut, retried | lost | delayed > 10 s | recorded twice | 250 → recorded, median | p99 | max | removal from smtp.<zone>, median |\n")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	fmt.Printf("| %v, %d connections, tuned | %d | %d | %d | %d | %d | %d | %s | %s | %s | %s |\n", r.elapsed.Round(time.Second), r.conns, r.kills, r.accepted, r.retried,
		r.lost, r.late, r.dups, ms(r.median), ms(r.p99), ms(r.max), ms(pct(r.detection, 50)))
}

// smtpFailover streams mail through the cluster while killing nodes.
func smtpFailover(bin string, kills, conns int) (*smtpReport, error) {
	c, err := startCluster(bin, "tuned", "--sensor")
	if err != nil {
		return nil, err
	}
	defer c.stop()
	for _, n := range c.Nodes {
		cl, err := api.NewClient(api.Config{Address: n.Ready.API,
			Username: "admin", Password: nodeproc.AdminPassword, TLSConfig: &tls.Config{InsecureSkipVerify: true}})
		if err != nil {
			return nil, err
		}
		cfg := &api.SMTPIntegration{Enabled: true, Listen: c.Addr(n, "smtp"),
			DestinationDomains: []string{"example.com"}, Clients: []string{"127.0.0.0/8"},
			MaxMessageSize: &api.SizeLimit{Value: 1, Unit: api.MB}}
		if _, _, err := cl.PutSMTP(context.Background(), n.Name, cfg, 0); err != nil {
			return nil, fmt.Errorf("enable SMTP on %s: %w", n.Name, err)
		}
	}
	if err := c.settled("smtp", 60*time.Second); err != nil {
		return nil, err
	}
	log.Printf("smtp: cluster of 3 takes mail; %d kills under a continuous stream", kills)

	var resolvers []string
	for _, n := range c.Nodes {
		resolvers = append(resolvers, c.dnsAddr(n))
	}
	m := &mta{resolvers: resolvers, port: c.Ports["smtp"], accepted: map[string]time.Time{}}
	stop := make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() { m.run(w, stop) })
	}
	go func() { wg.Wait(); close(done) }()
	r := &smtpReport{kills: kills, conns: conns}
	for i := range kills {
		time.Sleep(3 * time.Second)
		victim := c.Nodes[slices.Index(ips, m.last())]
		d, err := c.killAndRestart(victim, "smtp")
		if err != nil {
			close(stop)
			<-done
			return nil, fmt.Errorf("kill %d: %w", i+1, err)
		}
		r.detection = append(r.detection, d)
		log.Printf("smtp: kill %d: %s out of smtp.%s after %v, restarted", i+1, victim.Name, zone, d.Round(time.Millisecond))
	}
	time.Sleep(3 * time.Second)
	close(stop)
	<-done
	r.elapsed = time.Since(start)

	// Every accepted message must be recorded by a central node, once.
	db, err := sqlstore.Open(context.Background(), sqlstore.Options{URL: c.DBURL})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var recorded map[string][]time.Time
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if recorded, err = records(db); err == nil && len(recorded) >= len(m.accepted) {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	var delays []time.Duration
	for from, at := range m.accepted {
		ups := recorded[from]
		if len(ups) == 0 {
			r.lost++
			continue
		}
		if len(ups) > 1 {
			// The try that was cut had reached the spool of the node that
			// died before its 250 was sent; the MTA sent it again.
			r.dups++
		}
		first := slices.MinFunc(ups, func(a, b time.Time) int { return a.Compare(b) })
		d := first.Sub(at)
		if d > 10*time.Second {
			r.late++
		}
		delays = append(delays, d)
	}
	slices.Sort(delays)
	r.accepted, r.retried = len(m.accepted), m.retried
	if len(delays) > 0 {
		r.median, r.p99, r.max = pct(delays, 50), pct(delays, 99), delays[len(delays)-1]
	}
	return r, nil
}

// records returns the upload times of the recorded messages, by envelope sender.
func records(db *sqlstore.Store) (map[string][]time.Time, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string][]time.Time{}
	q := sqlstore.MessageQuery{Limit: sqlstore.MaxPageLimit}
	for {
		page, err := db.ListMessages(ctx, store.AllTenants(), q)
		if err != nil {
			return nil, err
		}
		for _, rec := range page.Messages {
			from := rec.GetEnvelope().GetMailFrom()
			out[from] = append(out[from], rec.GetUploadedAt().AsTime())
		}
		if q.PageToken = page.NextPageToken; q.PageToken == "" {
			return out, nil
		}
	}
}

// mta sends one message after another, as a mail server would: it resolves
// smtp.<zone> through the first DNS server that answers and tries each
// address until one answers 250 to DATA; a message no address took is
// tried again.
type mta struct {
	resolvers []string
	port      int

	mu       sync.Mutex
	lastIP   string
	accepted map[string]time.Time // envelope sender → when the 250 came
	retried  int
}

func (m *mta) last() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastIP
}

// run is one connection's worth of the stream: worker w's messages, one
// after another.
func (m *mta) run(w int, stop <-chan struct{}) {
	for seq := 1; ; {
		select {
		case <-stop:
			return
		default:
		}
		from := fmt.Sprintf("w%d-%06d@example.org", w, seq)
		ok := false
		for _, ip := range lookupA(m.resolve(), "smtp."+zone) {
			err := deliver(net.JoinHostPort(ip, strconv.Itoa(m.port)), from)
			m.mu.Lock()
			if err != nil {
				m.retried++
			} else {
				m.accepted[from] = time.Now()
				m.lastIP = ip
			}
			m.mu.Unlock()
			if ok = err == nil; ok {
				break
			}
		}
		if !ok {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		seq++
		time.Sleep(5 * time.Millisecond)
	}
}

// resolve returns the first DNS server that answers for the zone.
func (m *mta) resolve() string {
	for _, r := range m.resolvers {
		if lookupA(r, "smtp."+zone) != nil {
			return r
		}
	}
	return m.resolvers[0]
}

func deliver(addr, from string) error {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := smtp.NewClient(conn, "smtp.bench")
	if err != nil {
		return err
	}
	if err := c.Hello("client.bench"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt("user@example.com"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: <%s>\r\nTo: <user@example.com>\r\nSubject: failover\r\nMessage-ID: <%s>\r\n\r\nhello\r\n", from, from)
	if err := w.Close(); err != nil {
		return err
	}
	_ = c.Quit()
	return nil
}
