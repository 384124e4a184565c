// Package scantest builds test messages and archives for the scan
// packages' tests and benchmarks: MIME entities as strings, zips (including
// a nested, overlapping zip bomb of a few kilobytes), the EICAR file and
// the GTUBE string.
package scantest

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/ospreysec/osprey/central/scan/eicar"
)

// EICAR returns the EICAR test file.
func EICAR() []byte { return []byte(eicar.String) }

// GTUBE is the Generic Test for Unsolicited Bulk Email: a message whose
// text holds it is spam to SpamAssassin and Rspamd (which rejects it).
const GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// Headers returns the header lines of a top-level message.
func Headers(from, to, subject string) string {
	return "From: " + from + "\r\n" +
		"To: " + to + "\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@test.example>\r\n" +
		"MIME-Version: 1.0\r\n"
}

// Message joins top-level header lines and an entity.
func Message(headers, entity string) []byte { return []byte(headers + entity) }

// Text is a text/plain entity.
func Text(body string) string {
	return "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
}

// HTML is a text/html entity.
func HTML(body string) string {
	return "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
}

// Attachment is a base64 attachment entity.
func Attachment(name, contentType string, data []byte) string {
	return "Content-Type: " + contentType + "; name=\"" + name + "\"\r\n" +
		"Content-Disposition: attachment; filename=\"" + name + "\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + Base64Lines(data)
}

// Attached is a message/rfc822 attachment entity holding msg.
func Attached(name string, msg []byte) string {
	return "Content-Type: message/rfc822; name=\"" + name + "\"\r\n" +
		"Content-Disposition: attachment; filename=\"" + name + "\"\r\n\r\n" + string(msg)
}

// Multipart is a multipart entity of the given subtype.
func Multipart(subtype, boundary string, parts ...string) string {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/" + subtype + "; boundary=\"" + boundary + "\"\r\n\r\n")
	b.WriteString("This is a multi-part message in MIME format.\r\n")
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n" + p + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.String()
}

// Base64Lines encodes data in base64 lines of 76 characters.
func Base64Lines(data []byte) string {
	s := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}

// File is a zip member.
type File struct {
	Name string
	Data []byte
}

// Zip builds a zip of files, deflated.
func Zip(files ...File) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f.Name)
		if err != nil {
			panic(err)
		}
		w.Write(f.Data)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// OverlapZip builds a zip whose central directory lists n members that all
// point at the same deflated data (the overlapping-file construction of
// zip bombs): n*len(data) bytes expanded from one copy.
func OverlapZip(n int, name string, data []byte) []byte {
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestCompression)
	fw.Write(data)
	fw.Close()
	crc := crc32.ChecksumIEEE(data)
	le := binary.LittleEndian
	var out bytes.Buffer
	// Local file header.
	lh := make([]byte, 30)
	le.PutUint32(lh[0:], 0x04034b50)
	le.PutUint16(lh[4:], 20)
	le.PutUint16(lh[8:], 8)
	le.PutUint32(lh[14:], crc)
	le.PutUint32(lh[18:], uint32(comp.Len()))
	le.PutUint32(lh[22:], uint32(len(data)))
	le.PutUint16(lh[26:], uint16(len(name)))
	out.Write(lh)
	out.WriteString(name)
	out.Write(comp.Bytes())
	cdStart := out.Len()
	for i := range n {
		member := fmt.Sprintf("%d-%s", i, name)
		ch := make([]byte, 46)
		le.PutUint32(ch[0:], 0x02014b50)
		le.PutUint16(ch[4:], 20)
		le.PutUint16(ch[6:], 20)
		le.PutUint16(ch[10:], 8)
		le.PutUint32(ch[16:], crc)
		le.PutUint32(ch[20:], uint32(comp.Len()))
		le.PutUint32(ch[24:], uint32(len(data)))
		le.PutUint16(ch[28:], uint16(len(member)))
		le.PutUint32(ch[42:], 0) // local header offset: all share one
		out.Write(ch)
		out.WriteString(member)
	}
	cdLen := out.Len() - cdStart
	eocd := make([]byte, 22)
	le.PutUint32(eocd[0:], 0x06054b50)
	le.PutUint16(eocd[8:], uint16(n))
	le.PutUint16(eocd[10:], uint16(n))
	le.PutUint32(eocd[12:], uint32(cdLen))
	le.PutUint32(eocd[16:], uint32(cdStart))
	out.Write(eocd)
	return out.Bytes()
}

// ZipBomb builds a nested overlapping zip bomb: levels of zips, each
// listing fanout copies of the one below, the innermost listing fanout
// copies of leafBytes zeros. It expands to fanout^levels * leafBytes bytes
// (4 levels, fanout 10, 1 MiB: 10 GiB) from a few kilobytes.
func ZipBomb(levels, fanout, leafBytes int) []byte {
	z := OverlapZip(fanout, "zeros.bin", make([]byte, leafBytes))
	for l := 1; l < levels; l++ {
		z = OverlapZip(fanout, fmt.Sprintf("level%d.zip", l), z)
	}
	return z
}
