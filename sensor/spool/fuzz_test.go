package spool

import (
	"bufio"
	"bytes"
	"errors"
	"hash/crc32"
	"testing"
	"time"
)

// FuzzScanSegment scans arbitrary bytes as a segment, as Open does: it
// must stop at broken framing, never read past the end, and find again
// the records it was seeded with.
func FuzzScanSegment(f *testing.F) {
	var g idGen
	hdr, err := encodeHeader(g.next(t0), smtpMeta())
	if err != nil {
		f.Fatal(err)
	}
	body := []byte("Subject: hi\r\n\r\nhello\r\n")
	rec := appendRecord(nil, hdr, body, crc32.Checksum(body, castagnoli))
	f.Add(rec)
	f.Add(append(append([]byte(nil), rec...), rec[:len(rec)-3]...))
	f.Add(rec[:prefixLen+4])
	f.Add([]byte("OSPS\x01\x00\x00\x00\x02{}"))
	f.Fuzz(func(t *testing.T, seg []byte) {
		br := bufio.NewReader(bytes.NewReader(seg))
		size := int64(len(seg))
		for off := int64(0); off < size; {
			rec, sum, err := scanRecord(br, size-off)
			if errors.Is(err, errFraming) {
				return
			}
			if err != nil {
				t.Fatalf("at %d: %v, want a framing error or none", off, err)
			}
			if rec.len <= 0 || off+rec.len > size || rec.hdrEnd+rec.size+footerLen != rec.len || !validID(rec.id) {
				t.Fatalf("at %d of %d: record %+v", off, size, rec)
			}
			if want := crc32.Checksum(seg[off+rec.hdrEnd:off+rec.hdrEnd+rec.size], castagnoli); sum != want {
				t.Fatalf("at %d: CRC of the body %08x, want %08x", off, sum, want)
			}
			off += rec.len
		}
	})
}

// FuzzParseRemovals parses arbitrary bytes as a removal log: every line
// it returns must be one that appendRemoval writes the same way.
func FuzzParseRemovals(f *testing.F) {
	var g idGen
	var log []byte
	log = appendRemoval(log, removal{Op: opRemove, ID: g.next(t0)})
	log = appendRemoval(log, removal{Op: opRemove, ID: g.next(t0), Mailbox: "a@pop.example.com", UIDL: "u1", At: t0.Add(time.Second)})
	log = appendRemoval(log, removal{Op: opForget, ID: g.next(t0)})
	f.Add(log)
	f.Add(log[:len(log)-7])
	f.Add(append([]byte("\n\n"), log[10:]...))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, _ := parseRemovals(b)
		for _, r := range rs {
			if !validID(r.ID) || r.Op != opRemove && r.Op != opForget {
				t.Fatalf("parsed %+v", r)
			}
			again, bad := parseRemovals(appendRemoval(nil, r))
			if bad != 0 || len(again) != 1 || !again[0].At.Equal(r.At) {
				t.Fatalf("%+v does not survive a round trip: %+v, %d bad", r, again, bad)
			}
			again[0].At = r.At
			if again[0] != r {
				t.Fatalf("round trip of %+v: %+v", r, again[0])
			}
		}
	})
}
