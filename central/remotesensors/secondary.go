package remotesensors

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults of SecondaryOptions.
const (
	// DefaultDebounce is how long the SCN waits, after a change, for the
	// changes that come with it before it reads and sends its list.
	DefaultDebounce = 100 * time.Millisecond
	// MaxSensors bounds one list (a few hundred bytes each, under etcd's
	// default 1.5 MiB value); the list says when it was cut.
	MaxSensors = 4000
)

// ErrWritesRefused is the message of the SCN's refusal of the PCN's writes
// once its administrator switched sensor management off.
const ErrWritesRefused = "this SCN's administrator switched off sensor management from the PCN: change the sensor on the SCN, or ask its administrator to switch it on again (osprey ctl pcn sensor-management on)"

// Documents runs a call through the SCN's own API (GET or PUT of
// /api/v1/sensors/{sensor}/{document}) as the PCN's principal, and returns
// the status, the JSON body and the document's version it answered.
type Documents func(ctx context.Context, call *ospreyv1.RemoteSensorCall) (status int, body []byte, version int64)

// SecondaryOptions configures an SCN's side.
type SecondaryOptions struct {
	Client    *clientv3.Client
	Store     *store.Store
	Documents Documents
	// Debounce is DefaultDebounce when zero.
	Debounce time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
}

// Secondary is an SCN's side: a link channel that sends the sensor list up
// and answers the PCN's calls.
type Secondary struct {
	opts SecondaryOptions
	log  *slog.Logger
}

var _ hierarchy.SecondaryChannel = (*Secondary)(nil)

// NewSecondary builds an SCN's side.
func NewSecondary(opts SecondaryOptions) *Secondary {
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Secondary{opts: opts, log: log}
}

// Claims takes the PCN's calls.
func (s *Secondary) Claims(m *ospreyv1.LinkResponse) bool { return m.GetSensorCall() != nil }

// Serve sends the list when the link comes up and whenever it changes, and
// answers the PCN's calls one at a time, until the link ends.
func (s *Secondary) Serve(ctx context.Context, l *hierarchy.Link[*ospreyv1.LinkRequest, *ospreyv1.LinkResponse]) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	// Watch first, then read: a change between the two is not missed.
	watches := make([]clientv3.WatchChan, 0, 4)
	wctx := clientv3.WithRequireLeader(ctx)
	for _, prefix := range store.SensorListPrefixes() {
		watches = append(watches, s.opts.Client.Watch(wctx, prefix, clientv3.WithPrefix()))
	}
	done := make(chan error, len(watches)+1)
	wg.Add(len(watches) + 1)
	for _, w := range watches {
		go func() {
			defer wg.Done()
			for wr := range w {
				if err := wr.Err(); err != nil {
					done <- fmt.Errorf("watch the sensors: %w", err)
					return
				}
				poke()
			}
			done <- nil
		}()
	}
	go func() {
		defer wg.Done()
		for {
			m, err := l.Recv(ctx)
			if err != nil {
				done <- nil
				return
			}
			a := s.answer(ctx, m.GetSensorCall())
			if err := l.Send(&ospreyv1.LinkRequest{Msg: &ospreyv1.LinkRequest_SensorAnswer{SensorAnswer: a}}); err != nil {
				done <- nil
				return
			}
			poke()
		}
	}()
	var last *ospreyv1.RemoteSensorList
	poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-done:
			if ctx.Err() != nil {
				return nil
			}
			return err // a watch failed: the link starts over, with a new list
		case <-changed:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.opts.Debounce):
		}
		list, err := s.List(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if last != nil && proto.Equal(withoutAt(last), withoutAt(list)) {
			continue
		}
		if err := l.Send(&ospreyv1.LinkRequest{Msg: &ospreyv1.LinkRequest_SensorList{SensorList: list}}); err != nil {
			return nil // the link ended
		}
		last = list
	}
}

func withoutAt(l *ospreyv1.RemoteSensorList) *ospreyv1.RemoteSensorList {
	l = proto.CloneOf(l)
	l.At = nil
	return l
}

// List reads the SCN's sensors as its own sensors page shows them.
func (s *Secondary) List(ctx context.Context) (*ospreyv1.RemoteSensorList, error) {
	all := store.AllTenants()
	m, err := s.opts.Store.SensorManagement(ctx)
	if err != nil {
		return nil, err
	}
	sensors, err := s.opts.Store.ListSensors(ctx, all)
	if err != nil {
		return nil, err
	}
	statuses, err := s.opts.Store.Statuses(ctx, all)
	if err != nil {
		return nil, err
	}
	out := &ospreyv1.RemoteSensorList{WritesRefused: m.GetRefuseWrites(), At: timestamppb.New(s.opts.Now())}
	if len(sensors) > MaxSensors {
		sensors, out.Truncated = sensors[:MaxSensors], true
	}
	for _, sn := range sensors {
		cfg, err := s.opts.Store.SensorConfig(ctx, all, sn.GetId())
		if err != nil {
			return nil, err
		}
		v := convert.SensorFromProto(sn)
		v.ConfigVersion = cfg.Version()
		convert.SensorStatus(&v, statuses[sn.GetId()])
		out.Sensors = append(out.Sensors, &ospreyv1.RemoteSensor{
			Id: v.ID, Name: v.Name, Tenant: v.Tenant, State: string(v.State), Online: v.Online, Node: v.Node,
			Type: string(v.Type), SoftwareVersion: v.SoftwareVersion, ConfigVersion: v.ConfigVersion,
			AppliedVersion: v.AppliedVersion, LastError: v.LastError, Healthy: v.Healthy,
			SmtpState: integrationState(v.SMTPStatus), Pop3State: integrationState(v.POP3Status), Gateway: v.GatewayStatus != nil,
		})
	}
	return out, nil
}

func integrationState(st *api.IntegrationStatus) string {
	if st == nil {
		return ""
	}
	return string(st.State)
}

// answer runs one call: a write is refused while the SCN's administrator
// has switched sensor management off.
func (s *Secondary) answer(ctx context.Context, call *ospreyv1.RemoteSensorCall) *ospreyv1.RemoteSensorAnswer {
	a := &ospreyv1.RemoteSensorAnswer{Id: call.GetId()}
	fail := func(status int, msg string) *ospreyv1.RemoteSensorAnswer {
		a.HttpStatus = int32(status)
		a.Body, _ = json.Marshal(api.Error{Message: msg}) // a plain struct: never fails
		return a
	}
	if call.GetWrite() {
		m, err := s.opts.Store.SensorManagement(ctx)
		if err != nil {
			return fail(http.StatusServiceUnavailable, "the SCN could not read its settings: "+err.Error())
		}
		if m.GetRefuseWrites() {
			s.log.InfoContext(ctx, "refused the PCN's write of a sensor's settings: sensor management from the PCN is off",
				"sensor", call.GetSensor(), "document", call.GetDocument(), "caller", call.GetCaller())
			return fail(http.StatusForbidden, ErrWritesRefused)
		}
	}
	if s.opts.Documents == nil {
		return fail(http.StatusNotImplemented, "this SCN cannot serve sensor settings to its PCN")
	}
	status, body, version := s.opts.Documents(ctx, call)
	a.HttpStatus, a.Body, a.Version = int32(status), body, version
	if call.GetWrite() {
		s.log.InfoContext(ctx, "the PCN wrote a sensor's settings", "sensor", call.GetSensor(), "document", call.GetDocument(),
			"caller", call.GetCaller(), "status", status, "version", version)
	}
	return a
}
