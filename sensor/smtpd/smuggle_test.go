package smtpd

import (
	"net"
	"strings"
	"testing"
)

// smuggled is what an attacker hides behind a fake end of data: a whole
// second transaction.
const smuggled = "MAIL FROM:<ceo@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nFrom: ceo@example.com\r\n\r\nsmuggled\r\n"

// TestSmuggling sends each known end-of-data variant (SEC Consult's SMTP
// smuggling research, CVE-2023-51764/5/6, and the CR-doubling family)
// followed by a smuggled transaction and the real end. One DATA must stay
// one message: either the message is refused for its line endings (550
// 5.6.0, and the session ends before anything after the variant is read as
// a command), or it is stored whole, the smuggled text inside it.
func TestSmuggling(t *testing.T) {
	tests := []struct {
		name    string
		eod     string // the fake end of data
		refused bool   // the variant holds a lone CR or a bare LF
	}{
		{"LF.LF", "\n.\n", true},
		{"LF.CRLF", "\n.\r\n", true},
		{"CRLF.LF", "\r\n.\n", true},
		{"CR.CRLF", "\r.\r\n", true},
		{"CR.CR", "\r.\r", true},
		{"CRLF.CR", "\r\n.\r", true},
		{"LF.CR", "\n.\r", true},
		{"CR.LF", "\r.\n", true},
		{"CRCRLF.CRCRLF", "\r\r\n.\r\r\n", true},
		{"CRLF.CRCRLF", "\r\n.\r\r\n", true},
		{"CRCRLF.CRLF", "\r\r\n.\r\n", true},
		{"CRLF.CRLFLF", "\r\n.\r\n\n", false}, // the real end; the LF is then a command line
		{"LFLF.LFLF", "\n\n.\n\n", true},
		{"CRLF.LFCRLF", "\r\n.\n\r\n", true},
		{"CRLFCR.CRLF", "\r\n\r.\r\n", true},
		{"CRLF.CR CR", "\r\n.\r \r\n", true},
		{"CRLF NUL.CRLF", "\r\n\x00.\r\n", false},
		{"CRLF.NUL CRLF", "\r\n.\x00\r\n", false},
		{"CRLF..CRLF", "\r\n..\r\n", false},
		{"CRLF SP.CRLF", "\r\n .\r\n", false},
		{"CRLF.SP CRLF", "\r\n. \r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, testConfig())
			c := hello(t, s.Addr())
			c.cmd("MAIL FROM:<alice@sender.test>", "250 ")
			c.cmd("RCPT TO:<bob@example.com>", "250 ")
			c.cmd("DATA", "354 ")
			c.send("Subject: first\r\n\r\nfirst" + tt.eod + smuggled + ".\r\n")
			if tt.name == "CRLF.CRLFLF" {
				// The control: a real end. The stray LF and the smuggled
				// lines are then commands (and refused or answered as such).
				c.expect("250 2.0.0 ")
				return
			}
			if tt.refused {
				c.expect("550 5.6.0 ")
				c.expectClosed()
				if n := len(s.spool.messages()); n != 0 {
					t.Errorf("%d messages stored, want none", n)
				}
				if got := s.Stats().Rejected["bare_newline"]; got != 1 {
					t.Errorf("bare_newline counter %d, want 1", got)
				}
				return
			}
			c.expect("250 2.0.0 ")
			c.cmd("QUIT", "221 ")
			msgs := s.spool.messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages stored, want 1", len(msgs))
			}
			body := bodyOf(t, msgs[0])
			if !strings.Contains(body, "RCPT TO:<victim@example.com>\r\nDATA\r\n") || !strings.HasSuffix(body, "smuggled\r\n") {
				t.Errorf("stored body %q does not hold the smuggled transaction", body)
			}
		})
	}
}

// TestBareLineEndingsInData covers the rule where nothing is smuggled:
// any lone CR or bare LF refuses the message, wherever it is.
func TestBareLineEndingsInData(t *testing.T) {
	tests := []struct {
		name, data string
		want       string
	}{
		{"bare LF in the header", "Subject: x\nTo: y\r\n\r\nbody\r\n.\r\n", "550 5.6.0 Bare LF"},
		{"lone CR in the body", "Subject: x\r\n\r\nbo\rdy\r\n.\r\n", "550 5.6.0 Lone CR"},
		{"lone CR after a leading dot", "Subject: x\r\n\r\n.\rX\r\n.\r\n", "550 5.6.0 Lone CR"},
		{"CR before CRLF", "Subject: x\r\n\r\nbody\r\r\n.\r\n", "550 5.6.0 Lone CR"},
		{"first byte LF", "\nSubject: x\r\n.\r\n", "550 5.6.0 Bare LF"},
		{"clean", "Subject: x\r\n\r\nbody\r\n.\r\n", "250 2.0.0 "},
		{"empty message", ".\r\n", "250 2.0.0 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, testConfig())
			c := hello(t, s.Addr())
			c.cmd("MAIL FROM:<alice@sender.test>", "250 ")
			c.cmd("RCPT TO:<bob@example.com>", "250 ")
			c.cmd("DATA", "354 ")
			c.send(tt.data)
			c.expect(tt.want)
			if strings.HasPrefix(tt.want, "550") {
				c.expectClosed()
				if n := len(s.spool.messages()); n != 0 {
					t.Errorf("%d messages stored, want none", n)
				}
			}
		})
	}
}

// TestBDAT checks chunked transfer, and that the chunk of every refused
// BDAT is consumed (go-smtp issue 315): after each refusal, the next
// command is read as a command.
func TestBDAT(t *testing.T) {
	t.Run("message in two chunks", func(t *testing.T) {
		s := startServer(t, testConfig())
		c := hello(t, s.Addr())
		c.send("MAIL FROM:<alice@sender.test>\r\nRCPT TO:<bob@example.com>\r\nBDAT 14\r\nSubject: x\r\n\r\nBDAT 6 LAST\r\nbody\r\n")
		c.expect("250 ")
		c.expect("250 ")
		c.expect("250 ")
		c.expect("250 2.0.0 OK: queued as msg1")
		c.cmd("QUIT", "221 ")
		msgs := s.spool.messages()
		if len(msgs) != 1 {
			t.Fatalf("%d messages, want 1", len(msgs))
		}
		if got, want := bodyOf(t, msgs[0]), "Subject: x\r\n\r\nbody\r\n"; got != want {
			t.Errorf("body %q, want %q", got, want)
		}
	})

	// Each case pipelines a refused BDAT whose chunk is a command, then
	// NOOP: the chunk must be swallowed, and NOOP answered.
	tests := []struct {
		name  string
		setup []string // commands before, each answered 2xx
		bdat  string
		chunk string
		want  string
	}{
		{"before MAIL", nil, "BDAT 9 LAST", "MAIL FROM", "503 5.5.1 "},
		{"before HELO", []string{"RSET"}, "BDAT 9 LAST", "MAIL FROM", "503 5.5.1 "},
		{"no recipient", []string{"MAIL FROM:<a@b.test>"}, "BDAT 7 LAST", "RCPT TO", "554 5.5.1 "},
		{"unknown argument", []string{"MAIL FROM:<a@b.test>", "RCPT TO:<bob@example.com>"}, "BDAT 4 FOO", "QUIT", "501 5.5.4 "},
		{"too many arguments", []string{"MAIL FROM:<a@b.test>", "RCPT TO:<bob@example.com>"}, "BDAT 4 LAST X", "QUIT", "501 5.5.4 "},
		{"over the size limit", []string{"MAIL FROM:<a@b.test>", "RCPT TO:<bob@example.com>"}, "BDAT 1048577 LAST", strings.Repeat("x", 1048577), "552 5.3.4 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, testConfig())
			c := dial(t, s.Addr())
			c.expect("220 ")
			if tt.name != "before HELO" {
				c.cmd("EHLO client.test", "250")
			}
			for _, cmd := range tt.setup {
				c.cmd(cmd, "2")
			}
			c.send(tt.bdat + "\r\n" + tt.chunk + "NOOP\r\n")
			c.expect(tt.want)
			c.expect("250 ")
			if n := len(s.spool.messages()); n != 0 {
				t.Errorf("%d messages stored, want none", n)
			}
		})
	}

	t.Run("client gone in the middle of a chunk", func(t *testing.T) {
		s := startServer(t, testConfig())
		c := hello(t, s.Addr())
		c.send("MAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.com>\r\nBDAT 10 LAST\r\nabc")
		c.expect("250 ")
		c.expect("250 ")
		_ = c.conn.(*net.TCPConn).CloseWrite()
		c.expectClosed()
		if n := len(s.spool.messages()); n != 0 {
			t.Errorf("%d messages stored, want none", n)
		}
	})

	t.Run("no size closes the session", func(t *testing.T) {
		s := startServer(t, testConfig())
		c := hello(t, s.Addr())
		c.send("BDAT x LAST\r\nNOOP\r\n")
		c.expect("501 5.5.4 ")
		c.expectClosed()
	})

	t.Run("bare LF in a chunk", func(t *testing.T) {
		s := startServer(t, testConfig())
		c := hello(t, s.Addr())
		c.send("MAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.com>\r\nBDAT 12 LAST\r\nSubject: x\n\nNOOP\r\n")
		c.expect("250 ")
		c.expect("250 ")
		c.expect("550 5.6.0 ")
		c.expect("250 ") // NOOP: the chunk was consumed, the session goes on
		if n := len(s.spool.messages()); n != 0 {
			t.Errorf("%d messages stored, want none", n)
		}
	})
}
