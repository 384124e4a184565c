package pipeline

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/ospreysec/osprey/central/scan"
	"github.com/ospreysec/osprey/central/scan/scantest"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/internal/testwait"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// bytesBody is an uploaded message held in memory.
type bytesBody []byte

func (b bytesBody) Open() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
func (b bytesBody) Size() int64                  { return int64(len(b)) }

// runCache runs a cache of the store (rules, policies) until t ends.
func runCache(t *testing.T, c interface{ Run(context.Context) error }) {
	t.Helper()
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
}

func record(tenant string) *ospreyv1.MessageRecord {
	return &ospreyv1.MessageRecord{
		MessageId: "0000000000000001", SensorId: "s1", Tenant: tenant,
		Source:   ospreyv1.MailSource_MAIL_SOURCE_SMTP,
		Envelope: &ospreyv1.Envelope{MailFrom: "mallory@evil.example", RcptTo: []string{"bob@example.com"}},
	}
}

// TestPipelineUsesTheTenantsCurrentRules scans with a real scanner and the
// rules held in a real etcd: a rule written through the store applies to
// the next message, per tenant, with no restart.
func TestPipelineUsesTheTenantsCurrentRules(t *testing.T) {
	etcd := etcdtest.Start(t)
	st := store.New(etcd.Client())
	ctx := t.Context()
	for _, tn := range []string{"acme", "globex"} {
		if _, err := st.CreateTenant(ctx, store.AllTenants(), &ospreyv1.Tenant{Id: tn, Name: tn}); err != nil {
			t.Fatal(err)
		}
	}
	rules := store.NewRuleCache(st, store.CacheOptions{})
	runCache(t, rules)
	scanner, err := scan.New(scan.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	p := New(scanner, rules, nil, nil)

	msg := scantest.Message(scantest.Headers("mallory@evil.example", "bob@example.com", "invoice"),
		scantest.Text("Pay at https://pay.evil.example/now\r\n"))
	out, err := p.Scan(ctx, record("acme"), bytesBody(msg))
	if err != nil {
		t.Fatal(err)
	}
	if out.Verdict != scan.VerdictClean || out.Alert != nil {
		t.Fatalf("before any rule: verdict %q, alert %v; want clean and none", out.Verdict, out.Alert)
	}

	r, err := st.CreateRule(ctx, store.TenantScope("acme"), &ospreyv1.Rule{Tenant: "acme",
		Kind: ospreyv1.RuleKind_RULE_KIND_URL_HOST, Value: "evil.example", Severity: ospreyv1.Severity_SEVERITY_HIGH})
	if err != nil {
		t.Fatal(err)
	}
	// The rule cache follows etcd: once it holds the rule's revision, the
	// next message is scanned with the rule.
	for {
		changed := rules.Changed()
		if _, rev := rules.Rules("acme"); rev >= r.GetVersion() {
			break
		}
		select {
		case <-changed:
		case <-time.After(testwait.Timeout):
			t.Fatalf("the rule cache did not reach the rule's revision %d", r.GetVersion())
		}
	}
	out, err = p.Scan(ctx, record("acme"), bytesBody(msg))
	if err != nil {
		t.Fatal(err)
	}
	if out.Verdict != scan.VerdictDetected || out.Alert == nil {
		t.Fatalf("after the rule: verdict %q, alert %v; want detected with an alert", out.Verdict, out.Alert)
	}
	a := out.Alert
	if a.GetSeverity() != ospreyv1.Severity_SEVERITY_HIGH || len(a.GetMatches()) == 0 || a.GetMatches()[0].GetEngine() != "ioc" {
		t.Errorf("alert severity %v, matches %v; want high, from the ioc engine", a.GetSeverity(), a.GetMatches())
	}
	if a.GetHeaders().GetSubject() != "invoice" || a.GetEnvelope().GetMailFrom() != "mallory@evil.example" || a.GetVerdict() != scan.VerdictDetected {
		t.Errorf("alert headers %v, envelope %v, verdict %q", a.GetHeaders(), a.GetEnvelope(), a.GetVerdict())
	}

	// Another tenant's message is scanned with its own (empty) rules.
	out, err = p.Scan(ctx, record("globex"), bytesBody(msg))
	if err != nil {
		t.Fatal(err)
	}
	if out.Verdict != scan.VerdictClean {
		t.Errorf("globex's message: verdict %q, want clean (the rule is acme's)", out.Verdict)
	}
}

func TestPipelineAlertsOnWhatItCannotScan(t *testing.T) {
	etcd := etcdtest.Start(t)
	st := store.New(etcd.Client())
	rules := store.NewRuleCache(st, store.CacheOptions{})
	runCache(t, rules)
	scanner, err := scan.New(scan.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	p := New(scanner, rules, nil, nil)
	for _, tc := range []struct {
		name     string
		msg      []byte
		verdict  string
		severity ospreyv1.Severity
		ruleID   string
	}{
		{"EICAR", scantest.Message(scantest.Headers("a@example.org", "b@example.com", "eicar"),
			scantest.Multipart("mixed", "b1", scantest.Text("see attached\r\n"),
				scantest.Attachment("eicar.com", "application/octet-stream", scantest.EICAR()))),
			scan.VerdictDetected, ospreyv1.Severity_SEVERITY_HIGH, "EICAR-Test-File"},
		{"zip bomb", scantest.Message(scantest.Headers("a@example.org", "b@example.com", "bomb"),
			scantest.Multipart("mixed", "b2", scantest.Text("hi\r\n"),
				scantest.Attachment("big.zip", "application/zip", scantest.ZipBomb(4, 10, 1<<20)))),
			scan.VerdictUnscannableLimit, ospreyv1.Severity_SEVERITY_MEDIUM, "unscannable-limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := p.Scan(t.Context(), record("default"), bytesBody(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			if out.Verdict != tc.verdict || out.Alert == nil {
				t.Fatalf("verdict %q, alert %v; want %q with an alert", out.Verdict, out.Alert, tc.verdict)
			}
			if out.Alert.GetSeverity() != tc.severity || out.Alert.GetMatches()[0].GetRuleId() != tc.ruleID {
				t.Errorf("alert severity %v, first match %v; want %v, rule %q", out.Alert.GetSeverity(), out.Alert.GetMatches()[0], tc.severity, tc.ruleID)
			}
		})
	}
}

// TestPipelineDecidesGatewayMessages: a gateway's message gets the
// disposition of its tenant's policy and of the rules that matched, both
// read from a real etcd as they are now; a monitored copy gets none.
func TestPipelineDecidesGatewayMessages(t *testing.T) {
	etcd := etcdtest.Start(t)
	st := store.New(etcd.Client())
	ctx := t.Context()
	if _, err := st.CreateTenant(ctx, store.AllTenants(), &ospreyv1.Tenant{Id: "acme", Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	rules := store.NewRuleCache(st, store.CacheOptions{})
	policies := store.NewPolicyCache(st, store.CacheOptions{})
	runCache(t, rules)
	runCache(t, policies)
	scanner, err := scan.New(scan.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	p := New(scanner, rules, policies, nil)

	r, err := st.CreateRule(ctx, store.TenantScope("acme"), &ospreyv1.Rule{Tenant: "acme", Id: "bad-sender",
		Kind: ospreyv1.RuleKind_RULE_KIND_SENDER, Value: "mallory@evil.example", Severity: ospreyv1.Severity_SEVERITY_HIGH,
		Action: ospreyv1.VerdictAction_VERDICT_ACTION_DROP_NOTIFY_SENDER})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := st.PutPolicy(ctx, store.TenantScope("acme"), "acme", &ospreyv1.VerdictPolicy{
		Detected: ospreyv1.VerdictAction_VERDICT_ACTION_TAG, SubjectTag: "[virus]"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testwait.Timeout)
	for {
		_, rev := rules.Rules("acme")
		if rev >= r.GetVersion() && policies.Policy("acme").GetVersion() == pol.GetVersion() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the caches did not reach the rule and the policy")
		}
		time.Sleep(10 * time.Millisecond)
	}

	gateway := func(from string) *ospreyv1.MessageRecord {
		rec := record("acme")
		rec.Envelope.MailFrom = from
		rec.Envelope.Direction = ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND
		return rec
	}
	eicar := scantest.Message(scantest.Headers("a@example.org", "bob@example.com", "eicar"),
		scantest.Multipart("mixed", "b1", scantest.Text("see attached\r\n"),
			scantest.Attachment("eicar.com", "application/octet-stream", scantest.EICAR())))
	plain := scantest.Message(scantest.Headers("a@example.org", "bob@example.com", "hello"), scantest.Text("hi\r\n"))
	for _, tc := range []struct {
		name string
		rec  *ospreyv1.MessageRecord
		msg  []byte
		want ospreyv1.VerdictAction // UNSPECIFIED: no disposition
		tag  string
	}{
		{"the rule's action", gateway("mallory@evil.example"), plain, ospreyv1.VerdictAction_VERDICT_ACTION_DROP_NOTIFY_SENDER, ""},
		{"the tenant's action for detected", gateway("a@example.org"), eicar, ospreyv1.VerdictAction_VERDICT_ACTION_TAG, "[virus]"},
		{"clean", gateway("a@example.org"), plain, ospreyv1.VerdictAction_VERDICT_ACTION_DELIVER, ""},
		{"a monitored copy", record("acme"), eicar, ospreyv1.VerdictAction_VERDICT_ACTION_UNSPECIFIED, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := p.Scan(ctx, tc.rec, bytesBody(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			d := out.Disposition
			if tc.want == ospreyv1.VerdictAction_VERDICT_ACTION_UNSPECIFIED {
				if d != nil {
					t.Errorf("disposition %v, want none", d)
				}
				return
			}
			if d.GetAction() != tc.want || d.GetSubjectTag() != tc.tag {
				t.Errorf("disposition %v; want action %v, tag %q", d, tc.want, tc.tag)
			}
		})
	}
}
