package walk_test

import (
	"bytes"
	"testing"

	"github.com/ospreysec/osprey/central/scan/scantest"
	"github.com/ospreysec/osprey/central/scan/walk"
)

// FuzzWalk walks arbitrary bytes as a message. The walk must not fail or
// panic, must read the whole input, and must keep within its bounds.
func FuzzWalk(f *testing.F) {
	hdr := scantest.Headers("a@example.com", "b@example.com", "fuzz")
	zip := scantest.Zip(scantest.File{Name: "a.txt", Data: []byte("hello")}, scantest.File{Name: "d/e.exe", Data: []byte("MZ")})
	for _, seed := range [][]byte{
		scantest.Message(hdr, scantest.Text("hello http://example.com/")),
		scantest.Message(hdr, scantest.Multipart("alternative", "b", scantest.Text("t"), scantest.HTML(`<a href="http://x.example/">x</a>`))),
		scantest.Message(hdr, scantest.Multipart("mixed", "b", scantest.Text("t"), scantest.Attachment("a.zip", "application/zip", zip))),
		scantest.Message(hdr, scantest.Multipart("mixed", "b", scantest.Attached("m.eml", scantest.Message(hdr, scantest.Text("inner"))))),
		[]byte("Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Transfer-Encoding: base64\n\nQUJD!!RA==\n--x"),
		[]byte("Content-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<a href=3D\"http://=\r\nexample.com\">=E9</a>=ZZ"),
	} {
		f.Add(seed)
	}
	lim := walk.Limits{MaxDepth: 8, MaxParts: 100, MaxPartBytes: 1 << 20, MaxTotalBytes: 4 << 20, MemoryBytes: 64 << 10, MaxURLs: 100}
	f.Fuzz(func(t *testing.T, in []byte) {
		visited := 0
		m, err := walk.Walk(t.Context(), bytes.NewReader(in), walk.Options{Limits: lim, TempDir: t.TempDir()}, func(p *walk.Part) error {
			visited++
			if p.Stored() > lim.MaxPartBytes {
				t.Fatalf("part %s keeps %d bytes, over %d", p.Where(), p.Stored(), lim.MaxPartBytes)
			}
			if len(p.Head()) > 512 {
				t.Fatalf("head of %d bytes", len(p.Head()))
			}
			if p.Depth > lim.MaxDepth+1 {
				t.Fatalf("part at depth %d", p.Depth)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Walk: %v", err)
		}
		if m.Size != int64(len(in)) {
			t.Fatalf("size %d, want %d", m.Size, len(in))
		}
		if m.Parts > lim.MaxParts || len(m.URLs) > lim.MaxURLs {
			t.Fatalf("parts %d urls %d over bounds", m.Parts, len(m.URLs))
		}
	})
}
