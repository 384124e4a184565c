// TEMPORARY PLACEHOLDER — drop this file on merge: the real Build of package
// dsn replaces it. It exists only so that sensor/queue (branch h2-queue)
// compiles and its tests run before the real implementation lands, and it
// makes a minimal RFC 3464 multipart/report with the same signature and the
// same ErrNullSender.

package dsn

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// ErrNullSender is Build's error for a report to the null sender.
var ErrNullSender = errors.New("no delivery status notification to the null sender")

// Build returns the notice of r as a message (placeholder; see the file's
// comment).
func Build(r Report) ([]byte, error) {
	if r.To == "" {
		return nil, ErrNullSender
	}
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	const boundary = "osprey-dsn-placeholder"
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: MAILER-DAEMON@%s\r\nTo: <%s>\r\nSubject: Delivery Status Notification\r\n", r.ReportingMTA, r.To)
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <%s.%d@%s>\r\nMIME-Version: 1.0\r\n", now.Format(time.RFC1123Z), r.QueueID, now.UnixNano(), r.ReportingMTA)
	fmt.Fprintf(&b, "Content-Type: multipart/report; report-type=delivery-status; boundary=%q\r\n\r\n", boundary)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain\r\n\r\nMessage %s could not be delivered to every recipient.\r\n", boundary, r.QueueID)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns;%s\r\nArrival-Date: %s\r\n", boundary, r.ReportingMTA, r.Arrival.Format(time.RFC1123Z))
	for _, rc := range r.Recipients {
		fmt.Fprintf(&b, "\r\nFinal-Recipient: rfc822;%s\r\nAction: %s\r\nStatus: %s\r\n", rc.Rcpt, rc.Action, rc.Status)
		if rc.Diagnostic != "" {
			fmt.Fprintf(&b, "Diagnostic-Code: smtp; %s\r\n", rc.Diagnostic)
		}
		if !rc.WillRetryUntil.IsZero() {
			fmt.Fprintf(&b, "Will-Retry-Until: %s\r\n", rc.WillRetryUntil.Format(time.RFC1123Z))
		}
	}
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n", boundary)
	b.Write(r.Original)
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes(), nil
}
