package uplink

import (
	"context"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
)

// WithData adds to the PCN's view of its SCNs what it holds of each (the
// SCN's alerts here, when alerts or summaries last came), and counts that
// as data for "no data for over 5 minutes". scope is the reader's: its
// counts cover the alerts it may see.
func WithData(ctx context.Context, db *sqlstore.Store, scope store.Scope, list []api.Server, now time.Time) ([]api.Server, error) {
	data, err := db.ServersData(ctx, scope)
	if err != nil {
		return nil, err
	}
	for i := range list {
		v := &list[i]
		d, ok := data[v.ID]
		if !ok {
			continue
		}
		v.PCNAlerts = d.Alerts
		if !d.LastDataAt.IsZero() {
			at := d.LastDataAt.UTC()
			v.UplinkAt = &at
			if v.LastDataAt == nil || at.After(*v.LastDataAt) {
				v.LastDataAt = &at
			}
		}
		if v.State == api.ServerAccepted {
			v.NoData = v.LastDataAt == nil || now.Sub(*v.LastDataAt) > api.NoDataAfter
		}
	}
	return list, nil
}
