// Package refusals counts the attempts a sensor refuses, for the central's
// message audit log: per client, reason and minute, so that a flood costs
// one entry a client and reason a minute, not one an attempt. The first
// refusal of each entry keeps what it said (its sender, its recipient, the
// detail). The agent takes the counts with each status it sends.
//
// The counts are bounded: past MaxEntries the refusals of a new client are
// counted under the client "other" of their reason and minute, so a flood
// from many addresses costs bounded memory and loses no count, only whom.
// Counts wait in memory: a sensor that restarts loses those it had not sent,
// as a report lost with its stream is (the log of refusals is a log, not a
// ledger).
package refusals

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/smtpd"
)

// Bounds of the counts kept between two reports.
const (
	// MaxEntries bounds the entries kept.
	MaxEntries = 10000
	// MaxReport bounds the entries one report carries: a report stays well
	// under gRPC's message size however long its samples.
	MaxReport = 2000
	// maxText bounds each kept sample.
	maxText = 512
)

// OtherClient stands for the clients counted past MaxEntries.
const OtherClient = "other"

type key struct {
	minute int64 // Unix seconds of the minute's start
	client string
	reason string
}

type entry struct {
	count                  uint64
	first, last            time.Time
	mailFrom, rcpt, detail string
}

// Log counts refusals until Take hands them over. It is safe for
// concurrent use; Refused never blocks on anything but its lock.
type Log struct {
	mu      sync.Mutex
	entries map[key]*entry
}

// New returns an empty Log.
func New() *Log { return &Log{entries: map[key]*entry{}} }

var _ smtpd.RefusalSink = (*Log)(nil)

// Refused counts one refusal.
func (l *Log) Refused(r smtpd.Refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.add(key{minute: r.Time.Truncate(time.Minute).Unix(), client: clientOf(r.ClientIP), reason: r.Reason},
		&entry{count: 1, first: r.Time, last: r.Time, mailFrom: clip(r.MailFrom), rcpt: clip(r.Rcpt), detail: clip(r.Detail)})
}

// add merges e into the entry of k, or into the "other" entry of its reason
// and minute when the log is full. Callers hold l.mu.
func (l *Log) add(k key, e *entry) {
	old, ok := l.entries[k]
	if !ok && len(l.entries) >= MaxEntries {
		k.client = OtherClient
		old, ok = l.entries[k]
	}
	if !ok {
		l.entries[k] = e
		return
	}
	old.count += e.count
	if e.first.Before(old.first) {
		old.first, old.mailFrom, old.rcpt, old.detail = e.first, e.mailFrom, e.rcpt, e.detail
	}
	if e.last.After(old.last) {
		old.last = e.last
	}
}

// Take hands over up to MaxReport entries, the oldest minutes first, and
// forgets them.
func (l *Log) Take() []*ospreyv1.Refusal {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) == 0 {
		return nil
	}
	keys := make([]key, 0, len(l.entries))
	for k := range l.entries {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.minute != b.minute {
			return int(a.minute - b.minute)
		}
		if a.client != b.client {
			if a.client < b.client {
				return -1
			}
			return 1
		}
		if a.reason < b.reason {
			return -1
		}
		if a.reason > b.reason {
			return 1
		}
		return 0
	})
	keys = keys[:min(len(keys), MaxReport)]
	out := make([]*ospreyv1.Refusal, 0, len(keys))
	for _, k := range keys {
		e := l.entries[k]
		delete(l.entries, k)
		out = append(out, &ospreyv1.Refusal{
			Minute: timestamppb.New(time.Unix(k.minute, 0)), ClientIp: k.client, Reason: k.reason, Count: e.count,
			FirstAt: timestamppb.New(e.first), LastAt: timestamppb.New(e.last),
			MailFrom: e.mailFrom, Rcpt: e.rcpt, Detail: e.detail,
		})
	}
	return out
}

// Return gives back what Take handed over and could not be sent, so the
// next report carries it.
func (l *Log) Return(rs []*ospreyv1.Refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range rs {
		l.add(key{minute: r.GetMinute().AsTime().Unix(), client: r.GetClientIp(), reason: r.GetReason()},
			&entry{count: r.GetCount(), first: r.GetFirstAt().AsTime(), last: r.GetLastAt().AsTime(),
				mailFrom: r.GetMailFrom(), rcpt: r.GetRcpt(), detail: r.GetDetail()})
	}
}

// Len returns how many entries wait.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}

func clientOf(ip netip.Addr) string {
	if !ip.IsValid() {
		return "unknown"
	}
	return ip.Unmap().String()
}

// clip cuts s to maxText bytes on a rune boundary.
func clip(s string) string {
	if len(s) <= maxText {
		return s
	}
	n := maxText
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
