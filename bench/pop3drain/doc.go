// Package pop3drain is a benchmark, run with go test (it needs the Dovecot
// helper of pkg/pop3/pop3test, which is built on package testing): how many
// messages per second the sensor's POP3 poller drains from a real Dovecot
// into a real spool, over implicit TLS on loopback, side by side in the
// same run with fetchmail draining an identical mailbox.
//
// Each round fills one Maildir with the same 1,000 messages of 20 KB and
// drains it with each client in turn:
//
//   - osprey: pop3poll.Poller with its defaults (sessions of 100 messages,
//     each committed with QUIT) into spool.Spool, which fsyncs every
//     message (and its UIDL) before the poller sends DELE;
//   - fetchmail (mda): fetchmail with its defaults (one session for the
//     whole mailbox) handing each message to an MDA that writes it to its
//     own file and fsyncs it (dd conv=fsync) before fetchmail sends DELE:
//     the same promise as the spool's, kept the way fetchmail keeps it,
//     with a process per message (procmail and maildrop deliver likewise);
//   - fetchmail (smtp-sink): fetchmail forwarding each message by SMTP to
//     Postfix's smtp-sink, which keeps nothing: fetchmail's ceiling, not a
//     durable delivery, shown for scale.
//
// Both verify the server's certificate against the test CA. The median of
// the rounds is reported, with the ratio to each reference.
//
// Usage (with dovecot-pop3d, fetchmail and postfix installed):
//
//	go test ./bench/pop3drain -run TestDrain -count=1 -v -args -rounds 5
package pop3drain
