// Package quarantine keeps the messages a gateway withholds from delivery
// on the sensor's disk, until an operator releases or deletes them, or
// the quarantine's bounds push the oldest out.
//
// Design note. Each message is one file, <dir>/<hex of its id>.msg: a
// first line "osprey-quarantine 1 <n>", n bytes of JSON metadata (the
// Entry), then the message as it arrived. Put writes it aside, fsyncs it,
// renames it into place and fsyncs the directory, so a message Put
// returned for survives a crash, and Put is idempotent by id (a handoff
// repeated after a crash finds the file and adds nothing). Open reads the
// metadata of every file into memory (the raw messages stay on disk) and
// removes what a crash left half written. Quarantined mail is rare next to
// what a gateway relays, so one file a message, with no database, is
// enough, and every file is a readable .eml after its first lines.
//
// Bounds: at most MaxMessages messages and MaxBytes bytes (Apply); past
// either, Put removes the oldest first (by the time they were
// quarantined), each counted in osprey_sensor_quarantine_evicted_total and
// handed to Options.OnEvict for the audit log.
//
// A released message leaves the quarantine, and its id is remembered for
// ReleasedFor (a file per id under released/, kept 7 days): a handoff of
// the same message that comes again (the sensor crashed between the
// quarantine and the spool's removal of it) is then delivered, not
// quarantined again by the same verdict.
package quarantine

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ospreysec/osprey/sensor/internal/durable"
)

// ErrNotFound is the error of an operation on a message the quarantine
// does not hold.
var ErrNotFound = errors.New("not in the quarantine")

// Entry is what the quarantine knows of a message besides its bytes.
type Entry struct {
	ID        string    `json:"id"`
	From      string    `json:"from"`
	Rcpts     []string  `json:"rcpts"`
	Direction string    `json:"direction"`
	Arrival   time.Time `json:"arrival"`
	// At is when the message was quarantined; set by Put.
	At      time.Time `json:"at"`
	Verdict string    `json:"verdict"`
	// Reason says why, as the central's disposition did.
	Reason  string `json:"reason"`
	Subject string `json:"subject"`
	// Size is the message's size in bytes; set by Put.
	Size int64 `json:"size"`
}

// Options configure a Quarantine.
type Options struct {
	Dir    string
	Logger *slog.Logger
	// Registerer, if set, gets the quarantine's metrics.
	Registerer prometheus.Registerer
	// OnEvict, if set, is called with each message the bounds removed. It
	// must not block.
	OnEvict func(Entry)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Defaults of the bounds, until Apply.
const (
	DefaultMaxMessages = 10000
	DefaultMaxBytes    = 1 << 30
)

// releasedFor is how long a released message's id is remembered.
const releasedFor = 7 * 24 * time.Hour

const (
	fileSuffix  = ".msg"
	releasedDir = "released"
	magic       = "osprey-quarantine 1 "
	// maxMeta bounds the metadata of one file.
	maxMeta = 1 << 20
)

// Quarantine is a gateway's quarantine; its methods are safe for
// concurrent use.
type Quarantine struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time

	evicted prometheus.Counter

	mu          sync.Mutex
	unreadable  []string // files Open could not read, left aside
	entries     map[string]Entry
	bytes       int64
	maxMessages int
	maxBytes    int64 // 0: unlimited
}

// Open opens the quarantine in opts.Dir, creating it if need be.
func Open(opts Options) (*Quarantine, error) {
	q := &Quarantine{opts: opts, log: opts.Logger, now: opts.Now, entries: map[string]Entry{},
		maxMessages: DefaultMaxMessages, maxBytes: DefaultMaxBytes}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	if q.now == nil {
		q.now = time.Now
	}
	if err := os.MkdirAll(filepath.Join(opts.Dir, releasedDir), 0o700); err != nil {
		return nil, fmt.Errorf("open the quarantine: %w", err)
	}
	if err := q.load(); err != nil {
		return nil, fmt.Errorf("open the quarantine %s: %w", opts.Dir, err)
	}
	q.evicted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "osprey_sensor_quarantine_evicted_total",
		Help: "Quarantined messages removed, oldest first, to keep the quarantine within its bounds.",
	})
	if r := opts.Registerer; r != nil {
		r.MustRegister(q.evicted, &collector{q: q})
	}
	return q, nil
}

// load reads every file's metadata, and removes temporary files a crash
// left and released marks past their time.
func (q *Quarantine) load() error {
	des, err := os.ReadDir(q.opts.Dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(q.opts.Dir, name)
		switch {
		case strings.HasSuffix(name, durable.TempSuffix):
			os.Remove(path)
		case strings.HasSuffix(name, fileSuffix):
			e, err := readEntry(path)
			if err != nil {
				// Not ours to delete: a damaged file stays for a person to
				// look at, out of the quarantine's count.
				q.log.Error("unreadable quarantine file left aside", "file", path, "err", err)
				q.unreadable = append(q.unreadable, name)
				continue
			}
			q.entries[e.ID] = e
			q.bytes += e.Size
		}
	}
	marks, err := os.ReadDir(filepath.Join(q.opts.Dir, releasedDir))
	if err != nil {
		return err
	}
	for _, de := range marks {
		if info, err := de.Info(); err == nil && q.now().Sub(info.ModTime()) > releasedFor {
			os.Remove(filepath.Join(q.opts.Dir, releasedDir, de.Name()))
		}
	}
	return nil
}

// Apply sets the bounds (maxBytes 0: unlimited) and removes the oldest
// messages past them.
func (q *Quarantine) Apply(maxMessages int, maxBytes int64) {
	q.mu.Lock()
	q.maxMessages, q.maxBytes = maxMessages, maxBytes
	q.mu.Unlock()
	q.evict("")
}

// Put quarantines a message durably and returns whether it added it (false:
// the quarantine had it). The oldest messages past the bounds are removed
// then, never the one just put.
func (q *Quarantine) Put(e Entry, body []byte) (added bool, err error) {
	if e.ID == "" {
		return false, errors.New("quarantine: a message without an id")
	}
	q.mu.Lock()
	_, had := q.entries[e.ID]
	q.mu.Unlock()
	if had {
		return false, nil
	}
	e.At, e.Size = q.now().UTC(), int64(len(body))
	e.Rcpts = slices.Clone(e.Rcpts)
	meta, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("quarantine %s: %w", e.ID, err)
	}
	head := []byte(magic + strconv.Itoa(len(meta)) + "\n")
	if err := durable.WriteFile(q.path(e.ID), head, meta, body); err != nil {
		return false, fmt.Errorf("quarantine %s: %w", e.ID, err)
	}
	q.mu.Lock()
	if _, had := q.entries[e.ID]; !had {
		q.entries[e.ID] = e
		q.bytes += e.Size
	}
	q.mu.Unlock()
	q.evict(e.ID)
	return true, nil
}

// evict removes the oldest messages past the bounds, but keep.
func (q *Quarantine) evict(keep string) {
	for {
		q.mu.Lock()
		over := len(q.entries) > q.maxMessages || q.maxBytes > 0 && q.bytes > q.maxBytes
		var oldest *Entry
		if over {
			for _, e := range q.entries {
				if e.ID != keep && (oldest == nil || e.At.Before(oldest.At) || e.At.Equal(oldest.At) && e.ID < oldest.ID) {
					oldest = &e
				}
			}
		}
		q.mu.Unlock()
		if oldest == nil {
			return
		}
		if err := q.Remove(oldest.ID); err != nil && !errors.Is(err, ErrNotFound) {
			q.log.Error("remove the oldest quarantined message", "id", oldest.ID, "err", err)
			return
		}
		q.evicted.Inc()
		q.log.Warn("quarantined message removed: the quarantine is full", "id", oldest.ID, "quarantined_at", oldest.At)
		if q.opts.OnEvict != nil {
			q.opts.OnEvict(*oldest)
		}
	}
}

// Get returns a message's entry.
func (q *Quarantine) Get(id string) (Entry, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	e, ok := q.entries[id]
	if !ok {
		return Entry{}, fmt.Errorf("message %s: %w", id, ErrNotFound)
	}
	e.Rcpts = slices.Clone(e.Rcpts)
	return e, nil
}

// Body returns a message's bytes as they arrived.
func (q *Quarantine) Body(id string) ([]byte, error) {
	if _, err := q.Get(id); err != nil {
		return nil, err
	}
	f, err := os.Open(q.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("message %s: %w", id, ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	if _, err := readMeta(br); err != nil {
		return nil, fmt.Errorf("message %s: %w", id, err)
	}
	return io.ReadAll(br)
}

// Dir is the quarantine's directory.
func (q *Quarantine) Dir() string { return q.opts.Dir }

// Remove takes a message out of the quarantine (deleted, or evicted).
func (q *Quarantine) Remove(id string) error {
	q.mu.Lock()
	e, ok := q.entries[id]
	q.mu.Unlock()
	if !ok {
		return fmt.Errorf("message %s: %w", id, ErrNotFound)
	}
	if err := durable.Remove(q.path(id)); err != nil {
		return fmt.Errorf("remove %s from the quarantine: %w", id, err)
	}
	q.mu.Lock()
	if _, ok := q.entries[id]; ok {
		delete(q.entries, id)
		q.bytes -= e.Size
	}
	q.mu.Unlock()
	return nil
}

// MarkReleased remembers that message id was released, for ReleasedFor;
// the caller removes it after it is in the delivery queue.
func (q *Quarantine) MarkReleased(id string) error {
	return durable.WriteFile(filepath.Join(q.opts.Dir, releasedDir, hex.EncodeToString([]byte(id))))
}

// Released reports whether message id was released from the quarantine
// (in the last 7 days): a message handed to the gateway again after its
// release is not quarantined again.
func (q *Quarantine) Released(id string) bool {
	_, err := os.Stat(filepath.Join(q.opts.Dir, releasedDir, hex.EncodeToString([]byte(id))))
	return err == nil
}

// Stats are the quarantine's content.
type Stats struct {
	Messages int
	Bytes    int64
	// Unreadable are the files Open found damaged and left aside, out of
	// the count, for a person to look at.
	Unreadable []string
}

// Stats returns how many messages and bytes the quarantine holds.
func (q *Quarantine) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Stats{Messages: len(q.entries), Bytes: q.bytes, Unreadable: slices.Clone(q.unreadable)}
}

// List returns the entries, newest first.
func (q *Quarantine) List() []Entry {
	q.mu.Lock()
	out := make([]Entry, 0, len(q.entries))
	for _, e := range q.entries {
		out = append(out, e)
	}
	q.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int {
		if c := b.At.Compare(a.At); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

func (q *Quarantine) path(id string) string {
	return filepath.Join(q.opts.Dir, hex.EncodeToString([]byte(id))+fileSuffix)
}

// readEntry reads the metadata of a quarantine file.
func readEntry(path string) (Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return Entry{}, err
	}
	defer f.Close()
	e, err := readMeta(bufio.NewReader(f))
	if err != nil {
		return Entry{}, err
	}
	info, err := f.Stat()
	if err != nil {
		return Entry{}, err
	}
	if e.Size > info.Size() {
		return Entry{}, fmt.Errorf("%d bytes of a message of %d", info.Size(), e.Size)
	}
	return e, nil
}

// readMeta reads a file's first line and metadata, leaving br at the
// message.
func readMeta(br *bufio.Reader) (Entry, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return Entry{}, fmt.Errorf("read the first line: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(line, magic), "\n"))
	if !strings.HasPrefix(line, magic) || err != nil || n <= 0 || n > maxMeta {
		return Entry{}, fmt.Errorf("not a quarantine file: %q", line)
	}
	meta := make([]byte, n)
	if _, err := io.ReadFull(br, meta); err != nil {
		return Entry{}, fmt.Errorf("read the metadata: %w", err)
	}
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(meta))
	if err := dec.Decode(&e); err != nil || e.ID == "" {
		return Entry{}, fmt.Errorf("decode the metadata: %v", err)
	}
	return e, nil
}

// collector exports the quarantine's size.
type collector struct{ q *Quarantine }

var (
	messagesDesc = prometheus.NewDesc("osprey_sensor_quarantine_messages", "Messages in the quarantine.", nil, nil)
	bytesDesc    = prometheus.NewDesc("osprey_sensor_quarantine_bytes", "Bytes of the messages in the quarantine.", nil, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) { ch <- messagesDesc; ch <- bytesDesc }

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.q.Stats()
	ch <- prometheus.MustNewConstMetric(messagesDesc, prometheus.GaugeValue, float64(st.Messages))
	ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.GaugeValue, float64(st.Bytes))
}
