package pop3test_test

import (
	"context"
	"testing"
	"time"

	"github.com/ospreysec/osprey/pkg/pki"
	"github.com/ospreysec/osprey/pkg/pop3"
	"github.com/ospreysec/osprey/pkg/pop3/pop3test"
)

// A test that polls a real Dovecot. (Not run as an example: it needs a
// *testing.T, which a test has.)
func ExampleStartDovecot() {
	var t *testing.T // the test's
	cert, key, err := pki.SelfSigned("mail.test", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	d := pop3test.StartDovecot(t, pop3test.DovecotOptions{
		Users:   map[string]string{"alice": "secret"},
		CertPEM: cert, KeyPEM: key,
	})
	d.AddMessage("alice", []byte("Subject: hi\r\n\r\nhello\r\n"))

	c, err := pop3.Dial(context.Background(), pop3.Options{Addr: d.TLSAddr, TLS: pop3.ImplicitTLS,
		TLSPolicy: pop3.TLSPolicy{CAPEM: cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(context.Background(), "alice", "secret"); err != nil {
		t.Fatal(err)
	}
}

// A test against a server that acknowledges DELE but keeps the messages.
// (Not run as an example: it needs a *testing.T, which a test has.)
func ExampleStartServer() {
	var t *testing.T // the test's
	s := pop3test.StartServer(t, pop3test.ServerOptions{User: "alice", Password: "secret", KeepDeleted: true})
	s.Add([]byte("Subject: hi\r\n\r\nhello\r\n"))

	c, err := pop3.Dial(context.Background(), pop3.Options{Addr: s.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(context.Background(), "alice", "secret"); err != nil {
		t.Fatal(err)
	}
	if err := c.Dele(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(context.Background()); err != nil {
		t.Fatal(err)
	}
	// s.Messages() is still 1.
}
