package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// reserveName is the file that holds the spool's reserve of disk space
// (see the package comment).
const reserveName = "RESERVE"

// minReserve is the smallest reserve, whatever the segment size.
const minReserve = 64 << 10

// reservePath is the path of the reserve file.
func (s *Spool) reservePath() string {
	return filepath.Join(s.dir, reserveName)
}

// ensureReserve makes the reserve file when the spool has none and the
// disk has room for it above the floor. It is best effort: a failure is
// logged and the next pass of the cleaner tries again. Open and the
// cleaner call it, never at the same time.
func (s *Spool) ensureReserve() {
	s.reserveMu.Lock()
	have, spent := s.reserveHave, s.reserveSpent
	s.reserveMu.Unlock()
	if have {
		return
	}
	// Only this function makes the file, and logRemoval deletes it only
	// while reserveHave is set: nobody else touches it now.
	path := s.reservePath()
	var size int64
	if info, err := os.Stat(path); err == nil {
		size = info.Size()
	}
	if size < s.reserveSize {
		free, err := freeBytes(s.dir)
		if err != nil || free-(s.reserveSize-size) < s.minFree {
			return
		}
		if err := s.makeReserve(path); err != nil {
			if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = errors.Join(err, rerr)
			}
			s.log.Warn("cannot make the spool's reserve of disk space; trying again later", "bytes", s.reserveSize, "err", err)
			return
		}
		if spent {
			s.log.Info("made the spool's reserve of disk space again", "bytes", s.reserveSize)
		}
	}
	s.reserveMu.Lock()
	s.reserveHave = true
	s.reserveSpent = false
	s.reserveMu.Unlock()
}

// makeReserve makes the file at path take s.reserveSize bytes of disk:
// allocated where the file system can, written with zeros where it cannot.
func (s *Spool) makeReserve(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", reserveName, err)
	}
	err = allocate(f, s.reserveSize)
	if errors.Is(err, errors.ErrUnsupported) {
		err = writeZeros(f, s.reserveSize)
	}
	if err == nil {
		err = s.sync(f)
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("make %s: %w", reserveName, err)
	}
	return nil
}

// writeZeros writes zeros to f from its start up to size bytes.
func writeZeros(f *os.File, size int64) error {
	zeros := make([]byte, 64<<10)
	for off := int64(0); off < size; {
		n := int(min(int64(len(zeros)), size-off))
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

// spendReserve deletes the reserve file, so that the removal log can have
// its space, and reports whether the spool had one to give. s.rlogMu is
// held (lock order: rlogMu, reserveMu).
func (s *Spool) spendReserve() bool {
	s.reserveMu.Lock()
	defer s.reserveMu.Unlock()
	if !s.reserveHave {
		return false
	}
	s.reserveHave = false
	if err := os.Remove(s.reservePath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("cannot delete the spool's reserve of disk space", "err", err)
		return false
	}
	s.reserveSpent = true
	s.log.Warn("the disk is full: spent the spool's reserve of disk space on the removal log; it is made again once the disk has room",
		"bytes", s.reserveSize)
	return true
}
