// Package upload hands spooled messages to the Central Nodes.
//
// Design note. A message leaves the spool only after a central node answered
// its Upload, which it does once the message is scanned and its record
// stored. Uploads are idempotent by message id at the central, so every
// failure mode (a lost answer, a crash between the answer and the removal, a
// removal the disk lost) ends in a retry that is recognised as a duplicate,
// never in a second alert. An upload that may be such a retry says so (a
// message tried before in this process, or found in the spool when the
// uploader started), and the central then answers it from the record it
// has, without scanning the message again; every other upload spares the
// central that lookup.
//
// The spool tells the uploader each message once (Spool.Added, after its
// Ready signal), and a schedule.Scheduler decides when each is tried: at
// once when it arrives, oldest first, by a fixed number of workers. Two
// kinds of failure are told apart. When no central answers (no connection,
// Unavailable, a deadline), the failure is the destination's: every upload
// waits for one hold that grows with the outage, with jitter, and no message
// is marked. When the central refuses the message itself (InvalidArgument)
// or the spool cannot read it (a checksum), the failure is the message's: it
// alone is retried slowly, from a minute to an hour, never dropped, and the
// sensor's status names it, so that an operator sees what is stuck.
package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/schedule"
	"github.com/ospreysec/osprey/sensor/spool"
)

// Spool is what the uploader needs of the spool.
type Spool interface {
	// Ready signals that messages were spooled, and Added returns them,
	// each once; the first call returns those spooled before (which a
	// process before this one may have uploaded).
	Ready() <-chan struct{}
	Added() []string
	Get(id string) (*spool.Message, error)
	Remove(id string) error
}

// Options configures an Uploader.
type Options struct {
	Spool Spool
	// Client returns a client of the central nodes over the sensor's mutual
	// TLS connection, or an error while there is none.
	Client func(ctx context.Context) (ospreyv1.SensorServiceClient, error)
	// Workers is the number of concurrent uploads; 0 means 16. Each waits for
	// the central to scan and record its message, so the uploads in flight,
	// not the CPU, bound the rate: 4 held osprey dev at about 950 msg/s.
	Workers int
	// ChunkSize is the size of the chunks a message is sent in; 0 means
	// DefaultChunkSize.
	ChunkSize int
	Logger    *slog.Logger
	// Registerer receives the uploader's metrics.
	Registerer prometheus.Registerer
	// Unreachable is the hold of every upload while no central answers;
	// zero means from 200 ms to 30 s. Refused is the backoff of a message
	// the central refuses or the spool cannot read; zero means from a
	// minute to an hour.
	Unreachable, Refused schedule.Backoff
	// Handoff, when set, gets each message with the verdict and the
	// disposition the central answered, before the message leaves the
	// spool: a gateway's messages go on to its delivery queue or its
	// quarantine. It returns nil once the message is safe there (or is
	// not its business); an error keeps the message in the spool, retried
	// as the message's own failure.
	Handoff func(ctx context.Context, msg *spool.Message, verdict string, d *ospreyv1.Disposition) error
}

// Stuck is a message whose own uploads failed.
type Stuck struct {
	ID       string
	Failures int
	Err      error
	Next     time.Time
}

// Uploader moves spooled messages to the central nodes.
type Uploader struct {
	opts  Options
	log   *slog.Logger
	sched *schedule.Scheduler[string]

	// listed is set once Run has had the spool's first Added; only Run
	// uses it.
	listed bool

	mu    sync.Mutex
	stuck map[string]Stuck // messages whose last try failed on their own
	// sent holds the messages a central may have had before: tried in
	// this process, or in the spool when it opened. Their uploads say
	// they may be retries (UploadHeader.may_be_retry).
	sent map[string]bool

	uploaded, duplicates, failures prometheus.Counter
}

// DefaultChunkSize is the chunk size of an upload: a frame of it, marshalled
// (a few bytes more), fits the 32 KiB buffers of gRPC's buffer pool, on
// both sides. A 64 KiB chunk took a buffer of the next size, 1 MiB, which
// the pool clears whole at every use: 4 % of the CPU of `osprey dev`
// relaying 100 KB messages went to clearing it.
const DefaultChunkSize = 32<<10 - 64

// New makes an uploader; Run starts it.
func New(opts Options) *Uploader {
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	u := &Uploader{
		opts:  opts,
		log:   opts.Logger,
		sched: schedule.New[string](schedule.Options{Item: opts.Refused, Group: opts.Unreachable}),
		stuck: map[string]Stuck{},
		sent:  map[string]bool{},
		uploaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "osprey_sensor_uploaded_total", Help: "Messages uploaded to a central node and removed from the spool.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "osprey_sensor_upload_duplicates_total", Help: "Uploads the central had recorded before (a retry after a lost answer).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "osprey_sensor_upload_failures_total", Help: "Upload attempts that failed and will be retried.",
		}),
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(u.uploaded, u.duplicates, u.failures,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "osprey_sensor_upload_deferred",
				Help: "Spooled messages waiting to be tried again after failures of their own (refused by the central, or unreadable).",
			}, func() float64 { return float64(u.sched.Stats().Deferred) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "osprey_sensor_upload_held",
				Help: "1 while uploads wait because no central node answers.",
			}, func() float64 { return float64(u.sched.Stats().HeldGroups) }),
		)
	}
	return u
}

// Counters reports the uploader's counters for the sensor's status.
func (u *Uploader) Counters() map[string]uint64 {
	return map[string]uint64{
		"uploaded":          uint64(counterValue(u.uploaded)),
		"upload_duplicates": uint64(counterValue(u.duplicates)),
		"upload_failures":   uint64(counterValue(u.failures)),
	}
}

// Stuck returns the messages whose last upload failed on their own, oldest
// first by id.
func (u *Uploader) Stuck() []Stuck {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]Stuck, 0, len(u.stuck))
	for _, s := range u.stuck {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Stuck) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Run uploads until ctx ends.
func (u *Uploader) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for range u.opts.Workers {
		wg.Go(func() { u.worker(ctx) })
	}
	for {
		added := u.opts.Spool.Added()
		if !u.listed {
			u.listed = true
			u.mu.Lock()
			for _, id := range added {
				u.sent[id] = true
			}
			u.mu.Unlock()
		}
		for _, id := range added {
			u.sched.Add(id, "")
		}
		select {
		case <-u.opts.Spool.Ready():
		case <-ctx.Done():
			return nil
		}
	}
}

func (u *Uploader) worker(ctx context.Context) {
	for {
		t, err := u.sched.Next(ctx)
		if err != nil {
			return
		}
		err = u.uploadOne(ctx, t.Key)
		switch {
		case err == nil:
			u.sched.Done(t.Key)
			u.forget(t.Key)
		case errors.Is(err, spool.ErrNotFound):
			u.sched.Drop(t.Key)
			u.forget(t.Key)
		case ctx.Err() != nil:
			u.sched.Release(t.Key)
		case refused(err):
			u.failures.Inc()
			next := u.sched.Failed(t.Key)
			u.mu.Lock()
			u.stuck[t.Key] = Stuck{ID: t.Key, Failures: t.Failures + 1, Err: err, Next: next}
			u.mu.Unlock()
			u.log.Warn("upload refused; the message stays in the spool and is retried",
				"message", t.Key, "failures", t.Failures+1, "next_try", next, "err", err)
		default:
			u.failures.Inc()
			until, started := u.sched.Unreachable(t.Key)
			if started {
				u.log.Warn("upload failed; uploads wait and are retried",
					"message", t.Key, "retry_at", until, "err", err)
			}
		}
	}
}

// forget drops what the uploader holds about a message that left the spool.
func (u *Uploader) forget(id string) {
	u.mu.Lock()
	delete(u.stuck, id)
	delete(u.sent, id)
	u.mu.Unlock()
}

// attempt records that message id is being sent, and reports whether a
// central may have had it before.
func (u *Uploader) attempt(id string) (mayBeRetry bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	mayBeRetry = u.sent[id]
	u.sent[id] = true
	return mayBeRetry
}

// errUnreadable marks a message the spool cannot read back.
var errUnreadable = errors.New("unreadable")

// errHandoff marks a message the gateway could not take after its verdict.
var errHandoff = errors.New("not handed to the delivery queue")

// refused reports whether err is the message's own failure rather than the
// central's or the connection's.
func refused(err error) bool {
	if errors.Is(err, errUnreadable) || errors.Is(err, errHandoff) {
		return true
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.OutOfRange:
		return true
	}
	return false
}

// uploadOne sends one message and removes it from the spool once the central
// answered.
func (u *Uploader) uploadOne(ctx context.Context, id string) error {
	msg, err := u.opts.Spool.Get(id)
	if errors.Is(err, spool.ErrNotFound) {
		return err
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errUnreadable, err)
	}
	client, err := u.opts.Client(ctx)
	if err != nil {
		return err
	}
	body, err := msg.Open()
	if err != nil {
		return fmt.Errorf("%w: %w", errUnreadable, err)
	}
	defer body.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	mayBeRetry := u.attempt(id)
	stream, err := client.Upload(ctx)
	if err != nil {
		return fmt.Errorf("upload %s: %w", id, err)
	}
	hdr := &ospreyv1.UploadHeader{MessageId: id, Source: msg.Meta.Source, Envelope: msg.Meta.Envelope, Size: msg.Size, Uidl: msg.Meta.UIDL,
		MayBeRetry: mayBeRetry}
	if err := stream.Send(&ospreyv1.UploadRequest{Msg: &ospreyv1.UploadRequest_Header{Header: hdr}}); err != nil {
		return fmt.Errorf("upload %s: %w", id, closeErr(stream, err))
	}
	buf := make([]byte, u.opts.ChunkSize)
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			if err := stream.Send(&ospreyv1.UploadRequest{Msg: &ospreyv1.UploadRequest_Chunk{Chunk: buf[:n]}}); err != nil {
				return fmt.Errorf("upload %s: %w", id, closeErr(stream, err))
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			// The spool's CRC check failed: keep the message for a human.
			return fmt.Errorf("read spooled %s: %w: %w", id, errUnreadable, rerr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return fmt.Errorf("upload %s: %w", id, err)
	}
	if u.opts.Handoff != nil {
		if err := u.opts.Handoff(ctx, msg, resp.GetVerdict(), resp.GetDisposition()); err != nil {
			return fmt.Errorf("%w: %w", errHandoff, err)
		}
	}
	if err := u.opts.Spool.Remove(id); err != nil {
		return fmt.Errorf("remove uploaded %s: %w", id, err)
	}
	if resp.GetDuplicate() {
		u.duplicates.Inc()
	}
	u.uploaded.Inc()
	return nil
}

// closeErr gets the real error of a stream whose Send failed: gRPC reports it
// on the receive side.
func closeErr(stream ospreyv1.SensorService_UploadClient, sendErr error) error {
	if _, err := stream.CloseAndRecv(); err != nil {
		return err
	}
	return sendErr
}
