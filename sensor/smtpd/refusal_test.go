package smtpd

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// refusalLog keeps what the server reports.
type refusalLog struct {
	mu  sync.Mutex
	got []Refusal
}

func (l *refusalLog) Refused(r Refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, r)
}

func (l *refusalLog) all() []Refusal {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Refusal(nil), l.got...)
}

func withRefusals(l RefusalSink) serverOption { return func(s *Server) { s.opts.Refusals = l } }

// TestRefusalsReported: every refusal reaches the sink with the client,
// the reason, and what the transaction had said: the sender, the refused
// recipient, the size asked.
func TestRefusalsReported(t *testing.T) {
	log := &refusalLog{}
	s := startServer(t, testConfig(), withRefusals(log))
	c := dial(t, s.Addr())
	c.expect("220 ")
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<big@sender.test> SIZE=99999999", "552 5.3.4")
	c.cmd("MAIL FROM:<someone@sender.test>", "250 ")
	c.cmd("RCPT TO:<user@elsewhere.test>", "550 5.7.1")
	c.cmd("BOGUS", "500 5.5.2")
	c.cmd("QUIT", "221 ")

	ip := netip.MustParseAddr("127.0.0.1")
	want := []Refusal{
		{Time: testNow, ClientIP: ip, Reason: "message_too_large", MailFrom: "big@sender.test", Detail: "size=99999999"},
		{Time: testNow, ClientIP: ip, Reason: "recipient_refused", MailFrom: "someone@sender.test", Rcpt: "user@elsewhere.test"},
		{Time: testNow, ClientIP: ip, Reason: "protocol_error", MailFrom: "someone@sender.test"},
	}
	if d := cmp.Diff(want, log.all(), cmpopts.IgnoreFields(Refusal{}, "Detail"), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("refusals (-want +got):\n%s", d)
	}
	if got := log.all(); len(got) == 3 && got[0].Detail != "size=99999999" {
		t.Errorf("size refusal's detail: %q", got[0].Detail)
	}

	// A client outside the clients list is refused at connect.
	cfg := testConfig()
	cfg.Clients = []string{"192.0.2.0/24"}
	log2 := &refusalLog{}
	s2 := startServer(t, cfg, withRefusals(log2))
	c2 := dial(t, s2.Addr())
	c2.expect("554 ")
	if got := log2.all(); len(got) != 1 || got[0].Reason != "client_refused" || got[0].ClientIP != ip {
		t.Errorf("refusal at connect: %+v", got)
	}
}
