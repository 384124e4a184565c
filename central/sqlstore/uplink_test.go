package sqlstore

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/clocktest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// pump sends an SCN's alerts after the PCN's cursor to the PCN, as the
// uplink's sender does, batch by batch, and returns how many the PCN
// stored.
func pump(t *testing.T, scn, pcn *Store, server, tenant string, batch int, now time.Time) int {
	t.Helper()
	ctx, all := t.Context(), store.AllTenants()
	cur, err := pcn.UplinkCursor(ctx, all, server)
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := scn.AlertSeqs(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for scnTenant, last := range seqs {
		for after := cur.AlertSeq[scnTenant]; after < last; {
			got, err := scn.AlertsAfter(ctx, all, scnTenant, after, batch)
			if err != nil {
				t.Fatal(err)
			}
			b := &ospreyv1.UplinkAlerts{Tenant: scnTenant, After: after, Last: after}
			for _, a := range got {
				b.Alerts, b.Last = append(b.Alerts, a.Alert), a.Seq
			}
			if len(got) < batch {
				b.Last = max(b.Last, last)
			}
			n, err := pcn.StoreUplinkAlerts(ctx, all, server, tenant, b, now)
			if err != nil {
				t.Fatal(err)
			}
			stored += n
			after = b.Last
		}
	}
	return stored
}

func serverAlerts(t *testing.T, st *Store, scope store.Scope, q AlertQuery) []string {
	t.Helper()
	q.Limit = MaxPageLimit
	page, err := st.ListAlerts(t.Context(), scope, q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range page.Alerts {
		out = append(out, a.GetServerId()+":"+a.GetTenant()+":"+a.GetMessageId())
	}
	return out
}

// TestUplinkAlertsOnce: an SCN's alerts reach the PCN's store once, under
// the PCN's tenant of the SCN and its server id, however often a batch is
// sent again (a lost acknowledgement, a link that moved to another SCN
// node reading from the PCN's cursor); the cursor survives the PCN's
// restart (a new Store on the same database).
func TestUplinkAlertsOnce(t *testing.T) {
	pair(t, func(t *testing.T, scnDB, pcnDB *testDB) {
		{
			scn1, scn2, pcn := scnDB.open(AlertRetention{}), scnDB.open(AlertRetention{}), pcnDB.open(AlertRetention{})
			ctx, all := t.Context(), store.AllTenants()
			for i := range 25 {
				if _, _, err := scn1.RecordScan(ctx, all, record("default", "s1", fmt.Sprintf("m%02d", i)), alertFor(2, "x"), scnDB.clk.Now()); err != nil {
					t.Fatal(err)
				}
			}
			// A batch sent twice (its acknowledgement lost) is stored once.
			got, err := scn1.AlertsAfter(ctx, all, "default", 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			first := &ospreyv1.UplinkAlerts{Tenant: "default", After: 0, Last: got[len(got)-1].Seq}
			for _, a := range got {
				first.Alerts = append(first.Alerts, a.Alert)
			}
			for i, want := range []int{10, 0} {
				if n, err := pcn.StoreUplinkAlerts(ctx, all, "branch", "acme", first, scnDB.clk.Now()); err != nil || n != want {
					t.Fatalf("send %d of the first batch: stored %d, %v; want %d", i+1, n, err, want)
				}
			}
			// The PCN restarts; the link resumes on another SCN node.
			pcn.Close()
			pcn = pcnDB.open(AlertRetention{})
			if n := pump(t, scn2, pcn, "branch", "acme", 7, scnDB.clk.Now()); n != 15 {
				t.Errorf("after the restart: stored %d, want the other 15", n)
			}
			for i := 25; i < 30; i++ {
				if _, _, err := scn2.RecordScan(ctx, all, record("default", "s1", fmt.Sprintf("m%02d", i)), alertFor(2, "x"), scnDB.clk.Now()); err != nil {
					t.Fatal(err)
				}
			}
			// The cursor moved back (a PCN restored from a backup): a
			// resend of everything stores nothing twice.
			if _, err := pcn.db.ExecContext(ctx, `DELETE FROM uplink_cursors`); err != nil {
				t.Fatal(err)
			}
			if n := pump(t, scn1, pcn, "branch", "acme", 4, scnDB.clk.Now()); n != 5 {
				t.Errorf("resend from the start: stored %d, want the 5 new", n)
			}
			list := serverAlerts(t, pcn, all, AlertQuery{ServerID: "branch"})
			if len(list) != 30 {
				t.Fatalf("the PCN lists %d of the SCN's alerts, want 30", len(list))
			}
			slices.Sort(list)
			for i, got := range list {
				if want := fmt.Sprintf("branch:acme:m%02d", i); got != want {
					t.Fatalf("alert %d on the PCN: got %s, want %s", i, got, want)
				}
			}
			if other := serverAlerts(t, pcn, store.TenantScope("other"), AlertQuery{}); len(other) != 0 {
				t.Errorf("tenant other sees %v, want none", other)
			}
			if n := len(serverAlerts(t, pcn, store.TenantScope("acme"), AlertQuery{ServerID: "branch"})); n != 30 {
				t.Errorf("tenant acme sees %d, want 30", n)
			}
			data, err := pcn.ServersData(ctx, store.TenantScope("other"))
			if err != nil || len(data) != 0 {
				t.Errorf("tenant other's servers data: %v, %v; want none", data, err)
			}
			data, err = pcn.ServersData(ctx, all)
			if err != nil || data["branch"].Alerts != 30 || !data["branch"].LastDataAt.Equal(scnDB.clk.Now()) {
				t.Errorf("servers data: %+v, %v; want 30 alerts, data at %v", data, err, scnDB.clk.Now())
			}
			if _, err := pcn.StoreUplinkAlerts(ctx, store.TenantScope("acme"), "branch", "acme", first, scnDB.clk.Now()); !errors.Is(err, store.ErrForbidden) {
				t.Errorf("store in a tenant scope: got %v, want ErrForbidden", err)
			}
		}
	})
}

// pair runs fn for each driver with two databases, an SCN's and a PCN's,
// on one clock.
func pair(t *testing.T, fn func(t *testing.T, scn, pcn *testDB)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			clk := clocktest.New(t0)
			fn(t, &testDB{t: t, url: b.url(t), clk: clk}, &testDB{t: t, url: b.url(t), clk: clk})
		})
	}
}

// TestUplinkSkipsNoLateCommit holds an alert's transaction open, as a
// slow commit on PostgreSQL does, while a later upload waits and the
// uplink reads: the reader sees neither until the first commits, then
// both, in order. The alert numbers follow commit order; a cursor over a
// sequence would have seen the second first and skipped the first.
func TestUplinkSkipsNoLateCommit(t *testing.T) {
	suite(t, func(t *testing.T, db *testDB) {
		st, reader := db.open(AlertRetention{}), db.open(AlertRetention{})
		ctx, all := t.Context(), store.AllTenants()
		if _, _, err := st.RecordScan(ctx, all, record("a", "s1", "m0"), alertFor(2, "x"), db.clk.Now()); err != nil {
			t.Fatal(err)
		}
		slow := AlertID(db.clk.Now(), "s1", "slow")
		row, err := newAlertRow(&ospreyv1.Alert{Id: slow, Tenant: "a", SensorId: "s1", MessageId: "slow", CreatedAt: timestamppb.New(db.clk.Now())})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := st.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.insertAlert(ctx, tx, row); err != nil {
			t.Fatal(err)
		}
		later := make(chan error, 1)
		go func() {
			_, _, err := reader.RecordScan(ctx, all, record("a", "s1", "m-later"), alertFor(2, "x"), db.clk.Now())
			later <- err
		}()
		follow := func() []string {
			seqs, err := reader.AlertSeqs(ctx, all)
			if err != nil {
				t.Fatal(err)
			}
			got, err := reader.AlertsAfter(ctx, all, "a", 1, 10)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, a := range got {
				if a.Seq > seqs["a"] {
					break // the sender reads up to the committed number
				}
				ids = append(ids, a.Alert.GetMessageId())
			}
			return ids
		}
		if got := follow(); len(got) != 0 {
			t.Fatalf("while the first transaction is open the reader sees %v, want nothing", got)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := <-later; err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"slow", "m-later"}, follow()); diff != "" {
			t.Errorf("after the commits (-want +got):\n%s", diff)
		}
	})
}

// TestUplinkSummaries: summaries count each sensor's messages per minute
// and verdict; storing them again replaces them; a disconnected SCN's
// alerts go, its summaries stay.
func TestUplinkSummaries(t *testing.T) {
	pair(t, func(t *testing.T, db, pcnDB *testDB) {
		scn, pcn := db.open(AlertRetention{}), pcnDB.open(AlertRetention{})
		ctx, all := t.Context(), store.AllTenants()
		start := db.clk.Now().Truncate(time.Minute)
		for i := range 6 {
			rec := record("default", "s1", fmt.Sprintf("m%d", i))
			var alert *ospreyv1.Alert
			if i%2 == 0 {
				alert = alertFor(2, "x")
			} else {
				rec.Verdict = "clean"
			}
			if _, _, err := scn.RecordScan(ctx, all, rec, alert, start.Add(time.Duration(i)*20*time.Second)); err != nil {
				t.Fatal(err)
			}
		}
		sums, err := scn.MessageSummaries(ctx, all, start, start.Add(5*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		type key struct {
			min     int
			verdict string
		}
		got := map[key][2]int64{}
		for _, m := range sums {
			got[key{int(m.GetBucket().AsTime().Sub(start) / time.Minute), m.GetVerdict()}] = [2]int64{m.GetMessages(), m.GetDetected()}
		}
		want := map[key][2]int64{{0, "detected"}: {2, 2}, {0, "clean"}: {1, 0}, {1, "detected"}: {1, 1}, {1, "clean"}: {2, 0}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("summaries (-want +got):\n%s", diff)
		}
		b := &ospreyv1.UplinkSummaries{From: timestamppb.New(start), To: timestamppb.New(start.Add(5 * time.Minute)), Summaries: sums}
		for range 2 {
			if err := pcn.StoreSummaries(ctx, all, "branch", "acme", b, db.clk.Now()); err != nil {
				t.Fatal(err)
			}
		}
		totals := func(scope store.Scope) []SummaryTotal {
			t.Helper()
			tt, err := pcn.SummaryTotals(ctx, scope, start.Add(-time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			return tt
		}
		if diff := cmp.Diff([]SummaryTotal{{Tenant: "acme", ServerID: "branch", Messages: 6, Detected: 3}}, totals(all)); diff != "" {
			t.Errorf("totals (-want +got):\n%s", diff)
		}
		if got := totals(store.TenantScope("other")); len(got) != 0 {
			t.Errorf("tenant other's totals: %v, want none", got)
		}
		if cur, err := pcn.UplinkCursor(ctx, all, "branch"); err != nil || !cur.SummariesTo.Equal(start.Add(5*time.Minute)) {
			t.Errorf("summaries cursor: %v, %v; want %v", cur.SummariesTo, err, start.Add(5*time.Minute))
		}
		if n := pump(t, scn, pcn, "branch", "acme", 2, db.clk.Now()); n != 3 {
			t.Fatalf("stored %d alerts, want 3", n)
		}
		n, err := pcn.DeleteServerAlerts(ctx, all, "branch")
		if err != nil || n != 3 {
			t.Errorf("disconnect deleted %d alerts, %v; want 3", n, err)
		}
		if len(serverAlerts(t, pcn, all, AlertQuery{})) != 0 {
			t.Error("the disconnected SCN's alerts are still listed")
		}
		if len(totals(all)) != 1 {
			t.Error("the disconnected SCN's summaries went with its alerts")
		}
		if cur, err := pcn.UplinkCursor(ctx, all, "branch"); err != nil || len(cur.AlertSeq) != 0 {
			t.Errorf("the disconnected SCN's cursor: %v, %v; want none (it sends everything if it joins again)", cur.AlertSeq, err)
		}
		var left int
		if err := scn.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM alerts`).Scan(&left); err != nil || left != 3 {
			t.Errorf("the SCN keeps %d alerts, %v; want its 3", left, err)
		}
	})
}
