// Package pop3poll is the sensor's POP3 poller: it drains the mailbox of
// the POP3 integration into the spool, from which the uploader sends each
// message to a Central Node. It is an agent.Applier (configuration) and an
// agent.StatusSource (counters and problems); [Poller.Run] owns the polling.
//
// # Design
//
// A session connects with the integration's TLS mode and certificate
// policy (package pop3), logs in, lists the mailbox with STAT, LIST and
// UIDL, and then for each message in order: RETR, [spool.Spool.Put] with
// the message's UIDL (Put returns once the message and its UIDL are
// fsynced, in one file), DELE. QUIT commits the deletions. So a message is
// never deleted on the server before it is on disk, and a session that
// dies anywhere before QUIT deletes nothing.
//
// A crash between Put and QUIT must not bring a second alert. The spool
// keeps the UIDL with the message, and a tombstone of it after the
// uploader removed the message (see package spool), so the next session
// finds it with HasUIDL and sends DELE without retrieving the message
// again. UIDLs are keyed by the mailbox "user@server:port". After each
// listing the poller calls ForgetUIDLs with what the server listed, so the
// spool remembers a UIDL exactly as long as the server has the message.
// Should a message be uploaded twice anyway (a spool lost with its disk),
// uploads are idempotent by message id at the central.
//
// # Batches
//
// A session retrieves at most Options.BatchMessages messages (default 100)
// and Options.BatchBytes bytes (default 50 MiB, by LIST sizes; a session
// always takes at least one message) and then QUITs, so that a dropped
// connection never costs more than one batch, and a large mailbox is
// committed piece by piece. When messages were left, the next session
// starts at once; once the mailbox is drained the next one starts
// interval_seconds after this one ended. Messages already spooled (a
// crash before QUIT) only cost a DELE and do not count towards a batch.
// A message larger than Options.MaxMessageSize (default 64 MiB) is left
// on the server and reported in the status. A mailbox holding more than
// pop3.DefaultMaxMessages messages (STAT) is an error: the listing would
// not be bounded.
//
// # Servers without usable UIDs
//
// Without usable unique ids the poller cannot tell a message it spooled
// from a new one, so it falls back to the content: it retrieves the
// message, takes the SHA-256 of its bytes, and uses "sha256:<hex>" as its
// UIDL in the spool (no server UID can look like that: they are at most
// 70 characters). A message whose hash is known is deleted without being
// spooled; otherwise it is retrieved again and spooled, and a second copy
// whose hash differs from the first is refused. The cost is a second RETR
// per new message; the catch is that two messages with identical bytes
// (headers included) count as one. The fallback is used for a mailbox
// whose server
//
//   - answers UIDL with -ERR (no UIDL support; CAPA need not say),
//   - sends a UIDL listing that is malformed (a UID that is not 1–70
//     printable characters),
//   - lists one UID for two messages, or
//   - lists a UID that this poller deleted in a session whose QUIT the
//     server confirmed, for another message (the server reuses UIDs,
//     which RFC 1939 forbids): the spool forgot the UID since (a listing
//     without it came in between), or the message's size or content is
//     not that of the message deleted.
//
// The choice is kept in memory until the mailbox changes or the sensor
// restarts, and shown in the status. Content-hash UIDLs are forgotten
// (ForgetUIDLs) once the mailbox is empty, and otherwise kept for the
// spool's UIDL retention (14 days).
//
// One message must be spooled once across the switch, too: the poller
// takes the SHA-256 of every message it spools under its UID as it
// retrieves it, and keeps these hashes in memory (for the current mailbox,
// up to 100,000, until the mailbox is empty), so that a message spooled
// under its UID and still on the server is found by its hash, deleted and
// not spooled again.
//
// # Servers that keep deleted messages
//
// A server may acknowledge DELE and QUIT and keep the messages. The
// poller sees it when a UID that it deleted is listed again: with the same
// size and, if this poller retrieved the message, the same content (one
// more RETR, once per message) it is the message spooled before, which
// the spool knows by its UID, so it is deleted again in every session
// and never spooled again; the UIDs stay usable. The status says so,
// since the mailbox keeps growing. When this poller did not retrieve the
// message (the spool knew its UID from before a restart), the spool's word
// and the size are all there is to go by.
//
// What stays in memory is lost with a restart: a message that an earlier
// run spooled under its UID, and that the server still keeps, is spooled
// again under its hash should the server's UIDs become unusable in a
// later run (the central, which knows a POP3 message by its mailbox and
// UIDL, records it a second time). Telling them apart would take the
// content hash of every message in the spool's durable UIDL memory.
//
// # Failures, backoff and alerts
//
// A session that fails is retried after Options.MinBackoff (5 s),
// doubling up to Options.MaxBackoff (5 min), and never later than the
// poll interval, so that the status clears within an interval once the
// fault is gone. Its error is the status's
// first problem ("pop3 alice@mail.example.com:995: login: ... [AUTH]
// Authentication failed."), and the sensor is reported unhealthy. Once
// failures have lasted Options.AlertAfter (default one hour) without a
// successful session, the problem list starts with a line that begins with
// "ALERT:" and the poller logs it at error level, once per failure streak:
// the central surfaces problems that start with "ALERT:" to the operator.
// Status also reports the integration as a whole (IntegrationStatus: its
// state, the error of the current failure streak and when it happened,
// the last successful session, the messages taken, what was left on the
// server, and these problems), and Options.Notify is called when that
// changes in a way the operator should learn at once, so that the sensor
// sends its status then rather than at its next periodic report.
//
// Other problems: "RISK:" while the certificate policy is accept_any (the
// certificate is not checked) or TLS is off (the password crosses the
// network in the clear); "WARNING:" when the fingerprint of a self-signed
// certificate accepted under accept_self_signed changed from the one
// pinned at first use (the new one is pinned; the warning stays until the
// configuration changes); notes for the content-hash fallback and for
// messages too large to take. Pins live in memory: a restart pins anew.
//
// # Configuration and stopping
//
// Apply validates the integration (package validate) and returns at once.
// A changed configuration is used by the next session, which starts right
// away. Disabling the integration, or changing its mailbox (server, port
// or user name), stops the session in progress after the message it is
// retrieving (Put, DELE, then QUIT to commit), or after Options.StopGrace
// (30 s) at the latest, when the connection is cut and nothing is lost.
// The same happens when Run's context is done.
//
// # Clusters
//
// When several nodes run the poller for one mailbox, Options.Lock lets at
// most one of them poll it (the central wires an etcd election in). The
// poller holds the lock as long as it polls the mailbox and cuts the
// session in progress at once when the lock is lost.
package pop3poll
