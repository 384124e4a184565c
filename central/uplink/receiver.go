package uplink

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ReceiverOptions configures a PCN's side.
type ReceiverOptions struct {
	// Messages is the PCN's SQL store.
	Messages *sqlstore.Store
	// Servers is the PCN's configuration store (its SCNs' records).
	Servers *store.Store
	// CleanEvery takes its default when zero.
	CleanEvery time.Duration
	Now        func() time.Time
	Logger     *slog.Logger
}

// Receiver is a PCN's channel on its SCNs' links: it stores their alerts
// and summaries and acknowledges them. Its Run deletes the alerts of
// disconnected SCNs.
type Receiver struct {
	opts ReceiverOptions
	log  *slog.Logger
}

// NewReceiver builds a PCN's channel.
func NewReceiver(opts ReceiverOptions) *Receiver {
	if opts.CleanEvery <= 0 {
		opts.CleanEvery = DefaultCleanEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Receiver{opts: opts, log: log}
}

var _ hierarchy.PrimaryChannel = (*Receiver)(nil)

// Claims takes an SCN's alerts and summaries.
func (r *Receiver) Claims(m *ospreyv1.LinkRequest) bool {
	return m.GetAlerts() != nil || m.GetSummaries() != nil
}

// Serve tells the SCN where this PCN stands, then stores what it sends, a
// message at a time, acknowledging each once it is committed. A store
// failure ends the link (the SCN resends from the cursor on the next one).
func (r *Receiver) Serve(ctx context.Context, l *hierarchy.Link[*ospreyv1.LinkResponse, *ospreyv1.LinkRequest]) error {
	all := store.AllTenants()
	log := r.log.With("server", l.ServerID)
	cur, err := r.opts.Messages.UplinkCursor(ctx, all, l.ServerID)
	if err != nil {
		return err
	}
	c := &ospreyv1.UplinkCursor{AlertSeq: cur.AlertSeq}
	if !cur.SummariesTo.IsZero() {
		c.SummariesTo = timestamppb.New(cur.SummariesTo)
	}
	if err := l.Send(&ospreyv1.LinkResponse{Msg: &ospreyv1.LinkResponse_UplinkCursor{UplinkCursor: c}}); err != nil {
		return err
	}
	for {
		m, err := l.Recv(ctx)
		if err != nil {
			return nil // the link ended
		}
		var ack *ospreyv1.LinkResponse
		switch {
		case m.GetAlerts() != nil:
			b := m.GetAlerts()
			n, err := r.opts.Messages.StoreUplinkAlerts(ctx, all, l.ServerID, l.Tenant, b, r.opts.Now())
			if err := r.storeErr(ctx, log, "alerts", err); err != nil {
				return err
			}
			if n > 0 {
				log.DebugContext(ctx, "stored an SCN's alerts", "scn_tenant", b.GetTenant(), "stored", n, "up_to", b.GetLast())
			}
			ack = &ospreyv1.LinkResponse{Msg: &ospreyv1.LinkResponse_AlertsAck{AlertsAck: &ospreyv1.UplinkAlertsAck{Tenant: b.GetTenant(), Seq: b.GetLast()}}}
		case m.GetSummaries() != nil:
			b := m.GetSummaries()
			err := r.opts.Messages.StoreSummaries(ctx, all, l.ServerID, l.Tenant, b, r.opts.Now())
			if err := r.storeErr(ctx, log, "summaries", err); err != nil {
				return err
			}
			ack = &ospreyv1.LinkResponse{Msg: &ospreyv1.LinkResponse_SummariesAck{SummariesAck: &ospreyv1.UplinkSummariesAck{To: b.GetTo()}}}
		default:
			continue
		}
		if err := l.Send(ack); err != nil {
			return err
		}
	}
}

// storeErr returns a failure of the store itself, which ends the link; a
// message the store refuses is logged and acknowledged, for sending it
// again would not change the answer.
func (r *Receiver) storeErr(ctx context.Context, log *slog.Logger, what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sqlstore.ErrUnavailable) || ctx.Err() != nil {
		return err
	}
	log.WarnContext(ctx, "refused an SCN's "+what, "err", err)
	return nil
}

// Run deletes, every CleanEvery until ctx ends, the alerts of the SCNs
// that were disconnected or forgotten (their summaries stay).
func (r *Receiver) Run(ctx context.Context) error {
	t := time.NewTicker(r.opts.CleanEvery)
	defer t.Stop()
	for {
		if err := r.Clean(ctx); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "delete the alerts of disconnected SCNs", "err", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// Clean deletes the alerts of the SCNs that are disconnected or no longer
// known, in batches.
func (r *Receiver) Clean(ctx context.Context) error {
	all := store.AllTenants()
	data, err := r.opts.Messages.ServersData(ctx, all)
	if err != nil {
		return err
	}
	srvs, err := r.opts.Servers.ListServers(ctx, all)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, s := range srvs {
		if s.GetState() == ospreyv1.ServerState_SERVER_STATE_ACCEPTED {
			keep[s.GetId()] = true
		}
	}
	var errs []error
	for id, d := range data {
		if keep[id] || d.Alerts == 0 {
			continue
		}
		n, err := r.opts.Messages.DeleteServerAlerts(ctx, all, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.log.InfoContext(ctx, "deleted the alerts of a disconnected SCN", "server", id, "alerts", n)
	}
	return errors.Join(errs...)
}
