package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ospreysec/osprey/central/scan"
	"github.com/ospreysec/osprey/central/scan/rspamd"
	"github.com/ospreysec/osprey/central/scan/scantest"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/clocktest"
	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/internal/rspamdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// spamPipeline is a pipeline with the rules of a real etcd and a spam
// check of rspamd at url, its metrics in reg, on clock.
func spamPipeline(t *testing.T, o rspamd.Options, clock *clocktest.Clock) (*Pipeline, *Spam, *prometheus.Registry) {
	t.Helper()
	etcd := etcdtest.Start(t)
	rules := store.NewRuleCache(store.New(etcd.Client()), store.CacheOptions{})
	runCache(t, rules)
	scanner, err := scan.New(scan.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	client, err := rspamd.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	reg := prometheus.NewRegistry()
	spam, err := NewSpam(SpamOptions{Client: client, Registerer: reg, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return New(scanner, rules, nil, nil).WithSpam(spam), spam, reg
}

// checks is the spam checks counted with result.
func checks(t *testing.T, s *Spam, result string) int {
	t.Helper()
	return int(testutil.ToFloat64(s.checks.WithLabelValues(result)))
}

var (
	lunch = scantest.Message(scantest.Headers("alice@example.com", "bob@example.com", "lunch"),
		scantest.Text("Shall we meet for lunch on Thursday at noon?\r\n"))
	gtube = scantest.Message(scantest.Headers("mallory@evil.example", "bob@example.com", "offer"),
		scantest.Text("Buy now.\r\n"+scantest.GTUBE+"\r\n"))
)

// spamRecord is a message from a client in a private network (which
// rspamd counts as local, leaving out the checks of its DNS names).
func spamRecord() *ospreyv1.MessageRecord {
	rec := record("default")
	rec.Envelope.ClientAddr = "10.1.2.3:40000"
	rec.Envelope.Helo = "mail.example.com"
	return rec
}

// TestPipelineAsksRspamd: the outcome of a scan carries a real rspamd's
// opinion, which changes neither the verdict nor the alert.
func TestPipelineAsksRspamd(t *testing.T) {
	srv := rspamdtest.New(t, rspamdtest.Options{})
	p, spam, reg := spamPipeline(t, rspamd.Options{URL: srv.URL}, clocktest.New(time.Now()))
	tests := []struct {
		name   string
		msg    []byte
		action string
		spam   bool
	}{
		{"clean", lunch, "no action", false},
		{"gtube", gtube, "reject", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := p.Scan(t.Context(), spamRecord(), bytesBody(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			if out.Verdict != scan.VerdictClean || out.Alert != nil {
				t.Errorf("verdict %q, alert %v; want clean and none: the spam opinion is not a verdict", out.Verdict, out.Alert)
			}
			s := out.Spam
			if s == nil {
				t.Fatal("no spam result")
			}
			if s.GetAction() != tt.action || (s.GetScore() >= s.GetRequiredScore()) != tt.spam || len(s.GetSymbols()) == 0 {
				t.Errorf("spam result %v: want action %q, spam %v, symbols", s, tt.action, tt.spam)
			}
		})
	}
	if got := checks(t, spam, spamOK); got != 2 {
		t.Errorf("checks ok: got %d, want 2", got)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP osprey_spam_checks_total Messages the spam engine (Rspamd) was asked about, by result: ok, error (recorded without a spam result), too_large (not sent), skipped (left out after errors in a row), cancelled (the upload ended first).
# TYPE osprey_spam_checks_total counter
osprey_spam_checks_total{result="cancelled"} 0
osprey_spam_checks_total{result="error"} 0
osprey_spam_checks_total{result="ok"} 2
osprey_spam_checks_total{result="skipped"} 0
osprey_spam_checks_total{result="too_large"} 0
`), "osprey_spam_checks_total"); err != nil {
		t.Error(err)
	}
	if err := spam.Health(t.Context()); err != nil {
		t.Errorf("Health: %v", err)
	}
	// A gateway's message: its disposition follows the spam score with the
	// tenant's policy (the defaults here: quarantine from 15).
	t.Run("gateway", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			msg  []byte
			want ospreyv1.VerdictAction
		}{
			{"clean", lunch, ospreyv1.VerdictAction_VERDICT_ACTION_DELIVER},
			{"gtube", gtube, ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE},
		} {
			rec := spamRecord()
			rec.Envelope.Direction = ospreyv1.MailDirection_MAIL_DIRECTION_INBOUND
			out, err := p.Scan(t.Context(), rec, bytesBody(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			if got := out.Disposition.GetAction(); got != tt.want {
				t.Errorf("%s: disposition %v, want %v (spam %v)", tt.name, out.Disposition, tt.want, out.Spam)
			}
		}
	})
	t.Run("too large", func(t *testing.T) {
		p, spam, _ := spamPipeline(t, rspamd.Options{URL: srv.URL, MaxSize: 100}, clocktest.New(time.Now()))
		out, err := p.Scan(t.Context(), spamRecord(), bytesBody(lunch))
		if err != nil {
			t.Fatal(err)
		}
		if out.Spam.GetNotChecked() != notCheckedTooLarge || out.Verdict != scan.VerdictClean || checks(t, spam, spamTooLarge) != 1 {
			t.Errorf("spam %v, verdict %q, %d too large; want not checked (too large), clean, 1", out.Spam, out.Verdict, checks(t, spam, spamTooLarge))
		}
	})
}

// TestPipelineWithoutRspamd: an rspamd that hangs or is gone costs a
// message its spam result and at most the client's timeout, never its
// verdict; after failures in a row the check is left out for a while; the
// node's health says rspamd fails until it answers again.
func TestPipelineWithoutRspamd(t *testing.T) {
	srv := rspamdtest.New(t, rspamdtest.Options{})
	const timeout = 300 * time.Millisecond
	clock := clocktest.New(time.Now())
	p, spam, _ := spamPipeline(t, rspamd.Options{URL: srv.URL, Timeout: timeout}, clock)
	scanOnce := func(t *testing.T) (*ospreyv1.SpamResult, time.Duration) {
		t.Helper()
		start := time.Now()
		out, err := p.Scan(t.Context(), spamRecord(), bytesBody(lunch))
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		if out.Verdict != scan.VerdictClean {
			t.Errorf("verdict %q, want clean", out.Verdict)
		}
		return out.Spam, time.Since(start)
	}

	resume := srv.Stall(t)
	res, took := scanOnce(t)
	if res.GetNotChecked() != notCheckedError || res.GetScore() != 0 || took > timeout+2*time.Second {
		t.Errorf("hung rspamd: spam result %v after %v; want not checked (error) after about %v", res, took, timeout)
	}
	if checks(t, spam, spamError) != 1 {
		t.Errorf("checks failed: got %d, want 1", checks(t, spam, spamError))
	}
	if err := spam.Health(t.Context()); err == nil {
		t.Error("Health of a hung rspamd: got nil, want an error")
	}
	resume()
	// rspamd answers /ping again, but a check failed a moment ago.
	if err := spam.Health(t.Context()); err == nil || !strings.Contains(err.Error(), "1 spam checks in a row failed") {
		t.Errorf("Health after a failed check: got %v, want the failure", err)
	}
	if res, _ := scanOnce(t); res == nil || res.GetNotChecked() != "" {
		t.Fatalf("spam result %v once rspamd goes on, want a score", res)
	}
	if err := spam.Health(t.Context()); err != nil {
		t.Errorf("Health once a check succeeded: %v", err)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range spamPauseAfter {
		if res, _ := scanOnce(t); res.GetNotChecked() != notCheckedError {
			t.Fatalf("stopped rspamd, message %d: got spam result %v, want not checked (error)", i, res)
		}
	}
	if got := checks(t, spam, spamError); got != 1+spamPauseAfter {
		t.Errorf("checks failed: got %d, want %d", got, 1+spamPauseAfter)
	}
	// Paused: the next message is not sent.
	if res, _ := scanOnce(t); res.GetNotChecked() != notCheckedPaused {
		t.Errorf("during the pause: spam result %v, want not checked (paused)", res)
	}
	if got, errs := checks(t, spam, spamSkipped), checks(t, spam, spamError); got != 1 || errs != 1+spamPauseAfter {
		t.Errorf("during the pause: %d skipped and %d failed, want 1 and %d", got, errs, 1+spamPauseAfter)
	}
	// After the pause it is tried again.
	clock.Advance(spamPause)
	scanOnce(t)
	if got := checks(t, spam, spamError); got != 2+spamPauseAfter {
		t.Errorf("after the pause: %d failed, want %d", got, 2+spamPauseAfter)
	}
	if err := spam.Health(t.Context()); err == nil {
		t.Error("Health of a stopped rspamd: got nil, want an error")
	}
}
