// Package quarantine is the central's side of the gateways' quarantines:
// what the API and the UI do with a quarantined message. The list comes
// from the SQL store (the rows RecordScan inserts), so it spans every
// sensor without asking any; the message itself stays on its sensor, so a
// preview, a download or an action goes to the sensor over its stream
// (package sensorrpc).
//
// An action asked of a sensor that is offline is not lost: it waits in
// the message's row (pending), and the node that holds the sensor's
// stream once it is back carries it out (Run). Each action, asked for or
// done, is in the message's history with who did it.
package quarantine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ospreysec/osprey/central/sensorrpc"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Actions an operator takes.
const (
	ActionRelease   = "release"
	ActionReleaseTo = "release_to"
	ActionDelete    = "delete"
)

// What the history says was done.
const (
	doneReleased   = "released"
	doneReleasedTo = "released_to"
	doneDeleted    = "deleted"
)

// ErrNotHeld is the error of an action on a message no longer held (it
// was released, deleted, evicted, or never held).
var ErrNotHeld = errors.New("the message is no longer in the quarantine")

// Options configure a Service.
type Options struct {
	Store    *store.Store
	DB       *sqlstore.Store
	Requests *sensorrpc.Router
	Logger   *slog.Logger
	// Interval is how often Run looks for pending actions (10 s).
	Interval time.Duration
	Now      func() time.Time
}

// Service is the quarantine of every gateway, as the central shows it.
type Service struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
}

// New returns a Service; Run carries out pending actions.
func New(opts Options) *Service {
	s := &Service{opts: opts, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.opts.Interval == 0 {
		s.opts.Interval = 10 * time.Second
	}
	return s
}

// Message is a quarantined message as the central shows it.
type Message struct {
	sqlstore.Quarantined
	// Available says whether its sensor is connected: a preview, a
	// download and an action go through at once only then.
	Available bool
}

// List returns a page of the quarantined messages q selects in scope,
// each marked available or not.
func (s *Service) List(ctx context.Context, sc store.Scope, q sqlstore.QuarantineQuery) ([]Message, string, error) {
	page, err := s.opts.DB.ListQuarantine(ctx, sc, q)
	if err != nil {
		return nil, "", err
	}
	online := map[string]bool{}
	out := make([]Message, 0, len(page.Messages))
	for _, m := range page.Messages {
		up, seen := online[m.SensorID]
		if !seen {
			up = s.online(ctx, sc, m.SensorID)
			online[m.SensorID] = up
		}
		out = append(out, Message{Quarantined: m, Available: up})
	}
	return out, page.Next, nil
}

func (s *Service) online(ctx context.Context, sc store.Scope, sensor string) bool {
	rt, err := s.opts.Store.Status(ctx, sc, sensor)
	return err == nil && rt.GetOnline()
}

// Detail is one quarantined message with its history and, when asked for
// and its sensor is connected, a preview.
type Detail struct {
	Message
	History []sqlstore.QuarantineEvent
	Preview *ospreyv1.MessagePreview
	// PreviewError says why there is no preview when one was asked for.
	PreviewError string
}

// Get returns a quarantined message of sensor; with preview, its sensor is
// asked for a preview of its content.
func (s *Service) Get(ctx context.Context, sc store.Scope, sensor, id string, preview bool) (Detail, error) {
	sn, _, err := s.opts.Store.GetSensor(ctx, sc, sensor)
	if err != nil {
		return Detail{}, err
	}
	row, history, err := s.opts.DB.GetQuarantined(ctx, sc, sn.GetTenant(), sensor, id)
	if err != nil {
		return Detail{}, err
	}
	d := Detail{Message: Message{Quarantined: row, Available: s.online(ctx, sc, sensor)}, History: history}
	if !preview || row.State != sqlstore.QuarantineHeld {
		return d, nil
	}
	rep, err := s.opts.Requests.Ask(ctx, s.opts.Store, sc, sensor, &ospreyv1.SensorRequest{
		Op: &ospreyv1.SensorRequest_QuarantineGet{QuarantineGet: &ospreyv1.QuarantineGetRequest{MessageId: id, Preview: true}}})
	switch {
	case err == nil:
		d.Preview = rep.GetQuarantineEntry().GetPreview()
	case errors.Is(err, sensorrpc.ErrOffline):
		d.PreviewError = "unavailable: the sensor is not connected"
	default:
		if notFound(err) {
			s.notHeld(ctx, sc, row)
			d.State = sqlstore.QuarantineNotHeld
		}
		d.PreviewError = err.Error()
	}
	return d, nil
}

// Outcome is what an action came to.
type Outcome struct {
	// Done is true when the sensor did it; false when it waits for the
	// sensor to be back.
	Done bool
	// QueueID is the id of the released copy in the sensor's delivery
	// queue.
	QueueID string
}

// Act does what user asks to a quarantined message of sensor: release it,
// release it to the addresses of to, or delete it. With the sensor
// offline, the action waits for it (Outcome.Done false).
func (s *Service) Act(ctx context.Context, sc store.Scope, user, sensor, id, action string, to []string) (Outcome, error) {
	req := &ospreyv1.QuarantineActionRequest{MessageId: id, To: to}
	switch action {
	case ActionRelease:
		req.Action = ospreyv1.QuarantineAction_QUARANTINE_ACTION_RELEASE
	case ActionReleaseTo:
		req.Action = ospreyv1.QuarantineAction_QUARANTINE_ACTION_RELEASE_TO
		if err := validate.ReleaseAddresses(to); err != nil {
			return Outcome{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	case ActionDelete:
		req.Action = ospreyv1.QuarantineAction_QUARANTINE_ACTION_DELETE
	default:
		return Outcome{}, fmt.Errorf("action %q: want release, release_to or delete: %w", action, ErrInvalid)
	}
	if action != ActionReleaseTo {
		req.To = nil
	}
	sn, _, err := s.opts.Store.GetSensor(ctx, sc, sensor)
	if err != nil {
		return Outcome{}, err
	}
	row, _, err := s.opts.DB.GetQuarantined(ctx, sc, sn.GetTenant(), sensor, id)
	if err != nil {
		return Outcome{}, err
	}
	if row.State != sqlstore.QuarantineHeld {
		return Outcome{}, fmt.Errorf("message %s is %s: %w", id, row.State, ErrNotHeld)
	}
	out, err := s.do(ctx, sc, row, user, req)
	if errors.Is(err, sensorrpc.ErrOffline) {
		err = s.opts.DB.UpdateQuarantined(ctx, sc, row.Tenant, sensor, id, sqlstore.QuarantineChange{Pending: action, PendingTo: req.To,
			Event: sqlstore.QuarantineEvent{At: s.now(), Action: action, Actor: user, Detail: strings.TrimSpace("waits for the sensor " + strings.Join(req.To, ", "))}})
		if err != nil {
			return Outcome{}, err
		}
		s.log.InfoContext(ctx, "quarantine action waits for its sensor", "sensor", sensor, "message", id, "action", action, "user", user)
		return Outcome{}, nil
	}
	return out, err
}

// do asks the sensor to carry out an action, and records it done.
func (s *Service) do(ctx context.Context, sc store.Scope, row sqlstore.Quarantined, user string, req *ospreyv1.QuarantineActionRequest) (Outcome, error) {
	rep, err := s.opts.Requests.Ask(ctx, s.opts.Store, sc, row.SensorID, &ospreyv1.SensorRequest{
		Op: &ospreyv1.SensorRequest_QuarantineAction{QuarantineAction: req}})
	if err != nil {
		if notFound(err) {
			s.notHeld(ctx, sc, row)
			return Outcome{}, fmt.Errorf("message %s: the sensor no longer holds it: %w", row.MessageID, ErrNotHeld)
		}
		return Outcome{}, err
	}
	c := sqlstore.QuarantineChange{Event: sqlstore.QuarantineEvent{At: s.now(), Actor: user}}
	switch req.GetAction() {
	case ospreyv1.QuarantineAction_QUARANTINE_ACTION_RELEASE:
		c.State, c.Event.Action = sqlstore.QuarantineReleased, doneReleased
	case ospreyv1.QuarantineAction_QUARANTINE_ACTION_RELEASE_TO:
		c.State, c.Event.Action, c.Event.Detail = sqlstore.QuarantineHeld, doneReleasedTo, strings.Join(req.GetTo(), ", ")
	default:
		c.State, c.Event.Action = sqlstore.QuarantineDeleted, doneDeleted
	}
	out := Outcome{Done: true, QueueID: rep.GetQuarantineEntry().GetQueueId()}
	if out.QueueID != "" {
		c.Event.Detail += " (queued as " + out.QueueID + ")"
	}
	if err := s.opts.DB.UpdateQuarantined(ctx, sc, row.Tenant, row.SensorID, row.MessageID, c); err != nil {
		// Done on the sensor; only its record is missing.
		s.log.WarnContext(ctx, "a quarantine action was done but not recorded", "sensor", row.SensorID, "message", row.MessageID, "err", err)
	}
	s.log.InfoContext(ctx, "quarantine action done", "sensor", row.SensorID, "message", row.MessageID, "action", c.Event.Action, "user", user)
	return out, nil
}

// notHeld records that a sensor answered it does not hold a message.
func (s *Service) notHeld(ctx context.Context, sc store.Scope, row sqlstore.Quarantined) {
	err := s.opts.DB.UpdateQuarantined(ctx, sc, row.Tenant, row.SensorID, row.MessageID, sqlstore.QuarantineChange{State: sqlstore.QuarantineNotHeld,
		Event: sqlstore.QuarantineEvent{At: s.now(), Action: sqlstore.QuarantineNotHeld, Actor: "sensor", Detail: "the sensor does not hold it"}})
	if err != nil {
		s.log.WarnContext(ctx, "record a quarantined message the sensor does not hold", "message", row.MessageID, "err", err)
	}
}

// Download writes a quarantined message, as it arrived, to w, read from
// its sensor in pieces; size is called with its size before the first
// byte is written.
func (s *Service) Download(ctx context.Context, sc store.Scope, sensor, id string, size func(int64), w io.Writer) error {
	sn, _, err := s.opts.Store.GetSensor(ctx, sc, sensor)
	if err != nil {
		return err
	}
	if _, _, err := s.opts.DB.GetQuarantined(ctx, sc, sn.GetTenant(), sensor, id); err != nil {
		return err
	}
	const piece = 256 << 10
	var off int64
	for {
		rep, err := s.opts.Requests.Ask(ctx, s.opts.Store, sc, sensor, &ospreyv1.SensorRequest{
			Op: &ospreyv1.SensorRequest_QuarantineRead{QuarantineRead: &ospreyv1.QuarantineReadRequest{MessageId: id, Offset: off, Length: piece}}})
		if err != nil {
			if off > 0 {
				return fmt.Errorf("download %s at byte %d: %w", id, off, err)
			}
			return err
		}
		c := rep.GetQuarantineChunk()
		if off == 0 && size != nil {
			size(c.GetSize())
		}
		if len(c.GetData()) == 0 {
			if off != c.GetSize() {
				return fmt.Errorf("download %s: %d bytes of %d", id, off, c.GetSize())
			}
			return nil
		}
		if _, err := w.Write(c.GetData()); err != nil {
			return err
		}
		off += int64(len(c.GetData()))
		if off >= c.GetSize() {
			return nil
		}
	}
}

// StartDownload answers an HTTP request for a quarantined message's .eml
// once its size is known: the headers of an attachment that is never
// sniffed or cached, and 200.
func StartDownload(w http.ResponseWriter, sensor, id string, size int64) {
	h := w.Header()
	h.Set("Content-Type", "message/rfc822")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": sensor + "-" + id + ".eml"}))
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
}

// Run carries out, every Interval, the pending actions of the sensors
// whose streams this node holds, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := s.runPending(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "pending quarantine actions", "err", err)
		}
	}
}

// runPending carries out the pending actions of the sensors this node
// holds.
func (s *Service) runPending(ctx context.Context) error {
	sensors, err := s.opts.DB.PendingQuarantineSensors(ctx, store.AllTenants(), 1000)
	if err != nil {
		return err
	}
	var errs []error
	for _, ts := range sensors {
		tenant, sensor := ts[0], ts[1]
		if !s.opts.Requests.Holds(sensor) {
			continue
		}
		rows, err := s.opts.DB.PendingQuarantine(ctx, store.AllTenants(), tenant, sensor, 100)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, row := range rows {
			req := &ospreyv1.QuarantineActionRequest{MessageId: row.MessageID, To: row.PendingTo}
			switch row.Pending {
			case ActionRelease:
				req.Action = ospreyv1.QuarantineAction_QUARANTINE_ACTION_RELEASE
			case ActionReleaseTo:
				req.Action = ospreyv1.QuarantineAction_QUARANTINE_ACTION_RELEASE_TO
			default:
				req.Action = ospreyv1.QuarantineAction_QUARANTINE_ACTION_DELETE
			}
			_, err := s.do(ctx, store.AllTenants(), row, row.PendingBy, req)
			var refused *sensorrpc.RefusedError
			switch {
			case err == nil, errors.Is(err, ErrNotHeld):
			case errors.As(err, &refused) && refused.Code == ospreyv1.SensorError_CODE_INVALID:
				// Never to be done: say so, rather than try for ever.
				if err := s.opts.DB.UpdateQuarantined(ctx, store.AllTenants(), row.Tenant, sensor, row.MessageID, sqlstore.QuarantineChange{
					State: sqlstore.QuarantineHeld, Event: sqlstore.QuarantineEvent{At: s.now(), Action: "failed", Actor: "sensor",
						Detail: row.Pending + ": " + refused.Message}}); err != nil {
					errs = append(errs, err)
				}
			default:
				errs = append(errs, fmt.Errorf("sensor %s, message %s: %w", sensor, row.MessageID, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ErrInvalid is the error of a malformed action.
var ErrInvalid = errors.New("invalid quarantine action")

func notFound(err error) bool {
	var refused *sensorrpc.RefusedError
	return errors.As(err, &refused) && refused.Code == ospreyv1.SensorError_CODE_NOT_FOUND
}
