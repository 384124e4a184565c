// Command mailclient sends mail the way a mail server does, for the compose
// cluster in deploy/compose and its fault tests: it resolves the cluster's
// SMTP name (smtp.<zone>) through the cluster's own DNS servers, or through
// the system resolver, tries each address in turn until one answers 250 to
// DATA, and keeps a message no address took to try again, as an MTA's queue
// does.
//
// Every message has a Message-ID of its own; every try of it has an
// envelope sender of its own (<run>-<seq>-<try>@<domain>), so a reader of
// the central nodes' message records can tell a try that was answered 250
// (which must be recorded exactly once) from one that was cut (which may be
// recorded too: its data reached a spool before the answer was lost).
//
// It prints one JSON object per try on stdout ({"event":"accepted"|"failed",
// ...}) and a summary ({"event":"done",...}) when it has sent -count
// messages or when it gets SIGTERM or SIGINT; a try in progress is finished
// first, never cut.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/smtp"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// options are the command's flags.
type options struct {
	server     string
	port       int
	dnsServers []string
	to         string
	domain     string
	run        string
	count      int
	conns      int
	interval   time.Duration
	helo       string
}

// event is one line of output.
type event struct {
	Event     string    `json:"event"`
	MessageID string    `json:"message_id,omitempty"`
	From      string    `json:"from,omitempty"`
	Addr      string    `json:"addr,omitempty"`
	At        time.Time `json:"at,omitzero"`
	Error     string    `json:"error,omitempty"`
	Accepted  int       `json:"accepted,omitempty"`
	Failed    int       `json:"failed,omitempty"`
	Pending   int       `json:"pending,omitempty"`
}

func main() {
	var o options
	var dnsList string
	flag.StringVar(&o.server, "server", "smtp.osprey.internal", "name (or IP) of the SMTP servers")
	flag.IntVar(&o.port, "port", 25, "SMTP port")
	flag.StringVar(&dnsList, "dns", "", "DNS servers (host:port, comma-separated) asked in turn for the name's A records; empty: the system resolver")
	flag.StringVar(&o.to, "to", "user@example.com", "recipient")
	flag.StringVar(&o.domain, "from-domain", "example.org", "domain of the envelope senders")
	flag.StringVar(&o.run, "run", "", "prefix of senders and Message-IDs (default: a time stamp)")
	flag.IntVar(&o.count, "count", 1, "messages to send; 0: until SIGTERM")
	flag.IntVar(&o.conns, "conns", 1, "messages sent at once")
	flag.DurationVar(&o.interval, "interval", 20*time.Millisecond, "pause between two messages of one connection")
	flag.StringVar(&o.helo, "helo", "mailclient.test", "EHLO name")
	flag.Parse()
	for _, s := range strings.Split(dnsList, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if _, _, err := net.SplitHostPort(s); err != nil {
				s = net.JoinHostPort(s, "53")
			}
			o.dnsServers = append(o.dnsServers, s)
		}
	}
	if o.run == "" {
		o.run = "r" + strconv.FormatInt(time.Now().UnixMilli(), 36)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum := send(ctx, o, json.NewEncoder(os.Stdout))
	if o.count > 0 && sum.Accepted < o.count {
		os.Exit(1)
	}
}

// sender sends the messages and writes the events.
type sender struct {
	o   options
	mu  sync.Mutex
	out *json.Encoder
	sum event
}

func (s *sender) emit(e event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Event {
	case "accepted":
		s.sum.Accepted++
	case "failed":
		s.sum.Failed++
	}
	s.out.Encode(e)
}

func send(ctx context.Context, o options, out *json.Encoder) event {
	s := &sender{o: o, out: out, sum: event{Event: "done"}}
	next := make(chan int)
	go func() {
		defer close(next)
		for seq := 1; o.count == 0 || seq <= o.count; seq++ {
			select {
			case next <- seq:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	var pending int
	var pmu sync.Mutex
	for range max(o.conns, 1) {
		wg.Go(func() {
			for seq := range next {
				if !s.message(ctx, seq) {
					pmu.Lock()
					pending++
					pmu.Unlock()
				}
				select {
				case <-time.After(o.interval):
				case <-ctx.Done():
				}
			}
		})
	}
	wg.Wait()
	s.sum.Pending = pending
	s.emit(s.sum)
	return s.sum
}

// message sends message seq until an address answers 250, or ctx ends; it
// reports whether the message was accepted.
func (s *sender) message(ctx context.Context, seq int) bool {
	msgID := fmt.Sprintf("%s-%06d@mailclient.test", s.o.run, seq)
	for try := 1; ; try++ {
		from := fmt.Sprintf("%s-%06d-%d@%s", s.o.run, seq, try, s.o.domain)
		addrs, err := s.resolve(ctx)
		if err != nil {
			s.emit(event{Event: "failed", MessageID: msgID, From: from, At: time.Now(), Error: "resolve: " + err.Error()})
		}
		for i, a := range addrs {
			if i > 0 {
				// Another address: a new try, with a sender of its own.
				try++
				from = fmt.Sprintf("%s-%06d-%d@%s", s.o.run, seq, try, s.o.domain)
			}
			addr := net.JoinHostPort(a, strconv.Itoa(s.o.port))
			if err := deliver(addr, s.o.helo, from, s.o.to, msgID); err != nil {
				s.emit(event{Event: "failed", MessageID: msgID, From: from, Addr: addr, At: time.Now(), Error: err.Error()})
				continue
			}
			s.emit(event{Event: "accepted", MessageID: msgID, From: from, Addr: addr, At: time.Now()})
			return true
		}
		// No address took it: queued, tried again a moment later.
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return false
		}
	}
}

// resolve returns the addresses of the server name, in the order of the answer.
func (s *sender) resolve(ctx context.Context) ([]string, error) {
	if ip, err := netip.ParseAddr(s.o.server); err == nil {
		return []string{ip.String()}, nil
	}
	if len(s.o.dnsServers) == 0 {
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return net.DefaultResolver.LookupHost(rctx, s.o.server)
	}
	var errs []error
	for _, srv := range s.o.dnsServers {
		ips, err := lookupA(srv, s.o.server)
		if err == nil {
			return ips, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", srv, err))
	}
	return nil, errors.Join(errs...)
}

// lookupA asks server for name's A records; an answer other than NOERROR
// with records is an error (a resolver then asks the next server).
func lookupA(server, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	c := &dns.Client{Timeout: 700 * time.Millisecond}
	resp, _, err := c.Exchange(m, server)
	if err != nil {
		return nil, err
	}
	if resp.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("rcode %s", dns.RcodeToString[resp.Rcode])
	}
	var ips []string
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			ips = append(ips, a.A.String())
		}
	}
	if len(ips) == 0 {
		return nil, errors.New("no A records")
	}
	return ips, nil
}

// deliver sends one message to addr; nil means the server answered 250 to DATA.
func deliver(addr, helo, from, to, msgID string) error {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	c, err := smtp.NewClient(conn, helo)
	if err != nil {
		return err
	}
	if err := c.Hello(helo); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "From: <%s>\r\nTo: <%s>\r\nSubject: osprey mailclient %s\r\nDate: %s\r\nMessage-ID: <%s>\r\n\r\nA test message from the osprey mail client.\r\n",
		from, to, msgID, time.Now().Format(time.RFC1123Z), msgID)
	if err := w.Close(); err != nil { // the answer to DATA
		return err
	}
	_ = c.Quit()
	return nil
}
