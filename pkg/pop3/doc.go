// Package pop3 is a POP3 client (RFC 1939) for the sensor's mailbox poller:
// CAPA (RFC 2449), STLS (RFC 2595), UIDL, USER/PASS, APOP, and SASL PLAIN
// through AUTH (RFC 5034), over plaintext, implicit TLS (port 995) or STLS
// (port 110).
//
// # Design
//
// The server is not trusted: it may be broken, or an attacker may sit in
// front of it. Every reply is therefore read under bounds, and a reply that
// breaks one is an error, never a hang, a panic or unbounded memory:
//
//   - a status or listing line is at most [Options.MaxLineLength] bytes
//     (default 4096, CRLF included; RFC 2449 allows 512), else [ErrLineTooLong];
//   - a STAT count, a message number and the lines of a listing are at most
//     [Options.MaxMessages] (default 100,000), else [ErrLimit];
//   - a UID is 1 to 70 characters from 0x21 to 0x7E (RFC 1939 §7), else
//     [ErrMalformed];
//   - a message (RETR) is at most [Options.MaxMessageSize] bytes once
//     unstuffed (default 64 MiB), else [ErrLimit]. Lines within a message are
//     not bounded one by one: real mail breaks RFC 5322's 998 octets, and the
//     message body is streamed to the caller, never held in memory here;
//   - each read, write and the TLS handshake has a deadline of
//     [Options.Timeout] (default 60 s), and the context of the command in
//     progress cancels it: a server that stops sending (a missing
//     terminator) fails with a timeout, one that never stops (an endless
//     reply) fails on a bound. The caller bounds the whole session with the
//     context.
//
// After a failure that may leave the reply stream out of step (an I/O
// error, a broken bound, a malformed reply) the connection is closed and
// every later command returns the same error. A -ERR reply is an [*Error]
// and leaves the connection usable.
//
// # TLS
//
// With [ImplicitTLS] the handshake is the first thing on the connection;
// with [StartTLS] the client reads the greeting, sends STLS and shakes hands
// after the +OK. If the server does not offer STLS in its CAPA reply or
// refuses the command, the client stops with [ErrSTLS] and never goes on in
// plaintext (the downgrade of fetchmail's CVE-2021-39272). Bytes the server
// sends after its STLS +OK and before the handshake can only be injected by
// a man in the middle, to be read as replies once TLS is up (as in
// CVE-2021-38371); they are an error ([ErrSTLS]), never read as a reply.
// After the handshake the capabilities learnt in plaintext are forgotten
// and CAPA is asked again.
//
// The server's certificate is checked by the policy of [TLSPolicy] (the
// integration's tls_certificate setting): trusted_only verifies the chain
// against the system roots plus [TLSPolicy.CAPEM] and the server name;
// accept_self_signed also accepts a leaf that is self-signed (its issuer is
// its subject and its signature checks with its own key) and reports it as
// [TrustSelfSigned] so that the caller can pin its fingerprint; accept_any
// accepts any certificate and reports [TrustNone]. [Client.TLS] tells which
// one applied. [TLSPolicy.CipherSuite] is an OpenSSL cipher list that
// selects Go's TLS 1.2 suites (package ciphersuite); TLS 1.3 suites are
// fixed by Go and not affected. TLS 1.2 is the minimum version.
//
// # Authentication
//
// [Client.Login] picks a method from what the server offers. Without TLS it
// prefers APOP (the password never crosses the wire), then SASL PLAIN, then
// USER/PASS; over TLS it prefers SASL PLAIN, then USER/PASS, then APOP. The
// package never logs, and no error it returns holds a password or the
// argument of an authentication command.
//
// A Client is not safe for concurrent use.
package pop3
