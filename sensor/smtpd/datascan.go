package smtpd

import "bytes"

// dataScanner reads the raw bytes of a DATA body, as the client sent them,
// undoes the dot-stuffing and finds where the body ends. It enforces the
// one rule this package has for line endings: CR and LF appear only as the
// pair CRLF (RFC 5321 §2.3.8, RFC 5322 §2.3). A lone CR, a bare LF or a
// line longer than the limit is a violation, and the end of the data is a
// line holding a single '.' and ended by CRLF — nothing else, in
// particular none of "<LF>.<LF>", "<LF>.<CR><LF>", "<CR><LF>.<LF>",
// "<CR>.<CR><LF>" or "<CR><CR><LF>.<CR><CR><LF>", since each of them holds
// a lone CR or a bare LF and is refused before it could end anything.
//
// It works a line segment at a time (bytes.IndexByte finds the next CR),
// not a byte at a time as go-smtp's dot reader does: the body of a message
// is most of what a sensor reads.
type dataScanner struct {
	maxLine int  // longest line allowed, CRLF and a stuffed dot included
	lineLen int  // octets of the current line so far, CR excluded
	dot     bool // the current line so far is exactly "."
	cr      bool // the previous octet was a CR
}

func newDataScanner(maxLine int) dataScanner {
	return dataScanner{maxLine: maxLine}
}

// unstuff moves the next bytes of the body from src to dst, undoing the
// dot-stuffing of RFC 5321 §4.5.2: the '.' that starts a line is dropped,
// and the line "." ends the body and is not passed on. It returns how many
// bytes it wrote to dst and how many of src it consumed; end is true once
// the end-of-data line was consumed, and nothing after it is. On a
// violation err is one of errBareLF, errLoneCR, errTextLineTooLong, and
// neither the octet at fault nor anything after it was written (the
// message is refused, so what was written before it does not matter).
func (s *dataScanner) unstuff(dst, src []byte) (nw, nr int, end bool, err error) {
	for nr < len(src) {
		if s.cr {
			if src[nr] != '\n' {
				return nw, nr, false, errLoneCR
			}
			if s.dot {
				*s = dataScanner{maxLine: s.maxLine}
				return nw, nr + 1, true, nil
			}
			if nw == len(dst) {
				break
			}
			dst[nw] = '\n'
			nw, nr = nw+1, nr+1
			s.cr, s.lineLen = false, 0
			continue
		}
		if s.lineLen == 0 && src[nr] == '.' {
			// A stuffed dot, or the end-of-data line: not passed on.
			s.dot, s.lineLen = true, 1
			nr++
			continue
		}
		if nw == len(dst) {
			break
		}
		// The line up to its CR, or as much of it as src holds and dst
		// has room for.
		seg := src[nr:min(len(src), nr+len(dst)-nw)]
		cr := bytes.IndexByte(seg, '\r')
		if cr >= 0 {
			seg = seg[:cr]
		}
		if bytes.IndexByte(seg, '\n') >= 0 {
			return nw, nr, false, errBareLF
		}
		if s.lineLen+len(seg)+2 > s.maxLine {
			return nw, nr, false, errTextLineTooLong
		}
		copy(dst[nw:], seg)
		nw, nr = nw+len(seg), nr+len(seg)
		s.lineLen += len(seg)
		if len(seg) > 0 {
			s.dot = false
		}
		if cr >= 0 {
			// seg stopped short of dst's end, so the CR fits. The CR of
			// the end-of-data line is not passed on.
			s.cr = true
			nr++
			if !s.dot {
				dst[nw] = '\r'
				nw++
			}
		}
	}
	return nw, nr, false, nil
}

// crlfChecker applies the same rule to the content of BDAT chunks, which
// is not dot-stuffed.
type crlfChecker struct {
	cr bool // the previous byte was a CR
}

func (c *crlfChecker) check(b []byte) error {
	for len(b) > 0 {
		if c.cr {
			if b[0] != '\n' {
				return errLoneCR
			}
			c.cr = false
			b = b[1:]
			continue
		}
		seg := b
		i := bytes.IndexByte(seg, '\r')
		if i >= 0 {
			seg = seg[:i]
		}
		if bytes.IndexByte(seg, '\n') >= 0 {
			return errBareLF
		}
		if i < 0 {
			return nil
		}
		c.cr = true
		b = b[i+1:]
	}
	return nil
}

// end reports an error when the body ends in a CR.
func (c *crlfChecker) end() error {
	if c.cr {
		return errLoneCR
	}
	return nil
}
