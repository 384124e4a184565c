// Package dnstest is an authoritative DNS server for tests and benchmarks
// (github.com/miekg/dns on a loopback port, UDP and TCP on the same port):
// it answers from the records it is given, NXDOMAIN or NODATA with an SOA
// for the rest, and can be told to fail or to stop answering, so that a
// test sees every outcome a resolver has to handle.
package dnstest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// NegativeTTL is the negative TTL of the SOA in NXDOMAIN and NODATA
// answers, unless SetNegativeTTL changes it.
const NegativeTTL = 60

// Server answers DNS queries from its records.
type Server struct {
	// Addr is the host:port the server answers on, over UDP and TCP.
	Addr string

	udp, tcp *dns.Server

	mu       sync.Mutex
	records  map[string][]dns.RR // by canonical owner name
	queries  map[string]int      // by "TYPE name."
	servfail map[string]bool     // names answered SERVFAIL
	silent   bool
	negTTL   uint32 // 0: no SOA in negative answers
}

// Start starts a server on a loopback port; Close stops it.
func Start() (*Server, error) {
	s := &Server{records: map[string][]dns.RR{}, queries: map[string]int{}, servfail: map[string]bool{}, negTTL: NegativeTTL}
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			lastErr = err
			continue // the port is taken for TCP: another one
		}
		s.Addr = pc.LocalAddr().String()
		h := dns.HandlerFunc(s.serve)
		s.udp = &dns.Server{PacketConn: pc, Handler: h}
		s.tcp = &dns.Server{Listener: ln, Handler: h}
		started := make(chan struct{}, 2)
		s.udp.NotifyStartedFunc = func() { started <- struct{}{} }
		s.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
		go func() { _ = s.udp.ActivateAndServe() }()
		go func() { _ = s.tcp.ActivateAndServe() }()
		<-started
		<-started
		return s, nil
	}
	return nil, fmt.Errorf("no loopback port free for UDP and TCP: %w", lastErr)
}

// New starts a server that stops when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Close stops the server.
func (s *Server) Close() error {
	return errors.Join(s.udp.Shutdown(), s.tcp.Shutdown())
}

// Add adds records in zone-file syntax ("example.com. 300 IN TXT \"v=spf1 -all\"").
func (s *Server) Add(records ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, text := range records {
		rr, err := dns.NewRR(text)
		if err != nil {
			return fmt.Errorf("record %q: %w", text, err)
		}
		if rr == nil {
			return fmt.Errorf("record %q: empty", text)
		}
		name := dns.CanonicalName(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
	}
	return nil
}

// MustAdd is Add for tests: it fails the test on a bad record.
func (s *Server) MustAdd(t testing.TB, records ...string) {
	t.Helper()
	if err := s.Add(records...); err != nil {
		t.Fatal(err)
	}
}

// TXT adds a TXT record of name with ttl, its text split into strings of
// 255 bytes as a zone file would have it.
func (s *Server) TXT(name string, ttl uint32, text string) {
	var parts []string
	for len(text) > 255 {
		parts = append(parts, text[:255])
		text = text[255:]
	}
	parts = append(parts, text)
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: parts}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := dns.CanonicalName(name)
	s.records[n] = append(s.records[n], rr)
}

// Remove removes every record of name.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, dns.CanonicalName(name))
}

// ServFail makes the server answer SERVFAIL for name (or stop doing so).
func (s *Server) ServFail(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail[dns.CanonicalName(name)] = on
}

// Silent makes the server read queries and answer none (or answer again).
func (s *Server) Silent(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = on
}

// SetNegativeTTL sets the negative TTL of the SOA that NXDOMAIN and NODATA
// answers carry; 0 leaves the SOA out.
func (s *Server) SetNegativeTTL(ttl uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.negTTL = ttl
}

// Queries returns how many queries of the type ("TXT", "A", ...) for name
// the server received.
func (s *Server) Queries(qtype, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[strings.ToUpper(qtype)+" "+dns.CanonicalName(name)]
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	s.mu.Lock()
	s.queries[dns.TypeToString[q.Qtype]+" "+name]++
	silent, fail, negTTL := s.silent, s.servfail[name], s.negTTL
	rrs, exists := s.records[name]
	var answer []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype {
			answer = append(answer, dns.Copy(rr))
		}
	}
	s.mu.Unlock()
	if silent {
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	switch {
	case fail:
		m.Rcode = dns.RcodeServerFailure
	case len(answer) > 0:
		m.Answer = answer
	default:
		if !exists {
			m.Rcode = dns.RcodeNameError
		}
		if negTTL > 0 {
			m.Ns = []dns.RR{&dns.SOA{
				Hdr: dns.RR_Header{Name: zoneOf(name), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: negTTL},
				Ns:  "ns.test.", Mbox: "hostmaster.test.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: negTTL,
			}}
		}
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if o := req.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

// zoneOf is the owner of the SOA of a negative answer: the name's last two
// labels.
func zoneOf(name string) string {
	labels := dns.SplitDomainName(name)
	if len(labels) <= 2 {
		return name
	}
	return dns.Fqdn(strings.Join(labels[len(labels)-2:], "."))
}
