package central

import (
	"context"
	"log/slog"

	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/central/siem"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// syncExports applies every tenant's syslog export, as the cache holds it,
// to the exporter, and follows the changes until ctx ends: an export changed
// through the API reaches every central node's exporter with no restart.
func syncExports(ctx context.Context, cache *store.ExportCache, ex *siem.Exporter, log *slog.Logger) error {
	if err := cache.Wait(ctx); err != nil {
		return nil // ctx ended
	}
	applied := map[string]*ospreyv1.SyslogExport{}
	for {
		exports, _, changed := cache.Exports()
		for tenant, e := range exports {
			if prev, ok := applied[tenant]; ok && proto.Equal(prev, e) {
				continue
			}
			if err := ex.Apply(tenant, e); err != nil {
				log.WarnContext(ctx, "syslog export not applied", "tenant", tenant, "err", err)
				continue
			}
			applied[tenant] = e
		}
		for tenant := range applied {
			if _, ok := exports[tenant]; !ok {
				if err := ex.Apply(tenant, nil); err != nil {
					log.WarnContext(ctx, "syslog export not removed", "tenant", tenant, "err", err)
					continue
				}
				delete(applied, tenant)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}
