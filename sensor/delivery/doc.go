// Package delivery is the gateway's outbound SMTP client: the delivery
// queue hands it a message and the recipients that share a next hop, and it
// reports, per recipient, what the next hop answered. It plays the part of
// Postfix's smtp(8); the queue plays qmgr(8).
//
// # Design
//
// Routing. [Client.Destination] maps a recipient to a routing key (a
// domain for MX delivery, "route:<domain>" or "relay" for configured
// hosts); the queue groups and schedules by it, and [Client.Deliver] works
// the route out again from the recipients with the configuration of the
// moment. Configured hosts are tried by preference, equal preferences in
// random order; MX delivery follows RFC 5321 §5.1: MX hosts by preference
// (equal ones shuffled), the domain's own A/AAAA records when it has no MX,
// a permanent failure for a null MX (RFC 7505, 5.1.10) or a domain that
// does not exist (5.1.2), a temporary one when DNS fails (4.4.3). At most
// five addresses are tried per delivery (Postfix's smtp_mx_address_limit).
// Mail loops are not detected here: a next hop that is one of the
// gateway's own listeners is not refused, so a route that points back at
// the gateway relies on the receiving side counting Received headers.
//
// One delivery, one decision. Addresses are tried in order while they fail
// at the session level: no connection, a greeting or EHLO refused, a TLS
// requirement not met, a 4xx to MAIL FROM. The first address that takes
// part in a transaction decides: a 5xx to MAIL FROM fails every recipient,
// each RCPT reply is that recipient's result, no DATA is sent when every
// RCPT failed, and the reply to the final dot is the result of every
// recipient accepted at RCPT. A connection lost during the transaction
// leaves the undecided recipients to retry (4.4.2). Result codes keep the
// class of the server's replies (4xx retry, 5xx bounce); failures of our
// own get a code and an RFC 3463 status in the class they have.
//
// TLS. STARTTLS is opportunistic by default: used when offered, the
// certificate unchecked, and when the handshake fails the same address is
// tried again in plaintext (Postfix's "may"). For a domain in
// [Config.RequireTLS] STARTTLS must be offered and the certificate verify
// against the next hop's name (the MX host's name, or the configured host)
// with [Config.RootCAs]; otherwise the address fails with 4.7.4 or 4.7.5 and
// the next one is tried, never a plaintext session.
//
// Connection cache. A gateway relays bursts to few next hops, so idle
// sessions are kept for a few seconds per next-hop address (and TLS policy
// and configuration) and reused, as Postfix's scache(8) does: the next
// message to that hop starts with MAIL FROM, without TCP or TLS. A session
// goes back to the cache only between transactions (after the final dot's
// reply, or after RSET when a transaction was abandoned, and then it says
// EHLO again first, see Protocol), and a cached session found dead at MAIL
// FROM is replaced by a new connection once, transparently. [Client.Run] owns the cache: it caches only while
// Run runs and closes every idle session when Run returns.
//
// Protocol. The SMTP is go-smtp's Client: greeting, EHLO (HELO when EHLO
// is refused with 500 or 502), MAIL with SIZE, BODY=8BITMIME and SMTPUTF8, RCPT, DATA with
// its dot-stuffing, RSET and QUIT, its replies as *smtp.SMTPError. Two
// things it says on its own: BODY=8BITMIME on every MAIL to a next hop that
// offers 8BITMIME (Client.Mail does not look at MailOptions.Body), and EHLO
// again before the next command after RSET (Client.Reset asks for it), so
// a cached session that was reset says EHLO before its next MAIL; after a
// completed DATA the next MAIL needs neither.
//
// STARTTLS is the one command of our own. Client.Hello names us in every
// EHLO the Client sends, the one after STARTTLS included, but since v0.21
// the Client starts TLS only in NewClientStartTLS (and DialStartTLS), which
// says EHLO before Hello can be called, so as "localhost", and fails when
// STARTTLS is not offered instead of carrying on in plaintext. So the
// session greets and says EHLO through a Client, sends STARTTLS itself and
// reads its one reply with net/textproto, does the handshake, and goes on
// through a new Client over the TLS connection, which is handed the
// greeting it already had (a new Client reads one) and says EHLO again.
//
// Probes. [Client.Probe] is recipient verification's callout, Postfix's
// verify(8) done the way its smtp(8) does it: the route and the next hops
// of a delivery, EHLO and STARTTLS as for a message, then MAIL FROM:<>,
// RCPT, RSET and QUIT on a session of its own, never cached. Only the
// reply to RCPT speaks of the recipient; a failure before it moves on to
// the next address, as a delivery does.
//
// Safety. Replies are read under bounds: go-smtp's 2000 bytes a line, and
// 1 MiB in reply to one command, counted by the connection (go-smtp's
// reader takes any number of lines); a timeout per command, and
// [Config.DataTimeout] for each write of the message and the reply to its
// end; and the context of a delivery closes its connection when it ends.
// The final dot is sent only after exactly [Request.Size] bytes were read
// from the body, so a body that fails to read is never delivered
// truncated: the DATA writer is left unclosed and the connection dropped.
// Addresses with CR or LF are refused before any command.
package delivery
