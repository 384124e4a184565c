package smtpd

// dataScanner checks the raw bytes of a DATA body, before go-smtp undoes
// the dot-stuffing, and finds where it ends. It enforces the one rule this
// package has for line endings: CR and LF appear only as the pair CRLF
// (RFC 5321 §2.3.8, RFC 5322 §2.3). A lone CR, a bare LF or a line longer
// than the limit is a violation, and the end of the data is a line holding
// a single '.' and ended by CRLF — nothing else, in particular none of
// "<LF>.<LF>", "<LF>.<CR><LF>", "<CR><LF>.<LF>", "<CR>.<CR><LF>" or
// "<CR><CR><LF>.<CR><CR><LF>", since each of them holds a lone CR or a bare
// LF and is refused before it could end anything.
//
// On input without violations go-smtp's own end-of-data state machine
// stops at exactly the same byte, so the two never disagree about where a
// message ends; on input with one, the connection delivers nothing past
// the violation and the message is refused.
type dataScanner struct {
	maxLine int  // longest line allowed, CRLF included
	lineLen int  // octets of the current line so far, CR excluded
	dot     bool // the current line so far is exactly "."
	cr      bool // the previous octet was a CR
}

func newDataScanner(maxLine int) dataScanner {
	return dataScanner{maxLine: maxLine}
}

// scan looks at the next bytes of the body. It returns how many of them
// may be passed on: all of b, or up to and including the LF that ends the
// data (end is then true), or the bytes before a violation (err is then
// one of errBareLF, errLoneCR, errTextLineTooLong).
func (s *dataScanner) scan(b []byte) (n int, end bool, err error) {
	for i, c := range b {
		if s.cr {
			if c != '\n' {
				return i, false, errLoneCR
			}
			s.cr = false
			if s.dot {
				*s = dataScanner{maxLine: s.maxLine}
				return i + 1, true, nil
			}
			s.lineLen, s.dot = 0, false
			continue
		}
		switch c {
		case '\r':
			s.cr = true
			continue
		case '\n':
			return i, false, errBareLF
		}
		s.dot = s.lineLen == 0 && c == '.'
		s.lineLen++
		if s.lineLen+2 > s.maxLine {
			return i, false, errTextLineTooLong
		}
	}
	return len(b), false, nil
}

// crlfChecker applies the same rule to a message body that is not
// dot-stuffed: the content of BDAT chunks, and the body go-smtp passes on
// after DATA (where the raw check has already run, so that this one never
// fires there).
type crlfChecker struct {
	cr bool // the previous byte was a CR
}

func (c *crlfChecker) check(b []byte) error {
	for _, x := range b {
		if c.cr && x != '\n' {
			return errLoneCR
		}
		if !c.cr && x == '\n' {
			return errBareLF
		}
		c.cr = x == '\r'
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
