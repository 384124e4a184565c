// Package siemfeed exports the alerts stored in etcd to each tenant's SIEM,
// from one central node at a time, so that an alert reaches the SIEM even
// when the node that recorded it, or the one exporting, dies.
//
// Every alert is in etcd before its message's upload is acknowledged (see
// store.RecordScan). The central nodes elect one of them (an etcd election
// under store.ExportLeaderPrefix, on a session of Options.SessionTTL). The
// leader applies every tenant's export to its siem.Exporter and, for each
// exporting tenant, follows the tenant's alerts in the order etcd stored
// them (a watch from the last one enqueued, which etcd replays from its
// history; range reads when that is compacted), enqueues as many as the
// exporter has room for, and records, at most once a second,
// the revision up to which they are delivered (siem.Exporter.Delivered) as
// the tenant's cursor, with a transaction that holds only while this node
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

	"github.com/ospreysec/osprey/central/siem"
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
	Client   *clientv3.Client
	Store    *store.Store
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

// Feeder is the export's side that follows etcd; see the package comment.
type Feeder struct {
	opts   Options
	log    *slog.Logger
	leader prometheus.Gauge
}

// New returns a Feeder; Run runs it.
func New(opts Options) (*Feeder, error) {
	if opts.Client == nil || opts.Store == nil || opts.Exports == nil || opts.Exporter == nil {
		return nil, errors.New("siemfeed: Client, Store, Exports and Exporter are required")
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
	sess, err := concurrency.NewSession(f.opts.Client, concurrency.WithTTL(f.opts.SessionTTL), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("election session: %w", err)
	}
	defer sess.Close()
	el := concurrency.NewElection(sess, store.ExportLeaderPrefix())
	if err := el.Campaign(ctx, f.opts.NodeName); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-tctx.Done():
		}
	}()
	f.leader.Set(1)
	defer f.leader.Set(0)
	f.log.InfoContext(ctx, "this node exports the alerts to the SIEMs")
	leader := clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev())
	f.lead(tctx, leader)
	if ctx.Err() != nil {
		// Stopping: hand over at once rather than after the session's TTL.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer rcancel()
		_ = el.Resign(rctx)
		return nil
	}
	return errors.New("election session ended")
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

// feed moves tenant's alerts from etcd into the exporter and its progress
// back into etcd, until ctx ends or the node no longer leads. It watches
// the alerts from the last one enqueued while the exporter has room, and
// stops watching when it has none, to watch again from there (etcd replays
// its history); when the history is compacted it reads the rest with
// range reads first.
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
	next := cursor // the last revision enqueued
	tick := time.NewTicker(f.opts.Interval)
	defer tick.Stop()
	var alerts <-chan store.AlertBatch
	stopWatch := func() {}
	defer func() { stopWatch() }()
	pause := false // after a failed watch: watch again after a tick
	for {
		if alerts == nil && !pause && ex.Room(tenant) > 0 {
			wctx, wcancel := context.WithCancel(ctx)
			if alerts, err = st.WatchNewAlerts(wctx, tenant, next); err != nil {
				wcancel()
				log.WarnContext(ctx, "watch alerts", "err", err)
				return
			}
			stopWatch = wcancel
		}
		select {
		case <-ctx.Done():
			return
		case b, ok := <-alerts:
			switch {
			case !ok:
				stopWatch()
				alerts, pause = nil, true
			case errors.Is(b.Err, store.ErrCompacted):
				stopWatch()
				alerts = nil
				next = f.catchUp(ctx, tenant, next, log)
			case b.Err != nil:
				log.WarnContext(ctx, "watch alerts to export", "err", b.Err)
				stopWatch()
				alerts, pause = nil, true
			default:
				for i, a := range b.Alerts {
					if ex.Room(tenant) == 0 {
						// Full: stop here, and watch again from the last
						// alert enqueued once there is room.
						log.DebugContext(ctx, "SIEM export queue full: waiting", "left", len(b.Alerts)-i)
						stopWatch()
						alerts = nil
						break
					}
					ex.Enqueue(a.Alert, a.Revision)
					next = a.Revision
				}
			}
		case <-tick.C:
			pause = false
		}
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
	}
}

// catchUp enqueues, with range reads, what the exporter has room for of
// tenant's alerts after revision next, when etcd no longer has the history
// to watch from there. It returns the revision to watch from: the last one
// enqueued, or the revision of the read that found no more.
func (f *Feeder) catchUp(ctx context.Context, tenant string, next int64, log *slog.Logger) int64 {
	st, ex := f.opts.Store, f.opts.Exporter
	for room := ex.Room(tenant); room > 0; room = ex.Room(tenant) {
		alerts, rev, err := st.AlertsAfter(ctx, store.AllTenants(), tenant, next, min(room, readBatch))
		if err != nil {
			if ctx.Err() == nil {
				log.WarnContext(ctx, "read alerts to export", "err", err)
			}
			return next
		}
		for _, a := range alerts {
			ex.Enqueue(a.Alert, a.Revision)
			next = a.Revision
		}
		if len(alerts) < min(room, readBatch) {
			return max(next, rev) // nothing more up to rev
		}
	}
	return next
}

// start returns tenant's cursor, making it the store's current revision
// when there is none.
func (f *Feeder) start(ctx context.Context, tenant string, leader clientv3.Cmp) (int64, error) {
	st := f.opts.Store
	cursor, ok, err := st.ExportCursor(ctx, tenant)
	if err != nil || ok {
		return cursor, err
	}
	if cursor, err = st.Revision(ctx); err != nil {
		return 0, err
	}
	return cursor, st.SetExportCursor(ctx, tenant, cursor, leader)
}
