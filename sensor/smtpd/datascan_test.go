package smtpd

import (
	"bufio"
	"bytes"
	"io"
	"net/textproto"
	"strings"
	"testing"
)

// BenchmarkDataBody reads a 100 KB dot-stuffed body of 76-octet lines,
// with dataScanner as conn does and, for comparison, with the standard
// library's dot reader, which works a byte at a time as go-smtp's does.
func BenchmarkDataBody(b *testing.B) {
	line := strings.Repeat("x", 74) + "\r\n"
	var raw bytes.Buffer
	for raw.Len() < 100<<10 {
		raw.WriteString(line)
		raw.WriteString(".stuffed\r\n")
	}
	raw.WriteString(".\r\n")
	body := raw.Bytes()
	b.Run("scanner", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		dst := make([]byte, 32<<10)
		for b.Loop() {
			s := newDataScanner(MaxTextLine)
			src := body
			for {
				// conn hands the scanner at most its 4 KiB read buffer.
				_, nr, end, err := s.unstuff(dst, src[:min(len(src), readBufferSize)])
				if err != nil {
					b.Fatal(err)
				}
				src = src[nr:]
				if end {
					break
				}
			}
		}
	})
	b.Run("textproto", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		br := bufio.NewReaderSize(nil, readBufferSize)
		for b.Loop() {
			br.Reset(bytes.NewReader(body))
			if _, err := io.Copy(io.Discard, textproto.NewReader(br).DotReader()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
