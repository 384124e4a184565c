package sensorsvc_test

import (
	"context"
	"testing"

	"github.com/ospreysec/osprey/central/pipeline"
	"github.com/ospreysec/osprey/central/scan"
	"github.com/ospreysec/osprey/central/scan/rspamd"
	"github.com/ospreysec/osprey/central/scan/scantest"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/internal/rspamdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestUploadRecordsTheSpamResult: uploads scanned by the central's
// pipeline with a real rspamd are recorded with its opinion; once rspamd
// is gone, they are recorded all the same, without one.
func TestUploadRecordsTheSpamResult(t *testing.T) {
	srv := rspamdtest.New(t, rspamdtest.Options{})
	rules := store.NewRuleCache(store.New(etcdtest.Client(t)), store.CacheOptions{})
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- rules.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	scanner, err := scan.New(scan.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	client, err := rspamd.New(rspamd.Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.Close)
	spam, err := pipeline.NewSpam(pipeline.SpamOptions{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	c, db := newUploadCluster(t, pipeline.New(scanner, rules, nil, nil).WithSpam(spam))
	id, h := c.approvedSensor(t)
	sensor := c.dial(t, h.tls())

	upload := func(msgID string, msg []byte) *ospreyv1.MessageRecord {
		t.Helper()
		if _, err := sendUpload(t.Context(), sensor, &ospreyv1.UploadHeader{MessageId: msgID}, msg); err != nil {
			t.Fatalf("upload %s: %v", msgID, err)
		}
		rec, err := db.GetMessage(t.Context(), store.AllTenants(), "acme", id, msgID)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	spamMsg := scantest.Message(scantest.Headers("a@example.org", "b@example.com", "offer"), scantest.Text(scantest.GTUBE+"\r\n"))
	rec := upload("m1", spamMsg)
	if s := rec.GetSpam(); s.GetAction() != "reject" || s.GetScore() < s.GetRequiredScore() || len(s.GetSymbols()) == 0 {
		t.Errorf("record of GTUBE: spam %v, want rejected by rspamd with its symbols", s)
	}
	if rec.GetVerdict() != scan.VerdictClean {
		t.Errorf("record of GTUBE: verdict %q, want %q (the scan's)", rec.GetVerdict(), scan.VerdictClean)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	rec = upload("m2", spamMsg)
	if rec.GetSpam().GetNotChecked() != "error" || rec.GetSpam().GetScore() != 0 || rec.GetVerdict() != scan.VerdictClean {
		t.Errorf("record without rspamd: spam %v, verdict %q; want not checked (error), clean", rec.GetSpam(), rec.GetVerdict())
	}
}
