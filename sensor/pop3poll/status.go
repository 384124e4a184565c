package pop3poll

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// record books the outcome of a session (or of a failed lock).
func (p *Poller) record(res sessionResult, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	mailbox := p.mbox.name
	p.st.deleted += uint64(res.deleted)
	if res.certWarning != "" {
		p.st.certWarning = res.certWarning
	}
	if res.tooLarge != nil {
		p.st.tooLarge = res.tooLarge
	}
	if err == nil {
		p.st.polled++
		if p.st.lastErr != nil {
			p.log.Info("polling works again", "mailbox", mailbox, "after_failures", p.st.failures)
		}
		p.st.lastErr, p.st.failures, p.st.failingSince, p.st.alerted = nil, 0, time.Time{}, false
		if res.spooled > 0 || res.deleted > 0 {
			p.log.Info("polled", "mailbox", mailbox, "listed", res.listed, "spooled", res.spooled, "deleted", res.deleted, "more", res.more)
		}
		return
	}
	p.st.errors++
	p.st.failures++
	now := p.now()
	if p.st.failingSince.IsZero() {
		p.st.failingSince = now
	}
	if p.st.lastErr == nil || p.st.lastErr.Error() != err.Error() {
		p.log.Warn("poll failed", "mailbox", mailbox, "err", err, "failures", p.st.failures)
	}
	p.st.lastErr = err
	if d := now.Sub(p.st.failingSince); d >= p.opts.AlertAfter && !p.st.alerted {
		p.st.alerted = true
		p.log.Error("POP3 polling has been failing", "mailbox", mailbox, "for", d.Round(time.Second), "err", err, "alert", true)
	}
}

// Status reports the poller's counters and problems (see the package
// comment); the sensor is unhealthy while sessions fail.
func (p *Poller) Status() *ospreyv1.SensorStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := &ospreyv1.SensorStatus{
		Counters: map[string]uint64{
			"pop3_polled":  p.st.polled,
			"pop3_spooled": p.st.spooled,
			"pop3_deleted": p.st.deleted,
			"pop3_errors":  p.st.errors,
		},
		Healthy: p.job == nil || p.st.lastErr == nil,
	}
	j := p.job
	if j == nil {
		return out
	}
	mb := j.mailbox
	if err := p.st.lastErr; err != nil {
		if d := p.now().Sub(p.st.failingSince); d >= p.opts.AlertAfter {
			out.Problems = append(out.Problems, fmt.Sprintf("%s pop3 %s: polling has failed for %v (since %s): %v",
				AlertPrefix, mb, d.Round(time.Second), p.st.failingSince.UTC().Format(time.RFC3339), err))
		}
		out.Problems = append(out.Problems, fmt.Sprintf("pop3 %s: %v (%d failures in a row)", mb, err, p.st.failures))
	}
	if p.st.waitingLock {
		out.Problems = append(out.Problems, fmt.Sprintf("pop3 %s: waiting for the mailbox lock: another node polls it", mb))
	}
	switch {
	case !j.cfg.GetTls():
		out.Problems = append(out.Problems, fmt.Sprintf("RISK: pop3 %s: TLS is off: the password and the mail cross the network in the clear", mb))
	case j.cfg.GetTlsCertificate() == ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_ANY:
		out.Problems = append(out.Problems, fmt.Sprintf("RISK: pop3 %s: tls_certificate is accept_any: the server's certificate is not checked, so a man in the middle can read the password and the mail", mb))
	}
	if p.st.certWarning != "" {
		out.Problems = append(out.Problems, p.st.certWarning)
	}
	if r := p.mbox.hashReason; r != "" && p.mbox.name == mb {
		out.Problems = append(out.Problems, fmt.Sprintf("pop3 %s: unique ids are unusable (%s); messages are deduplicated by content hash (SHA-256)", mb, r))
	}
	if r := p.mbox.keeps; r != "" && p.mbox.name == mb {
		out.Problems = append(out.Problems, fmt.Sprintf("pop3 %s: the server keeps messages whose deletion it confirmed (%s); they are deleted again in every session and not spooled again, but the mailbox keeps growing", mb, r))
	}
	if len(p.st.tooLarge) > 0 {
		var s []string
		keys := slices.Sorted(maps.Keys(p.st.tooLarge))
		for _, k := range keys[:min(len(keys), 5)] {
			s = append(s, fmt.Sprintf("%s (%d bytes)", k, p.st.tooLarge[k]))
		}
		if len(keys) > 5 {
			s = append(s, fmt.Sprintf("and %d more", len(keys)-5))
		}
		out.Problems = append(out.Problems, fmt.Sprintf("pop3 %s: %d messages larger than %d bytes are left on the server: %s",
			mb, len(keys), p.opts.MaxMessageSize, strings.Join(s, ", ")))
	}
	return out
}
