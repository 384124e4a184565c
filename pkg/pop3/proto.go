package pop3

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Status of a reply line.
const (
	statusBad = iota
	statusOK
	statusERR
)

// parseStatus splits a status line into its indicator and its text. The
// indicator is "+OK" or "-ERR", followed by the end of the line or a space.
func parseStatus(line []byte) (status int, text string, ok bool) {
	for _, p := range []struct {
		prefix string
		status int
	}{{"+OK", statusOK}, {"-ERR", statusERR}} {
		rest, found := bytes.CutPrefix(line, []byte(p.prefix))
		if !found {
			continue
		}
		if len(rest) == 0 {
			return p.status, "", true
		}
		if rest[0] != ' ' {
			return statusBad, "", false
		}
		return p.status, string(rest[1:]), true
	}
	return statusBad, "", false
}

// trimEOL removes a trailing LF or CRLF. A bare LF ends a line too: some
// servers send one, and it cannot smuggle anything into a reply.
func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

// unstuff undoes the byte-stuffing of a multi-line reply's line (RFC 1939
// §3): end reports the terminating ".", and a leading "." of any other line
// is dropped.
func unstuff(line []byte) (out []byte, end bool) {
	if len(line) == 0 || line[0] != '.' {
		return line, false
	}
	if len(line) == 1 {
		return nil, true
	}
	return line[1:], false
}

// parseNumber parses a decimal number of a reply: digits only, at most 18
// of them, so that it never overflows.
func parseNumber(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, fmt.Errorf("%w: number %q", ErrMalformed, clip([]byte(s)))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: number %q", ErrMalformed, clip([]byte(s)))
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: number %q", ErrMalformed, s)
	}
	return n, nil
}

// checkUID checks a unique-id: 1 to 70 characters from 0x21 to 0x7E.
func checkUID(s string) error {
	if s == "" || len(s) > maxUIDLength {
		return fmt.Errorf("%w: unique id of %d characters, want 1 to %d", ErrMalformed, len(s), maxUIDLength)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return fmt.Errorf("%w: unique id with byte %#02x", ErrMalformed, s[i])
		}
	}
	return nil
}

// clip shortens what an error quotes of a reply.
func clip(b []byte) []byte {
	const n = 64
	if len(b) > n {
		return append(b[:n:n], "..."...)
	}
	return b
}

// bodyReader reads a RETR reply after its status line: it undoes the
// byte-stuffing as the bytes go by, without holding a line, and stops at
// the terminating line.
type bodyReader struct {
	c   *Client
	max int64 // bytes it may return
	n   int64 // bytes returned
	bol bool  // at the beginning of a line
	err error // io.EOF once the terminator was read
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	br := b.c.br
	n := 0
	for n < len(p) {
		if n > 0 && br.Buffered() == 0 {
			break // hand over what we have rather than wait
		}
		if b.bol {
			end, err := b.lineStart()
			if err != nil {
				return n, b.fail(err)
			}
			if end {
				b.err = io.EOF
				if b.c.body == b {
					b.c.body = nil
					b.c.end()
				}
				if n > 0 {
					return n, nil
				}
				return 0, io.EOF
			}
		}
		// Copy up to the end of the line or of what is buffered.
		if _, err := br.Peek(1); err != nil {
			return n, b.fail(b.c.ioErr("read", err))
		}
		chunk, _ := br.Peek(min(br.Buffered(), len(p)-n))
		if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
			chunk = chunk[:i+1]
			b.bol = true
		}
		if b.n+int64(len(chunk)) > b.max {
			return n, b.fail(b.c.fail(fmt.Errorf("pop3 RETR: %w: message over %d bytes", ErrLimit, b.max)))
		}
		copy(p[n:], chunk)
		br.Discard(len(chunk))
		n += len(chunk)
		b.n += int64(len(chunk))
	}
	return n, nil
}

// lineStart looks at the beginning of a line: a "." followed by the line's
// end is the terminator, which it consumes; any other leading "." is
// dropped.
func (b *bodyReader) lineStart() (end bool, err error) {
	br := b.c.br
	head, err := br.Peek(1)
	if err != nil {
		return false, b.c.ioErr("read", err)
	}
	b.bol = false
	if head[0] != '.' {
		return false, nil
	}
	head, err = br.Peek(2)
	if err != nil {
		return false, b.c.ioErr("read", err)
	}
	switch head[1] {
	case '\n':
		br.Discard(2)
		return true, nil
	case '\r':
		head, err = br.Peek(3)
		if err != nil {
			return false, b.c.ioErr("read", err)
		}
		if head[2] == '\n' {
			br.Discard(3)
			return true, nil
		}
	}
	br.Discard(1) // the stuffed dot
	return false, nil
}

// fail makes err the reader's and the client's error.
func (b *bodyReader) fail(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	b.err = err
	if b.c.body == b {
		b.c.body = nil
		b.c.end()
	}
	b.c.fail(err)
	return err
}
