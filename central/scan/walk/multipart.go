package walk

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// multipartReader splits a multipart body at its boundary delimiter lines.
//
// It is ours rather than textproto's because a scanner must bound every
// buffer (a part's header is read through the same bounded path as the
// message's) and must keep going on bodies that mail clients render but the
// RFC forbids: LF line ends, a missing close delimiter, garbage between
// parts, no delimiter at all (the body is then all preamble, and the walker
// scans it as text). Lines are read with bufio.Reader.ReadSlice, so a line
// costs at most the buffer's size.
type multipartReader struct {
	br   *bufio.Reader
	dash []byte // "--" + boundary

	// state of the part being read
	inPart      bool
	partEnded   bool
	atLineStart bool
	pendEOL     [2]byte // line end held back: it belongs to a delimiter if one follows
	pendN       int
	crHeld      bool   // pendEOL holds a CR that ended a full buffer
	out         []byte // bytes of the current line to return
	outPend     []byte // pending line end to return before out
	outPendBuf  [2]byte

	sawDelimiter bool
	closed       bool // close delimiter seen
	unterminated bool // input ended without a close delimiter
	err          error
}

func newMultipartReader(r io.Reader, boundary string, bufSize int) *multipartReader {
	return &multipartReader{
		br:   bufio.NewReaderSize(r, bufSize),
		dash: []byte("--" + boundary),
	}
}

// preamble returns a reader of the bytes before the first delimiter line.
func (mr *multipartReader) preamble() io.Reader {
	mr.startPart()
	return partReader{mr}
}

func (mr *multipartReader) startPart() {
	mr.inPart = true
	mr.partEnded = false
	mr.atLineStart = true
	mr.pendN = 0
	mr.out = nil
	mr.outPend = nil
}

// nextPart discards what is left of the current part and returns a reader of
// the next one (its header and body), or io.EOF after the last.
func (mr *multipartReader) nextPart() (io.Reader, error) {
	if mr.inPart {
		if _, err := io.Copy(io.Discard, partReader{mr}); err != nil {
			return nil, err
		}
		mr.inPart = false
	}
	if mr.err != nil {
		return nil, mr.err
	}
	if mr.closed || mr.unterminated {
		return nil, io.EOF
	}
	mr.startPart()
	return partReader{mr}, nil
}

type partReader struct{ mr *multipartReader }

func (p partReader) Read(b []byte) (int, error) {
	mr := p.mr
	for len(mr.outPend) == 0 && len(mr.out) == 0 {
		if mr.partEnded {
			return 0, io.EOF
		}
		if mr.err != nil {
			return 0, mr.err
		}
		mr.advance()
	}
	n := copy(b, mr.outPend)
	mr.outPend = mr.outPend[n:]
	if n < len(b) {
		m := copy(b[n:], mr.out)
		mr.out = mr.out[m:]
		n += m
	}
	return n, nil
}

// advance reads the next chunk of input into out, or ends the part.
func (mr *multipartReader) advance() {
	line, err := mr.br.ReadSlice('\n')
	full := err == nil
	eof := errors.Is(err, io.EOF)
	if err != nil && !eof && !errors.Is(err, bufio.ErrBufferFull) {
		mr.err = err
		return
	}
	if len(line) == 0 { // end of input
		mr.crHeld = false
		mr.emitPending()
		mr.endOfInput()
		return
	}
	if mr.crHeld {
		mr.crHeld = false
		if full && len(line) == 1 {
			// The LF completing a CR held back at a buffer boundary.
			mr.pendEOL = [2]byte{'\r', '\n'}
			mr.pendN = 2
			mr.atLineStart = true
			return
		}
	}
	if mr.atLineStart && (full || eof) {
		if ok, closing := mr.delimiter(line); ok {
			mr.sawDelimiter = true
			mr.partEnded = true
			mr.pendN = 0
			mr.closed = closing
			if eof && !closing {
				mr.unterminated = true
			}
			return
		}
	}
	mr.emitPending()
	switch {
	case full:
		content, eol := splitEOL(line)
		mr.out = content
		mr.pendN = copy(mr.pendEOL[:], eol)
		mr.atLineStart = true
	case eof:
		mr.out = line
		mr.endOfInput()
	default:
		// A line longer than the buffer is data. A trailing CR may be half
		// of a CRLF line end: hold it back.
		mr.atLineStart = false
		if line[len(line)-1] == '\r' {
			mr.out = line[:len(line)-1]
			mr.pendEOL[0] = '\r'
			mr.pendN = 1
			mr.crHeld = true
			return
		}
		mr.out = line
	}
}

// endOfInput ends the part (and the multipart) when the input ends without
// a close delimiter.
func (mr *multipartReader) endOfInput() {
	mr.partEnded = true
	mr.unterminated = true
}

// emitPending queues the held-back line end: the line after it is data.
func (mr *multipartReader) emitPending() {
	if mr.pendN > 0 {
		mr.outPendBuf = mr.pendEOL
		mr.outPend = mr.outPendBuf[:mr.pendN]
		mr.pendN = 0
	}
}

// delimiter reports whether line is "--boundary" or "--boundary--", followed
// only by linear white space and a line end.
func (mr *multipartReader) delimiter(line []byte) (ok, closing bool) {
	if !bytes.HasPrefix(line, mr.dash) {
		return false, false
	}
	rest := line[len(mr.dash):]
	if bytes.HasPrefix(rest, []byte("--")) {
		closing = true
		rest = rest[2:]
	}
	rest = bytes.TrimRight(rest, " \t\r\n")
	return len(rest) == 0, closing
}

func splitEOL(line []byte) (content, eol []byte) {
	n := len(line)
	if n >= 2 && line[n-2] == '\r' {
		return line[:n-2], line[n-2:]
	}
	return line[:n-1], line[n-1:]
}
