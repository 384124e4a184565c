package delivery

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
)

// recorder is a go-smtp backend that keeps what it is sent. It stands for
// next hops that misbehave in ways no packaged server can be told to (a
// TLS handshake that fails after STARTTLS was offered), and shows the
// MAIL parameters the client sends.
type recorder struct {
	mu       sync.Mutex
	sessions int
	helos    []string // the EHLO name of each session, "+TLS" after STARTTLS
	mails    []smtp.MailOptions
	messages [][]byte
}

func (r *recorder) NewSession(c *smtp.Conn) (smtp.Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sessions++
	helo := c.Hostname()
	if _, ok := c.TLSConnectionState(); ok {
		helo += "+TLS"
	}
	r.helos = append(r.helos, helo)
	return &recSession{r: r}, nil
}

type recSession struct{ r *recorder }

func (s *recSession) Reset()        {}
func (s *recSession) Logout() error { return nil }
func (s *recSession) Mail(_ string, opts *smtp.MailOptions) error {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.mails = append(s.r.mails, *opts)
	return nil
}
func (s *recSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *recSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.messages = append(s.r.messages, b)
	return nil
}

func (r *recorder) helloNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.helos...)
}

func (r *recorder) snapshot() (sessions int, mails []smtp.MailOptions, messages [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions, append([]smtp.MailOptions(nil), r.mails...), append([][]byte(nil), r.messages...)
}

// startGoSMTP runs a go-smtp server on ln, offering STARTTLS with tlsConf
// when it is not nil.
func startGoSMTP(t *testing.T, ln net.Listener, tlsConf *tls.Config) *recorder {
	t.Helper()
	rec := &recorder{}
	srv := smtp.NewServer(rec)
	srv.Domain = "gosmtp.test"
	srv.MaxMessageBytes = 1 << 20
	srv.EnableSMTPUTF8 = true
	srv.AllowInsecureAuth = true
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLSConfig = tlsConf
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return rec
}

// TestTLSHandshakeFallback: a next hop that offers STARTTLS and fails the
// handshake is tried again in plaintext on a new connection (Postfix's
// "may"); the message arrives whole, with SIZE, BODY=8BITMIME and SMTPUTF8
// passed on as the request says.
func TestTLSHandshakeFallback(t *testing.T) {
	port, ln := freePort(t)
	// It offers STARTTLS and fails every handshake.
	rec := startGoSMTP(t, ln, &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return nil, errors.New("no certificate here")
	}})
	c := runClient(t, Options{}, Config{HeloName: "gw.osprey.test", Port: uint16(port)})
	body := []byte("From: a@origin.test\r\nSubject: caf\xc3\xa9\r\n\r\n.one leading dot\r\n..two\r\n.\r\nbare LF\nend\r\n")
	req := Request{ID: "utf8", From: "sender@origin.test", Rcpts: []string{"jörg@[127.0.0.1]"},
		Body: bytes.NewReader(body), Size: int64(len(body)), EightBit: true, SMTPUTF8: true}
	r := c.Deliver(t.Context(), req)
	if !r.Rcpts[0].OK() || r.TLS != "" {
		t.Fatalf("got %v over %q, want delivered in plaintext", r.Rcpts[0], r.TLS)
	}
	if diff := cmp.Diff([]string{"gw.osprey.test", "gw.osprey.test"}, rec.helloNames()); diff != "" {
		t.Errorf("EHLO names (-want +got):\n%s", diff)
	}
	sessions, mails, messages := rec.snapshot()
	if sessions != 2 {
		t.Errorf("%d sessions, want 2 (the failed handshake, then plaintext)", sessions)
	}
	want := smtp.MailOptions{Size: int64(len(body)), Body: smtp.Body8BitMIME, UTF8: true}
	if len(mails) != 1 || !cmp.Equal(mails[0], want) {
		t.Errorf("MAIL options %+v, want [%+v]", mails, want)
	}
	// The bare LF goes out as CRLF; dots come back unstuffed.
	wantBody := strings.Replace(string(body), "bare LF\n", "bare LF\r\n", 1)
	if len(messages) != 1 || string(messages[0]) != wantBody {
		t.Errorf("message %q, want %q", messages, wantBody)
	}
}

// TestSTARTTLSHelloName: the EHLO before STARTTLS and the one after it
// both give the configured name, and the message goes whole over TLS;
// two messages share the TLS session.
func TestSTARTTLSHelloName(t *testing.T) {
	_, cert := serverCert(t, "gosmtp.test")
	port, ln := freePort(t)
	rec := startGoSMTP(t, ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	c := runClient(t, Options{}, Config{HeloName: "gw.osprey.test", Port: uint16(port)})
	for _, id := range []string{"one", "two"} {
		r := c.Deliver(t.Context(), request(id, "a@[127.0.0.1]"))
		if !r.Rcpts[0].OK() || !strings.HasPrefix(r.TLS, "TLS 1.3 ") {
			t.Fatalf("message %s: %v over %q, want delivered over TLS 1.3", id, r.Rcpts[0], r.TLS)
		}
	}
	if diff := cmp.Diff([]string{"gw.osprey.test", "gw.osprey.test+TLS"}, rec.helloNames()); diff != "" {
		t.Errorf("EHLO names (-want +got):\n%s", diff)
	}
	_, _, messages := rec.snapshot()
	if diff := cmp.Diff([][]byte{msg("one"), msg("two")}, messages); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}

// failingReader gives n lines of a message, then an error.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	const line = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"
	if f.n == 0 {
		return 0, errors.New("disk on fire")
	}
	if len(p) < len(line) {
		return 0, io.ErrShortBuffer
	}
	f.n--
	return copy(p, line), nil
}

// TestBodyReadError: a message that cannot be read to its end is never
// delivered truncated: no final dot, the recipients wait (4.3.0), and the
// next message gets a new connection.
func TestBodyReadError(t *testing.T) {
	port, ln := freePort(t)
	rec := startGoSMTP(t, ln, nil)
	c := runClient(t, Options{}, Config{HeloName: "gw.osprey.test", Port: uint16(port)})
	r := c.Deliver(t.Context(), Request{From: "a@origin.test", Rcpts: []string{"b@[127.0.0.1]"}, Body: &failingReader{n: 2000}, Size: 200 << 10})
	if got := r.Rcpts[0]; got.Code != 451 || got.Enhanced != "4.3.0" || !strings.Contains(got.Text, "disk on fire") {
		t.Errorf("got %v, want 451 4.3.0 naming the read error", got)
	}
	short := []byte("Subject: short\r\n\r\nbody\r\n")
	r = c.Deliver(t.Context(), Request{From: "a@origin.test", Rcpts: []string{"b@[127.0.0.1]"}, Body: bytes.NewReader(short), Size: int64(len(short)) + 10})
	if got := r.Rcpts[0]; got.Code != 451 || got.Enhanced != "4.3.0" {
		t.Errorf("body shorter than Size: got %v, want 451 4.3.0", got)
	}
	if c.cache.size() != 0 {
		t.Errorf("a session whose message was cut short was cached")
	}
	r = c.Deliver(t.Context(), request("after", "b@[127.0.0.1]"))
	if !r.Rcpts[0].OK() {
		t.Fatalf("next message: %v", r.Rcpts[0])
	}
	sessions, _, messages := rec.snapshot()
	if sessions != 3 || len(messages) != 1 || !bytes.Equal(messages[0], msg("after")) {
		t.Errorf("%d sessions, messages %q; want 3 sessions and only the last message", sessions, messages)
	}
}

// TestEndlessReply: a next hop that answers EHLO with lines that never end
// costs one bounded read, not memory without end: the address fails with
// 4.5.0.
func TestEndlessReply(t *testing.T) {
	port, ln := freePort(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "220 endless.test ESMTP\r\n")
		bufio.NewReader(conn).ReadString('\n') // EHLO
		line := []byte("250-" + strings.Repeat("x", 1000) + "\r\n")
		for {
			if _, err := conn.Write(line); err != nil {
				return // the client hung up
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	c := runClient(t, Options{}, Config{HeloName: "gw.osprey.test", Port: uint16(port)})
	r := c.Deliver(t.Context(), request("endless", "a@[127.0.0.1]"))
	if got := r.Rcpts[0]; got.Code != 451 || got.Enhanced != "4.5.0" || !strings.Contains(got.Text, "bytes in reply to one command") {
		t.Errorf("got %v, want 451 4.5.0 naming the bound", got)
	}
}
