// Package smtpauth checks the credentials that clients give with SMTP AUTH
// on a gateway's submission listener (Symantec Messaging Gateway's
// "Authentication Mail Settings"): against an LDAP directory, by binding as
// the user, or against another SMTP server, by authenticating to it with
// them over TLS. Package smtpd speaks AUTH with the client and asks an
// [Authenticator]; this package decides.
//
// # Design
//
// An [Authenticator] answers in one of three ways: nil (the credentials
// are good), [ErrInvalid] (a bad name or password: SMTP 535 5.7.8), or an
// error that wraps [ErrUnavailable] or [ErrThrottled] (try later: 454
// 4.7.0). A source that cannot be reached (the directory down, a TLS
// handshake that fails, a timeout) is never taken for a bad password:
// a client told 535 asks its user for a new password, one told 454 tries
// again later.
//
// In front of the source sit two memories, both bounded:
//
//   - The throttle counts failed checks per client address (an IPv6
//     client per /64, which one host holds whole) and per user name
//     (compared without case), in a window that starts at the first
//     failure. Past the limit AUTH is refused without asking the source
//     until the window has passed. It comes first, before the cache too:
//     otherwise a throttled name would still answer a good guess that the
//     cache remembers, and a guesser could go on at full speed.
//   - The cache remembers a successful check for cache_seconds, keyed by
//     HMAC-SHA256, under a key drawn at random when the Authenticator is
//     made, of the name and the password: neither is kept, and the digest
//     is of no use outside the process. A changed password works at once
//     (its digest is new); a revoked one keeps working until its entry
//     expires, which is what the setting trades for fewer binds.
//
// The LDAP source keeps two small pools of connections: one for the
// searches, bound once as search_bind_dn (or left anonymous), and one for
// the users' binds, where each bind replaces the one before. A check costs
// one round trip (two with a search) once the pools are warm; a pooled
// connection that the directory closed meanwhile is replaced and the
// operation tried once more. Every dial, handshake and operation has the
// source's timeout, and a connection whose operation timed out is closed:
// go-ldap waits for some answers (StartTLS) without a timeout of its own,
// so closing the connection is what ends the wait. The SMTP forwarding
// source opens a connection per check: an SMTP session takes one AUTH.
//
// The source's health is what the checks and the probes of [Authenticator.Run]
// found last: a source that fails (and not merely refuses a password) makes
// [Authenticator.Problem] a warning for the sensor's status, until a check
// or a probe gets through again. The probes keep the warning true when
// nobody authenticates.
//
// Passwords reach no log line, error, metric or file: errors of the
// sources name the DN or the server, never what was sent (go-ldap's errors
// hold the directory's answer, not the request).
package smtpauth
