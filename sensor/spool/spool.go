package spool

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Errors that callers tell apart with errors.Is.
var (
	// ErrFull means the spool holds as many messages or bytes as it may.
	ErrFull = errors.New("spool full")
	// ErrLowDisk means the file system has less free space than
	// Options.MinFreeBytes; the error is a *LowDiskError.
	ErrLowDisk = errors.New("low disk space")
	// ErrNotFound means no message has the id.
	ErrNotFound = errors.New("message not found")
	// ErrClosed means the spool was closed.
	ErrClosed = errors.New("spool closed")
	// ErrCorrupt means a spooled message's bytes do not match what was
	// written.
	ErrCorrupt = errors.New("spooled message corrupt")
)

// Defaults of the zero Options fields.
const (
	DefaultMaxBytes      = 10 << 30
	DefaultMaxMessages   = 100000
	DefaultMinFreeBytes  = 256 << 20
	DefaultUIDLRetention = 14 * 24 * time.Hour
	DefaultSegmentSize   = 64 << 20
)

// probeInterval is how often Check tries the disk again after an I/O error.
const probeInterval = 10 * time.Second

// checkHeadroom is the byte budget that Check wants left: no real message
// is smaller, so with less the next Put would fail anyway.
const checkHeadroom = 4 << 10

// spillSize is the body size past which Put writes a message to a file of
// its own instead of a segment.
const spillSize = 1 << 20

// File names; see the package comment.
const (
	extMsg     = ".msg"
	extTmp     = ".tmp"
	extCorrupt = ".corrupt"
	lockName   = "LOCK"
)

// Options configure a spool.
type Options struct {
	// Dir holds the spool; it is created with mode 0700.
	Dir string
	// MaxBytes bounds the total size of the spooled messages' records; 0
	// means DefaultMaxBytes. The files may hold up to about twice as much
	// (see the package comment).
	MaxBytes int64
	// MaxMessages bounds the number of spooled messages; 0 means
	// DefaultMaxMessages.
	MaxMessages int
	// MinFreeBytes is the free space of the file system below which the
	// spool refuses new mail with ErrLowDisk, the floor; 0 means
	// DefaultMinFreeBytes. The sensor passes its --spool-min-free setting.
	MinFreeBytes int64
	// UIDLRetention is how long a tombstone of a removed POP3 message is
	// kept at most; 0 means DefaultUIDLRetention.
	UIDLRetention time.Duration
	// SegmentSize is the size at which the spool starts a new segment
	// file; 0 means DefaultSegmentSize. The reserve of disk space (see the
	// package comment) is a sixteenth of it, and at least 64 KiB.
	SegmentSize int64
	// Logger receives the log lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Validate reports every problem of o.
func (o Options) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("dir: empty"))
	}
	if o.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("max_bytes: %d is negative", o.MaxBytes))
	}
	if o.MaxMessages < 0 {
		errs = append(errs, fmt.Errorf("max_messages: %d is negative", o.MaxMessages))
	}
	if o.MinFreeBytes < 0 {
		errs = append(errs, fmt.Errorf("min_free_bytes: %d is negative", o.MinFreeBytes))
	}
	if o.UIDLRetention < 0 {
		errs = append(errs, fmt.Errorf("uidl_retention: %v is negative", o.UIDLRetention))
	}
	if o.SegmentSize < 0 {
		errs = append(errs, fmt.Errorf("segment_size: %d is negative", o.SegmentSize))
	}
	return errors.Join(errs...)
}

// Meta is what the spool keeps of a message besides its bytes.
type Meta struct {
	Source   ospreyv1.MailSource
	Envelope *ospreyv1.Envelope
	// UIDL is the POP3 unique id of a polled message, empty for SMTP. With
	// Envelope.Mailbox it is the key of [Spool.HasUIDL].
	UIDL string
	// Seal, when set, is called by Put once the body has been read to its
	// end, before the message is written durably, with the envelope Put
	// keeps; what it sets there is kept with the message. It is how what
	// is known only at the end of a body (a gateway's DKIM and DMARC
	// results) is on disk before the 250. It may add at most SealRoom
	// bytes to the record's header, or Put fails.
	Seal func(env *ospreyv1.Envelope)
}

// SealRoom is how many bytes Meta.Seal may add to the JSON header of a
// record. A spilled message's header is written before its body is read,
// padded with as many spaces, and overwritten once sealed.
const SealRoom = 8 << 10

// Message is a spooled message as [Spool.Get] returns it.
type Message struct {
	ID   string
	Meta Meta
	// Size is the number of bytes of the message itself.
	Size int64

	s *Spool
}

// Stats are the spool's gauges and counters, for metrics.
type Stats struct {
	// Messages and Bytes are what the spool holds now (bytes of their
	// records).
	Messages int
	Bytes    int64
	// Tombstones counts the removed POP3 messages whose UIDL is remembered.
	Tombstones int
	// Puts counts the messages spooled and Removes the messages removed
	// since Open.
	Puts, Removes uint64
	// Failures counts the Puts that failed on an I/O error, Rejected those
	// refused with ErrFull or ErrLowDisk, and Aborted those whose body or
	// context failed.
	Failures, Rejected, Aborted uint64
	// Commits counts the group commits: each is one fdatasync of the
	// segments appended to (and a directory fsync when a spilled message
	// needs one). Puts/Commits is the group commit's batch size.
	Commits uint64
	// Segments counts the segment files and DiskBytes the bytes of the
	// segments and spilled messages, removed records that wait for their
	// segment to go included.
	Segments  int
	DiskBytes int64
	// Compactions counts the segments compacted since Open, and Corrupt
	// the damaged records that Open quarantined.
	Compactions, Corrupt uint64
}

// LowDiskError is the error of Check and Put while the file system has
// less free space than the floor, Options.MinFreeBytes. It matches
// ErrLowDisk with errors.Is.
type LowDiskError struct {
	Free, Floor int64 // bytes
}

func (e *LowDiskError) Error() string {
	return fmt.Sprintf("low disk space: %s free, below the %s floor", formatBytes(e.Free), formatBytes(e.Floor))
}

// Is reports whether target is ErrLowDisk.
func (e *LowDiskError) Is(target error) bool { return target == ErrLowDisk }

// formatBytes prints n with the largest binary unit it reaches: "12 MiB",
// "1.5 GiB", "300 B".
func formatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	i, u := 0, int64(1)
	for i+1 < len(units) && n/u >= 1024 {
		i, u = i+1, u*1024
	}
	if n%u == 0 {
		return fmt.Sprintf("%d %s", n/u, units[i])
	}
	return fmt.Sprintf("%.1f %s", float64(n)/float64(u), units[i])
}

// uidlKey names a POP3 message.
type uidlKey struct{ mailbox, uidl string }

// uidlRef is the message that holds a UIDL; tomb when it was removed, at
// the time it was.
type uidlRef struct {
	id   string
	tomb bool
	at   time.Time
}

// entry is the index's record of a spooled message. Entries are never
// changed once in the index; compaction replaces them.
type entry struct {
	seg    *segment
	off    int64 // of the record in its file
	len    int64 // bytes of the record
	hdrEnd int64 // offset of the body from off
	crc    uint32
	key    uidlKey
	// dups are older segments that hold a copy of the record, left by a
	// compaction: their removal records must cover this message too.
	dups []*segment
}

func (e *entry) bodySize() int64 { return e.len - e.hdrEnd - footerLen }

// Spool is a durable message spool; its methods are safe for concurrent use.
type Spool struct {
	dir           string
	log           *slog.Logger
	now           func() time.Time
	maxBytes      int64
	maxMessages   int
	minFree       int64
	uidlRetention time.Duration
	segmentSize   int64
	// retireSize is the size from which an active segment whose records
	// are all removed is retired; compactMin is the bytes of removed
	// records in sealed segments below which the cleaner does not
	// compact; rlogSlack is the number of removal log lines below which
	// it does not rewrite the log. Tests lower them.
	retireSize int64
	compactMin int64
	rlogSlack  int
	// reserveSize is the size of the reserve file.
	reserveSize int64

	dirFile *os.File
	unlock  func() error
	ids     idGen

	// sync fsyncs a directory or a spilled message and syncData
	// fdatasyncs a segment or the removal log; tests replace them to
	// inject I/O errors.
	sync, syncData func(*os.File) error
	// appended, when set, is called after each append; tests use it to
	// see Puts queue.
	appended func()

	kick, quit, commitDone          chan struct{} // the committer's
	cleanKick, cleanQuit, cleanDone chan struct{} // the cleaner's
	// cleanMu serializes the cleaner's passes with the deletions and log
	// rewrites that tests ask for.
	cleanMu sync.Mutex
	closing chan struct{}
	ready   chan struct{}
	// pending counts the Puts and Removes that passed the gate and may
	// still ask the committer for a sync; Close waits for them.
	pending sync.WaitGroup

	puts, removes, failures, rejected, aborted, ncommits, compactions, corrupt atomic.Uint64

	// logMu guards the write side of the segments: the active segment,
	// the appends, the committer's queue, and segs. Lock order: mu, logMu,
	// rlogMu.
	logMu    sync.Mutex
	active   *segment
	lastSeg  uint64
	segs     map[string]*segment // by file name, spilled messages included
	waiters  []waiter
	unsynced []*segment // appended to since the committer last looked
	needDir  bool       // a waiter needs a directory fsync

	rlogMu sync.Mutex
	rlog   removalLog

	// reserveMu guards whether the reserve file is there (reserveHave),
	// and whether it was spent since the spool had one (reserveSpent).
	reserveMu                 sync.Mutex
	reserveHave, reserveSpent bool

	// lowDiskSeen is set while the disk is below the floor, so that the
	// spool logs when it goes below and when it is back above.
	lowDiskSeen atomic.Bool

	mu        sync.Mutex
	closed    bool
	index     map[string]*entry
	added     []string // spooled since the last Added
	bytes     int64    // of the messages in index
	reserved  int64    // by Puts in progress
	inflight  int      // Puts in progress
	uidls     map[uidlKey]uidlRef
	putting   map[uidlKey]bool // UIDLs of Puts in progress
	tombs     int
	ioErr     error
	lastProbe time.Time
}

// Open opens the spool in opts.Dir, creating it if needed, and recovers it
// after a crash (see the package comment). It needs no free space on the
// disk, so that a sensor whose disk is full starts and uploads the backlog
// that frees it. Only one Spool may have a directory open; Open fails
// while another process holds it.
func Open(opts Options) (*Spool, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("spool options: %w", err)
	}
	s := &Spool{
		dir:           opts.Dir,
		log:           opts.Logger,
		now:           opts.Now,
		maxBytes:      cmp.Or(opts.MaxBytes, DefaultMaxBytes),
		maxMessages:   cmp.Or(opts.MaxMessages, DefaultMaxMessages),
		minFree:       cmp.Or(opts.MinFreeBytes, DefaultMinFreeBytes),
		uidlRetention: cmp.Or(opts.UIDLRetention, DefaultUIDLRetention),
		segmentSize:   cmp.Or(opts.SegmentSize, DefaultSegmentSize),
		rlogSlack:     1 << 16,
		sync:          (*os.File).Sync,
		syncData:      fdatasync,
		kick:          make(chan struct{}, 1),
		quit:          make(chan struct{}),
		commitDone:    make(chan struct{}),
		cleanKick:     make(chan struct{}, 1),
		cleanQuit:     make(chan struct{}),
		cleanDone:     make(chan struct{}),
		closing:       make(chan struct{}),
		ready:         make(chan struct{}, 1),
		segs:          make(map[string]*segment),
		index:         make(map[string]*entry),
		uidls:         make(map[uidlKey]uidlRef),
		putting:       make(map[uidlKey]bool),
	}
	s.retireSize = min(1<<20, s.segmentSize/2)
	s.compactMin = 4 * s.segmentSize
	s.reserveSize = max(s.segmentSize/16, minReserve)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}

	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", s.dir, err)
	}
	// The spool's own directory entry must be durable before any message
	// in it can be.
	if err := syncPath(filepath.Dir(filepath.Clean(s.dir))); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", s.dir, err)
	}
	unlock, err := lockDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", s.dir, err)
	}
	s.unlock = unlock
	if s.dirFile, err = os.Open(s.dir); err != nil {
		err = errors.Join(err, unlock())
		return nil, fmt.Errorf("open spool %s: %w", s.dir, err)
	}
	if err := s.recover(); err != nil {
		err = errors.Join(err, s.rlog.close(), s.dirFile.Close(), unlock())
		return nil, fmt.Errorf("open spool %s: %w", s.dir, err)
	}
	// Only if the disk has room for it; the cleaner tries again.
	s.ensureReserve()
	if len(s.index) > 0 {
		s.added = s.List()
		s.ready <- struct{}{}
	}
	if s.corrupt.Load() > 0 {
		// The cleaner's first pass writes the removals of the records
		// quarantined, so that the next Open does not find them again;
		// otherwise it runs when a Remove or a Put asks.
		s.kickCleaner()
	}
	go s.commitLoop()
	go s.cleanLoop()
	return s, nil
}

// Close waits for the Puts and Removes that are committing, stops the
// cleaner and the committer, and releases the directory. Puts still
// reading their body fail with ErrClosed. Get, List, HasUIDL and Stats
// keep answering afterwards; Message.Open too, while the files are there.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.pending.Wait()
	// The cleaner may be waiting for the commit of a compaction: stop it
	// before the committer.
	close(s.cleanQuit)
	<-s.cleanDone
	close(s.quit)
	<-s.commitDone

	var errs []error
	s.logMu.Lock()
	for _, g := range s.segs {
		if g.f != nil {
			errs = append(errs, g.f.Close())
			g.f = nil
		}
	}
	s.active = nil
	s.logMu.Unlock()
	s.rlogMu.Lock()
	errs = append(errs, s.rlog.close())
	s.rlogMu.Unlock()
	errs = append(errs, s.dirFile.Close(), s.unlock())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close spool %s: %w", s.dir, err)
	}
	return nil
}

// enter lets a Put or Remove that will ask for a commit pass, unless the
// spool is closed. The caller calls s.pending.Done when it has its answer.
func (s *Spool) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	s.pending.Add(1)
	return nil
}

// lookup returns the index entry of message id.
func (s *Spool) lookup(id string) (*entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.index[id]
	return e, ok
}

// Get returns the metadata of message id and an opener for its bytes.
func (s *Spool) Get(id string) (*Message, error) {
	// Compaction may move the record between the lookup and the read.
	for range 3 {
		e, ok := s.lookup(id)
		if !ok {
			break
		}
		rec, err := readHeader(s.filePath(e.seg), e.off, e.len)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil && rec.id != id {
			err = fmt.Errorf("record holds the header of %s", rec.id)
		}
		if err != nil {
			return nil, fmt.Errorf("get %s: %w", id, err)
		}
		meta, err := rec.hdr.meta()
		if err != nil {
			return nil, fmt.Errorf("get %s: %w", id, err)
		}
		return &Message{ID: id, Meta: meta, Size: e.bodySize(), s: s}, nil
	}
	return nil, fmt.Errorf("get %s: %w", id, ErrNotFound)
}

// List returns the ids of the spooled messages, oldest first.
func (s *Spool) List() []string {
	s.mu.Lock()
	ids := make([]string, 0, len(s.index))
	for id := range s.index {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// Ready returns a channel that receives after a message was spooled; it
// holds one token, so a consumer that was busy still sees that something
// came. It has a token after Open when the spool is not empty. Meant for
// one consumer, the uploader: wait on it, then call Added.
func (s *Spool) Ready() <-chan struct{} {
	return s.ready
}

// Added returns the ids of the messages spooled since the last call, oldest
// first; the first call after Open returns those the spool held already.
// Meant for one consumer, which learns each message once this way and so
// never lists the whole spool.
func (s *Spool) Added() []string {
	s.mu.Lock()
	ids := s.added
	s.added = nil
	s.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// Stats returns the spool's gauges and counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	st := Stats{Messages: len(s.index), Bytes: s.bytes, Tombstones: s.tombs}
	s.mu.Unlock()
	s.logMu.Lock()
	for _, g := range s.segs {
		if !g.spill {
			st.Segments++
		}
		st.DiskBytes += g.size
	}
	s.logMu.Unlock()
	st.Puts = s.puts.Load()
	st.Removes = s.removes.Load()
	st.Failures = s.failures.Load()
	st.Rejected = s.rejected.Load()
	st.Aborted = s.aborted.Load()
	st.Commits = s.ncommits.Load()
	st.Compactions = s.compactions.Load()
	st.Corrupt = s.corrupt.Load()
	return st
}

// Check returns nil when the spool can take a new message, and otherwise
// why not: ErrClosed, ErrFull (no slot, or less than 4 KiB of the byte
// budget left), ErrLowDisk, or the last I/O error. The SMTP server greets
// with 421 and answers 452 while it fails. A nil Check does not promise
// that a Put of a large message fits.
func (s *Spool) Check() error {
	free, ferr := freeBytes(s.dir)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if err := s.capacityLocked(checkHeadroom); err != nil {
		s.mu.Unlock()
		return err
	}
	ioErr := s.ioErr
	probe := false
	if ioErr != nil && s.now().Sub(s.lastProbe) >= probeInterval {
		probe = true
		s.lastProbe = s.now()
	}
	s.mu.Unlock()
	if err := s.lowDisk(free, ferr); err != nil {
		return err
	}
	if ioErr == nil {
		return nil
	}
	if !probe {
		return ioErr
	}
	if err := s.probe(); err != nil {
		s.setIOErr(err)
		return err
	}
	s.mu.Lock()
	if s.ioErr == ioErr {
		s.ioErr = nil
	}
	s.mu.Unlock()
	s.log.Info("spool disk works again", "after", ioErr)
	return nil
}

// capacityLocked returns ErrFull when a message of extra more bytes does
// not fit the message or byte budget. s.mu is held.
func (s *Spool) capacityLocked(extra int64) error {
	if n := len(s.index) + s.inflight; n >= s.maxMessages {
		return fmt.Errorf("spool holds %d of %d messages: %w", n, s.maxMessages, ErrFull)
	}
	if b := s.bytes + s.reserved; b+extra > s.maxBytes {
		return fmt.Errorf("spool holds %d of %d bytes: %w", b, s.maxBytes, ErrFull)
	}
	return nil
}

// lowDisk turns the result of freeBytes into a *LowDiskError or nil, and
// logs when the disk goes below the floor and when it is back above. A
// file system whose free space cannot be read is not reported as low.
func (s *Spool) lowDisk(free int64, err error) error {
	if err != nil {
		s.log.Warn("cannot read free disk space", "err", err)
		return nil
	}
	if free < s.minFree {
		if !s.lowDiskSeen.Swap(true) {
			s.log.Warn("low disk space: the spool refuses new mail until space is freed",
				"dir", s.dir, "free_bytes", free, "floor_bytes", s.minFree)
		}
		return &LowDiskError{Free: free, Floor: s.minFree}
	}
	if s.lowDiskSeen.Swap(false) {
		s.log.Info("disk space is back above the floor: the spool takes mail again",
			"dir", s.dir, "free_bytes", free, "floor_bytes", s.minFree)
	}
	return nil
}

// setIOErr remembers an I/O error for Check.
func (s *Spool) setIOErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ioErr = err
	s.lastProbe = s.now()
}

// probe writes, fsyncs and removes a small file, to see whether the disk
// works again.
func (s *Spool) probe() error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.pending.Done()
	path := s.path(s.ids.next(s.now()), extTmp)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("probe spool disk: %w", err)
	}
	_, err = f.WriteString("probe\n")
	if err == nil {
		err = s.sync(f)
	}
	err = errors.Join(err, f.Close(), os.Remove(path))
	if err == nil {
		err = s.commitDir()
	}
	if err != nil {
		return fmt.Errorf("probe spool disk: %w", err)
	}
	return nil
}

// path is the file of id with suffix ext.
func (s *Spool) path(id, ext string) string {
	return filepath.Join(s.dir, id+ext)
}

// filePath is the path of segment g.
func (s *Spool) filePath(g *segment) string {
	return filepath.Join(s.dir, g.name)
}

// key is the UIDL key of m, zero for a message without UIDL.
func (m Meta) key() uidlKey {
	if m.UIDL == "" {
		return uidlKey{}
	}
	return uidlKey{mailbox: m.Envelope.GetMailbox(), uidl: m.UIDL}
}

// syncPath fsyncs the file or directory at path.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
