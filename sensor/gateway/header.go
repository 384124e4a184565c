package gateway

import (
	"bytes"
	"strings"
)

// headerFields splits the header section of msg into its fields, each its
// first line and the lines that continue it (line ends included), and
// returns them with the rest of msg: the empty line that ends the section
// and the body, or nothing when msg has no such line. The fields are
// slices of msg.
func headerFields(msg []byte) (fields [][]byte, rest []byte) {
	for len(msg) > 0 {
		end := lineEnd(msg, 0)
		if len(bytes.TrimRight(msg[:end], "\r\n")) == 0 {
			break // the empty line that ends the header section
		}
		for end < len(msg) && (msg[end] == ' ' || msg[end] == '\t') {
			end = lineEnd(msg, end)
		}
		fields, msg = append(fields, msg[:end]), msg[end:]
	}
	return fields, msg
}

// lineEnd returns the offset just past the line of b that starts at i.
func lineEnd(b []byte, i int) int {
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(b)
}

// named reports whether field is a field called name, in any case.
func named(field []byte, name string) bool {
	return len(field) > len(name) && field[len(name)] == ':' && strings.EqualFold(string(field[:len(name)]), name)
}

// withoutField appends msg to dst, leaving out of its header section every
// field called name (continuation lines included). dst may be msg[:0]:
// what is kept only moves towards the start.
func withoutField(dst, msg []byte, name string) []byte {
	fields, rest := headerFields(msg)
	for _, f := range fields {
		if !named(f, name) {
			dst = append(dst, f...)
		}
	}
	return append(dst, rest...)
}
