// Package dsn builds the delivery status notifications (RFC 3464) that the
// gateway's delivery queue sends to a message's envelope sender when a
// recipient fails for good ("Undelivered Mail Returned to Sender") or is
// still being retried after a while (a delay warning).
//
// A notice is a multipart/report; report-type=delivery-status (RFC 6522)
// with three parts: a text/plain explanation for people, the
// message/delivery-status part for programs, and the original message's
// header section as text/rfc822-headers. It is sent from the null sender
// with "Auto-Submitted: auto-replied" (RFC 3834), so that it never causes
// another notice; [Build] refuses to make one for a message that came from
// the null sender ([ErrNullSender]).
//
// Every value that reaches a header field or a delivery-status field comes
// from the network (a recipient address, a next hop's reply) and is
// sanitised first: control characters, CR and LF included, become spaces,
// so a diagnostic cannot add fields of its own; long fields are folded.
// The delivery-status part is US-ASCII as RFC 3464 requires: a non-ASCII
// recipient is written as a "utf-8" address in the utf-8-addr-xtext form of
// RFC 6533 §3, a non-ASCII byte of a diagnostic as "?".
package dsn
