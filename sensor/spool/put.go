package spool

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// chunkSize is how much of a body Put reads at a time.
const chunkSize = 64 << 10

// bufs holds the buffers of bodies and records.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 2*chunkSize); return &b }}

// outcome says how a Put ended, for Stats.
type outcome int

const (
	spooled  outcome = iota
	aborted          // the body or the context failed, or the spool closed
	rejected         // ErrFull or ErrLowDisk
	failed           // an I/O error of the spool
)

// Put spools a message: it reads body to its end, writes it with meta, and
// returns its id once the message is durable (see the package comment).
// Envelope.ReceivedAt is set to the spool's clock when it is missing.
//
// When the body's Read fails, nothing is kept and Put returns that error,
// wrapped. Put fails with ErrFull or ErrLowDisk when the message does not
// fit, also while the body is read, with ErrClosed when the spool closes
// first, with the context's error when ctx is done before the message is
// written, and with an I/O error, which Check reports from then on. In
// none of these cases is body read to its end.
//
// A POP3 message whose UIDL the spool already knows (see HasUIDL) is not
// spooled again: Put reads its body to the end and returns the id of the
// first copy.
func (s *Spool) Put(ctx context.Context, meta Meta, body io.Reader) (string, error) {
	if err := ctx.Err(); err != nil {
		s.aborted.Add(1)
		return "", err
	}
	if meta.UIDL != "" && meta.Envelope.GetMailbox() == "" {
		return "", errors.New("spool message: uidl without mailbox")
	}
	now := s.now()
	if meta.Envelope.GetReceivedAt() == nil {
		env := &ospreyv1.Envelope{}
		if meta.Envelope != nil {
			env = proto.CloneOf(meta.Envelope)
		}
		env.ReceivedAt = timestamppb.New(now)
		meta.Envelope = env
	}
	id := s.ids.next(now)
	hdr, err := encodeHeader(id, meta)
	if err != nil {
		return "", fmt.Errorf("spool message: %w", err)
	}
	free, ferr := freeBytes(s.dir)
	if err := s.lowDisk(free, ferr); err != nil {
		s.rejected.Add(1)
		return "", err
	}

	key := meta.key()
	reserved := int64(len(hdr) + maxSizeDigits + footerLen)
	var seal func() ([]byte, error)
	if meta.Seal != nil {
		reserved += SealRoom
		seal = func() ([]byte, error) {
			meta.Seal(meta.Envelope)
			sealed, err := encodeHeader(id, meta)
			if err != nil {
				return nil, fmt.Errorf("spool message: %w", err)
			}
			if len(sealed) > len(hdr)+SealRoom {
				return nil, fmt.Errorf("spool message: sealing the envelope adds %d bytes to the header, more than %d", len(sealed)-len(hdr), SealRoom)
			}
			return sealed, nil
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", ErrClosed
	}
	if key != (uidlKey{}) {
		if ref, ok := s.uidls[key]; ok {
			s.mu.Unlock()
			if _, err := io.Copy(io.Discard, body); err != nil {
				s.aborted.Add(1)
				return "", fmt.Errorf("read message body: %w", err)
			}
			return ref.id, nil
		}
		if s.putting[key] {
			s.mu.Unlock()
			return "", fmt.Errorf("uidl %q of %s is being spooled", key.uidl, key.mailbox)
		}
	}
	if err := s.capacityLocked(reserved); err != nil {
		s.mu.Unlock()
		s.rejected.Add(1)
		return "", err
	}
	s.inflight++
	s.reserved += reserved
	if key != (uidlKey{}) {
		s.putting[key] = true
	}
	s.mu.Unlock()

	e, g, out, err := s.write(ctx, id, hdr, key, body, &reserved, seal)

	s.mu.Lock()
	s.inflight--
	s.reserved -= reserved
	delete(s.putting, key)
	if out == spooled {
		s.index[id] = e
		s.added = append(s.added, id)
		s.bytes += e.len
		g.live++
		g.liveBytes += e.len
		if key != (uidlKey{}) {
			if s.uidls[key].tomb {
				s.tombs--
			}
			s.uidls[key] = uidlRef{id: id}
		}
		s.ioErr = nil
	} else if g != nil {
		// The record is in a segment, and may reach the disk although
		// the sender is told to retry: remove it, on a best effort basis.
		g.removed = append(g.removed, id)
	}
	s.mu.Unlock()
	if g != nil {
		if out != spooled {
			if err := s.logRemoval(removal{Op: opRemove, ID: id}); err != nil {
				s.log.Warn("cannot remove the record of a failed put", "id", id, "err", err)
			}
		}
		s.doneInflight(g)
	}

	switch out {
	case spooled:
		s.puts.Add(1)
		select {
		case s.ready <- struct{}{}:
		default:
		}
		return id, nil
	case aborted:
		s.aborted.Add(1)
	case rejected:
		s.rejected.Add(1)
	case failed:
		s.failures.Add(1)
		s.setIOErr(err)
		s.kickCleaner()
	}
	return "", err
}

// write reads the body of message id, whose header without size is hdr,
// and appends its record to the log, or spills it to a file of its own
// when it is larger than spillSize; it returns the message's index entry
// once the record is durable. It adds the bytes of the body it reserves to
// *reserved. A non-nil segment is one whose inflight count holds the
// record: the caller ends it, also when write fails. seal, when set,
// returns the header to write once the body has been read (Meta.Seal).
func (s *Spool) write(ctx context.Context, id string, hdr []byte, key uidlKey, body io.Reader, reserved *int64, seal func() ([]byte, error)) (*entry, *segment, outcome, error) {
	buf := bufs.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= spillSize+chunkSize {
			bufs.Put(buf)
		}
	}()
	b := (*buf)[:0]
	var crc uint32
	for {
		if out, err := s.proceed(ctx); err != nil {
			return nil, nil, out, err
		}
		b = slices.Grow(b, chunkSize)
		n, rerr := fill(body, b[len(b):len(b)+chunkSize])
		if n > 0 {
			if err := s.reserve(int64(n)); err != nil {
				return nil, nil, rejected, err
			}
			*reserved += int64(n)
			crc = crc32.Update(crc, castagnoli, b[len(b):len(b)+n])
			b = b[:len(b)+n]
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, nil, aborted, fmt.Errorf("read message body: %w", rerr)
		}
		if len(b) > spillSize {
			*buf = b
			return s.spill(ctx, id, hdr, key, b, crc, body, reserved, seal)
		}
	}
	*buf = b
	if seal != nil {
		var err error
		if hdr, err = seal(); err != nil {
			return nil, nil, aborted, err
		}
	}

	if err := ctx.Err(); err != nil {
		return nil, nil, aborted, err
	}
	if err := s.enter(); err != nil {
		return nil, nil, aborted, err
	}
	defer s.pending.Done()
	rbuf := bufs.Get().(*[]byte)
	rec := appendRecord((*rbuf)[:0], hdr, b, crc)
	g, off, w, err := s.appendLog(rec)
	*rbuf = rec
	bufs.Put(rbuf)
	if err != nil {
		return nil, nil, failed, err
	}
	if err := <-w; err != nil {
		return nil, g, failed, err
	}
	e := &entry{seg: g, off: off, len: int64(len(rec)), crc: crc, key: key}
	e.hdrEnd = e.len - int64(len(b)) - footerLen
	return e, g, spooled, nil
}

// proceed returns an error when a Put must stop reading its body.
func (s *Spool) proceed(ctx context.Context) (outcome, error) {
	if err := ctx.Err(); err != nil {
		return aborted, err
	}
	select {
	case <-s.closing:
		return aborted, ErrClosed
	default:
	}
	return spooled, nil
}

// spill writes message id to a file of its own: its header, the head of
// its body that write read already (with checksum crc), and the rest of
// body; it fsyncs the file, renames it into place and waits for the
// directory fsync. Whatever fails, it leaves no file behind. With seal,
// the header is written padded with SealRoom spaces and overwritten with
// the sealed one, padded to the same length, before the fsync.
func (s *Spool) spill(ctx context.Context, id string, hdr []byte, key uidlKey, head []byte, crc uint32, body io.Reader, reserved *int64, seal func() ([]byte, error)) (*entry, *segment, outcome, error) {
	tmp := s.path(id, extTmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, nil, failed, fmt.Errorf("create %s: %w", tmp, err)
	}
	open, renamed := true, false
	defer func() {
		if open {
			f.Close()
		}
		if !renamed {
			os.Remove(tmp)
		}
	}()

	if seal != nil {
		hdr = padHeader(hdr, len(hdr)+SealRoom)
	}
	if _, err := f.Write(hdr); err != nil {
		return nil, nil, failed, fmt.Errorf("write %s: %w", tmp, err)
	}
	if _, err := f.Write(head); err != nil {
		return nil, nil, failed, fmt.Errorf("write %s: %w", tmp, err)
	}
	size := int64(len(head))
	chunk := head[:chunkSize]
	for {
		if out, err := s.proceed(ctx); err != nil {
			return nil, nil, out, err
		}
		n, rerr := fill(body, chunk)
		if n > 0 {
			if err := s.reserve(int64(n)); err != nil {
				return nil, nil, rejected, err
			}
			*reserved += int64(n)
			if _, err := f.Write(chunk[:n]); err != nil {
				return nil, nil, failed, fmt.Errorf("write %s: %w", tmp, err)
			}
			crc = crc32.Update(crc, castagnoli, chunk[:n])
			size += int64(n)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, nil, aborted, fmt.Errorf("read message body: %w", rerr)
		}
	}
	if _, err := f.Write(appendFooter(nil, size, crc)); err != nil {
		return nil, nil, failed, fmt.Errorf("write %s: %w", tmp, err)
	}
	if seal != nil {
		sealed, err := seal()
		if err != nil {
			return nil, nil, aborted, err
		}
		if _, err := f.WriteAt(padHeader(sealed, len(hdr)), 0); err != nil {
			return nil, nil, failed, fmt.Errorf("write %s: %w", tmp, err)
		}
	}
	if err := s.sync(f); err != nil {
		return nil, nil, failed, fmt.Errorf("sync %s: %w", tmp, err)
	}
	open = false
	if err := f.Close(); err != nil {
		return nil, nil, failed, fmt.Errorf("close %s: %w", tmp, err)
	}

	if err := ctx.Err(); err != nil {
		return nil, nil, aborted, err
	}
	if err := s.enter(); err != nil {
		return nil, nil, aborted, err
	}
	defer s.pending.Done()
	final := s.path(id, extMsg)
	if err := os.Rename(tmp, final); err != nil {
		return nil, nil, failed, fmt.Errorf("rename %s: %w", tmp, err)
	}
	renamed = true
	if err := s.commitDir(); err != nil {
		os.Remove(final)
		return nil, nil, failed, err
	}
	e := &entry{len: int64(len(hdr)) + size + footerLen, hdrEnd: int64(len(hdr)), crc: crc, key: key}
	e.seg = &segment{name: id + extMsg, spill: true, sealed: true, size: e.len, inflight: 1}
	s.logMu.Lock()
	s.segs[e.seg.name] = e.seg
	s.logMu.Unlock()
	return e, e.seg, spooled, nil
}

// reserve takes n bytes of the byte budget for a Put in progress.
func (s *Spool) reserve(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.bytes + s.reserved; b+n > s.maxBytes {
		return fmt.Errorf("message does not fit the %d bytes left of %d: %w", s.maxBytes-b, s.maxBytes, ErrFull)
	}
	s.reserved += n
	return nil
}

// fill reads from r until buf is full or Read fails; it returns io.EOF at
// the end of r.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
