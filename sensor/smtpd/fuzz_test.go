package smtpd

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// fuzzSeeds are whole client sessions.
var fuzzSeeds = []string{
	"EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n",
	"EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nx\n.\r\nMAIL FROM:<e@f.test>\r\n.\r\n",
	"EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nx\r\r\n.\r\r\nRSET\r\n.\r\n",
	"EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.com>\r\nBDAT 5\r\nhelloBDAT 2 LAST\r\n\r\nQUIT\r\n",
	"EHLO x\r\nBDAT 4 FOO\r\nNOOPNOOP\r\nBDAT\r\n",
	"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<a@b.test>\r\n",
	"HELO x\r\nMAIL FROM:<a@b.test> SIZE=99999999\r\nRCPT TO:<user%evil@example.com>\r\nRCPT TO:<\"a@b\"@example.com>\r\nVRFY x\r\nAUTH PLAIN\r\n",
	"\r\n\r\nFOO\r\nSTARTTLS x\r\nEHLO\r\nMAIL\r\nRCPT TO:\r\nDATA x\r\n",
	"EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n" + strings.Repeat("y", 3000) + "\r\n.\r\n",
	"NOOP " + strings.Repeat("z", 3000) + "\r\n",
	"EHLO x\r\nMAIL FROM:<a@b.test> SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<bob@bücher.example.com>\r\nDATA\r\n\x00\xff\r\n.\r\n",
}

// FuzzSession plays arbitrary bytes as a client against a server on
// loopback. The server must not panic (go-smtp would answer "421 Internal
// server error" for a panic in a command, and a panic in the connection
// would crash the test), must store exactly the messages it said 250 to,
// and must store nothing with a lone CR or a bare LF.
func FuzzSession(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	cfg := testConfig()
	cfg.Tls = &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_ACCEPT}
	cfg.Limits = &ospreyv1.SmtpLimits{MaxRecipients: 3}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := startServer(t, cfg, withTune(shortLimits(200*time.Millisecond, 200*time.Millisecond, 2*time.Second)))
		nc, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		replies := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(nc)
			replies <- b
		}()
		_, _ = nc.Write(data)
		_ = nc.(*net.TCPConn).CloseWrite()
		out := <-replies

		if bytes.Contains(out, []byte("Internal server error")) {
			t.Fatalf("the server panicked; it answered:\n%s", out)
		}
		msgs := s.spool.messages()
		if n := bytes.Count(out, []byte("250 2.0.0 OK: queued as ")); n != len(msgs) {
			t.Errorf("%d messages stored, %d acknowledged", len(msgs), n)
		}
		for _, m := range msgs {
			var c crlfChecker
			if err := errors.Join(c.check([]byte(m.body)), c.end()); err != nil {
				t.Errorf("stored message with bad line endings: %q", m.body)
			}
		}
	})
}

// FuzzDataScanner compares the scanner, fed in two pieces as the socket
// might deliver them and writing into a large and a tiny buffer, with a
// plain reading of the rule: the body ends at the first "." line ended by
// CRLF, unless a lone CR or bare LF comes first, and what is passed on is
// its lines with the leading dot of each removed.
func FuzzDataScanner(f *testing.F) {
	f.Add([]byte("a\r\n.\r\n"), 3)
	f.Add([]byte(".\r\n"), 1)
	f.Add([]byte("a\n.\r\n"), 2)
	f.Add([]byte("a\r\r\n.\r\n"), 4)
	f.Add([]byte("..\r\n.\r\nrest"), 5)
	f.Add([]byte(".a\r\n..\r\n.b.\r\n.\r\n"), 7)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		if split < 0 || split > len(data) {
			split = len(data) / 2
		}
		wantN, wantEnd, wantErr := referenceScan(data)
		var want []byte
		if wantEnd {
			want = referenceUnstuff(data[:wantN])
		}
		for _, room := range []int{1 << 16, 1 + split%5} {
			out, n, end, err := unstuffPieces(data, split, room)
			if end != wantEnd || !errors.Is(err, wantErr) || end && n != wantN {
				t.Fatalf("unstuff(%q) split at %d into %d: consumed %d, end %v, %v; want %d, %v, %v", data, split, room, n, end, err, wantN, wantEnd, wantErr)
			}
			if end && !bytes.Equal(out, want) {
				t.Fatalf("unstuff(%q) split at %d into %d = %q, want %q", data, split, room, out, want)
			}
		}
	})
}

// unstuffPieces runs a scanner over data delivered in two pieces, with an
// output buffer of room bytes.
func unstuffPieces(data []byte, split, room int) (out []byte, consumed int, end bool, err error) {
	s := newDataScanner(1 << 30)
	dst := make([]byte, room)
	for _, piece := range [][]byte{data[:split], data[split:]} {
		for len(piece) > 0 {
			w, r, e, err := s.unstuff(dst, piece)
			out, consumed, piece = append(out, dst[:w]...), consumed+r, piece[r:]
			if e || err != nil {
				return out, consumed, e, err
			}
		}
	}
	return out, consumed, false, nil
}

// referenceUnstuff undoes the dot-stuffing of a whole body, its end line
// included.
func referenceUnstuff(body []byte) []byte {
	lines := bytes.Split(body, []byte("\r\n"))
	lines = lines[:len(lines)-2] // the "." line and what follows its CRLF
	var out []byte
	for _, l := range lines {
		out = append(out, bytes.TrimPrefix(l, []byte("."))...)
		out = append(out, "\r\n"...)
	}
	return out
}

func referenceScan(b []byte) (n int, end bool, err error) {
	for i, c := range b {
		switch {
		case c == '\r' && i+1 < len(b) && b[i+1] != '\n':
			return i + 1, false, errLoneCR
		case c == '\n' && (i == 0 || b[i-1] != '\r'):
			return i, false, errBareLF
		case c == '\n' && i >= 2 && b[i-2] == '.' && (i == 2 || i >= 4 && b[i-3] == '\n'):
			return i + 1, true, nil
		}
	}
	return len(b), false, nil
}

// FuzzAuthExchange plays an AUTH command and up to two response lines, as
// a client sends them, through the parsing and the PLAIN and LOGIN
// servers. What the exchange hands to the check must be what a plain
// reading of the mechanism gives, and credentials it does not mark bad
// have a printable name and a password without NUL, within the bounds.
func FuzzAuthExchange(f *testing.F) {
	for _, seed := range [][3]string{
		{"PLAIN " + b64("\x00alice\x00pw"), "", ""},
		{"PLAIN", b64("alice\x00alice\x00pw"), ""},
		{"plain =", "", ""},
		{"LOGIN", b64("alice"), b64("pw")},
		{"LOGIN " + b64("alice"), b64("pw\x00x"), ""},
		{"LOGIN", "*", ""},
		{"PLAIN " + b64("a\x00b"), "", ""},
		{"CRAM-MD5", "", ""},
		{"PLAIN !!", "", ""},
		{"LOGIN", "=", "="},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, arg, line1, line2 string) {
		mech, ir, hasIR, err := parseAuth(arg)
		if err != nil {
			return
		}
		if !hasIR {
			ir = nil
		}
		lines := []string{line1, line2}
		var answers [][]byte
		cred, err := exchange(mech, ir, func([]byte) ([]byte, error) {
			if len(lines) == 0 {
				return nil, errEnded
			}
			line := lines[0]
			lines = lines[1:]
			if line == "*" {
				return nil, errCancelled
			}
			resp, err := decodeSASL(line)
			if err != nil {
				return nil, errDecode
			}
			answers = append(answers, resp)
			return resp, nil
		})
		if err != nil {
			return
		}
		var wantUser, wantPassword string
		switch mech {
		case "PLAIN":
			resp := ir
			if !hasIR {
				resp = answers[0]
			}
			parts := bytes.Split(resp, []byte{0})
			if len(parts) != 3 {
				t.Fatalf("PLAIN %q gave credentials, want it refused", resp)
			}
			wantUser, wantPassword = string(parts[1]), string(parts[2])
		case "LOGIN":
			all := append([][]byte{ir}, answers...)
			if !hasIR {
				all = answers
			}
			if len(all) != 2 {
				t.Fatalf("LOGIN gave credentials after %d answers, want 2", len(all))
			}
			wantUser, wantPassword = string(all[0]), string(all[1])
		default:
			t.Fatalf("mechanism %q gave credentials", mech)
		}
		if cred.user != wantUser || cred.password != wantPassword {
			t.Fatalf("credentials %q, %q; want %q, %q", cred.user, cred.password, wantUser, wantPassword)
		}
		if cred.bad == "" && (len(cred.user) > maxAuthUser || len(cred.password) > maxAuthPassword ||
			strings.ContainsRune(cred.password, 0) || clipUser(cred.user) != cred.user) {
			t.Fatalf("credentials %q, %q not marked bad", cred.user, cred.password)
		}
	})
}
