package spool

import (
	"errors"
	"fmt"
)

// kickCommitter tells the committer that waiters are queued.
func (s *Spool) kickCommitter() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// commitDir asks the committer for a directory fsync that covers every
// rename and unlink the caller made before, and waits for it. Only those
// that Close waits for before it stops the committer (the callers that
// passed s.enter, and the cleaner) may wait for a commit, so that every
// waiter is answered.
func (s *Spool) commitDir() error {
	w := make(waiter, 1)
	s.logMu.Lock()
	s.waiters = append(s.waiters, w)
	s.needDir = true
	s.logMu.Unlock()
	s.kickCommitter()
	return <-w
}

// commitLoop is the committer. It returns when s.quit is closed.
func (s *Spool) commitLoop() {
	defer close(s.commitDone)
	for {
		select {
		case <-s.kick:
		case <-s.quit:
			return
		}
		for s.commit() {
		}
	}
}

// commit takes the queued waiters, fdatasyncs the segments appended to
// since the last commit (and fsyncs the directory if asked), and answers
// the waiters; every append made before it took the queue is covered.
// It reports false when the queue was empty.
func (s *Spool) commit() bool {
	s.logMu.Lock()
	batch := s.waiters
	if len(batch) == 0 {
		s.logMu.Unlock()
		return false
	}
	s.waiters = nil
	segs := s.unsynced
	s.unsynced = nil
	for _, g := range segs {
		g.queued = false
		g.syncing = true
	}
	dir := s.needDir
	s.needDir = false
	s.logMu.Unlock()

	var errs []error
	for _, g := range segs {
		if err := s.syncData(g.f); err != nil {
			errs = append(errs, fmt.Errorf("sync %s: %w", g.name, err))
		}
	}
	if dir {
		if err := s.sync(s.dirFile); err != nil {
			errs = append(errs, fmt.Errorf("sync spool directory %s: %w", s.dir, err))
		}
	}
	err := errors.Join(errs...)
	s.ncommits.Add(1)

	s.logMu.Lock()
	for _, g := range segs {
		g.syncing = false
		if err != nil {
			// After a failed fdatasync the kernel may have dropped
			// pages that the file still seems to hold: trust the
			// segment with no further record.
			s.sealLocked(g)
		}
		s.closeIfDoneLocked(g)
	}
	s.logMu.Unlock()
	for _, w := range batch {
		w <- err
	}
	return true
}
