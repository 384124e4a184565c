package siem

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

var testTime = time.Date(2026, 3, 2, 10, 4, 5, 123456789, time.UTC)

// testAlert is an alert whose fields hold every character CEF escapes.
func testAlert() *ospreyv1.Alert {
	return &ospreyv1.Alert{
		Id:        "18a8f2c3d4e5f601-00112233445566aa",
		Tenant:    "acme",
		SensorId:  "branch-1",
		MessageId: "0190c2a1-7",
		Source:    ospreyv1.MailSource_MAIL_SOURCE_SMTP,
		Envelope: &ospreyv1.Envelope{
			MailFrom:   "evil=user@bad.example",
			RcptTo:     []string{"alice@acme.example", "bob@acme.example"},
			ClientAddr: "[2001:db8::25]:40123",
		},
		Headers:  &ospreyv1.HeaderSummary{Subject: "Invoice | due\r\nnow \\ pay"},
		Severity: ospreyv1.Severity_SEVERITY_HIGH,
		Matches: []*ospreyv1.Match{
			{Engine: "ioc", RuleId: "r1", Severity: ospreyv1.Severity_SEVERITY_MEDIUM, What: "sender domain bad.example"},
			{Engine: "eicar", RuleId: "EICAR-Test-File", Severity: ospreyv1.Severity_SEVERITY_HIGH,
				What: `EICAR test file in a|b\c.zip`, Part: "attachment a|b\\c.zip > eicar.com"},
		},
		Attachments: []*ospreyv1.Attachment{
			{Path: "a|b\\c.zip", Filename: "a|b\\c.zip", Sha256: "aa11"},
			{Path: "a|b\\c.zip/eicar.com", Filename: "eicar.com", Sha256: "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"},
		},
		CreatedAt: timestamppb.New(testTime),
		Node:      "central-1",
		Size:      1234,
	}
}

func TestCEF(t *testing.T) {
	tests := []struct {
		name    string
		alert   *ospreyv1.Alert
		version string
		want    string
	}{{
		name:    "escaping",
		alert:   testAlert(),
		version: "v1.2|3",
		want: `CEF:0|Osprey|Osprey|v1.2\|3|eicar:EICAR-Test-File|EICAR test file in a\|b\\c.zip|8|` +
			`rt=1772445845123 cat=smtp src=2001:db8::25 suser=evil\=user@bad.example duser=alice@acme.example,bob@acme.example ` +
			`fname=eicar.com fileHash=275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f fsize=1234 ` +
			`msg=ioc:r1 (medium) sender domain bad.example; eicar:EICAR-Test-File (high) EICAR test file in a|b\\c.zip ` +
			`dvchost=central-1 externalId=18a8f2c3d4e5f601-00112233445566aa ` +
			`cs1=acme cs1Label=tenant cs2=branch-1 cs2Label=sensor cs3=18a8f2c3d4e5f601-00112233445566aa cs3Label=alertId ` +
			`cs4=0190c2a1-7 cs4Label=messageId cs5=ioc:r1,eicar:EICAR-Test-File cs5Label=rules ` +
			`cs6=Invoice | due\r\nnow \\ pay cs6Label=subject`,
	}, {
		name: "pop3, no matches, no attachments",
		alert: &ospreyv1.Alert{
			Id: "x", Tenant: "t", Source: ospreyv1.MailSource_MAIL_SOURCE_POP3,
			Envelope: &ospreyv1.Envelope{Mailbox: "journal@mail.example:995", ClientAddr: "not an ip"},
		},
		version: "devel",
		want: `CEF:0|Osprey|Osprey|devel|alert|Osprey detection|5|cat=pop3 duser=journal@mail.example:995 ` +
			`externalId=x cs1=t cs1Label=tenant cs3=x cs3Label=alertId`,
	}, {
		name: "header line breaks and invalid UTF-8",
		alert: &ospreyv1.Alert{
			Severity: ospreyv1.Severity_SEVERITY_CRITICAL,
			Matches:  []*ospreyv1.Match{{Engine: "clamav", RuleId: "Win.Test\nX", Severity: ospreyv1.Severity_SEVERITY_CRITICAL, What: "bad\xffbytes=\x01"}},
		},
		version: "v1",
		want:    "CEF:0|Osprey|Osprey|v1|clamav:Win.Test X|bad\uFFFDbytes=\x01|10|msg=clamav:Win.Test\\nX (critical) bad\uFFFDbytes\\=  cs5=clamav:Win.Test\\nX cs5Label=rules",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CEF(tt.alert, tt.version)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("CEF (-want +got):\n%s", diff)
			}
			if strings.ContainsAny(got, "\r\n") {
				t.Errorf("CEF event spans lines: %q", got)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	for _, tt := range []struct{ in, header, ext string }{
		{`a|b`, `a\|b`, `a|b`},
		{`a\b`, `a\\b`, `a\\b`},
		{`a=b`, `a=b`, `a\=b`},
		{"a\nb\r\nc", "a b  c", `a\nb\r\nc`},
		{"tab\there", "tab\there", "tab here"},
		{`\|=`, `\\\|=`, `\\|\=`},
	} {
		if got := escapeHeader(tt.in); got != tt.header {
			t.Errorf("escapeHeader(%q): got %q, want %q", tt.in, got, tt.header)
		}
		if got := escapeExtension(tt.in); got != tt.ext {
			t.Errorf("escapeExtension(%q): got %q, want %q", tt.in, got, tt.ext)
		}
	}
}

func TestSeverities(t *testing.T) {
	for _, tt := range []struct {
		s         ospreyv1.Severity
		cef, sysl int
	}{
		{ospreyv1.Severity_SEVERITY_UNSPECIFIED, 5, 4},
		{ospreyv1.Severity_SEVERITY_LOW, 3, 5},
		{ospreyv1.Severity_SEVERITY_MEDIUM, 6, 4},
		{ospreyv1.Severity_SEVERITY_HIGH, 8, 3},
		{ospreyv1.Severity_SEVERITY_CRITICAL, 10, 2},
	} {
		if got := CEFSeverity(tt.s); got != tt.cef {
			t.Errorf("CEFSeverity(%v): got %d, want %d", tt.s, got, tt.cef)
		}
		if got := SyslogSeverity(tt.s); got != tt.sysl {
			t.Errorf("SyslogSeverity(%v): got %d, want %d", tt.s, got, tt.sysl)
		}
	}
}

func TestSyslogMessage(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		sev  int
		want string
	}{{
		name: "fields",
		h:    Header{Facility: 13, Hostname: "central-1.example", AppName: "osprey", ProcID: "4242", MsgID: MsgID},
		sev:  3,
		want: "<107>1 2026-03-02T10:04:05.123456Z central-1.example osprey 4242 alert - CEF:0|x",
	}, {
		name: "nil and unprintable fields",
		h:    Header{Facility: 23, AppName: "my app\x00", MsgID: strings.Repeat("m", 40)},
		sev:  7,
		want: "<191>1 2026-03-02T10:04:05.123456Z - my_app_ - " + strings.Repeat("m", 32) + " - CEF:0|x",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendMessage(nil, tt.h, tt.sev, testTime.In(time.FixedZone("CET", 3600)), "CEF:0|x"))
			if got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
	if got, want := string(AppendFrame([]byte("x"), []byte("<1>1 é"))), "x7 <1>1 é"; got != want {
		t.Errorf("AppendFrame: got %q, want %q", got, want)
	}
}
