package pop3poll

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// record books the outcome of a session (or of a failed lock), and tells
// Options.Notify when the state the operator sees changed.
func (p *Poller) record(res sessionResult, err error) {
	p.mu.Lock()
	changed := p.recordLocked(res, err)
	p.mu.Unlock()
	if changed {
		p.notify()
	}
}

// notify calls Options.Notify, if set; never under p.mu.
func (p *Poller) notify() {
	if p.opts.Notify != nil {
		p.opts.Notify()
	}
}

// recordLocked is record under p.mu; it reports whether the state, the
// error or the problems changed.
func (p *Poller) recordLocked(res sessionResult, err error) (changed bool) {
	mailbox := p.mbox.name
	now := p.now()
	p.st.deleted += uint64(res.deleted)
	if res.certWarning != "" {
		changed = changed || p.st.certWarning != res.certWarning
		p.st.certWarning = res.certWarning
	}
	if res.tooLarge != nil {
		changed = changed || !maps.Equal(p.st.tooLarge, res.tooLarge)
		p.st.tooLarge = res.tooLarge
	}
	if err == nil {
		p.st.polled++
		p.st.lastSuccess = now
		if p.st.lastErr != nil {
			p.log.Info("polling works again", "mailbox", mailbox, "after_failures", p.st.failures)
			changed = true
		}
		p.st.lastErr, p.st.lastErrAt, p.st.failures, p.st.failingSince, p.st.alerted = nil, time.Time{}, 0, time.Time{}, false
		if res.spooled > 0 || res.deleted > 0 {
			p.log.Info("polled", "mailbox", mailbox, "listed", res.listed, "spooled", res.spooled, "deleted", res.deleted, "more", res.more)
		}
		return changed
	}
	p.st.errors++
	p.st.failures++
	p.st.lastErrAt = now
	if p.st.failingSince.IsZero() {
		p.st.failingSince = now
	}
	if p.st.lastErr == nil || p.st.lastErr.Error() != err.Error() {
		p.log.Warn("poll failed", "mailbox", mailbox, "err", err, "failures", p.st.failures)
		changed = true
	}
	p.st.lastErr = err
	if d := now.Sub(p.st.failingSince); d >= p.opts.AlertAfter && !p.st.alerted {
		p.st.alerted = true
		p.log.Error("POP3 polling has been failing", "mailbox", mailbox, "for", d.Round(time.Second), "err", err, "alert", true)
		changed = true
	}
	return changed
}

// Status reports the poller's counters and problems (see the package
// comment), and the same per integration in Pop3 (IntegrationStatus); the
// sensor is unhealthy while sessions fail.
func (p *Poller) Status() *ospreyv1.SensorStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	in := &ospreyv1.IntegrationStatus{
		State:    ospreyv1.IntegrationState_INTEGRATION_STATE_DISABLED,
		Messages: p.st.spooled,
		Bytes:    p.st.spooledBytes,
		Refusals: map[string]uint64{"too_large": uint64(len(p.st.tooLarge))},
		Failures: uint32(min(p.st.failures, math.MaxUint32)),
	}
	if !p.st.lastSuccess.IsZero() {
		in.LastSuccessAt = timestamppb.New(p.st.lastSuccess)
	}
	out := &ospreyv1.SensorStatus{
		Counters: map[string]uint64{
			"pop3_polled":  p.st.polled,
			"pop3_spooled": p.st.spooled,
			"pop3_deleted": p.st.deleted,
			"pop3_errors":  p.st.errors,
		},
		Healthy: p.job == nil || p.st.lastErr == nil,
		Pop3:    in,
	}
	j := p.job
	if j == nil {
		return out
	}
	mb := j.mailbox
	in.Target = mb
	in.State = ospreyv1.IntegrationState_INTEGRATION_STATE_POLLING
	if err := p.st.lastErr; err != nil {
		in.State = ospreyv1.IntegrationState_INTEGRATION_STATE_FAILING
		in.LastError = err.Error()
		in.LastErrorAt = timestamppb.New(p.st.lastErrAt)
		in.FailingSince = timestamppb.New(p.st.failingSince)
		if d := p.now().Sub(p.st.failingSince); d >= p.opts.AlertAfter {
			in.Problems = append(in.Problems, fmt.Sprintf("%s pop3 %s: polling has failed for %v (since %s): %v",
				AlertPrefix, mb, d.Round(time.Second), p.st.failingSince.UTC().Format(time.RFC3339), err))
		}
		in.Problems = append(in.Problems, fmt.Sprintf("pop3 %s: %v (%d failures in a row)", mb, err, p.st.failures))
	}
	if p.st.waitingLock {
		in.State = ospreyv1.IntegrationState_INTEGRATION_STATE_WAITING_LOCK
		in.Problems = append(in.Problems, fmt.Sprintf("pop3 %s: waiting for the mailbox lock: another node polls it", mb))
	}
	switch {
	case !j.cfg.GetTls():
		in.Problems = append(in.Problems, fmt.Sprintf("RISK: pop3 %s: TLS is off: the password and the mail cross the network in the clear", mb))
	case j.cfg.GetTlsCertificate() == ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_ACCEPT_ANY:
		in.Problems = append(in.Problems, fmt.Sprintf("RISK: pop3 %s: tls_certificate is accept_any: the server's certificate is not checked, so a man in the middle can read the password and the mail", mb))
	}
	if p.st.certWarning != "" {
		in.Problems = append(in.Problems, p.st.certWarning)
	}
	if r := p.mbox.hashReason; r != "" && p.mbox.name == mb {
		in.Problems = append(in.Problems, fmt.Sprintf("pop3 %s: unique ids are unusable (%s); messages are deduplicated by content hash (SHA-256)", mb, r))
	}
	if r := p.mbox.keeps; r != "" && p.mbox.name == mb {
		in.Problems = append(in.Problems, fmt.Sprintf("pop3 %s: the server keeps messages whose deletion it confirmed (%s); they are deleted again in every session and not spooled again, but the mailbox keeps growing", mb, r))
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
		in.Problems = append(in.Problems, fmt.Sprintf("pop3 %s: %d messages larger than %d bytes are left on the server: %s",
			mb, len(keys), p.opts.MaxMessageSize, strings.Join(s, ", ")))
	}
	out.Problems = slices.Clone(in.Problems)
	return out
}
