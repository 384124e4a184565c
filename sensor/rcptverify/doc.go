// Package rcptverify is a gateway's recipient verification: before an
// inbound listener accepts RCPT for a local domain, it asks the domain's
// next hop whether the recipient exists, as Postfix's
// reject_unverified_recipient (verify(8)) and Exim's callouts do, and as
// Kaspersky Secure Mail Gateway does with Postfix. A recipient the next hop
// refuses is refused at once (550 5.1.1) rather than accepted and bounced
// later; one it cannot be asked about is deferred (450 4.1.1).
//
// # Design
//
// Probes. A probe is [delivery.Client.Probe]: the next hop found exactly as
// the gateway delivers (a local domain's hosts by preference, or its MX
// hosts, then their addresses), EHLO with the gateway's HELO name,
// STARTTLS when offered (or required, as for delivery), MAIL FROM:<>, RCPT
// TO, RSET and QUIT. The next hop's reply to RCPT is the answer: 2xx the
// recipient exists, 5xx it does not. Anything else (a 4xx, no host
// reachable, a failure before RCPT, the probe timeout) is a temporary
// failure: the client is told to try later, and nothing is cached, so the
// next RCPT asks again.
//
// Concurrency. At most max_probes_per_host probes run at once to one
// next-hop address (a [delivery.Gate]); more wait for a slot until the
// probe timeout, which bounds a probe's waits and conversation together.
// Concurrent lookups of one recipient share one probe
// (golang.org/x/sync/singleflight). A probe runs under the Verifier's
// lifetime, not the asking session's: a client that disconnects does not
// cancel a probe others wait for, and its result is still cached.
//
// Cache. Results are kept on the sensor's disk, so a restart keeps them:
// a SQLite database (modernc.org/sqlite, as the delivery queue) in the
// data dir, its schema in goose migrations embedded in the binary, in WAL
// mode with synchronous=NORMAL, since a result lost in a power cut is only
// a probe more. The lifetimes are Postfix's: a recipient found is good for
// 31 days and probed again in the background when a lookup finds its
// result older than 7 days (address_verify_positive_refresh_time), served
// from the cache meanwhile; a recipient refused stays refused for 3 days.
// Addresses are cached lower-cased (mailbox names are not case-sensitive
// on the mail servers gateways sit in front of, and a harvester must not
// get a fresh probe per spelling); the probe sends the address as the
// client wrote it. The cache holds at most Options.MaxEntries results:
// past that, the oldest probed go first. Run deletes expired results every
// few minutes. A cache that cannot be opened (a full disk) does not stop
// the sensor: every lookup probes meanwhile, the status says so, and Run
// tries again every minute.
//
// Trouble. A next hop whose probes keep failing (temporary failures in a
// row) is named by [Verifier.Problems], which the sensor's status shows:
// every recipient of its domains then gets 450 until it answers again.
package rcptverify
