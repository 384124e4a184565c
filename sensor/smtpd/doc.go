// Package smtpd is the SMTP server of a sensor's SMTP integration: a mail
// server sends it copies of mail (or routes mail through it), and it keeps
// each message in the spool before it says 250. It is built on
// github.com/emersion/go-smtp and applies the integration's configuration
// (package validate documents every field and default) live: see
// [Server.Apply].
//
// # Design
//
// go-smtp parses commands and runs the SMTP state machine; this package
// decides. Policy is checked at the earliest step that can decide: the
// clients list, the connection limits and the spool's health when a client
// connects (554 or 421 in place of the greeting, and the connection is
// closed), the destination domains at RCPT (550 5.7.1), the size at MAIL
// (SIZE=) and again while the message is read (552 5.3.4).
//
// Under go-smtp sits conn, the net.Conn go-smtp reads from, which is where
// the client's bytes arrive first. go-smtp alone leaves several things
// open, and they can only be closed there:
//
//   - DATA. go-smtp's dot reader (v0.25.1, data.go) ends a message only at
//     a real <CRLF>.<CRLF>, so none of the smuggling sequences ends a
//     message, but it passes lone CRs and bare LFs on, silently drops a '.'
//     and a lone CR at the start of a line ("\r\n.\rX" becomes "\r\nX"),
//     and after a CR before CRLF ("X\r\r\n") no longer sees the start of
//     the next line, so a following ".\r\n" does not end the message and a
//     stuffed ".." keeps both dots; it also reads a byte at a time, which
//     made it the largest cost of receiving mail. conn therefore answers
//     DATA and reads the body itself (see dataScanner), a line segment at
//     a time: a lone CR or bare LF gets "550 5.6.0" and the session is
//     closed, since what follows can no longer be told apart from
//     commands. The session spools the body as for BDAT, and go-smtp's
//     transaction is reset with an RSET whose reply conn drops. This is
//     the one rule for line endings: CR and LF only as CRLF, in DATA and in
//     BDAT chunks alike (for BDAT the length frames the chunk, so the
//     session goes on). Nothing is normalised: a message is stored as the
//     client sent it.
//   - STARTTLS. conn implements it (go-smtp is never given a TLS
//     configuration), so that conn still sees the plaintext afterwards.
//     Anything the client pipelined behind STARTTLS is discarded before the
//     handshake (CVE-2011-0411); go-smtp does the same by dropping its
//     buffer, but with conn in front that buffer would be conn's. After
//     STARTTLS the client must greet again, and STARTTLS inside a mail
//     transaction is refused (503), so nothing said in plaintext carries
//     over. The EHLO reply gets STARTTLS and the SIZE limit added by conn.
//   - Buffering. conn hands go-smtp at most one command line per Read, so
//     go-smtp's own buffer never holds more than the command at hand: the
//     bytes after it are still in conn when the phase changes (a BDAT
//     chunk, STARTTLS).
//   - BDAT. A chunk follows its command without waiting for the reply.
//     go-smtp v0.25.1 consumes the chunk of a BDAT it refuses for want of
//     MAIL or RCPT (go-smtp issue 315), but not of one it refuses for its
//     syntax ("BDAT 5 FOO"), after which the chunk would be read as
//     commands. conn answers malformed and out-of-sequence BDATs itself
//     and drops their chunks; a BDAT without a size is refused and the
//     session closed.
//   - Limits and errors. go-smtp has no per-client connection limit, no
//     data or session timeout and a fixed, unconfigurable error threshold.
//     The server's accept loop counts connections per client; conn sets the
//     read deadline of every read (command timeout per command line, data
//     timeout per read of a body, both capped by the session time limit),
//     answers 421 4.4.2 when one passes, counts failed replies and closes
//     the session with 421 4.7.0 at max_errors. A refused recipient counts
//     as an error (a client probing addresses); "452 too many recipients"
//     does not (it is flow control, RFC 5321 §4.5.3.1.10), and an accepted
//     message resets the count.
//
// # Sender authentication
//
// An inbound gateway listener whose gateway enables sender_auth checks
// each message with package senderauth (SPF of the client, HELO and MAIL
// FROM; DKIM and DMARC of the message), through Options.Resolver. The
// checks start with DATA (or the first BDAT), not at MAIL, so that only a
// transaction with accepted recipients asks DNS; SPF runs beside the
// transfer, and DKIM reads the body as it is spooled. The results are
// sealed into the envelope by the spool (spool.Meta.Seal) before the
// message is durable, so they are on disk before the 250. The checks
// never refuse a message: what happens to one that fails is the
// central's decision. The outbound listener, which only the trusted
// networks reach, checks nothing.
//
// # Submission
//
// The submission listener of a gateway (Role.Submission, on
// gateway.submission's listener, ":587" by default) takes mail from
// clients that authenticate with SMTP AUTH (RFC 4954) and relays it to
// any domain, as outbound mail whose envelope names the user (auth_user).
// conn answers AUTH itself, as it does STARTTLS (see auth.go): go-smtp
// cannot tell whether the connection is TLS, which decides whether AUTH
// is offered, and the responses of the exchange must not reach go-smtp's
// command parser. AUTH PLAIN and LOGIN are advertised in the EHLO reply
// and taken only after STARTTLS, unless allow_auth_without_tls; MAIL
// before AUTH is refused; STARTTLS forgets an AUTH given before it (RFC
// 3207 §4.2). The credentials are checked by Options.Authenticator
// (package smtpauth), behind its throttle and cache; a failed AUTH is a
// failed command, so a session that keeps guessing reaches max_errors.
//
// # Lifecycle
//
// [Server.Apply] checks a configuration, compiles it into a policy and
// binds its listen address, so that an address that cannot be bound fails
// the Apply (and the sensor refuses that configuration); it starts
// nothing, and may come before Run. [Server.Run] owns every goroutine: an
// accept loop on each listener Apply hands over, and one go-smtp server
// for all the connections they admit. go-smtp's settings do not depend on
// the configuration; each connection carries the policy it was admitted
// under, so a new configuration reaches new sessions at once and open
// sessions keep the policy they started with. When Run's context ends,
// Run closes the listener, gives the open sessions Options.StopGrace to
// finish (their contexts outlive Run's until then), closes the
// connections left, and returns once every session has ended: the spool
// must stay open until Run returns.
//
// # Limits and defaults
//
// The configurable limits default to validate's constants:
// DefaultMaxRecipients (100), DefaultMaxConnections (200),
// DefaultMaxConnectionsPerClient (20), DefaultCommandTimeoutSeconds (300),
// DefaultDataTimeoutSeconds (600), DefaultSessionTimeoutSeconds (1800),
// DefaultMaxErrors (10). The fixed ones are MaxCommandLine, MaxTextLine
// and HardCeiling, the size that "unlimited" stands for. The size limit
// counts the message as the client sent it (dot-stuffing undone), not the
// Received header the server adds. Connections are counted per client
// address (an IPv6 client per /128).
//
// # Replies
//
//	554 5.7.1  at connect: the client is not in the clients list
//	421 4.4.5  at connect: max_connections reached
//	421 4.7.0  at connect: max_connections_per_client reached
//	421 4.3.2  at connect: the spool cannot take mail (Spool.Check)
//	421 4.7.0  at connect: connections_per_minute, or the harvest guard
//	           defers the client (a gateway's rate limits, see access.go)
//	530 5.7.0  MAIL, RCPT, DATA, BDAT or VRFY before STARTTLS when TLS is required
//	530 5.7.0  MAIL before AUTH on the submission listener
//	235 2.7.0  AUTH succeeded; 535 5.7.8 bad credentials; 454 4.7.0 the
//	           source could not answer, or too many failures lately
//	538 5.7.11 AUTH before STARTTLS; 504 5.5.4 a mechanism other than
//	           PLAIN and LOGIN; 501 a response that does not decode, or "*"
//	502 5.5.1  AUTH on a listener other than the submission one
//	503 5.5.1  a command out of sequence; 554 5.5.1 DATA without a recipient
//	550 5.7.1  RCPT outside the destination domains, or an address that
//	           could route elsewhere ('%', '!', two '@', a literal)
//	452 4.5.3  RCPT past max_recipients
//	450 4.7.1  MAIL past messages_per_minute, RCPT past recipients_per_minute
//	550 5.1.1  RCPT the next hop refused (recipient verification);
//	450 4.1.1  when it could not be asked; 421 4.7.0 and the connection
//	           closed for the unknown recipient that trips the harvest guard
//	552 5.3.4  MAIL SIZE= or a message past the size limit
//	550 5.6.0  a lone CR or bare LF in the message
//	500 5.5.2  an unknown command, a line too long
//	452 4.3.1  the spool is full or the disk low; 451 4.3.0 the spool failed
//	421 4.4.2  command, data or session time limit; 421 4.7.0 max_errors
//	250 2.1.0  "Sender OK" (MAIL); 250 2.1.5 "Recipient OK" (RCPT);
//	           250 2.0.0 "OK" (RSET, NOOP), in place of go-smtp's texts
//	250 2.0.0  "OK: queued as <spool id>", only once Spool.Put returned nil
//	250        "<hostname>" to HELO, and as the first line of the EHLO reply
package smtpd
