package dsn

import "time"

// Action is what happened to a recipient (RFC 3464 §2.3.3).
type Action string

// The actions a gateway reports.
const (
	Failed  Action = "failed"  // the message will not be delivered
	Delayed Action = "delayed" // not delivered yet; still trying
)

// Recipient is one recipient's part of a report.
type Recipient struct {
	// Rcpt is the recipient's address (Final-Recipient: rfc822;Rcpt).
	Rcpt   string
	Action Action
	// Status is the RFC 3463 status code ("5.1.1", "4.4.1").
	Status string
	// RemoteMTA is the next hop that answered ("mx.example.com"), "" when
	// none was reached.
	RemoteMTA string
	// Diagnostic is the next hop's reply ("550 5.1.1 <a@b>: unknown user")
	// or our own description of the failure (Diagnostic-Code: smtp; ...).
	Diagnostic string
	// LastAttempt is when the recipient was last tried; zero when never.
	LastAttempt time.Time
	// WillRetryUntil is when a delayed recipient's tries end; zero for a
	// failed one.
	WillRetryUntil time.Time
}

// Report is a delivery status notification to a message's sender.
type Report struct {
	// ReportingMTA is the gateway's name (Reporting-MTA: dns;ReportingMTA),
	// also the domain of the notice's From (MAILER-DAEMON@ReportingMTA) and
	// Message-ID.
	ReportingMTA string
	// To is the original message's envelope sender: the notice's recipient.
	// A report is never made for the null sender (see Build).
	To string
	// QueueID names the original message in the gateway's queue
	// (X-Postfix-Queue-ID's role; here Original-Envelope-Id is not used).
	QueueID string
	// Arrival is when the gateway accepted the original message
	// (Arrival-Date).
	Arrival    time.Time
	Recipients []Recipient
	// Original holds the original message's header section (the headers
	// only, as text/rfc822-headers: the body is not returned).
	Original []byte
	// Now is the notice's Date; zero means time.Now.
	Now time.Time
}
