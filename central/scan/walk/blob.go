package walk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// blob holds a part's decoded bytes: in memory up to a threshold, then in an
// unlinked temporary file, so a large attachment costs disk, not memory, and
// nothing is left behind if the process dies.
type blob struct {
	mem    *[]byte
	f      *os.File
	size   int64
	thresh int
	dir    string
}

var memPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func newBlob(thresh int, dir string) *blob {
	return &blob{thresh: thresh, dir: dir}
}

func (b *blob) Write(p []byte) (int, error) {
	if b.f == nil {
		if b.mem == nil {
			b.mem = memPool.Get().(*[]byte)
			*b.mem = (*b.mem)[:0]
		}
		if len(*b.mem)+len(p) <= b.thresh {
			*b.mem = append(*b.mem, p...)
			b.size += int64(len(p))
			return len(p), nil
		}
		if err := b.spill(); err != nil {
			return 0, err
		}
	}
	n, err := b.f.Write(p)
	b.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("write spill file: %w", err)
	}
	return n, nil
}

func (b *blob) spill() error {
	f, err := os.CreateTemp(b.dir, "osprey-scan-*")
	if err != nil {
		return fmt.Errorf("create spill file: %w", err)
	}
	// Unlinked at once: the open descriptor keeps the data, a crash leaves
	// nothing behind.
	_ = os.Remove(f.Name())
	if _, err := f.Write(*b.mem); err != nil {
		f.Close()
		return fmt.Errorf("write spill file: %w", err)
	}
	b.f = f
	b.release()
	return nil
}

func (b *blob) release() {
	if b.mem != nil {
		if cap(*b.mem) <= 4<<20 {
			memPool.Put(b.mem)
		}
		b.mem = nil
	}
}

var errNegativeOffset = errors.New("read at a negative offset")

// ReadAt implements io.ReaderAt.
func (b *blob) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		// archive/zip computes offsets from the archive's own fields,
		// which a crafted zip can make negative.
		return 0, errNegativeOffset
	}
	if b.f != nil {
		return b.f.ReadAt(p, off)
	}
	if b.mem == nil || off >= int64(len(*b.mem)) {
		return 0, io.EOF
	}
	n := copy(p, (*b.mem)[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// bytes returns the content when it is in memory.
func (b *blob) bytes() ([]byte, bool) {
	if b.f != nil {
		return nil, false
	}
	if b.mem == nil {
		return nil, true
	}
	return *b.mem, true
}

func (b *blob) reader() *io.SectionReader { return io.NewSectionReader(b, 0, b.size) }

// Close frees the memory or closes (and so deletes) the file.
func (b *blob) Close() error {
	b.release()
	if b.f != nil {
		err := b.f.Close()
		b.f = nil
		return err
	}
	return nil
}
