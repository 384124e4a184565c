package delivery

import (
	"bufio"
	"bytes"
	"io"
)

// The message after DATA's 354 goes out through dotStuffer rather than
// go-smtp's DataCommand.Write. Both do what RFC 5321 §4.5.2 asks (a line
// that begins with "." gets another in front; every line ends with CRLF,
// a bare LF becoming one), but the DataCommand writes through
// net/textproto's DotWriter, which looks at each byte and hands each to a
// bufio.Writer one call at a time: relaying 100 KB messages, a seventh of
// the CPU of `osprey dev` (the central's scan included), the delivery
// client's biggest cost. dotStuffer finds line ends with bytes.IndexByte
// and writes whole lines.
//
// It writes to the connection go-smtp's Client writes to, between the 354
// and the final dot, while the Client has nothing buffered: its DATA
// command was flushed before the reply was read (textproto.Writer flushes
// every command line). The end goes through the DataCommand, so that the
// Client's own state is what it expects: the message's last CRLF is held
// back and written through the DataCommand, which leaves the DotWriter at
// the start of a line, and the DataCommand's close then sends only ".\r\n"
// and reads the reply. A message that does not end with a line end gets
// one, as with the DotWriter.
//
// A CR that no LF follows is data, here and in the DotWriter; a message
// the gateway took holds none (the listener refuses bare CR and LF), and
// the queue's own notices hold none either.

// crlf is a line end.
var crlf = []byte("\r\n")

// dotStuffer writes a message's lines dot-stuffed and with CRLF line ends.
type dotStuffer struct {
	w         *bufio.Writer
	lineStart bool   // the next byte begins a line
	held      []byte // "\r" or "\r\n" that ended what came so far, not yet written
}

func newDotStuffer(w *bufio.Writer) *dotStuffer {
	return &dotStuffer{w: w, lineStart: true}
}

// Write writes p, holding back a CR or CRLF that it ends with; it fails
// when the connection does.
func (d *dotStuffer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(d.held) == 1 && p[0] == '\n' { // a CRLF split between writes
			d.held, d.lineStart = crlf, true
			p = p[1:]
			continue
		}
		if d.held != nil {
			d.w.Write(d.held)
			d.held = nil
		}
		if d.lineStart && p[0] == '.' {
			d.w.WriteByte('.')
		}
		d.lineStart = false
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if last := len(p) - 1; p[last] == '\r' {
				d.w.Write(p[:last])
				d.held = crlf[:1]
			} else {
				d.w.Write(p)
			}
			break
		}
		end := i
		if i > 0 && p[i-1] == '\r' {
			end = i - 1
		}
		d.w.Write(p[:end])
		d.held, d.lineStart = crlf, true
		p = p[i+1:]
	}
	if _, err := d.w.Write(nil); err != nil { // the bufio.Writer's first error
		return 0, err
	}
	return n, nil
}

// finish writes out what is buffered, then the message's last line end
// through end (the DataCommand), leaving it at the start of a line: its
// close sends the final dot.
func (d *dotStuffer) finish(end io.Writer) error {
	if len(d.held) == 1 {
		d.w.WriteByte('\r') // a CR at the very end: data
	}
	if err := d.w.Flush(); err != nil {
		return err
	}
	_, err := end.Write(crlf)
	return err
}
