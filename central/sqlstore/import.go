package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ImportAlert stores an alert that an earlier version kept elsewhere, with
// the next number of its tenant, unless the tenant has an alert of that id
// already (an import that is resumed). It returns the alert's number either
// way. Alerts are imported in the order they were made, so their numbers
// keep it.
func (s *Store) ImportAlert(ctx context.Context, a *ospreyv1.Alert) (int64, error) {
	if err := store.CheckID("tenant", a.GetTenant()); err != nil {
		return 0, err
	}
	if err := checkAlertID(a.GetId()); err != nil {
		return 0, err
	}
	r, err := newAlertRow(a)
	if err != nil {
		return 0, err
	}
	var seq int64
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, s.d.q(`SELECT seq FROM alerts WHERE tenant = ? AND id = ?`), a.GetTenant(), a.GetId()).Scan(&seq)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return s.d.wrap("read alert", err)
		}
		seq, err = s.insertAlert(ctx, tx, r)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("import alert %s of tenant %q: %w", a.GetId(), a.GetTenant(), err)
	}
	return seq, nil
}

// ImportMessages stores message records that an earlier version kept
// elsewhere, each recorded at its upload time, in one transaction; those it
// holds already are left as they are.
func (s *Store) ImportMessages(ctx context.Context, recs []*ospreyv1.MessageRecord) error {
	type row struct {
		rec  *ospreyv1.MessageRecord
		body []byte
		at   time.Time
	}
	rows := make([]row, 0, len(recs))
	for _, rec := range recs {
		for kind, id := range map[string]string{"tenant": rec.GetTenant(), "sensor": rec.GetSensorId(), "message": rec.GetMessageId()} {
			if err := store.CheckID(kind, id); err != nil {
				return err
			}
		}
		body, err := marshal(rec)
		if err != nil {
			return err
		}
		at := time.Now()
		if rec.GetUploadedAt() != nil {
			at = rec.GetUploadedAt().AsTime()
		}
		rows = append(rows, row{rec, body, at})
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, r := range rows {
			if _, err := s.insertMessage(ctx, tx, r.rec, r.body, r.at); err != nil {
				return fmt.Errorf("import: %w", err)
			}
		}
		return nil
	})
}
