package tests

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/postfix"
	"github.com/ospreysec/osprey/internal/testwait"
)

// The gateway's faults end to end: its next hop (smtp-sink) deferring,
// refusing, or down, with a real Postfix holding the senders' mailboxes
// and, outbound, as the internal server that relays through the gateway.

// sinkRun is an smtp-sink the test stops and starts again on one address:
// a next hop that changes its mind.
type sinkRun struct {
	*smtpSink
	cmd *exec.Cmd
}

// runSink runs smtp-sink on addr with the extra options (such as "-r",
// "RCPT": a 4xx for every RCPT), dumping each message it takes into a
// file of its own in dir; with dir empty it dumps nothing.
func runSink(t *testing.T, addr, dir string, extra ...string) *sinkRun {
	t.Helper()
	bin := requirePeer(t, "smtp-sink")
	args := extra
	if dir != "" {
		args = append(args, "-d", filepath.Join(dir, "%H%M%S."))
	}
	if os.Geteuid() == 0 {
		// smtp-sink refuses to run as root without a user to become, and
		// writes its dumps as that user: into a directory it may enter
		// (the test's temporary directory is root's, mode 0700).
		args = append(args, "-u", "postfix")
		if dir != "" {
			for _, d := range []string{filepath.Dir(dir), dir} {
				if err := os.Chmod(d, 0o777); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	s := &sinkRun{smtpSink: &smtpSink{addr: addr, dir: dir}}
	s.cmd = exec.Command(bin, append(args, addr, "100")...)
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	testwait.For(t, "smtp-sink "+strings.Join(extra, " ")+" listening on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return s
}

// stop kills the sink; its address is free once stop returns.
func (s *sinkRun) stop() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// hop is the next hop at addr (host:port).
func hop(t *testing.T, addr string) api.NextHop {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return api.NextHop{Host: host, Port: uint32(port)}
}

// inboundGateway is an inbound gateway on listen for the local domains,
// each delivered to the next hop beside it ("example.com", "127.0.0.1:2525",
// ...), retrying after 10 to 20 s.
func inboundGateway(t *testing.T, listen string, domainHops ...string) *api.SMTPIntegration {
	t.Helper()
	var domains []api.LocalDomain
	for i := 0; i+1 < len(domainHops); i += 2 {
		domains = append(domains, api.LocalDomain{Domain: domainHops[i], Hosts: []api.NextHop{hop(t, domainHops[i+1])}})
	}
	return &api.SMTPIntegration{
		Enabled:        true,
		Mode:           api.SMTPInbound,
		MaxMessageSize: &api.SizeLimit{Value: 1, Unit: api.MB},
		Gateway: &api.SMTPGateway{
			Inbound:      &api.GatewayListener{Listen: listen},
			LocalDomains: domains,
			HeloName:     "gw.example.com",
			Queue:        &api.DeliveryQueueSettings{MinBackoffSeconds: 10, MaxBackoffSeconds: 20},
		},
	}
}

// sendSubject sends a message with subject to bob@example.com from
// alice@partner.test through the gateway's listener.
func sendSubject(t *testing.T, listen, subject string) {
	t.Helper()
	msg := "From: alice@partner.test\r\nTo: bob@example.com\r\nSubject: " + subject + "\r\n\r\nhello\r\n"
	if err := smtpSend(listen, "partner.test", "alice@partner.test", "bob@example.com", false, msg); err != nil {
		t.Fatalf("send %q: %v", subject, err)
	}
}

// subjects returns the Subject of each message the sink took, in the
// order of its dump files' modification times (the order of arrival).
func (s *smtpSink) subjects(t *testing.T) []string {
	t.Helper()
	files, err := os.ReadDir(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	type dump struct {
		at      time.Time
		subject string
	}
	var dumps []dump
	for _, f := range files {
		info, err := f.Info()
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(s.dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(b), "\nSubject: ")
		subject, _, _ := strings.Cut(rest, "\n")
		dumps = append(dumps, dump{info.ModTime(), strings.TrimRight(subject, "\r")})
	}
	slices.SortStableFunc(dumps, func(a, b dump) int { return a.at.Compare(b.at) })
	out := make([]string, len(dumps))
	for i, d := range dumps {
		out[i] = d.subject
	}
	return out
}

// wantSubjects checks that got holds each of want exactly once.
func wantSubjects(t *testing.T, got []string, want []string) {
	t.Helper()
	a, b := slices.Clone(got), slices.Clone(want)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Errorf("the next hop took %q, want each of %q once", got, want)
	}
}

// TestGatewayNextHopDefersThenAccepts: the internal server answers 4xx to
// every RCPT; the gateway's messages wait in its queue as deferred; once
// the server takes mail again (restarted on its address without the
// rejection) each is delivered once, at its retry.
func TestGatewayNextHopDefersThenAccepts(t *testing.T) {
	next := loopbackPort(t)
	soft := runSink(t, next, "", "-r", "RCPT")
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	listen := loopbackPort(t)
	d.enableSMTP(t, inboundGateway(t, listen, "example.com", next))

	const n = 5
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("deferred %d", i))
		sendSubject(t, listen, want[i])
	}
	waitSensor(t, d.api, "dev", fmt.Sprintf("%d recipients deferred after a 4xx", n), func(s *api.Sensor) bool {
		return s.Counters["queue_deferred"] == n
	})

	soft.stop()
	sink := runSink(t, next, t.TempDir())
	testwait.For(t, fmt.Sprintf("%d messages delivered after their retry", n), func() bool {
		return len(sink.messages(t)) >= n
	})
	waitSensor(t, d.api, "dev", "an empty queue", func(s *api.Sensor) bool { return s.Counters["queue_messages"] == 0 })
	wantSubjects(t, sink.subjects(t), want)
	for _, m := range sink.messages(t) {
		if !strings.Contains(m, "X-Osprey-Verdict: clean\n") {
			t.Errorf("delivered without its verdict:\n%s", m)
		}
	}
}

// TestGatewayNextHopDownThenBack: nothing listens on the internal server's
// address; the gateway takes every message (250) and keeps it; once a
// server listens there, each is delivered once.
func TestGatewayNextHopDownThenBack(t *testing.T) {
	next := loopbackPort(t)
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	listen := loopbackPort(t)
	cfg := inboundGateway(t, listen, "example.com", next)
	// One delivery at a time, so that the order of arrival shows the
	// order in which the queue tried them.
	cfg.Gateway.Queue.DestinationConcurrency = 1
	d.enableSMTP(t, cfg)

	const n = 10
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("while down %02d", i))
		sendSubject(t, listen, want[i])
	}
	// Deferred: tried and refused at connect (or held with its
	// destination after the first such failure).
	waitSensor(t, d.api, "dev", fmt.Sprintf("%d recipients deferred while the next hop is down", n), func(s *api.Sensor) bool {
		return s.Counters["queue_deferred"] == n
	})

	sink := runSink(t, next, t.TempDir())
	testwait.For(t, fmt.Sprintf("%d messages delivered once the next hop is up", n), func() bool {
		return len(sink.messages(t)) >= n
	})
	waitSensor(t, d.api, "dev", "an empty queue", func(s *api.Sensor) bool { return s.Counters["queue_messages"] == 0 })
	got := sink.subjects(t)
	wantSubjects(t, got, want)
	t.Logf("order of arrival at the next hop: %q", got)
}

// startMailboxPostfix runs a private Postfix that holds the mailboxes of
// domain: every address of it is stored by virtual(8) into one Maildir,
// whose new/ directory it returns with Postfix's SMTP address.
func startMailboxPostfix(t *testing.T, domain string) (addr, maildir string) {
	t.Helper()
	requirePeer(t, "postfix")
	if os.Geteuid() != 0 {
		if os.Getenv("OSPREY_REQUIRE_PEERS") == "1" {
			t.Fatal("a private Postfix instance needs root here (its daemons drop to the postfix user)")
		}
		t.Skip("a private Postfix instance needs root here (its daemons drop to the postfix user)")
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	gid, _ := strconv.Atoi(pf.Gid)
	base := filepath.Join(t.TempDir(), "mail")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(base, uid, gid); err != nil {
		t.Fatal(err)
	}
	in, err := postfix.StartWith(t.TempDir(), loopbackPort(t), map[string]string{
		"virtual_mailbox_domains": domain,
		"virtual_mailbox_base":    base,
		"virtual_mailbox_maps":    "static:mailbox/", // a trailing / means Maildir
		"virtual_uid_maps":        "static:" + pf.Uid,
		"virtual_gid_maps":        "static:" + pf.Gid,
	}, "virtual   unix  - n n - - virtual")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Stop()
		if t.Failed() {
			t.Logf("postfix log:\n%s", in.Log())
		}
	})
	return in.Addr, filepath.Join(base, "mailbox", "new")
}

// mailbox returns the messages in a Maildir's new/ directory.
func mailbox(t *testing.T, dir string) []string {
	t.Helper()
	files, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // no mail yet
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// dsnParts reads a delivery status notification (RFC 3464): its
// message/delivery-status part and the header section of the original
// message (text/rfc822-headers).
func dsnParts(t *testing.T, raw string) (status, original string) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("read the notice: %v\n%s", err, raw)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("the notice is %q (%v), want multipart/report; report-type=delivery-status:\n%s", m.Header.Get("Content-Type"), err, raw)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return status, original
		}
		if err != nil {
			t.Fatalf("read the notice's parts: %v\n%s", err, raw)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "message/delivery-status":
			status = string(b)
		case "text/rfc822-headers":
			original = string(b)
		}
	}
}

// queueSamples sums the samples of a metric whose labels include label
// (such as `result="bounced"`; "" for all), from the node's /metrics.
func queueSamples(t *testing.T, base, metric, label string) float64 {
	t.Helper()
	samples, _ := scrape(t, base)
	var sum float64
	for k, v := range samples {
		if (k == metric || strings.HasPrefix(k, metric+"{")) && strings.Contains(k, label) {
			sum += v
		}
	}
	return sum
}

// TestGatewayBounceNotifiesSender: the internal server refuses the
// recipient for good (5xx); the gateway sends the sender a failure notice
// (RFC 3464), which reaches the sender's mailbox on a real Postfix (the
// sender's domain is a local domain of the gateway, its host that
// Postfix), with the original header section and the recipient's 5.x.x
// status. A message from the null sender bounces without a notice.
func TestGatewayBounceNotifiesSender(t *testing.T) {
	next := loopbackPort(t)
	runSink(t, next, "", "-f", "RCPT")
	pfAddr, maildir := startMailboxPostfix(t, "partner.test")
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	listen := loopbackPort(t)
	d.enableSMTP(t, inboundGateway(t, listen, "example.com", next, "partner.test", pfAddr))

	sendSubject(t, listen, "refused for good")
	var notices []string
	testwait.For(t, "a failure notice in alice@partner.test's mailbox", func() bool {
		notices = mailbox(t, maildir)
		return len(notices) > 0
	})
	status, original := dsnParts(t, notices[0])
	if !strings.Contains(original, "Subject: refused for good") || !strings.Contains(original, "From: alice@partner.test") {
		t.Errorf("the notice's original header section:\n%s\nwant the message's", original)
	}
	if !regexp.MustCompile(`(?im)^Final-Recipient: rfc822; ?bob@example\.com\r?$`).MatchString(status) ||
		!regexp.MustCompile(`(?im)^Action: failed\r?$`).MatchString(status) ||
		!regexp.MustCompile(`(?im)^Status: 5\.\d{1,3}\.\d{1,3}\r?$`).MatchString(status) {
		t.Errorf("the notice's delivery status:\n%s\nwant bob@example.com failed with a 5.x.x status", status)
	}
	if !strings.Contains(notices[0], "\nReturn-Path: <>") && !strings.HasPrefix(notices[0], "Return-Path: <>") {
		t.Errorf("the notice is not from the null sender:\n%s", notices[0])
	}

	// From the null sender: bounced, no notice.
	base := apiLine.FindStringSubmatch(d.stdout.String())[1]
	msg := "From: MAILER-DAEMON@partner.test\r\nTo: bob@example.com\r\nSubject: a notice of our own\r\n\r\nx\r\n"
	if err := smtpSend(listen, "partner.test", "", "bob@example.com", false, msg); err != nil {
		t.Fatalf("send from the null sender: %v", err)
	}
	testwait.For(t, "the null sender's message bounced and dropped", func() bool {
		return queueSamples(t, base, "osprey_sensor_queue_delivery_attempts_total", `result="bounced"`) == 2 &&
			queueSamples(t, base, "osprey_sensor_queue_depth", `state="messages"`) == 0
	})
	if n := queueSamples(t, base, "osprey_sensor_queue_dsns_total", `kind="failure"`); n != 1 {
		t.Errorf("%v failure notices queued, want 1 (none for the null sender)", n)
	}
	if n := len(mailbox(t, maildir)); n != 1 {
		t.Errorf("%d messages in alice's mailbox, want the one notice", n)
	}
}

// TestGatewayOutbound: a company's Postfix relays its outbound mail
// through the gateway (its relayhost), whose outbound acceptance list
// (set with osprey ctl) holds only 127.0.0.1, and which relays to its
// relay host (smtp-sink): mail submitted to Postfix arrives there after its
// scan, with the verdict. A client from another address (127.0.0.2) is
// refused at connect.
func TestGatewayOutbound(t *testing.T) {
	sink := startSMTPSink(t)
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	outbound := loopbackPort(t)
	ctl := []string{"OSPREY_ADDRESS=" + d.base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword}
	if r := runOsprey(t, ctl, "ctl", "acceptance", "add", "dev", "outbound", "127.0.0.1"); r.code != 0 {
		t.Fatalf("ctl acceptance add: exit status %d: %s", r.code, r.stderr)
	}
	d.enableSMTP(t, &api.SMTPIntegration{
		Enabled:        true,
		Mode:           api.SMTPOutbound,
		MaxMessageSize: &api.SizeLimit{Value: 1, Unit: api.MB},
		Gateway: &api.SMTPGateway{
			Outbound:   &api.GatewayListener{Listen: outbound},
			RelayHosts: []api.NextHop{hop(t, sink.addr)},
			HeloName:   "gw.example.com",
		},
	})
	pf := startPostfix(t, outbound)

	c, err := smtp.Dial(pf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, step := range []func() error{
		func() error { return c.Hello("client.example.com") },
		func() error { return c.Mail("carol@example.com") },
		func() error { return c.Rcpt("dave@faraway.test") },
	} {
		if err := step(); err != nil {
			t.Fatalf("submit to postfix: %v", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(w, "From: carol@example.com\r\nTo: dave@faraway.test\r\nSubject: outbound through the gateway\r\n\r\nhello\r\n")
	if err := w.Close(); err != nil {
		t.Fatalf("submit to postfix: %v", err)
	}
	c.Quit()

	var got []string
	testwait.For(t, "the message relayed by Postfix and the gateway to the relay host", func() bool {
		got = sink.messages(t)
		return len(got) > 0
	})
	m := got[0]
	if !strings.Contains(m, "X-Rcpt-Args: <dave@faraway.test>") || !strings.Contains(m, "Subject: outbound through the gateway\n") ||
		!strings.Contains(m, "X-Osprey-Verdict: clean\n") || !strings.Contains(m, "by relay.test (Postfix)") {
		t.Errorf("the relay host took:\n%s\nwant the message for dave@faraway.test, through Postfix, with its verdict", m)
	}

	// 127.0.0.2 is not in the outbound acceptance list: refused at connect.
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 10 * time.Second}
	conn, err := dialer.DialContext(t.Context(), "tcp", outbound)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	greeting, err := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(greeting, "554 ") {
		t.Errorf("a client from 127.0.0.2 was greeted %q (%v), want 554", greeting, err)
	}
	if n := len(sink.messages(t)); n != 1 {
		t.Errorf("the relay host took %d messages, want 1", n)
	}
}
