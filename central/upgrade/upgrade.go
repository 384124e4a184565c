// Package upgrade moves what an earlier version kept in etcd into the SQL
// store: message records and alerts, with the SIEM export's progress.
//
// Design note. A node runs MoveToSQL at every start, before it serves,
// under an etcd mutex so that one node of a cluster moves at a time; with
// nothing left in etcd it costs three small reads. Running it at every
// start, not once, also moves what nodes of the earlier version still
// wrote during a rolling upgrade, when the last of them is upgraded.
//
// It is resumable: each batch is copied into the SQL store, which ignores
// what it holds already, before it is deleted from etcd, so a node killed
// midway copies the rest at its next start and loses nothing. Alerts are
// moved tenant by tenant in the order etcd stored them, which is the order
// the export followed and the order of the numbers the SQL store gives
// them. An export cursor, which was a revision, becomes the number of the
// last alert stored at or before it: what was exported is not sent again,
// and what was not is. The new cursor is written before the alerts it
// covers leave etcd, so a resumed move computes the same one.
package upgrade

import (
	"context"
	"fmt"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// lockKey is the prefix of the mutex of the move.
const lockKey = "/osprey/v1/cluster/upgrade-lock/"

// batch is how many records or alerts one step copies and deletes.
var batch = 500

// afterStep runs after each batch leaves etcd: the tests stop a move there,
// as a crash would.
var afterStep = func() error { return nil }

// Moved counts what MoveToSQL moved.
type Moved struct {
	Alerts, Messages int
}

// MoveToSQL moves the message records and alerts left in etcd into db, and
// converts the SIEM export's cursors, as the package comment describes.
func MoveToSQL(ctx context.Context, cli *clientv3.Client, st *store.Store, db *sqlstore.Store, log *slog.Logger) (Moved, error) {
	var moved Moved
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(10), concurrency.WithContext(ctx))
	if err != nil {
		return moved, fmt.Errorf("upgrade: session: %w", err)
	}
	defer sess.Close()
	mu := concurrency.NewMutex(sess, lockKey)
	if err := mu.Lock(ctx); err != nil {
		return moved, fmt.Errorf("upgrade: lock: %w", err)
	}
	defer mu.Unlock(context.WithoutCancel(ctx))

	cursors, err := st.LegacyExportCursors(ctx)
	if err != nil {
		return moved, err
	}
	// newCursor holds, per tenant with a legacy cursor, the number of the
	// last alert known to be exported.
	newCursor := map[string]int64{}
	for {
		alerts, err := st.LegacyAlerts(ctx, batch)
		if err != nil {
			return moved, err
		}
		if len(alerts) == 0 {
			break
		}
		tenant := alerts[0].Alert.GetTenant()
		rev, exporting := cursors[tenant]
		if _, started := newCursor[tenant]; exporting && !started {
			// Nothing of this tenant moved yet in this run: start from
			// what a resumed run wrote, or from the alerts the SQL store
			// had before (all of them sent already, or made since).
			n, ok, err := st.ExportCursor(ctx, tenant)
			if err != nil {
				return moved, err
			}
			if !ok {
				if n, err = db.LastAlertSeq(ctx, store.AllTenants(), tenant); err != nil {
					return moved, err
				}
			}
			newCursor[tenant] = n
		}
		keys := make([]string, 0, len(alerts))
		for _, a := range alerts {
			seq, err := db.ImportAlert(ctx, a.Alert)
			if err != nil {
				return moved, err
			}
			if exporting && a.Revision <= rev {
				newCursor[tenant] = max(newCursor[tenant], seq)
			}
			keys = append(keys, a.Key)
		}
		if exporting {
			if err := st.PutExportCursor(ctx, tenant, newCursor[tenant]); err != nil {
				return moved, err
			}
		}
		if err := st.DeleteLegacy(ctx, keys); err != nil {
			return moved, err
		}
		moved.Alerts += len(alerts)
		if err := afterStep(); err != nil {
			return moved, err
		}
	}
	// Tenants with a cursor and no alerts left to move: everything they had
	// was exported (or trimmed); they go on from their newest alert.
	for tenant := range cursors {
		if _, done := newCursor[tenant]; done {
			continue
		}
		if _, ok, err := st.ExportCursor(ctx, tenant); err != nil || ok {
			if err != nil {
				return moved, err
			}
			continue
		}
		n, err := db.LastAlertSeq(ctx, store.AllTenants(), tenant)
		if err != nil {
			return moved, err
		}
		if err := st.PutExportCursor(ctx, tenant, n); err != nil {
			return moved, err
		}
	}
	for {
		msgs, err := st.LegacyMessages(ctx, batch)
		if err != nil {
			return moved, err
		}
		if len(msgs) == 0 {
			break
		}
		keys := make([]string, 0, len(msgs))
		recs := make([]*ospreyv1.MessageRecord, 0, len(msgs))
		for _, m := range msgs {
			recs = append(recs, m.Record)
			keys = append(keys, m.Key)
		}
		if err := db.ImportMessages(ctx, recs); err != nil {
			return moved, err
		}
		if err := st.DeleteLegacy(ctx, keys); err != nil {
			return moved, err
		}
		moved.Messages += len(msgs)
		if err := afterStep(); err != nil {
			return moved, err
		}
	}
	if err := st.DeleteLegacyIndexes(ctx); err != nil {
		return moved, err
	}
	if moved.Alerts > 0 || moved.Messages > 0 {
		log.InfoContext(ctx, "moved the message records and alerts of an earlier version from etcd into the SQL store",
			"alerts", moved.Alerts, "messages", moved.Messages, "store", db.Dialect())
	}
	return moved, nil
}
