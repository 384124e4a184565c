package smtpd

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats are the server's counters since New.
type Stats struct {
	// Connections counts the connections that got a session (refused ones
	// are counted in Rejected).
	Connections uint64
	// Active is the number of open sessions.
	Active int64
	// Accepted counts the messages spooled, AcceptedBytes their bytes as
	// stored (the Received header included).
	Accepted      uint64
	AcceptedBytes uint64
	// LastAccepted is when the last message was spooled; zero if none was.
	LastAccepted time.Time
	// Rejected counts refusals by reason; every reason is present:
	// client_refused, connection_limit, client_connection_limit,
	// spool_unavailable, tls_required, tls_invalid_client_certificate,
	// tls_handshake_failed, starttls_pipelining, protocol_error,
	// recipient_refused, too_many_recipients, message_too_large,
	// bare_newline, line_too_long, spool_full, spool_error, timeout,
	// too_many_errors, relay_denied, rate_limit_connections,
	// rate_limit_messages, rate_limit_recipients, harvest_guard,
	// recipient_unknown, recipient_verify_tempfail, auth_required,
	// auth_failed, auth_throttled, auth_unavailable,
	// not_in_acceptance_list.
	Rejected map[string]uint64
	// Authenticated counts the successful AUTH commands (the submission
	// listener).
	Authenticated uint64
	// LookupFailures counts the lookups of clients' names for the
	// acceptance lists that failed (the client then matched by its address
	// only); LastLookupFailure and LastLookupError tell the last one.
	LookupFailures    uint64
	LastLookupFailure time.Time
	LastLookupError   string
}

// lookupFailure is the last failed lookup of a client's name.
type lookupFailure struct {
	at  time.Time
	err string
}

// counters are the atomics behind Stats and the Prometheus collector.
type counters struct {
	connections   atomic.Uint64
	active        atomic.Int64
	accepted      atomic.Uint64
	acceptedBytes atomic.Uint64
	lastAccepted  atomic.Int64 // Unix nanoseconds; 0 if none
	rejected      [numReasons]atomic.Uint64
	// auth counts sender authentication's results by check and result.
	auth [len(authChecks)][len(authResults)]atomic.Uint64
	// smtpAuth counts the AUTH commands by result (authOutcomes).
	smtpAuth [len(authOutcomes)]atomic.Uint64
	// lookupFailures counts failed lookups of clients' names, the last
	// of which is lastLookup.
	lookupFailures atomic.Uint64
	lastLookup     atomic.Pointer[lookupFailure]
}

// lookupFailed counts a failed lookup of a client's name.
func (c *counters) lookupFailed(at time.Time, err error) {
	c.lastLookup.Store(&lookupFailure{at: at, err: err.Error()})
	c.lookupFailures.Add(1)
}

// The results of an AUTH command, as the metric names them.
const (
	authSuccess = iota
	authFailed
	authThrottled
	authUnavailable
)

var authOutcomes = [...]string{authSuccess: "success", authFailed: "failed", authThrottled: "throttled", authUnavailable: "unavailable"}

func (c *counters) countAuthResult(r int) { c.smtpAuth[r].Add(1) }

// The checks of sender authentication, and their results (RFC 8601's).
var (
	authChecks  = [...]string{"spf", "dkim", "dmarc"}
	authResults = [...]string{"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy", "other"}
)

// countAuth counts one result of check.
func (c *counters) countAuth(check int, result string) {
	i := len(authResults) - 1
	for j, r := range authResults {
		if r == result {
			i = j
			break
		}
	}
	c.auth[check][i].Add(1)
}

func (c *counters) reject(r reason) { c.rejected[r].Add(1) }

func (c *counters) snapshot() Stats {
	s := Stats{
		Connections:   c.connections.Load(),
		Active:        c.active.Load(),
		Accepted:      c.accepted.Load(),
		AcceptedBytes: c.acceptedBytes.Load(),
		Rejected:      make(map[string]uint64, numReasons),
		Authenticated: c.smtpAuth[authSuccess].Load(),
	}
	if ns := c.lastAccepted.Load(); ns != 0 {
		s.LastAccepted = time.Unix(0, ns)
	}
	for r := range numReasons {
		s.Rejected[r.String()] = c.rejected[r].Load()
	}
	s.LookupFailures = c.lookupFailures.Load()
	if f := c.lastLookup.Load(); f != nil {
		s.LastLookupFailure, s.LastLookupError = f.at, f.err
	}
	return s
}

// collector exports the counters to Prometheus.
type collector struct {
	c                                             *counters
	connections, active, accepted, bytes, rejects *prometheus.Desc
	auth, smtpAuth                                *prometheus.Desc
	submission                                    bool
}

func newCollector(c *counters, role Role) *collector {
	listener := prometheus.Labels{"listener": role.String()}
	return &collector{
		c:           c,
		connections: prometheus.NewDesc("osprey_smtp_connections_total", "SMTP connections that got a session.", nil, listener),
		active:      prometheus.NewDesc("osprey_smtp_sessions_active", "Open SMTP sessions.", nil, listener),
		accepted:    prometheus.NewDesc("osprey_smtp_messages_accepted_total", "Messages spooled after SMTP.", nil, listener),
		bytes:       prometheus.NewDesc("osprey_smtp_accepted_bytes_total", "Bytes of the messages spooled after SMTP.", nil, listener),
		rejects:     prometheus.NewDesc("osprey_smtp_rejections_total", "SMTP refusals by reason.", []string{"reason"}, listener),
		auth: prometheus.NewDesc("osprey_smtp_sender_auth_total",
			"Sender authentication results of the messages spooled, by check (spf, dkim: each signature, or none without one; dmarc) and result.",
			[]string{"check", "result"}, listener),
		smtpAuth: prometheus.NewDesc("osprey_smtp_auth_total",
			"SMTP AUTH commands on the submission listener, by result: success, failed (bad credentials), throttled (too many failures lately), unavailable (the source could not answer).",
			[]string{"result"}, listener),
		submission: role.Submission,
	}
}

func (col *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- col.connections
	ch <- col.active
	ch <- col.accepted
	ch <- col.bytes
	ch <- col.rejects
	ch <- col.auth
	if col.submission {
		ch <- col.smtpAuth
	}
}

func (col *collector) Collect(ch chan<- prometheus.Metric) {
	c := col.c
	ch <- prometheus.MustNewConstMetric(col.connections, prometheus.CounterValue, float64(c.connections.Load()))
	ch <- prometheus.MustNewConstMetric(col.active, prometheus.GaugeValue, float64(c.active.Load()))
	ch <- prometheus.MustNewConstMetric(col.accepted, prometheus.CounterValue, float64(c.accepted.Load()))
	ch <- prometheus.MustNewConstMetric(col.bytes, prometheus.CounterValue, float64(c.acceptedBytes.Load()))
	for r := range numReasons {
		ch <- prometheus.MustNewConstMetric(col.rejects, prometheus.CounterValue, float64(c.rejected[r].Load()), r.String())
	}
	for i, check := range authChecks {
		for j, result := range authResults {
			if n := c.auth[i][j].Load(); n > 0 {
				ch <- prometheus.MustNewConstMetric(col.auth, prometheus.CounterValue, float64(n), check, result)
			}
		}
	}
	if col.submission {
		for i, r := range authOutcomes {
			ch <- prometheus.MustNewConstMetric(col.smtpAuth, prometheus.CounterValue, float64(c.smtpAuth[i].Load()), r)
		}
	}
}
