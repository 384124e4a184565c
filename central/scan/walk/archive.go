package walk

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"mime"
	"path"
	"strings"
)

// archive tracks one archive's expansion against the compression ratio.
type archive struct {
	p        *Part
	m        leafMeta
	expanded int64
}

// ratioCap is how many more bytes the archive may expand to.
func (a *archive) ratioCap(w *walker) int64 {
	return max(ratioFloor, int64(w.lim.MaxCompressionRatio)*a.p.Stored()) - a.expanded
}

// skip visits a member the walk does not read: its name and declared size
// are still worth matching.
func (w *walker) skip(a *archive, name string, size int64, encrypted bool) {
	w.finishLeaf(&stored{size: size, truncated: true}, a.memberMeta(name, encrypted))
}

func (a *archive) memberMeta(name string, encrypted bool) leafMeta {
	declared := mime.TypeByExtension(strings.ToLower(path.Ext(name)))
	if declared == "" {
		declared = "application/octet-stream"
	}
	declared, _, _ = strings.Cut(declared, ";")
	return leafMeta{
		kind:      KindMember,
		id:        a.m.id,
		filename:  path.Base(name),
		declared:  declared,
		depth:     a.m.depth + 1,
		names:     a.p.Names,
		memberOf:  name,
		inArchive: true,
		encrypted: encrypted,
	}
}

// member reads one member of declared size (-1 if unknown) and compressed
// size (-1 if unknown) from r, within every bound, and visits it. It reports
// whether to go on with the archive: not after a ratio bound (the archive is
// a bomb: no archive is expanded after one) or a global one.
func (w *walker) member(a *archive, r func() (io.Reader, error), name string, declared, compressed int64) bool {
	if !w.countPart() {
		return false
	}
	name = clip(strings.ToValidUTF8(strings.ReplaceAll(name, "\x00", ""), "?"))
	at := where(append(a.p.Names[:len(a.p.Names):len(a.p.Names)], name), a.m.id)
	partCap, totalCap, ratioCap := w.lim.MaxPartBytes, w.lim.MaxTotalBytes-w.total, a.ratioCap(w)
	if declared >= 0 {
		bound := ""
		switch {
		case declared > totalCap:
			bound = LimitTotalBytes
			w.stopped = true
		case declared > ratioCap,
			compressed >= 0 && declared >= ratioFloor && declared/max(compressed, 1) > int64(w.lim.MaxCompressionRatio):
			bound = LimitRatio
		case declared > partCap:
			bound = LimitPartBytes
		}
		if bound != "" {
			w.limit(bound, at)
			if bound == LimitRatio {
				w.bombed = true
			}
			w.skip(a, name, declared, false)
			return bound != LimitRatio && !w.done()
		}
	}
	src, err := r()
	if err != nil {
		w.incomplete++
		w.note("open member %s: %v", at, clipErr(err))
		w.skip(a, name, max(declared, 0), false)
		return !w.done()
	}
	s := w.store(src, min(partCap, totalCap, ratioCap), false, true)
	a.expanded += s.size
	if s.truncated {
		switch {
		case s.size > totalCap:
			w.limit(LimitTotalBytes, at)
			w.stopped = true
		case s.size > ratioCap:
			w.limit(LimitRatio, at)
			w.bombed = true
		default:
			w.limit(LimitPartBytes, at)
		}
		// A prefix has no digest worth matching; the name still is.
	}
	if s.readErr != nil && !w.fatal() {
		w.incomplete++
		w.note("read member %s: %v", at, clipErr(s.readErr))
	}
	w.finishLeaf(s, a.memberMeta(name, false))
	return !w.bombed && !w.done()
}

func (w *walker) expandZip(p *Part, m leafMeta) {
	// The central directory costs memory per entry: refuse one with more
	// entries than the parts bound allows before archive/zip reads it.
	if n, ok := zipEntries(p.content, p.Stored()); ok && n > uint64(w.lim.MaxParts-w.msg.Parts) {
		w.limit(LimitParts, where(p.Names, m.id))
		w.stopped = true
		return
	}
	zr, err := zip.NewReader(p.content, p.Stored())
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		w.incomplete++
		w.note("unreadable zip %s: %v", where(p.Names, m.id), clipErr(err))
		return
	}
	a := &archive{p: p, m: m}
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") && f.UncompressedSize64 == 0 {
			continue // a directory
		}
		if f.Flags&0x1 != 0 {
			if !w.countPart() {
				return
			}
			w.incomplete++
			w.note("encrypted member %s in %s", clip(f.Name), where(p.Names, m.id))
			w.skip(a, f.Name, int64(min(f.UncompressedSize64, 1<<62)), true)
			if w.done() {
				return
			}
			continue
		}
		declared := int64(min(f.UncompressedSize64, 1<<62))
		compressed := int64(min(f.CompressedSize64, 1<<62))
		// archive/zip fails a member that inflates past its declared size,
		// so the declared size is a true bound.
		if !w.member(a, func() (io.Reader, error) { return f.Open() }, f.Name, declared, compressed) {
			return
		}
	}
}

// zipEntries reads the entry count from a zip's end of central directory
// record (or its zip64 form).
func zipEntries(r io.ReaderAt, size int64) (uint64, bool) {
	const eocdLen, maxComment = 22, 65535
	n := min(size, eocdLen+maxComment)
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
		return 0, false
	}
	i := bytes.LastIndex(buf, []byte("PK\x05\x06"))
	if i < 0 || len(buf)-i < eocdLen {
		return 0, false
	}
	count := uint64(binary.LittleEndian.Uint16(buf[i+10:]))
	if count != 0xffff {
		return count, true
	}
	// zip64: the locator sits just before the record and points at the
	// zip64 end of central directory record.
	if i < 20 || !bytes.Equal(buf[i-20:i-16], []byte("PK\x06\x07")) {
		return 0, false
	}
	off := int64(binary.LittleEndian.Uint64(buf[i-20+8:]))
	var rec [56]byte
	if off < 0 || off > size-56 {
		return 0, false
	}
	if _, err := r.ReadAt(rec[:], off); err != nil || !bytes.Equal(rec[:4], []byte("PK\x06\x06")) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(rec[32:]), true
}

func (w *walker) expandGzip(p *Part, m leafMeta) {
	gr, err := gzip.NewReader(p.Open())
	if err != nil {
		w.incomplete++
		w.note("unreadable gzip %s: %v", where(p.Names, m.id), clipErr(err))
		return
	}
	name := path.Base(gr.Name)
	if gr.Name == "" {
		base := strings.TrimSuffix(p.Filename, path.Ext(p.Filename))
		switch strings.ToLower(path.Ext(p.Filename)) {
		case ".tgz":
			name = base + ".tar"
		case ".gz":
			name = base
		}
		if name == "" || name == "." {
			name = "gzip content"
		}
	}
	a := &archive{p: p, m: m}
	w.member(a, func() (io.Reader, error) { return gr, nil }, name, -1, -1)
}

func (w *walker) expandTar(p *Part, m leafMeta) {
	tr := tar.NewReader(p.Open())
	a := &archive{p: p, m: m}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			w.incomplete++
			w.note("unreadable tar %s: %v", where(p.Names, m.id), clipErr(err))
			return
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeGNUSparse {
			continue
		}
		if !w.member(a, func() (io.Reader, error) { return tr, nil }, h.Name, h.Size, -1) {
			return
		}
	}
}
