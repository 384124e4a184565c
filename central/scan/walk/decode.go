package walk

import (
	"encoding/base64"
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
		return base64.NewDecoder(base64.StdEncoding, &b64Filter{r: r, st: st}), st
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

// b64Filter passes only base64 alphabet characters, stops at the padding,
// and pads a truncated final quantum so the decoder keeps what it can.
type b64Filter struct {
	r      io.Reader
	st     *decodeState
	count  int // alphabet characters passed, mod 4
	done   bool
	tail   []byte
	padBuf [3]byte
	buf    [4096]byte
}

func (f *b64Filter) Read(p []byte) (int, error) {
	if len(f.tail) > 0 {
		n := copy(p, f.tail)
		f.tail = f.tail[n:]
		return n, nil
	}
	if f.done {
		return 0, io.EOF
	}
	for {
		if len(p) > len(f.buf) {
			p = p[:len(f.buf)]
		}
		n, err := f.r.Read(f.buf[:len(p)])
		out := 0
		bad := false
		for i := 0; i < n; i++ {
			c := f.buf[i]
			switch {
			case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
				p[out] = c
				out++
				f.count = (f.count + 1) % 4
			case c == '=':
				if bad {
					f.st.note("invalid characters in base64 skipped")
				}
				f.finish()
				f.drain(f.buf[i+1 : n])
				if err == nil {
					f.drainRest()
				}
				return out, nil
			case c == ' ', c == '\t', c == '\r', c == '\n':
			default:
				bad = true
			}
		}
		if bad {
			f.st.note("invalid characters in base64 skipped")
		}
		if err != nil {
			if err == io.EOF {
				f.finish()
				return out, nil
			}
			return out, err
		}
		if out > 0 {
			return out, nil
		}
	}
}

// finish pads the last quantum: "xx" → "xx==", "xxx" → "xxx=".
func (f *b64Filter) finish() {
	f.done = true
	switch f.count {
	case 2:
		f.tail = append(f.padBuf[:0], '=', '=')
	case 3:
		f.tail = append(f.padBuf[:0], '=')
	}
	// A lone last character cannot be decoded: the decoder reports it and
	// the walker keeps the bytes decoded before it.
}

// drain checks what follows the padding in buf and the rest of the input:
// anything but more padding and white space is ignored, with a note.
func (f *b64Filter) drain(b []byte) {
	for _, c := range b {
		switch c {
		case '=', ' ', '\t', '\r', '\n':
		default:
			f.st.note("data after base64 padding ignored")
			return
		}
	}
}

func (f *b64Filter) drainRest() {
	for {
		n, err := f.r.Read(f.buf[:])
		f.drain(f.buf[:n])
		if err != nil {
			return
		}
	}
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
