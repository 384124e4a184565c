package walk

import (
	"encoding/base64"
	"errors"
	"io"
	"mime/quotedprintable"
	"strings"
)

// decodeTransfer returns a reader of the part's decoded bytes. Decoding is
// lenient, as mail clients are: base64 skips characters outside its
// alphabet and ignores what follows its padding; an unknown encoding is read
// as is. The notes say what was wrong.
func decodeTransfer(cte string, r io.Reader) (io.Reader, *decodeState) {
	st := &decodeState{}
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return &b64Reader{r: r, st: st}, st
	case "quoted-printable":
		return &qpReader{r: quotedprintable.NewReader(r), st: st}, st
	case "", "7bit", "8bit", "binary":
		return r, st
	default:
		st.note("unknown Content-Transfer-Encoding " + strings.ToValidUTF8(clip(cte), "") + ": read as is")
		return r, st
	}
}

type decodeState struct {
	notes []string
}

func (s *decodeState) note(n string) {
	for _, m := range s.notes {
		if m == n {
			return
		}
	}
	s.notes = append(s.notes, n)
}

// b64Class classifies bytes for base64: 1 alphabet, 2 padding, 3 white
// space, 0 anything else.
var b64Class = func() (t [256]byte) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = 1
	}
	t['='] = 2
	for _, c := range []byte(" \t\r\n") {
		t[c] = 3
	}
	return t
}()

// b64Reader decodes base64 leniently: it skips characters outside the
// alphabet, stops at the padding (noting anything but padding and white
// space after it), and pads a truncated final quantum so the bytes before
// it are kept. A lone final character cannot be decoded and is dropped.
type b64Reader struct {
	r      io.Reader
	st     *decodeState
	in     [4096]byte
	q      [4096 + 4]byte // alphabet characters not yet decoded
	qn     int
	dec    [3 * (4096 + 4) / 4]byte
	out    []byte
	padded bool // the padding was seen: only drain what follows
	eof    bool
	err    error
}

func (b *b64Reader) Read(p []byte) (int, error) {
	for len(b.out) == 0 {
		if b.eof {
			if b.err != nil {
				return 0, b.err
			}
			return 0, io.EOF
		}
		b.fill()
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	return n, nil
}

// fill reads one chunk of input and decodes the whole quanta it completes.
func (b *b64Reader) fill() {
	n, err := b.r.Read(b.in[:])
	bad, after := false, false
	for _, c := range b.in[:n] {
		switch b64Class[c] {
		case 1:
			if b.padded {
				after = true
				continue
			}
			b.q[b.qn] = c
			b.qn++
		case 2:
			b.padded = true
		case 0:
			if b.padded {
				after = true
			} else {
				bad = true
			}
		}
	}
	if bad {
		b.st.note("invalid characters in base64 skipped")
	}
	if after {
		b.st.note("data after base64 padding ignored")
	}
	final := err != nil
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err
	}
	m := b.qn / 4 * 4
	if final {
		switch b.qn % 4 {
		case 2:
			b.q[b.qn], b.q[b.qn+1] = '=', '='
			m = b.qn + 2
		case 3:
			b.q[b.qn] = '='
			m = b.qn + 1
		case 1:
			b.st.note("truncated base64")
		}
		b.eof = true
	}
	dn, derr := base64.StdEncoding.Decode(b.dec[:], b.q[:m])
	if derr != nil && b.err == nil {
		b.err = derr
		b.eof = true
	}
	b.out = b.dec[:dn]
	b.qn = copy(b.q[:], b.q[min(m, b.qn):b.qn])
}

// qpReader stops at the first quoted-printable error with a note instead of
// failing the part.
type qpReader struct {
	r    io.Reader
	st   *decodeState
	done bool
}

func (q *qpReader) Read(p []byte) (int, error) {
	if q.done {
		return 0, io.EOF
	}
	n, err := q.r.Read(p)
	if err != nil && err != io.EOF {
		q.st.note("malformed quoted-printable: " + err.Error())
		q.done = true
		return n, io.EOF
	}
	return n, err
}
