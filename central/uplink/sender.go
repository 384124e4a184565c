package uplink

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// SenderOptions configures an SCN's side.
type SenderOptions struct {
	// Messages is the SCN's SQL store, where its alerts and records are.
	Messages *sqlstore.Store
	// Batch, Window, Poll and SummaryEvery take their defaults when zero.
	Batch, Window      int
	Poll, SummaryEvery time.Duration
	Now                func() time.Time
	Logger             *slog.Logger
}

// Sender is an SCN's channel on the link: it sends the SCN's alerts and
// message summaries from where the PCN stands.
type Sender struct {
	opts SenderOptions
	log  *slog.Logger
}

// NewSender builds an SCN's channel.
func NewSender(opts SenderOptions) *Sender {
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.SummaryEvery <= 0 {
		opts.SummaryEvery = DefaultSummaryEvery
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{opts: opts, log: log}
}

var _ hierarchy.SecondaryChannel = (*Sender)(nil)

// Claims takes the PCN's cursor and acknowledgements.
func (s *Sender) Claims(m *ospreyv1.LinkResponse) bool {
	return m.GetUplinkCursor() != nil || m.GetAlertsAck() != nil || m.GetSummariesAck() != nil
}

// sendState is one link's progress.
type sendState struct {
	// sent is, per tenant, the last alert number sent.
	sent map[string]int64
	// inFlight is how many alert batches await their acknowledgement.
	inFlight int
	// summariesTo is the end of the summaries the PCN acknowledged;
	// summarising says a summaries message awaits its acknowledgement.
	summariesTo time.Time
	summarising bool
	nextSummary time.Time
}

// Serve sends until the link ends: the alerts after the PCN's cursor, as
// they come, and the summaries.
func (s *Sender) Serve(ctx context.Context, l *hierarchy.Link[*ospreyv1.LinkRequest, *ospreyv1.LinkResponse]) error {
	in := make(chan *ospreyv1.LinkResponse)
	go func() {
		for {
			m, err := l.Recv(ctx)
			if err != nil {
				return
			}
			select {
			case in <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	var cur *ospreyv1.UplinkCursor
	for cur == nil {
		select {
		case m := <-in:
			cur = m.GetUplinkCursor()
		case <-ctx.Done():
			return nil
		}
	}
	st := &sendState{sent: maps.Clone(cur.GetAlertSeq()), nextSummary: s.opts.Now()}
	if st.sent == nil {
		st.sent = map[string]int64{}
	}
	if cur.GetSummariesTo() != nil {
		st.summariesTo = cur.GetSummariesTo().AsTime()
	}
	s.log.InfoContext(ctx, "sending alerts and summaries to the PCN", "from", st.sent, "summaries_from", st.summariesTo)
	poll := time.NewTicker(s.opts.Poll)
	defer poll.Stop()
	for {
		added := s.opts.Messages.AlertsAdded()
		if err := s.sendAlerts(ctx, l, st); err != nil {
			return err
		}
		if err := s.sendSummaries(ctx, l, st); err != nil {
			return err
		}
		select {
		case m := <-in:
			switch {
			case m.GetAlertsAck() != nil:
				st.inFlight = max(0, st.inFlight-1)
			case m.GetSummariesAck() != nil:
				st.summarising = false
				st.summariesTo = m.GetSummariesAck().GetTo().AsTime()
				st.nextSummary = s.opts.Now().Add(s.opts.SummaryEvery)
				if st.summariesTo.Before(s.opts.Now().Truncate(sqlstore.SummaryBucket)) {
					st.nextSummary = s.opts.Now() // catching up
				}
			}
		case <-added:
		case <-poll.C:
		case <-ctx.Done():
			return nil
		}
	}
}

// sendAlerts fills the window with batches of the alerts not sent yet.
func (s *Sender) sendAlerts(ctx context.Context, l *hierarchy.Link[*ospreyv1.LinkRequest, *ospreyv1.LinkResponse], st *sendState) error {
	if st.inFlight >= s.opts.Window {
		return nil
	}
	all := store.AllTenants()
	// Every alert numbered up to seqs[t] has committed (the numbers
	// follow commit order), so a short read up to there misses none.
	seqs, err := s.opts.Messages.AlertSeqs(ctx, all)
	if err != nil {
		return err
	}
	for _, t := range slices.Sorted(maps.Keys(seqs)) {
		if seqs[t] < st.sent[t] && st.inFlight == 0 {
			// The SCN's numbers went back (its store restored from an
			// older backup): send everything again; the PCN stores each
			// alert once.
			s.log.WarnContext(ctx, "the alert numbers went back below the PCN's cursor: sending the tenant's alerts again", "tenant", t, "cursor", st.sent[t], "last", seqs[t])
			st.sent[t] = 0
		}
		for st.inFlight < s.opts.Window && seqs[t] > st.sent[t] {
			after := st.sent[t]
			alerts, err := s.opts.Messages.AlertsAfter(ctx, all, t, after, s.opts.Batch)
			if err != nil {
				return err
			}
			b := &ospreyv1.UplinkAlerts{Tenant: t, After: after, Last: after, SentAt: timestamppb.New(s.opts.Now())}
			size, full := 0, false
			for _, a := range alerts {
				n := proto.Size(a.Alert)
				if len(b.Alerts) > 0 && size+n > maxBatchBytes {
					full = true // the rest goes in the next batch
					break
				}
				size += n
				b.Alerts = append(b.Alerts, a.Alert)
				b.Last = a.Seq
			}
			if !full && len(alerts) < s.opts.Batch {
				// The rest up to seqs[t] went with the retention.
				b.Last = max(b.Last, seqs[t])
			}
			if err := l.Send(&ospreyv1.LinkRequest{Msg: &ospreyv1.LinkRequest_Alerts{Alerts: b}}); err != nil {
				return err
			}
			st.sent[t] = b.Last
			st.inFlight++
		}
	}
	return nil
}

// sendSummaries sends the next span of summaries when it is time and none
// awaits its acknowledgement.
func (s *Sender) sendSummaries(ctx context.Context, l *hierarchy.Link[*ospreyv1.LinkRequest, *ospreyv1.LinkResponse], st *sendState) error {
	now := s.opts.Now()
	if st.summarising || now.Before(st.nextSummary) {
		return nil
	}
	// From where the PCN stands, but the last few minutes always: their
	// records may have committed after they were counted.
	from := st.summariesTo
	if recount := now.Add(-summaryLate); from.After(recount) {
		from = recount
	}
	if st.summariesTo.IsZero() {
		from = now.Add(-summaryBackfill)
	}
	from = from.Truncate(sqlstore.SummaryBucket)
	to := now.Truncate(sqlstore.SummaryBucket).Add(sqlstore.SummaryBucket)
	if end := from.Add(summaryChunk); end.Before(to) {
		to = end
	}
	sums, err := s.opts.Messages.MessageSummaries(ctx, store.AllTenants(), from, to)
	if err != nil {
		return err
	}
	if len(sums) > maxSummaries {
		// Up to the bucket that would pass the bound; the next message
		// starts there (a bucket alone is sent whole).
		cut := maxSummaries
		for cut > 0 && sums[cut].GetBucket().AsTime().Equal(sums[cut-1].GetBucket().AsTime()) {
			cut--
		}
		if cut == 0 {
			for cut = 1; cut < len(sums) && sums[cut].GetBucket().AsTime().Equal(sums[0].GetBucket().AsTime()); cut++ {
			}
		}
		if cut < len(sums) {
			to = sums[cut].GetBucket().AsTime()
			sums = sums[:cut]
		}
	}
	if err := l.Send(&ospreyv1.LinkRequest{Msg: &ospreyv1.LinkRequest_Summaries{Summaries: &ospreyv1.UplinkSummaries{
		From: timestamppb.New(from), To: timestamppb.New(to), Summaries: sums,
	}}}); err != nil {
		return err
	}
	st.summarising = true
	return nil
}
