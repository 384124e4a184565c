package sensorsvc

import (
	"context"
	"time"

	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// deliveryTimeout bounds the write of one delivery report: the receive
// loop waits for it.
const deliveryTimeout = 10 * time.Second

// recordDeliveries adds a gateway sensor's report of delivery attempts to
// the message audit log, as recordRefusals does refusals: a report that
// cannot be written is logged and its error returned (the sensor sends it
// again), and the stream goes on. Past the store's bound, the rest of a
// report is left out.
func (s *Service) recordDeliveries(ctx context.Context, id pki.Identity, as []*ospreyv1.DeliveryAttempt) error {
	if s.messages == nil || len(as) == 0 {
		return nil
	}
	out := make([]sqlstore.Delivery, 0, len(as))
	rows := 0
	for _, a := range as {
		rcpts := a.GetRecipients()
		if n := sqlstore.MaxDeliveryRowsPerReport - rows; len(rcpts) > n {
			rcpts = rcpts[:n]
		}
		if len(rcpts) == 0 {
			continue
		}
		rows += len(rcpts)
		d := sqlstore.Delivery{
			MessageID: a.GetMessageId(), Sender: a.GetSender(), Direction: convert.DirectionFromProto(a.GetDirection()),
			NextHop: a.GetNextHop(), Host: a.GetHost(), TLS: a.GetTls(),
			Started: a.GetStarted().AsTime(), Took: a.GetTook().AsDuration(),
			Recipients: make([]sqlstore.DeliveryRecipient, 0, len(rcpts)),
		}
		for _, r := range rcpts {
			dr := sqlstore.DeliveryRecipient{
				Address: r.GetAddress(), State: string(convert.QueueStateFromProto(r.GetState())),
				Code: int(min(r.GetCode(), 999)), Enhanced: r.GetEnhanced(), Text: r.GetText(),
			}
			if r.GetNextAttempt() != nil {
				dr.NextAttempt = r.GetNextAttempt().AsTime()
			}
			d.Recipients = append(d.Recipients, dr)
		}
		out = append(out, d)
	}
	wctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	if err := s.messages.RecordDeliveries(wctx, store.TenantScope(id.Tenant), id.Tenant, id.SensorID, out); err != nil {
		s.log.Warn("delivery report not recorded", "sensor", id.SensorID, "attempts", len(out), "err", err)
		return err
	}
	return nil
}

// recordQuarantineEvents applies a gateway sensor's report of what
// happened in its quarantine (evictions) to the central's list, as
// recordDeliveries does.
func (s *Service) recordQuarantineEvents(ctx context.Context, id pki.Identity, es []*ospreyv1.QuarantineEvent) error {
	if s.messages == nil || len(es) == 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, deliveryTimeout)
	defer cancel()
	if err := s.messages.RecordQuarantineEvents(wctx, store.TenantScope(id.Tenant), id.Tenant, id.SensorID, es); err != nil {
		s.log.Warn("quarantine report not recorded", "sensor", id.SensorID, "events", len(es), "err", err)
		return err
	}
	return nil
}
