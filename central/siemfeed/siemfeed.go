// Package siemfeed exports the alerts of the SQL store to each tenant's
// SIEM, from one central node at a time, so that an alert reaches the SIEM
// even when the node that recorded it, or the one exporting, dies.
//
// Every alert is in the SQL store before its message's upload is
// acknowledged (see sqlstore.Store.RecordScan), numbered in its tenant in
// commit order without gaps. The central nodes elect one of them (an etcd
// election under store.ExportLeaderPrefix, on a session of
// Options.SessionTTL). The leader applies every tenant's export to its
// siem.Exporter and, for each exporting tenant, reads the tenant's alerts
// by number from the last one enqueued (when this node commits an alert,
// and every Interval for those other nodes commit), enqueues as many as the
// exporter has room for, and records, at most once a wake-up, the number up
// to which they are delivered (siem.Exporter.Delivered) as the tenant's
// cursor in etcd, with a transaction that holds only while this node
// leads. A node that takes over starts from the cursors: what the last
// leader had queued or had written within the resend window is sent again
// (at least once, as the exporter's own resend is), nothing is skipped.
//
// A tenant whose export is turned on for the first time, or again after
// being off, starts with the alerts made from then on. Alerts that
// retention deletes before they could be sent (the receiver down for
// longer than the alert cap lasts) are not exported.
package siemfeed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/central/election"
	"github.com/ospreysec/osprey/central/siem"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults of the zero Options fields.
const (
	DefaultSessionTTL = 10 // seconds
	DefaultInterval   = time.Second
	// readBatch bounds the alerts read at once.
	readBatch = 512
)

// Options configure a Feeder.
type Options struct {
	Client *clientv3.Client
	// Store holds the election and the cursors; Alerts, the alerts.
	Store    *store.Store
	Alerts   *sqlstore.Store
	Exports  *store.ExportCache
	Exporter *siem.Exporter
	// NodeName is what the election records of the leader.
	NodeName string
	// SessionTTL is the election session's TTL in seconds: how long a dead
	// leader holds on. 0 means DefaultSessionTTL.
	SessionTTL int
	// Interval is how often a tenant's alerts are read without a wake-up
	// and its cursor written when it moved. 0 means DefaultInterval.
	Interval time.Duration
	// Registerer receives the metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Feeder is the export's side that follows the alerts; see the package
// comment.
type Feeder struct {
	opts   Options
	log    *slog.Logger
	leader prometheus.Gauge
}

// New returns a Feeder; Run runs it.
func New(opts Options) (*Feeder, error) {
	if opts.Client == nil || opts.Store == nil || opts.Alerts == nil || opts.Exports == nil || opts.Exporter == nil {
		return nil, errors.New("siemfeed: Client, Store, Alerts, Exports and Exporter are required")
	}
	if opts.SessionTTL == 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Feeder{opts: opts, log: opts.Logger, leader: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "osprey_siem_leader", Help: "1 on the central node that exports alerts to the SIEMs, 0 on the others.",
	})}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(f.leader); err != nil {
			return nil, fmt.Errorf("register siemfeed metrics: %w", err)
		}
	}
	return f, nil
}

// Run campaigns to lead the export and exports while it leads, until ctx
// ends.
func (f *Feeder) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := f.term(ctx); err != nil && ctx.Err() == nil {
			f.log.WarnContext(ctx, "SIEM export: leadership lost or not won", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(f.opts.Interval):
			}
		}
	}
	return nil
}

// term wins an election and exports until the session ends or ctx does.
func (f *Feeder) term(ctx context.Context) error {
	return election.Term(ctx, f.opts.Client, store.ExportLeaderPrefix(), f.opts.NodeName, f.opts.SessionTTL,
		func(ctx context.Context, el *concurrency.Election, _ clientv3.LeaseID) {
			f.leader.Set(1)
			defer f.leader.Set(0)
			f.log.InfoContext(ctx, "this node exports the alerts to the SIEMs")
			f.lead(ctx, clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev()))
		})
}

// lead applies the exports and runs a feed per exporting tenant until ctx
// ends.
func (f *Feeder) lead(ctx context.Context, leader clientv3.Cmp) {
	ex := f.opts.Exporter
	type feed struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	feeds := map[string]feed{}
	stop := func(tenant string) {
		if fd, ok := feeds[tenant]; ok {
			fd.cancel()
			<-fd.done
			delete(feeds, tenant)
		}
	}
	defer func() {
		for t := range feeds {
			stop(t)
		}
		ex.Release()
	}()
	if err := f.opts.Exports.Wait(ctx); err != nil {
		return
	}
	applied := map[string]*ospreyv1.SyslogExport{}
	for {
		exports, _, changed := f.opts.Exports.Exports()
		for tenant, e := range exports {
			if prev, ok := applied[tenant]; ok && proto.Equal(prev, e) {
				continue
			}
			if err := ex.Apply(tenant, e); err != nil {
				f.log.WarnContext(ctx, "syslog export not applied", "tenant", tenant, "err", err)
				continue
			}
			applied[tenant] = e
			if !e.GetEnabled() {
				f.off(ctx, tenant, leader, stop)
				continue
			}
			if _, ok := feeds[tenant]; !ok {
				fctx, fcancel := context.WithCancel(ctx)
				fd := feed{cancel: fcancel, done: make(chan struct{})}
				feeds[tenant] = fd
				go func() {
					defer close(fd.done)
					f.feed(fctx, tenant, leader)
				}()
			}
		}
		for tenant := range applied {
			if _, ok := exports[tenant]; !ok {
				if err := ex.Apply(tenant, nil); err != nil {
					f.log.WarnContext(ctx, "syslog export not removed", "tenant", tenant, "err", err)
					continue
				}
				delete(applied, tenant)
				f.off(ctx, tenant, leader, stop)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// off stops tenant's feed and forgets its cursor: turned on again, the
// export starts from then on.
func (f *Feeder) off(ctx context.Context, tenant string, leader clientv3.Cmp, stop func(string)) {
	stop(tenant)
	if err := f.opts.Store.DeleteExportCursor(ctx, tenant, leader); err != nil && ctx.Err() == nil {
		f.log.WarnContext(ctx, "syslog export cursor not removed", "tenant", tenant, "err", err)
	}
}

// feed moves tenant's alerts from the SQL store into the exporter, in the
// order of their numbers, as many as the exporter has room for, and its
// progress into etcd, until ctx ends or the node no longer leads. It reads
// again when this node commits an alert, and every Interval for the alerts
// other nodes commit to a shared database.
func (f *Feeder) feed(ctx context.Context, tenant string, leader clientv3.Cmp) {
	log := f.log.With("tenant", tenant)
	st, ex := f.opts.Store, f.opts.Exporter
	cursor, err := f.start(ctx, tenant, leader)
	if err != nil {
		if ctx.Err() == nil {
			log.WarnContext(ctx, "SIEM export of the tenant not started", "err", err)
		}
		return
	}
	next := cursor // the number of the last alert enqueued
	tick := time.NewTicker(f.opts.Interval)
	defer tick.Stop()
	for {
		// Taken before the read, so an alert committed after it wakes us.
		added := f.opts.Alerts.AlertsAdded()
		next = f.enqueue(ctx, tenant, next, log)
		if d, ok := ex.Delivered(tenant); ok && d > cursor {
			err := st.SetExportCursor(ctx, tenant, d, leader)
			switch {
			case errors.Is(err, store.ErrNotLeader):
				log.InfoContext(ctx, "no longer the SIEM export leader")
				return
			case err != nil:
				if ctx.Err() == nil {
					log.WarnContext(ctx, "record the SIEM export cursor", "err", err)
				}
			default:
				cursor = d
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-added:
		case <-tick.C:
		}
	}
}

// enqueue hands the exporter tenant's alerts numbered after next, as many
// as it has room for, and returns the number of the last one enqueued.
func (f *Feeder) enqueue(ctx context.Context, tenant string, next int64, log *slog.Logger) int64 {
	ex := f.opts.Exporter
	for room := ex.Room(tenant); room > 0; room = ex.Room(tenant) {
		alerts, err := f.opts.Alerts.AlertsAfter(ctx, store.AllTenants(), tenant, next, min(room, readBatch))
		if err != nil {
			if ctx.Err() == nil {
				log.WarnContext(ctx, "read alerts to export", "err", err)
			}
			return next
		}
		for _, a := range alerts {
			ex.Enqueue(a.Alert, a.Seq)
			next = a.Seq
		}
		if len(alerts) < min(room, readBatch) {
			return next
		}
	}
	if ex.Room(tenant) == 0 {
		log.DebugContext(ctx, "SIEM export queue full: waiting")
	}
	return next
}

// start returns tenant's cursor, making it the number of the tenant's
// newest alert when there is none: the export starts from then on.
func (f *Feeder) start(ctx context.Context, tenant string, leader clientv3.Cmp) (int64, error) {
	st := f.opts.Store
	cursor, ok, err := st.ExportCursor(ctx, tenant)
	if err != nil || ok {
		return cursor, err
	}
	if cursor, err = f.opts.Alerts.LastAlertSeq(ctx, store.AllTenants(), tenant); err != nil {
		return 0, err
	}
	return cursor, st.SetExportCursor(ctx, tenant, cursor, leader)
}
