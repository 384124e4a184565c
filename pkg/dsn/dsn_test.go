package dsn

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
	"github.com/google/go-cmp/cmp"
)

// notice is a parsed notice: its top header, the text of its human part,
// the field groups of its delivery-status part and its returned headers.
type notice struct {
	header   mail.Header
	text     string
	groups   []map[string]string
	order    [][]string // field names of each group, in order
	original string
	parts    []string // media types of the parts
}

// parse reads a notice with go-message, as a mail client would, and fails t
// on anything a well-formed RFC 3464 notice would not have.
func parse(t testing.TB, b []byte) notice {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(b, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatalf("bare LF in the notice:\n%s", b)
	}
	e, err := message.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("read notice: %v\n%s", err, b)
	}
	n := notice{header: mail.Header{Header: e.Header}}
	mt, params, err := e.Header.ContentType()
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q %v (%v), want multipart/report; report-type=delivery-status", mt, params, err)
	}
	mr := e.MultipartReader()
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		pt, _, _ := p.Header.ContentType()
		n.parts = append(n.parts, pt)
		body, err := io.ReadAll(p.Body)
		if err != nil {
			t.Fatalf("read %s part: %v", pt, err)
		}
		switch pt {
		case "text/plain":
			n.text = string(body)
		case "message/delivery-status":
			br := bufio.NewReader(bytes.NewReader(body))
			for {
				if _, err := br.Peek(1); err == io.EOF {
					break
				}
				h, err := textproto.ReadHeader(br)
				if err != nil {
					t.Fatalf("delivery-status group %d: %v\n%s", len(n.groups), err, body)
				}
				g := map[string]string{}
				var names []string
				for f := h.Fields(); f.Next(); {
					if _, dup := g[f.Key()]; dup {
						t.Errorf("field %s twice in a group", f.Key())
					}
					g[f.Key()] = f.Value()
					names = append(names, f.Key())
				}
				n.groups = append(n.groups, g)
				n.order = append(n.order, names)
			}
		case "text/rfc822-headers":
			n.original = string(body)
		}
	}
	return n
}

var (
	arrival = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	attempt = time.Date(2026, 3, 2, 9, 5, 0, 0, time.UTC)
	until   = time.Date(2026, 3, 7, 9, 0, 0, 0, time.UTC)
	now     = time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)
)

const original = "Received: from a.example.org\r\n\tby gw.example.net; Mon, 2 Mar 2026 09:00:00 +0000\r\n" +
	"From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: Quarterly figures\r\n" +
	"Message-ID: <q1@example.org>\r\n\r\nThe body is not returned.\r\n"

func TestBuildFailed(t *testing.T) {
	b, err := Build(Report{
		ReportingMTA: "gw.example.net",
		To:           "alice@example.org",
		QueueID:      "01JABCD",
		Arrival:      arrival,
		Now:          now,
		Original:     []byte(original),
		Recipients: []Recipient{
			{Rcpt: "bob@example.com", Action: Failed, Status: "5.1.1", RemoteMTA: "mx1.example.com [192.0.2.1]:25",
				Diagnostic: "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown", LastAttempt: attempt},
			{Rcpt: "carol@nowhere.example", Action: Failed, Status: "5.1.2",
				Diagnostic: "Host or domain name not found: nowhere.example: NXDOMAIN", LastAttempt: attempt},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := parse(t, b)

	from, err := n.header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Mail Delivery System" || from[0].Address != "MAILER-DAEMON@gw.example.net" {
		t.Errorf("From %v (%v), want Mail Delivery System <MAILER-DAEMON@gw.example.net>", from, err)
	}
	to, err := n.header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "alice@example.org" {
		t.Errorf("To %v (%v), want alice@example.org", to, err)
	}
	if s, _ := n.header.Subject(); s != SubjectFailed {
		t.Errorf("Subject %q, want %q", s, SubjectFailed)
	}
	if d, err := n.header.Date(); err != nil || !d.Equal(now) {
		t.Errorf("Date %v (%v), want %v", d, err, now)
	}
	if id, err := n.header.MessageID(); err != nil || !strings.HasSuffix(id, "@gw.example.net") {
		t.Errorf("Message-ID %q (%v), want one @gw.example.net", id, err)
	}
	for k, want := range map[string]string{"Mime-Version": "1.0", "Auto-Submitted": "auto-replied"} {
		if got := n.header.Get(k); got != want {
			t.Errorf("%s %q, want %q", k, got, want)
		}
	}
	if diff := cmp.Diff([]string{"text/plain", "message/delivery-status", "text/rfc822-headers"}, n.parts); diff != "" {
		t.Errorf("parts (-want +got):\n%s", diff)
	}
	for _, want := range []string{
		"This is the mail system at host gw.example.net.",
		"could not\r\nbe delivered to one or more recipients",
		"<bob@example.com>: host mx1.example.com said: 550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown",
		"<carol@nowhere.example>: Host or domain name not found: nowhere.example: NXDOMAIN",
	} {
		if !strings.Contains(n.text, want) {
			t.Errorf("text part lacks %q:\n%s", want, n.text)
		}
	}
	wantGroups := []map[string]string{
		{"Reporting-Mta": "dns; gw.example.net", "X-Osprey-Queue-Id": "01JABCD", "Arrival-Date": "Mon, 02 Mar 2026 09:00:00 +0000"},
		{
			"Final-Recipient": "rfc822; bob@example.com", "Action": "failed", "Status": "5.1.1",
			"Remote-Mta":        "dns; mx1.example.com",
			"Diagnostic-Code":   "smtp; 550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown",
			"Last-Attempt-Date": "Mon, 02 Mar 2026 09:05:00 +0000",
		},
		{
			"Final-Recipient": "rfc822; carol@nowhere.example", "Action": "failed", "Status": "5.1.2",
			"Diagnostic-Code":   "X-Osprey; Host or domain name not found: nowhere.example: NXDOMAIN",
			"Last-Attempt-Date": "Mon, 02 Mar 2026 09:05:00 +0000",
		},
	}
	if diff := cmp.Diff(wantGroups, n.groups); diff != "" {
		t.Errorf("delivery-status fields (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"Final-Recipient", "Action", "Status", "Remote-Mta", "Diagnostic-Code", "Last-Attempt-Date"}, n.order[1]); diff != "" {
		t.Errorf("order of a recipient's fields (-want +got):\n%s", diff)
	}
	wantOrig, _, _ := strings.Cut(original, "\r\n\r\n")
	if n.original != wantOrig+"\r\n" {
		t.Errorf("returned headers %q, want %q", n.original, wantOrig+"\r\n")
	}
}

func TestBuildDelayed(t *testing.T) {
	b, err := Build(Report{
		ReportingMTA: "gw.example.net",
		To:           "alice@example.org",
		Arrival:      arrival,
		Now:          now,
		Recipients: []Recipient{{
			Rcpt: "bob@example.com", Action: Delayed, Status: "4.4.1", RemoteMTA: "mx1.example.com",
			Diagnostic: "connect to mx1.example.com[192.0.2.1]:25: connection refused", LastAttempt: attempt, WillRetryUntil: until,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := parse(t, b)
	if s, _ := n.header.Subject(); s != SubjectDelayed {
		t.Errorf("Subject %q, want %q", s, SubjectDelayed)
	}
	if !strings.Contains(n.text, "THIS IS A WARNING ONLY") || !strings.Contains(n.text, "still being retried until Sat, 07 Mar 2026 09:00:00 +0000") {
		t.Errorf("text part is not a delay warning with its end:\n%s", n.text)
	}
	want := map[string]string{
		"Final-Recipient": "rfc822; bob@example.com", "Action": "delayed", "Status": "4.4.1",
		"Remote-Mta":        "dns; mx1.example.com",
		"Diagnostic-Code":   "X-Osprey; connect to mx1.example.com[192.0.2.1]:25: connection refused",
		"Last-Attempt-Date": "Mon, 02 Mar 2026 09:05:00 +0000",
		"Will-Retry-Until":  "Sat, 07 Mar 2026 09:00:00 +0000",
	}
	if len(n.groups) != 2 {
		t.Fatalf("%d field groups, want 2", len(n.groups))
	}
	if diff := cmp.Diff(want, n.groups[1]); diff != "" {
		t.Errorf("recipient fields (-want +got):\n%s", diff)
	}
	if n.original != "" || len(n.parts) != 2 {
		t.Errorf("parts %v with returned headers %q, want none returned without Original", n.parts, n.original)
	}
}

// TestBuildInjection feeds values with CR, LF and other controls where the
// network puts them (a multi-line reply, a crafted address) and checks that
// none of them adds a field or a line.
func TestBuildInjection(t *testing.T) {
	b, err := Build(Report{
		ReportingMTA: "gw.example.net",
		To:           "alice@example.org",
		Now:          now,
		QueueID:      "Q1\r\nBcc: eve@evil.example",
		Recipients: []Recipient{{
			Rcpt:       "bob@example.com\r\nX-Injected: 1",
			Action:     Failed,
			Status:     "5.7.1",
			RemoteMTA:  "mx\r\nX-Injected: 2",
			Diagnostic: "550-5.7.1 first line\n550-5.7.1 second\r\nX-Injected: 3\x00\x1b[31m " + strings.Repeat("long ", 100),
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := parse(t, b)
	if bytes.Contains(b, []byte("\r\nX-Injected")) || bytes.Contains(b, []byte("\r\nBcc")) || bytes.ContainsAny(b, "\x00\x1b") {
		t.Fatalf("a value broke out of its field:\n%s", b)
	}
	if diff := cmp.Diff([]string{"Final-Recipient", "Action", "Status", "Remote-Mta", "Diagnostic-Code"}, n.order[1]); diff != "" {
		t.Errorf("recipient fields (-want +got):\n%s", diff)
	}
	if got, want := n.groups[1]["Diagnostic-Code"], "smtp; 550-5.7.1 first line 550-5.7.1 second X-Injected: 3 [31m long"; !strings.HasPrefix(got, want) {
		t.Errorf("Diagnostic-Code %q, want it to start %q", got, want)
	}
	if got, want := n.groups[1]["Final-Recipient"], "rfc822; bob@example.com X-Injected: 1"; got != want {
		t.Errorf("Final-Recipient %q, want %q", got, want)
	}
}

func TestBuildUTF8(t *testing.T) {
	b, err := Build(Report{
		ReportingMTA: "gw.example.net",
		To:           "alice@example.org",
		Now:          now,
		Original:     []byte("Subject: Grüße\nFrom: jörg@bücher.example\n\nbody"),
		Recipients: []Recipient{{
			Rcpt: "jörg+x@bücher.example", Action: Failed, Status: "5.6.7",
			Diagnostic: "SMTPUTF8 is required, but was not offered by mx.bücher.example",
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := parse(t, b)
	if got, want := n.groups[1]["Final-Recipient"], `utf-8; j\x{F6}rg\x{2B}x@b\x{FC}cher.example`; got != want {
		t.Errorf("Final-Recipient %q, want %q", got, want)
	}
	if got, want := n.groups[1]["Diagnostic-Code"], "X-Osprey; SMTPUTF8 is required, but was not offered by mx.b?cher.example"; got != want {
		t.Errorf("Diagnostic-Code %q, want %q", got, want)
	}
	if !strings.Contains(n.text, "<jörg+x@bücher.example>") {
		t.Errorf("text part lacks the recipient in UTF-8:\n%s", n.text)
	}
	if want := "Subject: Grüße\r\nFrom: jörg@bücher.example\r\n"; n.original != want {
		t.Errorf("returned headers %q, want %q", n.original, want)
	}
}

func TestBuildErrors(t *testing.T) {
	ok := Recipient{Rcpt: "bob@example.com", Action: Failed, Status: "5.1.1"}
	for _, tc := range []struct {
		name string
		r    Report
		want error
	}{
		{"null sender", Report{ReportingMTA: "gw.example.net", Recipients: []Recipient{ok}}, ErrNullSender},
		{"no recipients", Report{ReportingMTA: "gw.example.net", To: "a@example.org"}, ErrNoRecipients},
		{"bad To", Report{ReportingMTA: "gw.example.net", To: "a@example.org\r\nBcc: x@y", Recipients: []Recipient{ok}}, ErrInvalid},
		{"bad reporting MTA", Report{ReportingMTA: "gw example", To: "a@example.org", Recipients: []Recipient{ok}}, ErrInvalid},
		{"no reporting MTA", Report{To: "a@example.org", Recipients: []Recipient{ok}}, ErrInvalid},
		{"bad status", Report{ReportingMTA: "gw.example.net", To: "a@example.org", Recipients: []Recipient{{Rcpt: "b@x", Action: Failed, Status: "5.1"}}}, ErrInvalid},
		{"delayed with 5xx", Report{ReportingMTA: "gw.example.net", To: "a@example.org", Recipients: []Recipient{{Rcpt: "b@x", Action: Delayed, Status: "5.1.1"}}}, ErrInvalid},
		{"unknown action", Report{ReportingMTA: "gw.example.net", To: "a@example.org", Recipients: []Recipient{{Rcpt: "b@x", Action: "relayed", Status: "2.0.0"}}}, ErrInvalid},
		{"empty recipient", Report{ReportingMTA: "gw.example.net", To: "a@example.org", Recipients: []Recipient{{Action: Failed, Status: "5.1.1"}}}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Build(tc.r)
			if !errors.Is(err, tc.want) || b != nil {
				t.Errorf("got %d bytes and %v, want %v", len(b), err, tc.want)
			}
		})
	}
}

// TestBuildFailedAfterRetries: a recipient that failed because its tries
// ran out keeps its 4.x.x status (as Postfix reports an expired message),
// and a report mixing it with a delayed one is a failure notice.
func TestBuildFailedAfterRetries(t *testing.T) {
	b, err := Build(Report{
		ReportingMTA: "gw.example.net", To: "alice@example.org", Now: now,
		Recipients: []Recipient{
			{Rcpt: "a@example.com", Action: Delayed, Status: "4.4.1"},
			{Rcpt: "b@example.com", Action: Failed, Status: "4.4.1", Diagnostic: "message expired after 5 days"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n := parse(t, b)
	if s, _ := n.header.Subject(); s != SubjectFailed {
		t.Errorf("Subject %q, want %q", s, SubjectFailed)
	}
	if got := []string{n.groups[1]["Action"], n.groups[2]["Action"], n.groups[2]["Status"]}; !cmp.Equal(got, []string{"delayed", "failed", "4.4.1"}) {
		t.Errorf("actions and status %v, want [delayed failed 4.4.1]", got)
	}
}
