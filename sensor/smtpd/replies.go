package smtpd

import (
	"log/slog"

	"github.com/emersion/go-smtp"
)

// reason names why the server refused something; each has a counter (see
// [Stats]) and is the "reason" attribute of the log line.
type reason int

const (
	reasonClientRefused         reason = iota // 554 at connect: not in the monitor listener's clients list
	reasonConnectionLimit                     // 421 at connect: max_connections reached
	reasonClientConnectionLimit               // 421 at connect: max_connections_per_client reached
	reasonSpoolUnavailable                    // 421 at connect: the spool cannot take mail
	reasonTLSRequired                         // 530: a mail command before STARTTLS
	reasonTLSInvalidClientCert                // the client's certificate did not verify
	reasonTLSHandshake                        // any other failed TLS handshake
	reasonSTARTTLSPipelining                  // bytes pipelined after STARTTLS, discarded
	reasonProtocol                            // unknown command, bad syntax, bad sequence
	reasonRecipientRefused                    // 550 5.7.1: outside the destination domains
	reasonTooManyRecipients                   // 452 4.5.3: max_recipients reached
	reasonMessageTooLarge                     // 552 5.3.4
	reasonBareNewline                         // 550 5.6.0: a lone CR or bare LF in the message
	reasonLineTooLong                         // 500 5.5.2
	reasonSpoolFull                           // 452 4.3.1: spool full or disk low
	reasonSpoolError                          // 451 4.3.0: the spool failed
	reasonTimeout                             // 421 4.4.2: command, data or session time limit
	reasonTooManyErrors                       // 421 4.7.0: max_errors reached
	reasonRelayDenied                         // 554 5.7.1: a gateway asked to relay for a stranger
	reasonRateLimitConnections                // 421 4.7.0 at connect: connections_per_minute
	reasonRateLimitMessages                   // 450 4.7.1 MAIL: messages_per_minute
	reasonRateLimitRecipients                 // 450 4.7.1 RCPT: recipients_per_minute
	reasonHarvestGuard                        // 421 4.7.0: too many unknown recipients, the client is deferred
	reasonRecipientUnknown                    // 550 5.1.1: the next hop refused the recipient (recipient verification)
	reasonVerifyTempfail                      // 450 4.1.1: the next hop could not be asked
	reasonAuthRequired                        // 530 5.7.0: MAIL without AUTH on the submission listener
	reasonAuthFailed                          // 535 5.7.8: AUTH with bad credentials
	reasonAuthThrottled                       // 454 4.7.0: AUTH from a client or for a name that failed too often
	reasonAuthUnavailable                     // 454 4.7.0: the source of AUTH could not answer
	reasonNotInAcceptanceList                 // 554 at connect: not in a gateway listener's acceptance list
	numReasons
)

var reasonNames = [numReasons]string{
	reasonClientRefused:         "client_refused",
	reasonConnectionLimit:       "connection_limit",
	reasonClientConnectionLimit: "client_connection_limit",
	reasonSpoolUnavailable:      "spool_unavailable",
	reasonTLSRequired:           "tls_required",
	reasonTLSInvalidClientCert:  "tls_invalid_client_certificate",
	reasonTLSHandshake:          "tls_handshake_failed",
	reasonSTARTTLSPipelining:    "starttls_pipelining",
	reasonProtocol:              "protocol_error",
	reasonRecipientRefused:      "recipient_refused",
	reasonTooManyRecipients:     "too_many_recipients",
	reasonMessageTooLarge:       "message_too_large",
	reasonBareNewline:           "bare_newline",
	reasonLineTooLong:           "line_too_long",
	reasonSpoolFull:             "spool_full",
	reasonSpoolError:            "spool_error",
	reasonTimeout:               "timeout",
	reasonTooManyErrors:         "too_many_errors",
	reasonRelayDenied:           "relay_denied",
	reasonRateLimitConnections:  "rate_limit_connections",
	reasonRateLimitMessages:     "rate_limit_messages",
	reasonRateLimitRecipients:   "rate_limit_recipients",
	reasonHarvestGuard:          "harvest_guard",
	reasonRecipientUnknown:      "recipient_unknown",
	reasonVerifyTempfail:        "recipient_verify_tempfail",
	reasonAuthRequired:          "auth_required",
	reasonAuthFailed:            "auth_failed",
	reasonAuthThrottled:         "auth_throttled",
	reasonAuthUnavailable:       "auth_unavailable",
	reasonNotInAcceptanceList:   "not_in_acceptance_list",
}

func (r reason) String() string { return reasonNames[r] }

// rejection is a refusal: the reply go-smtp writes and the reason it is
// counted under. It unwraps to the reply, so errors.As finds the
// *smtp.SMTPError through the spool's wrapping; go-smtp itself only
// recognises a bare *smtp.SMTPError, which is what the session returns.
type rejection struct {
	reason reason
	reply  *smtp.SMTPError
}

func (r *rejection) Error() string { return r.reply.Error() }
func (r *rejection) Unwrap() error { return r.reply }

func reject(r reason, code int, enh smtp.EnhancedCode, msg string) *rejection {
	return &rejection{reason: r, reply: &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: msg}}
}

// Refusals that the connection finds in the raw DATA stream and returns
// from Read, so that they reach the session through go-smtp's reader.
var (
	errBareLF          = reject(reasonBareNewline, 550, smtp.EnhancedCode{5, 6, 0}, "Bare LF in message data: lines must end with CRLF")
	errLoneCR          = reject(reasonBareNewline, 550, smtp.EnhancedCode{5, 6, 0}, "Lone CR in message data: lines must end with CRLF")
	errTextLineTooLong = reject(reasonLineTooLong, 500, smtp.EnhancedCode{5, 5, 2}, "Line too long")
)

// Refusals of the session.
var (
	errTooLarge = reject(reasonMessageTooLarge, 552, smtp.EnhancedCode{5, 3, 4}, "Message exceeds the size limit")
	errRelay    = func(msg string) *rejection {
		return reject(reasonRecipientRefused, 550, smtp.EnhancedCode{5, 7, 1}, msg)
	}
	// errRelayDenied is Postfix's reject_unauth_destination: a gateway's
	// inbound listener takes its local domains from anyone, and relays
	// elsewhere only for the clients of its outbound acceptance list.
	errRelayDenied = func(msg string) *rejection {
		return reject(reasonRelayDenied, 554, smtp.EnhancedCode{5, 7, 1}, msg)
	}
	errTooManyRcpts = reject(reasonTooManyRecipients, 452, smtp.EnhancedCode{4, 5, 3}, "Too many recipients")
	errSpoolFull    = reject(reasonSpoolFull, 452, smtp.EnhancedCode{4, 3, 1}, "Insufficient system storage, try again later")
	errSpoolFailed  = reject(reasonSpoolError, 451, smtp.EnhancedCode{4, 3, 0}, "Local error in processing, try again later")
)

// slogLevel is the level a refusal is logged at: the ones an operator
// should look into at Warn or Error, the daily noise of a mail server at
// Info.
func slogLevel(r reason) slog.Level {
	switch r {
	case reasonSpoolError:
		return slog.LevelError
	case reasonSpoolFull, reasonSpoolUnavailable, reasonTLSInvalidClientCert, reasonSTARTTLSPipelining, reasonBareNewline, reasonAuthUnavailable:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}
