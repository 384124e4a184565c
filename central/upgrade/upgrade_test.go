package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

var t0 = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)

// legacy is etcd as an earlier version left it: what it wrote, in order.
type legacy struct {
	t   *testing.T
	cli *clientv3.Client
	// revs are the revisions of each tenant's alerts, in the order written.
	revs map[string][]int64
	ids  map[string][]string
}

func (l *legacy) put(key string, m proto.Message) int64 {
	l.t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		l.t.Fatal(err)
	}
	resp, err := l.cli.Put(l.t.Context(), key, string(b))
	if err != nil {
		l.t.Fatal(err)
	}
	return resp.Header.Revision
}

func (l *legacy) alert(tenant string, i int) {
	l.t.Helper()
	at := t0.Add(time.Duration(i) * time.Minute)
	a := &ospreyv1.Alert{
		Id: sqlstore.AlertID(at, "s1", fmt.Sprintf("%s-m%d", tenant, i)), Tenant: tenant, SensorId: "s1",
		MessageId: fmt.Sprintf("%s-m%d", tenant, i), Severity: ospreyv1.Severity_SEVERITY_HIGH, Verdict: "detected",
		Headers: &ospreyv1.HeaderSummary{Subject: fmt.Sprintf("%s %d", tenant, i)},
	}
	rev := l.put("/osprey/v1/alerts/"+tenant+"/"+a.GetId(), a)
	l.revs[tenant] = append(l.revs[tenant], rev)
	l.ids[tenant] = append(l.ids[tenant], a.GetId())
}

func (l *legacy) message(tenant, id string, pop3 bool) {
	l.t.Helper()
	rec := &ospreyv1.MessageRecord{MessageId: id, SensorId: "s1", Tenant: tenant, Verdict: "clean",
		Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP, Envelope: &ospreyv1.Envelope{MailFrom: id + "@example.org"}}
	if pop3 {
		rec.Source, rec.Uidl, rec.Envelope.Mailbox = ospreyv1.MailSource_MAIL_SOURCE_POP3, "UID-"+id, "soc@pop.example.com"
		if _, err := l.cli.Put(l.t.Context(), "/osprey/v1/pop3-seen/"+tenant+"/0123", "s1/"+id); err != nil {
			l.t.Fatal(err)
		}
	}
	l.put("/osprey/v1/messages/"+tenant+"/s1/"+id, rec)
}

func (l *legacy) cursor(tenant string, rev int64) {
	l.t.Helper()
	if _, err := l.cli.Put(l.t.Context(), "/osprey/v1/cluster/siem-cursor/"+tenant, strconv.FormatInt(rev, 10)); err != nil {
		l.t.Fatal(err)
	}
}

// count returns how many keys under prefix etcd holds.
func count(t *testing.T, cli *clientv3.Client, prefix string) int64 {
	t.Helper()
	resp, err := cli.Get(t.Context(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// TestMoveToSQL moves an earlier version's records and alerts in batches
// of 3, stops after the second batch as a crash would, and moves the rest
// at the next start: every alert and record is in the SQL store once,
// numbered in the order it was made, nothing is left in etcd, and each
// export cursor says what was exported.
func TestMoveToSQL(t *testing.T) {
	cli := etcdtest.Client(t)
	st := store.New(cli)
	db, err := sqlstore.Open(t.Context(), sqlstore.Options{URL: filepath.Join(t.TempDir(), "osprey.db"), Now: func() time.Time { return t0.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := &legacy{t: t, cli: cli, revs: map[string][]int64{}, ids: map[string][]string{}}
	for i := range 7 {
		l.alert("a", i)
		if i < 3 {
			l.alert("b", i)
		}
	}
	for i := range 7 {
		l.message("a", fmt.Sprintf("m%d", i), i == 5)
	}
	l.cursor("a", l.revs["a"][3]) // a's first four alerts were exported
	l.cursor("c", 2)              // c exported everything it had

	oldBatch := batch
	batch = 3
	defer func() { batch, afterStep = oldBatch, func() error { return nil } }()
	steps := 0
	crash := errors.New("killed")
	afterStep = func() error {
		if steps++; steps == 2 {
			return crash
		}
		return nil
	}
	log := slog.New(slog.DiscardHandler)
	if _, err := MoveToSQL(t.Context(), cli, st, db, log); !errors.Is(err, crash) {
		t.Fatalf("first run: got %v, want it stopped", err)
	}
	afterStep = func() error { return nil }
	moved, err := MoveToSQL(t.Context(), cli, st, db, log)
	if err != nil {
		t.Fatal(err)
	}
	if moved.Alerts != 10-6 || moved.Messages != 7 {
		t.Errorf("second run moved %+v, want the 4 alerts and 7 records left", moved)
	}

	all := store.AllTenants()
	for tenant, ids := range l.ids {
		got, err := db.AlertsAfter(t.Context(), all, tenant, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var gotIDs []string
		for i, a := range got {
			if a.Seq != int64(i+1) {
				t.Errorf("tenant %s: alert %d numbered %d", tenant, i, a.Seq)
			}
			gotIDs = append(gotIDs, a.Alert.GetId())
		}
		if d := cmp.Diff(ids, gotIDs); d != "" {
			t.Errorf("tenant %s: alerts by number (-made +got):\n%s", tenant, d)
		}
	}
	if n, err := db.CountMessages(t.Context(), all, "a", "s1"); err != nil || n != 7 {
		t.Errorf("records: %d, %v; want 7", n, err)
	}
	if rec, err := db.GetMessage(t.Context(), all, "a", "s1", "m5"); err != nil || rec.GetUidl() != "UID-m5" {
		t.Errorf("the POP3 record: %v, %v", rec, err)
	}
	// The POP3 record keeps its key by mailbox and UIDL.
	dup := &ospreyv1.MessageRecord{MessageId: "again", SensorId: "s2", Tenant: "a", Verdict: "clean", Uidl: "UID-m5",
		Source: ospreyv1.MailSource_MAIL_SOURCE_POP3, Envelope: &ospreyv1.Envelope{Mailbox: "soc@pop.example.com"}}
	if _, isDup, err := db.RecordMessage(t.Context(), all, dup, t0); err != nil || !isDup {
		t.Errorf("the moved POP3 message polled again: duplicate %v, %v; want a duplicate", isDup, err)
	}
	for _, prefix := range []string{"/osprey/v1/alerts/", "/osprey/v1/messages/", "/osprey/v1/pop3-seen/", "/osprey/v1/cluster/siem-cursor/"} {
		if n := count(t, cli, prefix); n != 0 {
			t.Errorf("%d keys left under %s", n, prefix)
		}
	}
	for tenant, want := range map[string]int64{"a": 4, "c": 0} {
		if got, ok, err := st.ExportCursor(t.Context(), tenant); err != nil || !ok || got != want {
			t.Errorf("tenant %s: cursor %d, %v, %v; want %d", tenant, got, ok, err, want)
		}
	}
	if _, ok, _ := st.ExportCursor(t.Context(), "b"); ok {
		t.Error("tenant b, which exported nothing, has a cursor")
	}

	// Nodes starting together: one moves, at a time, and a move with
	// nothing left moves nothing.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if m, err := MoveToSQL(ctx, cli, st, db, log); err != nil || m != (Moved{}) {
				t.Errorf("a run with nothing left: moved %+v, %v", m, err)
			}
		})
	}
	wg.Wait()
}
