package smtpd

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// These tests pin down what go-smtp v0.25.1 does on its own, without this
// package's connection in front of it: the gaps the package comment lists.
// When an upgrade of go-smtp closes one, its test fails here, and the
// workaround can go.

type recordingBackend struct {
	mu     sync.Mutex
	bodies []string
	mails  []string
}

func (b *recordingBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &recordingSession{b}, nil
}

type recordingSession struct{ b *recordingBackend }

func (s *recordingSession) Reset()        {}
func (s *recordingSession) Logout() error { return nil }
func (s *recordingSession) Mail(from string, _ *smtp.MailOptions) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.mails = append(s.b.mails, from)
	return nil
}
func (s *recordingSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *recordingSession) Data(r io.Reader) error {
	body, err := io.ReadAll(r)
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.bodies = append(s.b.bodies, string(body))
	return err
}

func (b *recordingBackend) data() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.bodies...)
}

// bareGoSMTP runs go-smtp alone on loopback.
func bareGoSMTP(t *testing.T, tlsConfig *tls.Config) (net.Addr, *recordingBackend) {
	t.Helper()
	be := &recordingBackend{}
	srv := smtp.NewServer(be)
	srv.Domain = "bare.test"
	srv.TLSConfig = tlsConfig
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ln.Addr(), be
}

func TestGoSMTPDropsDotAndLoneCR(t *testing.T) {
	addr, be := bareGoSMTP(t, nil)
	c := hello(t, addr)
	c.cmd("MAIL FROM:<a@b.test>", "250 ")
	c.cmd("RCPT TO:<c@d.test>", "250 ")
	c.cmd("DATA", "354 ")
	c.send("x\r\n.\rEVIL\r\n.\r\n")
	c.expect("250 ")
	if got, want := be.data(), []string{"x\r\nEVIL\r\n"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("go-smtp stored %q; this test expects %q (the '.' and the lone CR silently dropped)", got, want)
	}
}

func TestGoSMTPMissesEndAfterCRCRLF(t *testing.T) {
	addr, be := bareGoSMTP(t, nil)
	c := hello(t, addr)
	c.cmd("MAIL FROM:<a@b.test>", "250 ")
	c.cmd("RCPT TO:<c@d.test>", "250 ")
	c.cmd("DATA", "354 ")
	// "x\r" then CRLF, then the end-of-data line: every other MTA ends here.
	c.send("x\r\r\n.\r\n")
	_ = c.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if reply, err := c.readReply(); !isTimeout(err) {
		t.Errorf("go-smtp answered %q, %v; this test expects it to wait for more data", reply, err)
	}
	_ = be
}

func TestGoSMTPBDATSyntaxErrorDesynchronises(t *testing.T) {
	addr, _ := bareGoSMTP(t, nil)
	c := hello(t, addr)
	c.cmd("MAIL FROM:<a@b.test>", "250 ")
	c.cmd("RCPT TO:<c@d.test>", "250 ")
	// The 4-byte chunk "NOOP" follows a BDAT refused for its syntax.
	c.send("BDAT 6 FOO\r\nNOOP\r\n")
	c.expect("501 ")
	if got := c.reply(); got[:3] != "250" {
		t.Errorf("after the refused BDAT got %q; this test expects its chunk read as a command (250 for NOOP)", got)
	}
}

func TestGoSMTPTakesACutChunk(t *testing.T) {
	addr, be := bareGoSMTP(t, nil)
	c := hello(t, addr)
	c.cmd("MAIL FROM:<a@b.test>", "250 ")
	c.cmd("RCPT TO:<c@d.test>", "250 ")
	// 3 of the 10 bytes of the last chunk, and the client goes away.
	c.send("BDAT 10 LAST\r\nabc")
	_ = c.conn.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, c.conn) // until go-smtp closes
	if got := be.data(); len(got) != 1 || got[0] != "abc" {
		t.Errorf("go-smtp passed on %q; this test expects the cut chunk passed on as a whole message", got)
	}
}

func TestGoSMTPDiscardsPipelinedAfterSTARTTLS(t *testing.T) {
	cert, err := (&Server{hostname: "bare.test", log: discardLogger()}).selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	addr, be := bareGoSMTP(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	c := hello(t, addr)
	c.send("STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
	tc := c.startTLSAfterReply(&tls.Config{InsecureSkipVerify: true})
	tc.cmd("EHLO client.test", "250")
	tc.cmd("RCPT TO:<c@d.test>", "502 ") // no MAIL: the injected one was dropped
	be.mu.Lock()
	defer be.mu.Unlock()
	if len(be.mails) != 0 {
		t.Errorf("go-smtp ran the injected MAIL: %q", be.mails)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
