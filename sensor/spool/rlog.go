package spool

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The operations of the removal log.
const (
	opRemove = "remove" // the message was removed; with a UIDL, a tombstone
	opForget = "forget" // the tombstone of the message is forgotten
)

// removal is a line of the removal log.
type removal struct {
	Op      string    `json:"op"`
	ID      string    `json:"id"`
	Mailbox string    `json:"mailbox,omitempty"`
	UIDL    string    `json:"uidl,omitempty"`
	At      time.Time `json:"at,omitzero"`
}

// key is the UIDL key of a tombstone, zero for other removals.
func (r *removal) key() uidlKey {
	if r.UIDL == "" || r.Mailbox == "" {
		return uidlKey{}
	}
	return uidlKey{mailbox: r.Mailbox, uidl: r.UIDL}
}

// removalLog is the removal log being appended to, created by the first
// line it takes. Guarded by Spool.rlogMu; only the cleaner replaces it.
type removalLog struct {
	f     *os.File
	gen   uint64
	lines int  // in f
	limit int  // lines from which the cleaner rewrites the log
	torn  bool // a write to f failed: the next line starts with a newline
	// due makes the cleaner rewrite the log whatever its lines: after
	// Open, which leaves the logs it read to the cleaner, and after a line
	// was dropped for lack of space.
	due bool
	// full is set while lines are dropped for lack of space, so that the
	// spool logs when that starts and when it ends.
	full bool
	// closed is set by Close.
	closed bool
	// stale are the older logs, open when this process wrote them, which
	// the rewrite that made f has not yet replaced on disk.
	stale []staleLog
}

type staleLog struct {
	name string
	f    *os.File // nil for a log that Open found
}

// close closes the log files.
func (l *removalLog) close() error {
	l.closed = true
	var errs []error
	if l.f != nil {
		errs = append(errs, l.f.Close())
		l.f = nil
	}
	for _, st := range l.stale {
		if st.f != nil {
			errs = append(errs, st.f.Close())
		}
	}
	l.stale = nil
	return errors.Join(errs...)
}

// rlogName is the file name of generation gen of the removal log.
func rlogName(gen uint64) string {
	return fmt.Sprintf("removed-%016d.log", gen)
}

// parseRlogName returns the generation of the removal log named name.
func parseRlogName(name string) (uint64, bool) {
	digits, ok := strings.CutPrefix(name, "removed-")
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, ".log"); !ok || len(digits) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

// appendRemoval appends the line of r: the CRC-32C of its JSON in hex, a
// space, the JSON, a newline.
func appendRemoval(dst []byte, r removal) []byte {
	js, err := json.Marshal(r)
	if err != nil {
		panic(err) // strings and a time: cannot fail
	}
	dst = fmt.Appendf(dst, "%08x ", crc32.Checksum(js, castagnoli))
	dst = append(dst, js...)
	return append(dst, '\n')
}

// parseRemovals parses a removal log; bad counts the lines it skipped
// (torn by a crash, or damaged).
func parseRemovals(b []byte) (rs []removal, bad int) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		r, err := parseRemoval(line)
		if err != nil {
			bad++
			continue
		}
		rs = append(rs, r)
	}
	return rs, bad
}

func parseRemoval(line []byte) (removal, error) {
	sum, js, ok := bytes.Cut(line, []byte{' '})
	var want [4]byte
	if !ok || len(sum) != 8 {
		return removal{}, errors.New("no checksum")
	}
	if _, err := hex.Decode(want[:], sum); err != nil {
		return removal{}, errors.New("bad checksum")
	}
	if crc32.Checksum(js, castagnoli) != uint32(want[0])<<24|uint32(want[1])<<16|uint32(want[2])<<8|uint32(want[3]) {
		return removal{}, errors.New("checksum mismatch")
	}
	var r removal
	if err := json.Unmarshal(js, &r); err != nil {
		return removal{}, err
	}
	if !validID(r.ID) || r.Op != opRemove && r.Op != opForget {
		return removal{}, errors.New("bad line")
	}
	return r, nil
}

// logRemoval appends r to the removal log, without syncing it. When the
// disk has no room for the line, a tombstone gets the space of the
// reserve, if the spool still has it, and any other line is dropped: the
// removal holds in memory, and the next rewrite of the log writes it if it
// is still needed (see the package comment). It returns an error only for
// a line it could not write nor drop.
func (s *Spool) logRemoval(r removal) error {
	line := appendRemoval(make([]byte, 1, 160), r)
	s.rlogMu.Lock()
	defer s.rlogMu.Unlock()
	l := &s.rlog
	if l.closed {
		return ErrClosed
	}
	tomb := r.key() != (uidlKey{})
	err := s.writeRemovalLocked(line)
	if err != nil && tomb && isNoSpace(err) && s.spendReserve() {
		err = s.writeRemovalLocked(line)
	}
	switch {
	case err == nil:
		if l.full {
			l.full = false
			s.log.Info("the removal log has room again")
		}
	case !tomb && isNoSpace(err):
		if !l.full {
			l.full = true
			s.log.Warn("no room on the disk for the removal log: removals are kept in memory until the log is rewritten; "+
				"a crash before that brings their messages back, to be uploaded again", "err", err)
		}
		l.due = true
	default:
		return err
	}
	if l.due || l.lines >= l.limit {
		s.kickCleaner()
	}
	return nil
}

// writeRemovalLocked appends line, which starts with a spare byte, to the
// removal log, creating the log if there is none. s.rlogMu is held.
func (s *Spool) writeRemovalLocked(line []byte) error {
	l := &s.rlog
	if l.f == nil {
		f, err := s.createRemovalLog(l.gen+1, true)
		if err != nil {
			return err
		}
		l.f, l.gen, l.lines, l.limit = f, l.gen+1, 0, s.rlogSlack
	}
	if l.torn {
		line[0] = '\n'
	} else {
		line = line[1:]
	}
	if _, err := l.f.Write(line); err != nil {
		l.torn = true
		return err // an *os.PathError, which names the file
	}
	l.torn = false
	l.lines++
	return nil
}

// syncRemovals makes every removal logged so far durable.
func (s *Spool) syncRemovals() error {
	s.rlogMu.Lock()
	files := make([]*os.File, 0, 1+len(s.rlog.stale))
	if s.rlog.f != nil {
		files = append(files, s.rlog.f)
	}
	for _, st := range s.rlog.stale {
		if st.f != nil {
			files = append(files, st.f)
		}
	}
	s.rlogMu.Unlock()
	// Only the cleaner and Open, which hold s.cleanMu or run alone,
	// close these files.
	for _, f := range files {
		if err := s.syncData(f); err != nil {
			return fmt.Errorf("sync %s: %w", f.Name(), err)
		}
	}
	return nil
}

// neededRemovalsLocked returns the removal lines that a new log needs: of
// the removed records in the files that still exist, and the tombstones.
// s.mu and s.logMu are held.
func (s *Spool) neededRemovalsLocked() []removal {
	tombs := make(map[string]removal)
	for k, ref := range s.uidls {
		if ref.tomb {
			tombs[ref.id] = removal{Op: opRemove, ID: ref.id, Mailbox: k.mailbox, UIDL: k.uidl, At: ref.at}
		}
	}
	var out []removal
	seen := make(map[string]bool)
	for _, g := range s.segs {
		for _, id := range g.removed {
			if seen[id] {
				continue
			}
			seen[id] = true
			if r, ok := tombs[id]; ok {
				out = append(out, r)
				delete(tombs, id)
				continue
			}
			out = append(out, removal{Op: opRemove, ID: id})
		}
	}
	for _, r := range tombs {
		out = append(out, r)
	}
	return out
}

// errNoRoom means the disk has no room for a new removal log now.
var errNoRoom = errors.New("no room on the disk")

// rewriteRemovals starts a new generation of the removal log with the
// lines still needed, or none when none are, and deletes the older
// generations once the new one is durable. Removes append to the new log
// while its first lines are being written: the order of the lines does
// not matter. When the disk has no room for the lines it returns
// errNoRoom, having changed nothing. The caller holds s.cleanMu.
func (s *Spool) rewriteRemovals() error {
	s.mu.Lock()
	s.logMu.Lock()
	rs := s.neededRemovalsLocked()
	s.logMu.Unlock()
	if len(rs) > 0 {
		want := int64(0)
		for _, r := range rs {
			want += removalLineBound(r)
		}
		if free, err := freeBytes(s.dir); err == nil && free < want {
			s.mu.Unlock()
			return fmt.Errorf("rewrite the removal log: %d bytes free, want %d: %w", free, want, errNoRoom)
		}
	}
	s.rlogMu.Lock()
	l := &s.rlog
	stale := l.stale
	if l.f != nil {
		stale = append(stale, staleLog{name: rlogName(l.gen), f: l.f})
	}
	var f *os.File
	if len(rs) > 0 {
		var err error
		if f, err = s.createRemovalLog(l.gen+1, false); err != nil {
			s.rlogMu.Unlock()
			s.mu.Unlock()
			return fmt.Errorf("rewrite the removal log: %w", err)
		}
		l.gen++
	}
	*l = removalLog{f: f, gen: l.gen, lines: len(rs), limit: 2*len(rs) + s.rlogSlack, stale: stale}
	s.rlogMu.Unlock()
	s.mu.Unlock()

	if f != nil {
		var b []byte
		for _, r := range rs {
			b = appendRemoval(b, r)
		}
		s.rlogMu.Lock()
		_, err := f.Write(b)
		if err != nil && l.f == f {
			l.torn = true
		}
		s.rlogMu.Unlock()
		if err == nil {
			err = s.syncData(f)
		}
		if err == nil {
			err = s.sync(s.dirFile)
		}
		if err != nil {
			// The older logs stay, and Open reads them all; a later
			// pass tries again.
			s.rlogMu.Lock()
			l.due = true
			s.rlogMu.Unlock()
			return fmt.Errorf("rewrite the removal log: %w", err)
		}
	}

	s.rlogMu.Lock()
	stale = l.stale
	l.stale = nil
	s.rlogMu.Unlock()
	var errs []error
	for _, st := range stale {
		if st.f != nil {
			st.f.Close()
		}
		if err := os.Remove(filepath.Join(s.dir, st.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	// A deletion that a crash loses brings back lines that are no longer
	// needed, or a forgotten tombstone; Open reads them and drops them
	// again, or the poller forgets the tombstone again.
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rewrite the removal log: %w", err)
	}
	return nil
}

// removalLineBound is at least the length of the line of r: the
// checksum, the JSON with its longest time, the newline.
func removalLineBound(r removal) int64 {
	const fixed = len(`00000000 {"op":"remove","id":"","mailbox":"","uidl":"","at":"2006-01-02T15:04:05.999999999-07:00"}`) + 1
	// JSON may escape a byte as \u00XX.
	return int64(fixed + len(r.ID) + 6*(len(r.Mailbox)+len(r.UIDL)))
}

// createRemovalLog creates generation gen of the removal log and, when
// syncDir, makes its directory entry durable. s.rlogMu is held.
func (s *Spool) createRemovalLog(gen uint64, syncDir bool) (*os.File, error) {
	name := rlogName(gen)
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	if !syncDir {
		return f, nil
	}
	if err := s.sync(s.dirFile); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("sync spool directory %s: %w", s.dir, err)
	}
	return f, nil
}
