// Package upload hands spooled messages to the Central Nodes.
//
// Design note. A message leaves the spool only after a central node answered
// its Upload, which it does once the message is scanned and its record
// stored. Uploads are idempotent by message id at the central, so every
// failure mode (a lost answer, a crash between the answer and the removal, a
// removal the disk lost) ends in a retry that is recognised as a duplicate,
// never in a second alert. Workers take messages oldest first; a failing
// central makes every worker back off (with jitter) instead of spinning, and a
// message the central refuses as malformed is kept and retried slowly, never
// dropped.
package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/spool"
)

// Spool is what the uploader needs of the spool.
type Spool interface {
	List() []string
	Get(id string) (*spool.Message, error)
	Remove(id string) error
	Ready() <-chan struct{}
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
	// ChunkSize is the size of the chunks a message is sent in; 0 means 64 KiB.
	ChunkSize int
	Logger    *slog.Logger
	// Registerer receives the uploader's metrics.
	Registerer prometheus.Registerer
	// Retry gives the delay before the next attempt after failures in a row;
	// nil means exponential from 200 ms to 30 s with full jitter.
	Retry func(failures int) time.Duration
}

// Uploader moves spooled messages to the central nodes.
type Uploader struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	inFlight map[string]bool

	uploaded, duplicates, failures prometheus.Counter
}

// New makes an uploader; Run starts it.
func New(opts Options) *Uploader {
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = 64 << 10
	}
	if opts.Retry == nil {
		opts.Retry = defaultRetry
	}
	u := &Uploader{
		opts:     opts,
		log:      opts.Logger,
		inFlight: map[string]bool{},
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
		opts.Registerer.MustRegister(u.uploaded, u.duplicates, u.failures)
	}
	return u
}

func defaultRetry(failures int) time.Duration {
	d := 200 * time.Millisecond << min(failures, 8)
	d = min(d, 30*time.Second)
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// Counters reports the uploader's counters for the sensor's status.
func (u *Uploader) Counters() map[string]uint64 {
	return map[string]uint64{
		"uploaded":          uint64(counterValue(u.uploaded)),
		"upload_duplicates": uint64(counterValue(u.duplicates)),
		"upload_failures":   uint64(counterValue(u.failures)),
	}
}

// Run uploads until ctx ends.
func (u *Uploader) Run(ctx context.Context) error {
	work := make(chan string)
	var wg sync.WaitGroup
	for range u.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.worker(ctx, work)
		}()
	}
	defer wg.Wait()
	// A periodic rescan covers messages whose upload failed.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for _, id := range u.opts.Spool.List() {
			if !u.claim(id) {
				continue
			}
			select {
			case work <- id:
			case <-ctx.Done():
				u.release(id)
				close(work)
				return nil
			}
		}
		select {
		case <-u.opts.Spool.Ready():
		case <-tick.C:
		case <-ctx.Done():
			close(work)
			return nil
		}
	}
}

func (u *Uploader) claim(id string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.inFlight[id] {
		return false
	}
	u.inFlight[id] = true
	return true
}

func (u *Uploader) release(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.inFlight, id)
}

func (u *Uploader) worker(ctx context.Context, work <-chan string) {
	failures := 0
	for id := range work {
		err := u.uploadOne(ctx, id)
		u.release(id)
		if err == nil || errors.Is(err, spool.ErrNotFound) {
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			continue
		}
		failures++
		u.failures.Inc()
		u.log.Warn("upload failed; will retry", "message", id, "err", err)
		select {
		case <-time.After(u.opts.Retry(failures)):
		case <-ctx.Done():
		}
	}
}

// uploadOne sends one message and removes it from the spool once the central
// answered.
func (u *Uploader) uploadOne(ctx context.Context, id string) error {
	msg, err := u.opts.Spool.Get(id)
	if err != nil {
		return err
	}
	client, err := u.opts.Client(ctx)
	if err != nil {
		return err
	}
	body, err := msg.Open()
	if err != nil {
		return err
	}
	defer body.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	stream, err := client.Upload(ctx)
	if err != nil {
		return fmt.Errorf("upload %s: %w", id, err)
	}
	hdr := &ospreyv1.UploadHeader{MessageId: id, Source: msg.Meta.Source, Envelope: msg.Meta.Envelope, Size: msg.Size, Uidl: msg.Meta.UIDL}
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
			return fmt.Errorf("read spooled %s: %w", id, rerr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return fmt.Errorf("upload %s: %w", id, err)
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
