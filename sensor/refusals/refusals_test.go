package refusals

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/ospreysec/osprey/sensor/smtpd"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)

func refusal(at time.Duration, ip, reason, from string) smtpd.Refusal {
	return smtpd.Refusal{Time: t0.Add(at), ClientIP: netip.MustParseAddr(ip), Reason: reason, MailFrom: from}
}

func TestCountsPerClientReasonAndMinute(t *testing.T) {
	l := New()
	l.Refused(refusal(10*time.Second, "192.0.2.1", "recipient_refused", "first@x.test"))
	l.Refused(refusal(5*time.Second, "192.0.2.1", "recipient_refused", "earlier@x.test"))
	l.Refused(refusal(50*time.Second, "192.0.2.1", "recipient_refused", "later@x.test"))
	l.Refused(refusal(70*time.Second, "192.0.2.1", "recipient_refused", "next-minute@x.test"))
	l.Refused(refusal(20*time.Second, "192.0.2.2", "recipient_refused", ""))
	l.Refused(refusal(20*time.Second, "::ffff:192.0.2.1", "client_refused", ""))
	got := l.Take()
	if len(got) != 4 || l.Len() != 0 {
		t.Fatalf("took %d entries, %d left; want 4 and none", len(got), l.Len())
	}
	first := got[1] // oldest minute first, then client, then reason: 192.0.2.1 recipient_refused
	if first.GetClientIp() != "192.0.2.1" || first.GetReason() != "recipient_refused" || first.GetCount() != 3 {
		t.Fatalf("first entry: %v", first)
	}
	if first.GetMailFrom() != "earlier@x.test" || !first.GetFirstAt().AsTime().Equal(t0.Add(5*time.Second)) ||
		!first.GetLastAt().AsTime().Equal(t0.Add(50*time.Second)) || !first.GetMinute().AsTime().Equal(t0) {
		t.Errorf("first entry keeps the earliest sample and both ends: %v", first)
	}
	if got[0].GetReason() != "client_refused" || got[0].GetClientIp() != "192.0.2.1" {
		t.Errorf("an IPv4-mapped address is counted as its IPv4 address: %v", got[0])
	}
	if got[3].GetMailFrom() != "next-minute@x.test" {
		t.Errorf("the next minute is an entry of its own: %v", got[3])
	}
}

func TestFloodIsBounded(t *testing.T) {
	l := New()
	for i := range MaxEntries + 500 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Refused(smtpd.Refusal{Time: t0, ClientIP: ip, Reason: "client_refused"})
	}
	if l.Len() != MaxEntries+1 {
		t.Fatalf("entries: %d, want %d and one for the other clients", l.Len(), MaxEntries+1)
	}
	var total uint64
	var other uint64
	for l.Len() > 0 {
		rs := l.Take()
		if len(rs) > MaxReport {
			t.Fatalf("a report of %d", len(rs))
		}
		for _, r := range rs {
			total += r.GetCount()
			if r.GetClientIp() == OtherClient {
				other = r.GetCount()
			}
		}
	}
	if total != MaxEntries+500 || other != 500 {
		t.Errorf("counted %d, %d of them as other clients; want %d and 500", total, other, MaxEntries+500)
	}
}

func TestReturnMergesBack(t *testing.T) {
	l := New()
	l.Refused(refusal(0, "192.0.2.1", "recipient_refused", "a@x.test"))
	taken := l.Take()
	l.Refused(refusal(time.Second, "192.0.2.1", "recipient_refused", "b@x.test"))
	l.Return(taken)
	got := l.Take()
	if len(got) != 1 || got[0].GetCount() != 2 || got[0].GetMailFrom() != "a@x.test" {
		t.Errorf("after a report was given back: %v", got)
	}
	long := smtpd.Refusal{Time: t0, ClientIP: netip.MustParseAddr("192.0.2.9"), Reason: "protocol_error", Detail: fmt.Sprint(make([]byte, 4000))}
	l.Refused(long)
	if d := l.Take()[0].GetDetail(); len(d) > maxText {
		t.Errorf("a detail of %d bytes kept", len(d))
	}
}
