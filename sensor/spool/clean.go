package spool

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
)

// compactBatch is the bytes of records that compaction copies per commit.
const compactBatch = 4 << 20

// kickCleaner tells the cleaner that there may be work.
func (s *Spool) kickCleaner() {
	select {
	case s.cleanKick <- struct{}{}:
	default:
	}
}

// cleanLoop is the cleaner. It returns when s.cleanQuit is closed.
func (s *Spool) cleanLoop() {
	defer close(s.cleanDone)
	for {
		select {
		case <-s.cleanKick:
		case <-s.cleanQuit:
			return
		}
		if err := s.clean(); err != nil {
			s.log.Error("spool cleaning failed", "err", err)
			s.setIOErr(err)
		}
	}
}

// clean deletes the files all of whose records are removed, rewrites the
// removal log when it has grown or is due, compacts, and makes the reserve
// of disk space when the spool has none. What needs disk space waits for
// a pass that finds room for it.
func (s *Spool) clean() error {
	s.cleanMu.Lock()
	defer s.cleanMu.Unlock()
	if err := s.deleteDead(); err != nil {
		return err
	}
	s.rlogMu.Lock()
	rewrite := s.rlog.due || s.rlog.lines >= s.rlog.limit
	s.rlogMu.Unlock()
	if rewrite {
		switch err := s.rewriteRemovals(); {
		case errors.Is(err, errNoRoom):
			s.log.Debug("removal log rewrite postponed", "err", err)
		case isNoSpace(err):
			s.log.Warn("removal log rewrite postponed: the disk filled up", "err", err)
		case err != nil:
			return err
		}
	}
	if err := s.compact(); err != nil {
		return err
	}
	s.ensureReserve()
	return nil
}

// deleteDead deletes the segments and spilled messages all of whose
// records are removed, first retiring the active segment if it is one of
// them and holds s.retireSize bytes. The caller holds s.cleanMu.
func (s *Spool) deleteDead() error {
	s.mu.Lock()
	s.logMu.Lock()
	if a := s.active; a != nil && a.size >= s.retireSize && a.live == 0 && a.removing == 0 &&
		a.inflight == 0 && !a.queued && !a.syncing {
		s.sealLocked(a)
	}
	var dead []*segment
	for _, g := range s.segs {
		if deletableLocked(g) {
			g.deleting = true
			dead = append(dead, g)
		}
	}
	s.logMu.Unlock()
	s.mu.Unlock()
	if len(dead) == 0 {
		return nil
	}
	for _, g := range dead {
		s.logMu.Lock()
		if g.f != nil { // closed once sealed and synced; just in case
			g.f.Close()
			g.f = nil
		}
		s.logMu.Unlock()
	}

	// Their removal records, the tombstones of POP3 messages among
	// them, must be on disk before the records go.
	err := s.syncRemovals()
	var gone []*segment
	if err == nil {
		var errs []error
		for _, g := range dead {
			if err := os.Remove(s.filePath(g)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			gone = append(gone, g)
		}
		err = errors.Join(errs...)
		if len(gone) > 0 {
			if serr := s.sync(s.dirFile); serr != nil {
				err = errors.Join(err, fmt.Errorf("sync spool directory %s: %w", s.dir, serr))
				gone = nil
			}
		}
	}

	// A file whose deletion is durable needs no removal records any
	// more; the others stay, to be deleted again by a later pass.
	s.mu.Lock()
	s.logMu.Lock()
	for _, g := range dead {
		if slices.Contains(gone, g) {
			delete(s.segs, g.name)
			g.gone = true
		} else {
			g.deleting = false
		}
	}
	s.logMu.Unlock()
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("delete removed messages: %w", err)
	}
	return nil
}

// compact compacts segments while the removed records in sealed segments
// take more bytes than both s.compactMin and the live records in them.
// The caller holds s.cleanMu.
func (s *Spool) compact() error {
	for {
		select {
		case <-s.closing:
			return nil
		default:
		}
		v := s.pickVictim()
		if v == nil {
			return nil
		}
		// The copies need room; without it compaction waits.
		s.mu.Lock()
		need := v.liveBytes + compactBatch
		s.mu.Unlock()
		if free, err := freeBytes(s.dir); err == nil && free < need {
			s.log.Debug("compaction postponed: no room on the disk for the copies", "segment", v.name, "free_bytes", free, "want_bytes", need)
			return nil
		}
		if err := s.compactSegment(v); err != nil {
			return err
		}
		s.compactions.Add(1)
		if err := s.deleteDead(); err != nil {
			return err
		}
	}
}

// pickVictim returns the sealed segment with the smallest share of live
// bytes, when compaction is due.
func (s *Spool) pickVictim() *segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logMu.Lock()
	defer s.logMu.Unlock()
	var removed, live int64
	var v *segment
	for _, g := range s.segs {
		if g.spill || !g.sealed || g.deleting || g.keep {
			continue
		}
		removed += g.size - g.liveBytes
		live += g.liveBytes
		if g.live == 0 || g.inflight > 0 || g.queued || g.syncing {
			continue
		}
		if v == nil || g.liveBytes*v.size < v.liveBytes*g.size {
			v = g
		}
	}
	if removed < s.compactMin || removed <= live {
		return nil
	}
	return v
}

// compactSegment copies the live records of v to the active segment,
// through the group commit, and points the index at the copies. A record
// removed while it is copied leaves a removed copy.
func (s *Spool) compactSegment(v *segment) error {
	type move struct {
		id  string
		e   *entry
		g   *segment
		off int64
		w   waiter
	}
	var moves []move
	s.mu.Lock()
	for id, e := range s.index {
		if e.seg == v {
			moves = append(moves, move{id: id, e: e})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(moves, func(a, b move) int { return cmp.Compare(a.e.off, b.e.off) })

	f, err := os.Open(s.filePath(v))
	if err != nil {
		return fmt.Errorf("compact %s: %w", v.name, err)
	}
	defer f.Close()
	var buf []byte
	for len(moves) > 0 {
		select {
		case <-s.closing:
			return nil
		default:
		}
		var (
			batch []move
			bytes int64
			errs  []error
		)
		for len(moves) > 0 && bytes < compactBatch {
			m := moves[0]
			moves = moves[1:]
			buf = slices.Grow(buf[:0], int(m.e.len))[:m.e.len]
			if _, err := f.ReadAt(buf, m.e.off); err != nil {
				errs = append(errs, fmt.Errorf("read %s: %w", v.name, err))
				break
			}
			if m.g, m.off, m.w, err = s.appendLog(buf); err != nil {
				errs = append(errs, err)
				break
			}
			batch = append(batch, m)
			bytes += m.e.len
		}
		var failed bool
		for i := range batch {
			if err := <-batch[i].w; err != nil {
				errs = append(errs, err)
				failed = true
			}
		}

		s.mu.Lock()
		for _, m := range batch {
			cur, live := s.index[m.id]
			switch {
			case !live || cur != m.e:
				// Removed while it was copied: the copy is a removed
				// record too.
				m.g.removed = append(m.g.removed, m.id)
			case failed:
				// The copy may reach the disk: removal records must
				// cover it.
				ne := *cur
				ne.dups = withDup(cur.dups, m.g)
				s.index[m.id] = &ne
			default:
				ne := *cur
				ne.seg, ne.off = m.g, m.off
				ne.dups = withDup(cur.dups, v)
				s.index[m.id] = &ne
				v.live--
				v.liveBytes -= ne.len
				m.g.live++
				m.g.liveBytes += ne.len
			}
		}
		s.mu.Unlock()
		for _, m := range batch {
			s.doneInflight(m.g)
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("compact %s: %w", v.name, err)
		}
	}
	return nil
}
