package dsn_test

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-message"

	"github.com/ospreysec/osprey/pkg/dsn"
)

func ExampleBuild() {
	b, err := dsn.Build(dsn.Report{
		ReportingMTA: "gw.example.net",
		To:           "alice@example.org",
		Arrival:      time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
		Original:     []byte("From: alice@example.org\r\nTo: bob@example.com\r\nSubject: Hello\r\n\r\nHi Bob\r\n"),
		Recipients: []dsn.Recipient{{
			Rcpt:        "bob@example.com",
			Action:      dsn.Failed,
			Status:      "5.1.1",
			RemoteMTA:   "mx.example.com",
			Diagnostic:  "550 5.1.1 <bob@example.com>: User unknown",
			LastAttempt: time.Date(2026, 3, 2, 9, 0, 1, 0, time.UTC),
		}},
	})
	if err != nil {
		panic(err)
	}
	e, err := message.Read(bytes.NewReader(b))
	if err != nil {
		panic(err)
	}
	fmt.Println("Subject:", e.Header.Get("Subject"))
	mr := e.MultipartReader()
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		t, _, _ := p.Header.ContentType()
		fmt.Println("--", t)
		if t == "message/delivery-status" || t == "text/rfc822-headers" {
			body, _ := io.ReadAll(p.Body)
			fmt.Print(string(bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))))
		}
	}
	// Output:
	// Subject: Undelivered Mail Returned to Sender
	// -- text/plain
	// -- message/delivery-status
	// Reporting-MTA: dns; gw.example.net
	// Arrival-Date: Mon, 02 Mar 2026 09:00:00 +0000
	//
	// Final-Recipient: rfc822; bob@example.com
	// Action: failed
	// Status: 5.1.1
	// Remote-MTA: dns; mx.example.com
	// Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: User unknown
	// Last-Attempt-Date: Mon, 02 Mar 2026 09:00:01 +0000
	//
	// -- text/rfc822-headers
	// From: alice@example.org
	// To: bob@example.com
	// Subject: Hello
}
