package pop3_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/ospreysec/osprey/pkg/pop3"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// exampleServer answers a client on the other end of a pipe, as a tiny
// POP3 server with one message would.
func exampleServer() net.Conn {
	client, server := net.Pipe()
	replies := map[string]string{
		"CAPA":        "+OK\r\nUSER\r\nUIDL\r\n.\r\n",
		"USER alice":  "+OK\r\n",
		"PASS secret": "+OK logged in\r\n",
		"STAT":        "+OK 1 42\r\n",
		"UIDL":        "+OK\r\n1 msg-0001\r\n.\r\n",
		"RETR 1":      "+OK\r\nSubject: hello\r\n\r\n..a line that starts with a dot\r\n.\r\n",
		"DELE 1":      "+OK\r\n",
		"QUIT":        "+OK bye\r\n",
	}
	go func() {
		defer server.Close()
		io.WriteString(server, "+OK ready\r\n")
		r := bufio.NewReader(server)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			reply, ok := replies[strings.TrimRight(line, "\r\n")]
			if !ok {
				reply = "-ERR unknown command\r\n"
			}
			io.WriteString(server, reply)
		}
	}()
	return client
}

// A session as the sensor's poller runs it: list, retrieve, delete, and
// QUIT to commit the deletion. Dial(ctx, opts) opens the connection in
// real life; here NewClient runs over a pipe to a scripted server.
func Example() {
	ctx := context.Background()
	opts := pop3.Options{Addr: "pop.example.com:110"}
	c, err := pop3.NewClient(ctx, exampleServer(), opts)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "alice", "secret"); err != nil {
		panic(err)
	}
	n, size, err := c.Stat(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(n, "message,", size, "bytes")
	uids, err := c.UIDL(ctx)
	if err != nil {
		panic(err)
	}
	for _, m := range uids {
		r, err := c.Retr(ctx, m.Number)
		if err != nil {
			panic(err)
		}
		msg, err := io.ReadAll(r) // or stream it to disk
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: %q\n", m.UID, msg)
		if err := c.Dele(ctx, m.Number); err != nil {
			panic(err)
		}
	}
	fmt.Println(c.Quit(ctx))
	// Output:
	// 1 message, 42 bytes
	// msg-0001: "Subject: hello\r\n\r\n.a line that starts with a dot\r\n"
	// <nil>
}

// Options for a mailbox on port 995 with implicit TLS, whose server has a
// self-signed certificate, and an OpenSSL cipher list for TLS 1.2.
func ExampleOptions() {
	opts := pop3.Options{
		Addr: "mail.example.com:995",
		TLS:  pop3.ImplicitTLS,
		TLSPolicy: pop3.TLSPolicy{
			Certificate: ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_SELF_SIGNED,
			CipherSuite: "ECDHE+AESGCM:ECDHE+CHACHA20",
		},
	}
	fmt.Println(opts.Validate())
	opts.TLSPolicy.CipherSuite = "HIGH:CAMELLIA"
	fmt.Println(opts.Validate())
	// Output:
	// <nil>
	// tls policy: cipher suite: "CAMELLIA": not supported by this implementation
}
