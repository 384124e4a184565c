package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// recovery is what Open learns while it rebuilds the spool.
type recovery struct {
	removed   map[string]*removal // by id, merged from every removal log
	forgotten map[string]bool     // ids whose tombstone was forgotten
	lastID    string
	badLines  int   // of the removal logs
	tornBytes int64 // cut off segments
	tmp       int   // temporary files removed
	corrupt   int   // records quarantined now
	unsaved   int   // damaged records left in place, for lack of space
	expired   int   // tombstones dropped
}

// recover rebuilds the index, the accounting and the tombstones from the
// directory (see the package comment) and deletes what is all removed. It
// writes nothing that needs free space: the removal logs it read are left
// for the cleaner to rewrite.
func (s *Spool) recover() error {
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	rc := &recovery{removed: make(map[string]*removal), forgotten: make(map[string]bool)}
	var segNums, logGens []uint64
	var spills []string
	for _, de := range des {
		name := de.Name()
		if name == lockName || name == reserveName {
			continue
		}
		if !de.Type().IsRegular() {
			s.log.Warn("unknown file in spool", "file", name)
			continue
		}
		if n, ok := parseSegName(name); ok {
			segNums = append(segNums, n)
			continue
		}
		if gen, ok := parseRlogName(name); ok {
			logGens = append(logGens, gen)
			continue
		}
		id, ext, ok := strings.Cut(name, ".")
		if !ok || !validID(id) {
			s.log.Warn("unknown file in spool", "file", name)
			continue
		}
		rc.lastID = max(rc.lastID, id)
		switch "." + ext {
		case extTmp:
			if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			rc.tmp++
		case extMsg:
			spills = append(spills, id)
		case extCorrupt:
		default:
			s.log.Warn("unknown file in spool", "file", name)
		}
	}
	slices.Sort(segNums)
	slices.Sort(logGens)

	// Every removal log: a crash during a rewrite leaves two.
	for _, gen := range logGens {
		name := rlogName(gen)
		f, err := rc.readRemovals(filepath.Join(s.dir, name))
		if err != nil {
			return err
		}
		s.rlog.gen = gen
		s.rlog.stale = append(s.rlog.stale, staleLog{name: name, f: f})
	}
	// The segments, oldest first, so that the later copy of a record that
	// a compaction copied wins.
	for _, n := range segNums {
		g := &segment{name: segName(n), sealed: true}
		if err := s.scanSegment(g, rc); err != nil {
			return fmt.Errorf("scan %s: %w", g.name, err)
		}
		s.segs[g.name] = g
		s.lastSeg = n
	}
	for _, id := range spills {
		if err := s.readSpilled(id, rc); err != nil {
			return err
		}
	}
	s.restoreTombstones(rc)
	s.ids.advance(rc.lastID)
	s.corrupt.Store(uint64(rc.corrupt))

	// Make the quarantined copies durable, then delete what is all
	// removed (the removal logs read are synced first: their lines may
	// have been in the page cache only). Neither needs free space. The
	// lines still needed, among them the removals of the quarantined
	// records, go to a new removal log that the cleaner writes at its
	// first pass, when the disk has room for it; until then the logs read
	// stay, and the next Open reads them again.
	if rc.tmp > 0 || rc.corrupt > 0 {
		if err := s.sync(s.dirFile); err != nil {
			return err
		}
	}
	if err := s.deleteDead(); err != nil {
		return err
	}
	s.rlog.due = len(logGens) > 0 || rc.corrupt > 0
	s.rlog.limit = s.rlogSlack
	st := s.Stats()
	s.log.Info("spool opened", "dir", s.dir, "messages", st.Messages, "bytes", st.Bytes,
		"tombstones", st.Tombstones, "segments", st.Segments, "disk_bytes", st.DiskBytes,
		"removed_temp_files", rc.tmp, "quarantined", rc.corrupt, "not_quarantined", rc.unsaved, "torn_bytes", rc.tornBytes,
		"bad_removal_lines", rc.badLines, "expired_tombstones", rc.expired)
	return nil
}

// readRemovals merges the removal log at path into rc and returns it
// open, for a sync.
func (rc *recovery) readRemovals(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	rs, bad := parseRemovals(b)
	rc.badLines += bad
	for _, r := range rs {
		rc.lastID = max(rc.lastID, r.ID)
		if r.Op == opForget {
			rc.forgotten[r.ID] = true
			continue
		}
		// A line with a UIDL wins over one without: the rewrite of the
		// log after a failed Put, say, writes no UIDL.
		if prev := rc.removed[r.ID]; prev == nil || prev.key() == (uidlKey{}) {
			rc.removed[r.ID] = &r
		}
	}
	return f, nil
}

// scanSegment reads segment g from its start: it indexes its live
// records, notes its removed ones, quarantines the damaged ones, and cuts
// a torn tail.
func (s *Spool) scanSegment(g *segment, rc *recovery) error {
	f, err := os.OpenFile(s.filePath(g), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	br := bufio.NewReaderSize(f, 1<<20)
	var off int64
	for off < size {
		rec, sum, err := scanRecord(br, size-off)
		if errors.Is(err, errFraming) {
			s.log.Warn("cut the torn tail of a segment", "file", g.name, "offset", off, "bytes", size-off, "err", err)
			if err := f.Truncate(off); err != nil {
				return err
			}
			rc.tornBytes += size - off
			size = off
			break
		}
		if err != nil {
			return err
		}
		rc.lastID = max(rc.lastID, rec.id)
		if rc.removed[rec.id] != nil {
			g.removed = append(g.removed, rec.id)
			off += rec.len
			continue
		}
		var key uidlKey
		if sum != rec.crc {
			err = fmt.Errorf("checksum %08x, want %08x", sum, rec.crc)
		} else {
			key, err = rec.key()
		}
		if err != nil {
			if qerr := s.quarantine(f, rec.id, off, rec.len); isNoSpace(qerr) {
				// The record stays where it is, out of the index, and
				// keeps its segment from being deleted, so that a later
				// Open quarantines it.
				s.log.Error("a damaged record stays in its segment: no room on the disk to quarantine it",
					"file", g.name, "offset", off, "id", rec.id, "err", err, "quarantine_err", qerr)
				g.keep = true
				rc.unsaved++
				off += rec.len
				continue
			} else if qerr != nil {
				return qerr
			}
			s.log.Error("quarantined a damaged record", "file", g.name, "offset", off, "id", rec.id, "err", err)
			rc.removed[rec.id] = &removal{Op: opRemove, ID: rec.id}
			g.removed = append(g.removed, rec.id)
			rc.corrupt++
			off += rec.len
			continue
		}
		s.addLive(rec.id, &entry{seg: g, off: off, len: rec.len, hdrEnd: rec.hdrEnd, crc: rec.crc, key: key})
		off += rec.len
	}
	g.size = size
	return nil
}

// quarantine copies the record of id at off in f, n bytes, to
// <id>.corrupt: a file in the format of a spilled message, for a human.
func (s *Spool) quarantine(f *os.File, id string, off, n int64) error {
	out, err := os.OpenFile(s.path(id, extCorrupt), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.NewSectionReader(f, off, n))
	if err == nil {
		err = s.sync(out)
	}
	if err = errors.Join(err, out.Close()); err != nil {
		// A copy cut short must not pass for the quarantined record
		// at the next Open.
		return errors.Join(err, os.Remove(out.Name()))
	}
	return nil
}

// readSpilled indexes the spilled message id, or quarantines its file.
func (s *Spool) readSpilled(id string, rc *recovery) error {
	g := &segment{name: id + extMsg, spill: true, sealed: true}
	path := s.filePath(g)
	rec, err := readFile(path)
	if err == nil && rec.id != id {
		err = fmt.Errorf("%s holds the header of %s", g.name, rec.id)
	}
	var key uidlKey
	if err == nil {
		key, err = rec.key()
	}
	if err != nil {
		s.log.Error("quarantined an unreadable spool file", "file", g.name, "err", err)
		rc.corrupt++
		return os.Rename(path, s.path(id, extCorrupt))
	}
	g.size = rec.len
	s.segs[g.name] = g
	if rc.removed[id] != nil {
		g.removed = append(g.removed, id)
		return nil
	}
	s.addLive(id, &entry{seg: g, len: rec.len, hdrEnd: rec.hdrEnd, crc: rec.crc, key: key})
	return nil
}

// addLive indexes a live record found by Open. A record of the same id
// found before is an older copy, which compaction left.
func (s *Spool) addLive(id string, e *entry) {
	if old := s.index[id]; old != nil {
		old.seg.live--
		old.seg.liveBytes -= old.len
		s.bytes -= old.len
		e.dups = withDup(old.dups, old.seg)
	}
	s.index[id] = e
	s.bytes += e.len
	e.seg.live++
	e.seg.liveBytes += e.len
	if e.key != (uidlKey{}) {
		s.uidls[e.key] = uidlRef{id: id}
	}
}

// restoreTombstones turns the removal records with a UIDL into
// tombstones, unless forgotten or older than the retention.
func (s *Spool) restoreTombstones(rc *recovery) {
	now := s.now()
	for id, r := range rc.removed {
		k := r.key()
		if k == (uidlKey{}) || rc.forgotten[id] {
			continue
		}
		if now.Sub(r.At) > s.uidlRetention {
			rc.expired++
			continue
		}
		ref, ok := s.uidls[k]
		if ok && (!ref.tomb || ref.at.After(r.At)) {
			// A live message, or a later tombstone, has the UIDL.
			continue
		}
		if !ok {
			s.tombs++
		}
		s.uidls[k] = uidlRef{id: id, tomb: true, at: r.At}
	}
}
