package spool

import (
	"errors"
	"fmt"
	"slices"
)

// removeKicks is how many Removes may pass between two looks of the
// cleaner at the removal log and at compaction.
const removeKicks = 256

// Remove removes message id, after the central acknowledged its upload: it
// drops it from the index and appends a removal record to the removal
// log, without waiting for a sync (see the package comment). A POP3
// message leaves a tombstone that keeps its UIDL known to HasUIDL. A
// removal that a crash loses brings the message back at the next Open; it
// is then uploaded again, which the central's idempotency by message id
// makes harmless. When the removal record cannot be written, the message
// stays and Remove returns the error.
func (s *Spool) Remove(id string) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	e, ok := s.index[id]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("remove %s: %w", id, ErrNotFound)
	}
	// The index changes before the log, so that a rewrite of the log
	// that snapshots the index in between keeps the line.
	delete(s.index, id)
	s.bytes -= e.len
	g := e.seg
	g.live--
	g.liveBytes -= e.len
	g.removing++
	g.removed = append(g.removed, id)
	for _, d := range e.dups {
		d.removed = append(d.removed, id)
	}
	r := removal{Op: opRemove, ID: id}
	var prev uidlRef
	if e.key != (uidlKey{}) {
		r.Mailbox, r.UIDL, r.At = e.key.mailbox, e.key.uidl, s.now()
		prev = s.uidls[e.key]
		s.uidls[e.key] = uidlRef{id: id, tomb: true, at: r.At}
		s.tombs++
	}
	s.pending.Add(1)
	s.mu.Unlock()
	defer s.pending.Done()

	err := s.logRemoval(r)

	s.mu.Lock()
	g.removing--
	if err != nil {
		s.index[id] = e
		s.bytes += e.len
		g.live++
		g.liveBytes += e.len
		g.removed = dropLast(g.removed, id)
		for _, d := range e.dups {
			d.removed = dropLast(d.removed, id)
		}
		if e.key != (uidlKey{}) {
			if prev == (uidlRef{}) {
				delete(s.uidls, e.key)
			} else {
				s.uidls[e.key] = prev
			}
			s.tombs--
		}
	}
	empty := g.live == 0
	s.mu.Unlock()
	if err != nil {
		s.setIOErr(err)
		return fmt.Errorf("remove %s: %w", id, err)
	}
	if n := s.removes.Add(1); empty || n%removeKicks == 0 {
		s.kickCleaner()
	}
	return nil
}

// dropLast removes the last occurrence of id from ids.
func dropLast(ids []string, id string) []string {
	for i := len(ids) - 1; i >= 0; i-- {
		if ids[i] == id {
			return slices.Delete(ids, i, i+1)
		}
	}
	return ids
}

// ForgetUIDLs drops the tombstones of mailbox whose UIDL keep rejects; the
// POP3 poller calls it with the server's UIDL listing, so that the spool
// remembers a UIDL exactly as long as the server has the message. UIDLs of
// messages still spooled are never forgotten. The removal log is not
// synced: a forgotten tombstone that a crash brings back is dropped again
// by the next call, or at Open once it is older than Options.UIDLRetention.
func (s *Spool) ForgetUIDLs(mailbox string, keep func(uidl string) bool) error {
	type tomb struct {
		key uidlKey
		ref uidlRef
	}
	var tombs []tomb
	s.mu.Lock()
	for k, ref := range s.uidls {
		if ref.tomb && k.mailbox == mailbox {
			tombs = append(tombs, tomb{k, ref})
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, t := range tombs {
		if keep(t.key.uidl) {
			continue
		}
		// As in Remove, memory first, then the log.
		s.mu.Lock()
		if s.uidls[t.key] != t.ref {
			s.mu.Unlock()
			continue
		}
		delete(s.uidls, t.key)
		s.tombs--
		s.mu.Unlock()
		if err := s.logRemoval(removal{Op: opForget, ID: t.ref.id}); err != nil {
			errs = append(errs, err)
			s.mu.Lock()
			if _, ok := s.uidls[t.key]; !ok {
				s.uidls[t.key] = t.ref
				s.tombs++
			}
			s.mu.Unlock()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("forget uidls of %s: %w", mailbox, err)
	}
	return nil
}

// HasUIDL reports whether a message polled from mailbox with uidl is
// spooled, or was spooled and removed and its tombstone is kept.
func (s *Spool) HasUIDL(mailbox, uidl string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.uidls[uidlKey{mailbox, uidl}]
	return ok
}
