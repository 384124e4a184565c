package sensorsvc_test

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/ospreysec/osprey/central/sensorsvc"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/clocktest"
	"github.com/ospreysec/osprey/internal/testwait"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// sendUpload uploads body under hdr, in chunks of 3 bytes, and returns the
// central's answer. It completes hdr as a sensor's uploader would for an
// SMTP message of len(body) bytes from a@example.org to b@example.com.
func sendUpload(ctx context.Context, client ospreyv1.SensorServiceClient, hdr *ospreyv1.UploadHeader, body []byte) (*ospreyv1.UploadResponse, error) {
	hdr.Source, hdr.Size = ospreyv1.MailSource_MAIL_SOURCE_SMTP, int64(len(body))
	hdr.Envelope = &ospreyv1.Envelope{MailFrom: "a@example.org", RcptTo: []string{"b@example.com"}}
	s, err := client.Upload(ctx)
	if err != nil {
		return nil, err
	}
	// A Send fails with io.EOF when the server has already answered; the
	// answer itself comes from CloseAndRecv.
	if err := s.Send(&ospreyv1.UploadRequest{Msg: &ospreyv1.UploadRequest_Header{Header: hdr}}); err != nil {
		return s.CloseAndRecv()
	}
	for len(body) > 0 {
		n := min(len(body), 3)
		if err := s.Send(&ospreyv1.UploadRequest{Msg: &ospreyv1.UploadRequest_Chunk{Chunk: body[:n]}}); err != nil {
			return s.CloseAndRecv()
		}
		body = body[n:]
	}
	return s.CloseAndRecv()
}

// newUploadCluster is a cluster whose service scans uploads with scanner
// (nil: sensorsvc.Received) and records them in a SQLite store of its own.
func newUploadCluster(t *testing.T, scanner sensorsvc.Scanner) (*cluster, *sqlstore.Store) {
	t.Helper()
	db, err := sqlstore.Open(t.Context(), sqlstore.Options{URL: filepath.Join(t.TempDir(), "osprey.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return newClockCluster(t, clocktest.New(time.Now()), sensorsvc.Options{Messages: db, Scanner: scanner}), db
}

// alertingScanner finds something in every message, and counts its scans
// by message id.
type alertingScanner struct {
	mu    sync.Mutex
	scans map[string]int
}

func (a *alertingScanner) Scan(_ context.Context, rec *ospreyv1.MessageRecord, _ sensorsvc.Body) (sensorsvc.Outcome, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.scans[rec.GetMessageId()]++
	return sensorsvc.Outcome{Verdict: "detected", Alert: &ospreyv1.Alert{Severity: ospreyv1.Severity_SEVERITY_HIGH},
		Disposition: &ospreyv1.Disposition{Action: ospreyv1.VerdictAction_VERDICT_ACTION_QUARANTINE, Reason: "scan " + strconv.Itoa(a.scans[rec.GetMessageId()])}}, nil
}

func (a *alertingScanner) count(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.scans[id]
}

// TestUploadRetry: a sensor marks an upload that may be a retry, and the
// central answers it from the record without scanning it again. An upload
// not marked as one (the first attempt, or a sensor older than the mark)
// is scanned, and a message recorded before is still answered as a
// duplicate, with no second record and no second alert.
func TestUploadRetry(t *testing.T) {
	scanner := &alertingScanner{scans: map[string]int{}}
	c, db := newUploadCluster(t, scanner)
	ctx := t.Context()
	id, h := c.approvedSensor(t)
	client := c.dial(t, h.tls())
	msg := []byte("Subject: x\r\n\r\nhello\r\n")
	upload := func(msgID string, mayBeRetry bool) *ospreyv1.UploadResponse {
		t.Helper()
		resp, err := sendUpload(ctx, client, &ospreyv1.UploadHeader{MessageId: msgID, MayBeRetry: mayBeRetry}, msg)
		if err != nil {
			t.Fatalf("upload %s (may be a retry: %v): %v", msgID, mayBeRetry, err)
		}
		return resp
	}
	alerts := func() int {
		t.Helper()
		page, err := db.ListAlerts(ctx, store.AllTenants(), sqlstore.AlertQuery{Tenant: "acme"})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Alerts)
	}

	first := upload("m1", false)
	if first.GetDuplicate() || first.GetVerdict() != "detected" || scanner.count("m1") != 1 || alerts() != 1 {
		t.Fatalf("first upload: %v, %d scans, %d alerts; want recorded as detected, one scan, one alert", first, scanner.count("m1"), alerts())
	}

	// A retry says so: the central answers from the record, unscanned.
	retry := upload("m1", true)
	if !retry.GetDuplicate() || retry.GetVerdict() != first.GetVerdict() || retry.GetMessageId() != "m1" {
		t.Errorf("retry: got %v, want m1 as a duplicate with verdict %q", retry, first.GetVerdict())
	}
	// A gateway carries out the disposition of the answer it gets: the
	// first one, whichever answer reaches it.
	if d := retry.GetDisposition(); d.GetReason() != "scan 1" || first.GetDisposition().GetReason() != "scan 1" {
		t.Errorf("dispositions: first %v, retry %v; want both the first scan's", first.GetDisposition(), d)
	}
	if n := scanner.count("m1"); n != 1 {
		t.Errorf("retry: the message was scanned %d times in all, want once", n)
	}

	// An upload that does not say so is scanned, and recording it finds
	// the record: a duplicate all the same.
	unmarked := upload("m1", false)
	if !unmarked.GetDuplicate() || unmarked.GetVerdict() != first.GetVerdict() || unmarked.GetMessageId() != "m1" {
		t.Errorf("unmarked repeat: got %v, want m1 as a duplicate with verdict %q", unmarked, first.GetVerdict())
	}
	if d := unmarked.GetDisposition(); d.GetReason() != "scan 1" {
		t.Errorf("unmarked repeat: disposition %v, want the first scan's", d)
	}
	if n, err := db.CountMessages(ctx, store.AllTenants(), "acme", id); err != nil || n != 1 {
		t.Errorf("records: %d, %v; want exactly 1", n, err)
	}
	if n := alerts(); n != 1 {
		t.Errorf("alerts: %d, want 1", n)
	}

	// A message marked as a possible retry that the central never had
	// (the first attempt was lost before it was recorded) is recorded.
	if got := upload("m2", true); got.GetDuplicate() || scanner.count("m2") != 1 {
		t.Errorf("possible retry of a new message: got %v, %d scans; want recorded, one scan", got, scanner.count("m2"))
	}
}

// TestUploadRefusedOnceRevoked: an upload's check of its sensor is answered
// from the record that the node's hub keeps of an approved sensor; a
// revocation refuses the sensor's uploads as soon as the hub's watch
// delivers it, and from then on. Approved again, the sensor uploads at once.
func TestUploadRefusedOnceRevoked(t *testing.T) {
	c, _ := newUploadCluster(t, nil)
	ctx := t.Context()
	id, h := c.approvedSensor(t)
	client := c.dial(t, h.tls())
	msg := []byte("Subject: x\r\n\r\nhello\r\n")
	upload := func(msgID string) error {
		_, err := sendUpload(ctx, client, &ospreyv1.UploadHeader{MessageId: msgID}, msg)
		return err
	}
	for _, m := range []string{"m1", "m2"} {
		if err := upload(m); err != nil {
			t.Fatalf("upload %s of an approved sensor: %v", m, err)
		}
	}

	c.setState(t, id, ospreyv1.SensorState_SENSOR_STATE_REVOKED)
	testwait.For(t, "an upload of the revoked sensor to be refused", func() bool {
		return code(upload("m3")) == codes.PermissionDenied
	})
	if err := upload("m4"); code(err) != codes.PermissionDenied {
		t.Errorf("upload of a revoked sensor, once refused: got %v, want PermissionDenied", err)
	}

	c.setState(t, id, ospreyv1.SensorState_SENSOR_STATE_APPROVED)
	if err := upload("m4"); err != nil {
		t.Errorf("upload of a sensor approved again: %v", err)
	}
}
