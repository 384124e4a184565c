package smtpd

import (
	"errors"
	"fmt"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/spool"
)

// capabilities returns the keywords of an EHLO reply, without "Hello".
func capabilities(reply string) []string {
	var caps []string
	for i, line := range strings.Split(reply, "\n") {
		if i > 0 {
			caps = append(caps, line[4:])
		}
	}
	return caps
}

func TestEHLOCapabilities(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*ospreyv1.SmtpIntegration)
		want []string
	}{
		{
			name: "size limit, no TLS",
			cfg:  func(*ospreyv1.SmtpIntegration) {},
			want: []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8", "SIZE 1048576"},
		},
		{
			name: "unlimited advertises no number",
			cfg: func(c *ospreyv1.SmtpIntegration) {
				c.MaxMessageSize = &ospreyv1.SizeLimit{Unlimited: true}
			},
			want: []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8", "SIZE"},
		},
		{
			name: "TLS accepted",
			cfg: func(c *ospreyv1.SmtpIntegration) {
				c.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_ACCEPT}
			},
			want: []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8", "STARTTLS", "SIZE 1048576"},
		},
		{
			name: "TLS required",
			cfg: func(c *ospreyv1.SmtpIntegration) {
				c.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_REQUIRE}
				c.MaxMessageSize = &ospreyv1.SizeLimit{Value: 25, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB}
			},
			want: []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING", "SMTPUTF8", "STARTTLS", "SIZE 26214400"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			tt.cfg(cfg)
			s := startServer(t, cfg)
			c := dial(t, s.Addr())
			if got := c.expect("220 "); got != "220 sensor.test ESMTP Service Ready" {
				t.Errorf("greeting %q", got)
			}
			reply := c.cmd("EHLO client.test", "250-sensor.test\n")
			if diff := cmp.Diff(tt.want, capabilities(reply)); diff != "" {
				t.Errorf("capabilities (-want +got):\n%s", diff)
			}
			c.cmd("QUIT", "221 ")
		})
	}
}

// TestReplyTexts checks the whole transcript of a session: every reply
// to a command that succeeds has a plain text (none of go-smtp's "Roger,
// accepting mail from" or "I'll make sure <...> gets this") and the
// enhanced status code of RFC 3463 for what it answers; the replies to
// HELO and EHLO start with the server's name (RFC 5321 §4.1.1.1). The
// second round is pipelined: each command still gets its own text.
func TestReplyTexts(t *testing.T) {
	s := startServer(t, testConfig())
	c := dial(t, s.Addr())
	steps := []struct{ send, want string }{
		{"", "220 sensor.test ESMTP Service Ready"},
		{"HELO client.test\r\n", "250 sensor.test"},
		{"EHLO client.test\r\n", "250-sensor.test\n250-PIPELINING\n250-8BITMIME\n250-ENHANCEDSTATUSCODES\n250-CHUNKING\n250-SMTPUTF8\n250 SIZE 1048576"},
		{"NOOP\r\n", "250 2.0.0 OK"},
		{"MAIL FROM:<alice@sender.test>\r\n", "250 2.1.0 Sender OK"},
		{"RCPT TO:<bob@example.com>\r\n", "250 2.1.5 Recipient OK"},
		{"RSET\r\n", "250 2.0.0 OK"},
		{"MAIL FROM:<>\r\n", "250 2.1.0 Sender OK"},
		{"RCPT TO:<bob@example.com>\r\n", "250 2.1.5 Recipient OK"},
		{"RCPT TO:<carol@example.com>\r\n", "250 2.1.5 Recipient OK"},
		{"DATA\r\n", "354 End data with <CR><LF>.<CR><LF>"},
		{"Subject: one\r\n\r\nbody\r\n.\r\n", "250 2.0.0 OK: queued as msg1"},
		{"MAIL FROM:<alice@sender.test>\r\n", "250 2.1.0 Sender OK"},
		{"RCPT TO:<bob@example.com>\r\n", "250 2.1.5 Recipient OK"},
		{"BDAT 5\r\nSubje", "250 2.0.0 Continue"},
		{"BDAT 17 LAST\r\nct: two\r\n\r\nbody\r\n", "250 2.0.0 OK: queued as msg2"},
	}
	var got, want []string
	for _, st := range steps {
		c.send(st.send)
		got = append(got, c.reply())
		want = append(want, st.want)
	}
	// The same transaction again, every command in one write.
	c.send("MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.com>\r\nNOOP\r\nRSET\r\n" +
		"MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nSubject: three\r\n\r\n.\r\nQUIT\r\n")
	for _, w := range []string{"250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "250 2.0.0 OK", "250 2.0.0 OK",
		"250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "354 End data with <CR><LF>.<CR><LF>", "250 2.0.0 OK: queued as msg3", "221 2.0.0 Bye"} {
		got = append(got, c.reply())
		want = append(want, w)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("transcript (-want +got):\n%s", diff)
	}
	c.expectClosed()
	if n := len(s.spool.messages()); n != 3 {
		t.Errorf("%d messages stored, want 3", n)
	}
}

func TestDeliver(t *testing.T) {
	s := startServer(t, testConfig())
	c := hello(t, s.Addr())
	c.cmd("MAIL FROM:<alice@sender.test> SIZE=100", "250 ")
	c.cmd("RCPT TO:<bob@example.com>", "250 ")
	c.cmd("DATA", "354 ")
	c.send("Subject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\n")
	c.expect("250 2.0.0 OK: queued as msg1")
	c.cmd("QUIT", "221 ")

	msgs := s.spool.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(msgs))
	}
	m := msgs[0]
	wantMeta := spool.Meta{
		Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP,
		Envelope: &ospreyv1.Envelope{
			MailFrom:   "alice@sender.test",
			RcptTo:     []string{"bob@example.com"},
			ClientAddr: c.conn.LocalAddr().String(),
			Helo:       "client.test",
			ReceivedAt: m.meta.Envelope.GetReceivedAt(),
		},
	}
	if diff := cmp.Diff(wantMeta, m.meta, protocmp.Transform()); diff != "" {
		t.Errorf("meta (-want +got):\n%s", diff)
	}
	if got := m.meta.Envelope.GetReceivedAt().AsTime(); !got.Equal(testNow) {
		t.Errorf("received_at %v, want %v", got, testNow)
	}
	wantBody := "Subject: hi\r\n\r\n.leading dot\r\nbody\r\n"
	if got := bodyOf(t, m); got != wantBody {
		t.Errorf("body %q, want %q", got, wantBody)
	}
	hdr := strings.TrimSuffix(m.body, wantBody)
	wantHdr := "Received: from client.test ([127.0.0.1])\r\n" +
		"\tby sensor.test (Osprey sensor s-1) with ESMTP id " + traceID(t, hdr) + "\r\n" +
		"\tfor <bob@example.com>;\r\n" +
		"\tWed, 04 Mar 2026 05:06:07 +0000\r\n"
	if hdr != wantHdr {
		t.Errorf("Received header\n%q\nwant\n%q", hdr, wantHdr)
	}
	st := s.Stats()
	if st.Accepted != 1 || st.AcceptedBytes != uint64(len(m.body)) {
		t.Errorf("stats: %d accepted, %d bytes; want 1, %d", st.Accepted, st.AcceptedBytes, len(m.body))
	}
}

// TestPipelinedTransactions sends two transactions and QUIT in one write,
// the first refused for its size: each command gets exactly its own
// reply, and the server's RSET of go-smtp after each DATA (see conn.data)
// never shows.
func TestPipelinedTransactions(t *testing.T) {
	cfg := testConfig()
	cfg.MaxMessageSize = &ospreyv1.SizeLimit{Value: 1, Unit: ospreyv1.SizeUnit_SIZE_UNIT_KB}
	s := startServer(t, cfg)
	c := hello(t, s.Addr())
	txn := func(body string) string {
		return "MAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n" + body + ".\r\n"
	}
	c.send(txn("Subject: big\r\n\r\n"+strings.Repeat("x\r\n", 1000)) + txn("Subject: small\r\n\r\n..dot\r\n") + "QUIT\r\n")
	for _, want := range []string{"250 ", "250 ", "354 ", "552 5.3.4 ", "250 ", "250 ", "354 ", "250 2.0.0 OK: queued as ", "221 "} {
		c.expect(want)
	}
	c.expectClosed()
	msgs := s.spool.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(msgs))
	}
	if got, want := bodyOf(t, msgs[0]), "Subject: small\r\n\r\n.dot\r\n"; got != want {
		t.Errorf("body %q, want %q", got, want)
	}
}

// traceID returns the id in a Received header.
func traceID(t *testing.T, hdr string) string {
	t.Helper()
	_, rest, ok := strings.Cut(hdr, " id ")
	if !ok {
		t.Fatalf("no id in %q", hdr)
	}
	id, _, _ := strings.Cut(rest, "\r\n")
	return id
}

// TestNetSMTP sends with the standard library's client: several
// recipients, the second one refused.
func TestNetSMTP(t *testing.T) {
	s := startServer(t, testConfig())
	msg := "Subject: test\r\n\r\nhello\r\n"
	err := smtp.SendMail(s.Addr().String(), nil, "alice@sender.test", []string{"bob@example.com", "eve@other.test"}, []byte(msg))
	var tpErr *textproto.Error
	if !errors.As(err, &tpErr) || tpErr.Code != 550 || !strings.HasPrefix(tpErr.Msg, "5.7.1 ") {
		t.Fatalf("SendMail with a refused recipient: %v, want 550 5.7.1", err)
	}
	if err := smtp.SendMail(s.Addr().String(), nil, "alice@sender.test", []string{"bob@example.com", "carol@mail.example.com"}, []byte(msg)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	msgs := s.spool.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	if got, want := msgs[0].meta.Envelope.GetRcptTo(), []string{"bob@example.com", "carol@mail.example.com"}; !cmp.Equal(got, want) {
		t.Errorf("rcpt_to %q, want %q", got, want)
	}
	// net/smtp says SMTPUTF8 when the server offers it.
	if !strings.Contains(msgs[0].body, "\r\n\tby sensor.test (Osprey sensor s-1) with UTF8SMTP id ") || strings.Contains(msgs[0].body, "\tfor <") {
		t.Errorf("Received header of a message to two recipients: %q", msgs[0].body)
	}
}

// TestReplies walks through the reply of every refusal that a plain
// session can meet.
func TestReplies(t *testing.T) {
	type step struct{ send, want string }
	tests := []struct {
		name  string
		cfg   func(*ospreyv1.SmtpIntegration)
		steps []step
	}{
		{
			name: "MAIL before EHLO",
			steps: []step{
				{"MAIL FROM:<a@b.test>", "503 5.5.1 "},
				{"RCPT TO:<bob@example.com>", "503 5.5.1 "},
				{"DATA", "503 5.5.1 "},
			},
		},
		{
			name: "RCPT before MAIL",
			steps: []step{
				{"EHLO c.test", "250"},
				{"RCPT TO:<bob@example.com>", "503 5.5.1 "},
			},
		},
		{
			name: "second MAIL",
			steps: []step{
				{"EHLO c.test", "250"},
				{"MAIL FROM:<a@b.test>", "250 "},
				{"MAIL FROM:<a@b.test>", "503 5.5.1 "},
				{"RSET", "250 "},
				{"MAIL FROM:<a@b.test>", "250 "},
			},
		},
		{
			name: "DATA without an accepted recipient",
			steps: []step{
				{"EHLO c.test", "250"},
				{"MAIL FROM:<a@b.test>", "250 "},
				{"RCPT TO:<bob@other.test>", "550 5.7.1 "},
				{"DATA", "554 5.5.1 "},
				{"NOOP", "250 "},
			},
		},
		{
			name: "DATA with an argument",
			steps: []step{
				{"EHLO c.test", "250"},
				{"MAIL FROM:<a@b.test>", "250 "},
				{"RCPT TO:<bob@example.com>", "250 "},
				{"DATA now", "501 5.5.4 "},
				{"RSET", "250 "},
			},
		},
		{
			name: "DATA before MAIL",
			steps: []step{
				{"EHLO c.test", "250"},
				{"DATA", "503 5.5.1 "},
			},
		},
		{
			name: "MAIL SIZE over the limit",
			steps: []step{
				{"EHLO c.test", "250"},
				{"MAIL FROM:<a@b.test> SIZE=1048577", "552 5.3.4 "},
				{"MAIL FROM:<a@b.test> SIZE=1048576", "250 "},
			},
		},
		{
			name: "MAIL SIZE over the hard ceiling when unlimited",
			cfg: func(c *ospreyv1.SmtpIntegration) {
				c.MaxMessageSize = &ospreyv1.SizeLimit{Unlimited: true}
			},
			steps: []step{
				{"EHLO c.test", "250"},
				{fmt.Sprintf("MAIL FROM:<a@b.test> SIZE=%d", HardCeiling+1), "552 5.3.4 "},
				{fmt.Sprintf("MAIL FROM:<a@b.test> SIZE=%d", HardCeiling), "250 "},
			},
		},
		{
			name: "too many recipients",
			cfg: func(c *ospreyv1.SmtpIntegration) {
				c.Limits = &ospreyv1.SmtpLimits{MaxRecipients: 2}
			},
			steps: []step{
				{"EHLO c.test", "250"},
				{"MAIL FROM:<a@b.test>", "250 "},
				{"RCPT TO:<a@example.com>", "250 "},
				{"RCPT TO:<b@example.com>", "250 "},
				{"RCPT TO:<c@example.com>", "452 4.5.3 "},
				{"RCPT TO:<d@example.com>", "452 4.5.3 "},
			},
		},
		{
			name: "unknown and malformed commands",
			steps: []step{
				{"FOO", "500 5.5.2 "},
				{"XYZZY bar", "500 5.5.2 "},
				{"", "500 5.5.2 "},
				{"MAILFROM:<a@b.test>", "500 5.5.2 "},
				{"AUTH PLAIN AGF1AHA=", "502 5.5.1 "},
				{"STARTTLS", "502 5.5.1 "},
				{"EXPN staff", "502 5.5.1 "},
				{"VRFY bob", "252 "},
				{"NOOP", "250 "},
			},
		},
		{
			name: "bad MAIL syntax",
			steps: []step{
				{"EHLO c.test", "250"},
				{"MAIL TO:<a@b.test>", "501 5.5.2 "},
				{"MAIL FROM:<a@b.test> FOO=BAR", "500 5.5.4 "},
				{"MAIL FROM:<>", "250 "},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(cfg)
			}
			s := startServer(t, cfg)
			c := dial(t, s.Addr())
			c.expect("220 ")
			for _, st := range tt.steps {
				c.cmd(st.send, st.want)
			}
			c.cmd("QUIT", "221 ")
		})
	}
}
