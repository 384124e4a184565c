package spool

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// segment is a log segment file, or the file of a spilled message, which
// the cleaner deletes the same way once its one record is removed.
type segment struct {
	name  string // in the spool directory
	spill bool

	// Guarded by Spool.logMu.
	f        *os.File // for appends and syncs; nil once sealed and synced, and for the files Open found
	size     int64    // bytes in the file
	sealed   bool     // takes no more records
	queued   bool     // appended to since the committer last took its queue
	syncing  bool     // in the committer's current sync
	inflight int      // records appended whose Put or copy has not finished

	// Guarded by Spool.mu.
	live      int   // index entries in it
	liveBytes int64 // their bytes
	removing  int   // Removes of its records still writing their removal record
	// removed holds the ids of its removed records: their removal records
	// must stay in the removal log while the segment exists.
	removed  []string
	deleting bool // the cleaner is deleting it
	gone     bool // deleted, durably
	// keep is set by Open on a segment that holds a damaged record it
	// had no room to quarantine: the segment is neither deleted nor
	// compacted, so that a later Open finds the record again.
	keep bool
}

// segName is the file name of log segment n.
func segName(n uint64) string {
	return fmt.Sprintf("seg-%016d.log", n)
}

// parseSegName returns the number of the log segment named name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, "seg-")
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, ".log"); !ok || len(digits) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil && n > 0
}

// waiter receives the result of the commit that covers an append.
type waiter chan error

// appendLog writes rec at the end of the active segment, starting a new
// segment when there is none or rec would take it past the segment size,
// and queues a waiter for the commit that covers it. It returns the
// segment and the record's offset in it; the record counts in the
// segment's inflight until the caller indexes it or gives it up (see
// doneInflight).
func (s *Spool) appendLog(rec []byte) (*segment, int64, waiter, error) {
	s.logMu.Lock()
	g := s.active
	if g == nil || g.size > 0 && g.size+int64(len(rec)) > s.segmentSize {
		var err error
		if g, err = s.rotateLocked(); err != nil {
			s.logMu.Unlock()
			return nil, 0, nil, err
		}
	}
	off := g.size
	if _, err := g.f.WriteAt(rec, off); err != nil {
		// A record cut short must not be followed by others: the scan
		// at Open would stop at it.
		s.sealLocked(g)
		s.logMu.Unlock()
		return nil, 0, nil, fmt.Errorf("write %s: %w", g.name, err)
	}
	g.size += int64(len(rec))
	g.inflight++
	if !g.queued {
		g.queued = true
		s.unsynced = append(s.unsynced, g)
	}
	w := make(waiter, 1)
	s.waiters = append(s.waiters, w)
	s.logMu.Unlock()
	s.kickCommitter()
	if s.appended != nil {
		s.appended()
	}
	return g, off, w, nil
}

// rotateLocked seals the active segment and starts a new one. s.logMu is
// held: appends wait for the directory fsync, once per segment.
func (s *Spool) rotateLocked() (*segment, error) {
	if s.active != nil {
		s.sealLocked(s.active)
	}
	s.lastSeg++
	g := &segment{name: segName(s.lastSeg)}
	path := s.filePath(g)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	// With its directory entry durable, a fdatasync of the segment
	// covers its records.
	if err := s.sync(s.dirFile); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("sync spool directory %s: %w", s.dir, err)
	}
	g.f = f
	s.segs[g.name] = g
	s.active = g
	return g, nil
}

// sealLocked makes g take no more records. s.logMu is held.
func (s *Spool) sealLocked(g *segment) {
	g.sealed = true
	if s.active == g {
		s.active = nil
	}
	s.closeIfDoneLocked(g)
}

// closeIfDoneLocked closes the file of g once it is sealed and synced;
// readers open their own. s.logMu is held.
func (s *Spool) closeIfDoneLocked(g *segment) {
	if g.sealed && !g.queued && !g.syncing && g.f != nil {
		if err := g.f.Close(); err != nil {
			s.log.Warn("cannot close a segment", "file", g.name, "err", err)
		}
		g.f = nil
	}
}

// doneInflight ends the inflight count of a record appended to g, after
// its Put or copy indexed it (under s.mu, before this) or gave it up.
func (s *Spool) doneInflight(g *segment) {
	s.logMu.Lock()
	g.inflight--
	s.logMu.Unlock()
}

// deletableLocked reports whether the cleaner may delete g: sealed, every
// record in it removed, nothing in flight, not kept. s.mu and s.logMu are
// held.
func deletableLocked(g *segment) bool {
	return g.sealed && !g.deleting && !g.keep && g.live == 0 && g.removing == 0 &&
		g.inflight == 0 && !g.queued && !g.syncing
}

// withDup returns dups, less the segments that are gone, and g: the
// segments that hold older copies of a record that g now holds too.
// s.mu is held.
func withDup(dups []*segment, g *segment) []*segment {
	out := make([]*segment, 0, len(dups)+1)
	for _, d := range dups {
		if !d.gone {
			out = append(out, d)
		}
	}
	return append(out, g)
}
