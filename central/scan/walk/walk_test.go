package walk

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func readParts(t *testing.T, body string, boundary string, bufSize int) (preamble string, parts []string, mr *multipartReader) {
	t.Helper()
	mr = newMultipartReader(iotest.HalfReader(strings.NewReader(body)), boundary, bufSize)
	pre, err := io.ReadAll(mr.preamble())
	if err != nil {
		t.Fatal(err)
	}
	for {
		p, err := mr.nextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, string(b))
	}
	return string(pre), parts, mr
}

func TestMultipartReader(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name         string
		body         string
		bufSize      int
		preamble     string
		parts        []string
		unterminated bool
	}{
		{
			name:     "CRLF",
			body:     "pre\r\n--b\r\nH: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n\r\n--b--\r\nepilogue",
			preamble: "pre",
			parts:    []string{"H: 1\r\n\r\none", "\r\ntwo\r\n"},
		},
		{
			name:  "LF and white space after the delimiter",
			body:  "--b  \n\none\n--b--\t\n",
			parts: []string{"\none"},
		},
		{
			name:  "a longer boundary is not a delimiter",
			body:  "--b\r\n\r\n--bc\r\nstill one\r\n--b--\r\n",
			parts: []string{"\r\n--bc\r\nstill one"},
		},
		{
			name:         "no close delimiter",
			body:         "--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n",
			parts:        []string{"\r\none", "\r\ntwo\r\n"},
			unterminated: true,
		},
		{
			name:         "no delimiter at all",
			body:         "just text\r\nmore\r\n",
			preamble:     "just text\r\nmore\r\n",
			unterminated: true,
		},
		{
			name:    "lines longer than the buffer, CRLF split at its end",
			body:    "--b\r\n\r\n" + long[:11] + "\r\n" + long + "\r\n--b--\r\n",
			bufSize: 16,
			parts:   []string{"\r\n" + long[:11] + "\r\n" + long},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := tt.bufSize
			if size == 0 {
				size = 4096
			}
			pre, parts, mr := readParts(t, tt.body, "b", size)
			if pre != tt.preamble {
				t.Errorf("preamble: got %q, want %q", pre, tt.preamble)
			}
			if diff := cmp.Diff(tt.parts, parts); diff != "" {
				t.Errorf("parts (-want +got):\n%s", diff)
			}
			if mr.unterminated != tt.unterminated {
				t.Errorf("unterminated: got %v, want %v", mr.unterminated, tt.unterminated)
			}
		})
	}
}

// TestMultipartBufferBoundaries splits the same body with every small
// buffer size: the parts must not change.
func TestMultipartBufferBoundaries(t *testing.T) {
	body := "pre\r\n--bnd\r\nA: b\r\n\r\nline one\r\nline two is a bit longer\r\n\r\n--bnd\r\n\r\n\r\r\n\n--bnd--\r\n"
	want := []string{"A: b\r\n\r\nline one\r\nline two is a bit longer\r\n", "\r\n\r\r\n"}
	for size := 16; size < 64; size++ {
		_, parts, _ := readParts(t, body, "bnd", size)
		if diff := cmp.Diff(want, parts); diff != "" {
			t.Errorf("buffer %d: parts (-want +got):\n%s", size, diff)
		}
	}
}

func TestDecodeBase64(t *testing.T) {
	data := []byte("The quick brown fox jumps over the lazy dog.")
	enc := base64.StdEncoding.EncodeToString(data)
	tests := []struct {
		name string
		in   string
		want []byte
		note string
	}{
		{"clean", enc, data, ""},
		{"folded", enc[:20] + "\r\n" + enc[20:40] + "\r\n " + enc[40:], data, ""},
		{"garbage characters", enc[:8] + "!*" + enc[8:], data, "invalid characters"},
		{"padding missing", strings.TrimRight(enc, "="), data, ""},
		{"data after padding", enc + "\r\nQUJD\r\n", data, "after base64 padding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, st := decodeTransfer("Base64", strings.NewReader(tt.in))
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if (tt.note == "") != (len(st.notes) == 0) || tt.note != "" && !strings.Contains(strings.Join(st.notes, ";"), tt.note) {
				t.Errorf("notes: got %q, want %q", st.notes, tt.note)
			}
		})
	}
}

func TestNormalizeURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"HTTP://Example.COM:80", "http://example.com/"},
		{"https://user:pw@Example.com:443/a/B?q=1#frag", "https://example.com/a/B?q=1"},
		{"https://example.com:8443/x", "https://example.com:8443/x"},
		{"http://bücher.example/", "http://xn--bcher-kva.example/"},
		{"http://example.com./", "http://example.com/"},
		{"http://[2001:DB8::1]:80/", "http://[2001:db8::1]/"},
		{"mailto:a@example.com", ""},
		{"/relative", ""},
	}
	for _, tt := range tests {
		got, ok := NormalizeURL(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("NormalizeURL(%q): got %q %v, want %q", tt.in, got, ok, tt.want)
		}
	}
}

func TestDetectType(t *testing.T) {
	tests := []struct {
		head []byte
		want string
	}{
		{[]byte("MZ\x90\x00\x03"), TypeWindowsExecutable},
		{[]byte("\x7fELF\x02\x01"), TypeELF},
		{[]byte("PK\x03\x04"), TypeZip},
		{[]byte("%PDF-1.7"), "application/pdf"},
		{append(make([]byte, 257), "ustar\x0000"...), TypeTar},
		{[]byte("hello"), "text/plain; charset=utf-8"},
	}
	for _, tt := range tests {
		if got := DetectType(tt.head); got != tt.want {
			t.Errorf("DetectType(%q): got %q, want %q", tt.head[:min(len(tt.head), 8)], got, tt.want)
		}
	}
}

// TestWalkNeverFails walks inputs that are not mail at all.
func TestWalkNeverFails(t *testing.T) {
	for _, in := range []string{"", "\r\n", " leading space", "no header at all", "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x",
		"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n", "A:\r\n\r\n\x00\xff"} {
		m, err := Walk(context.Background(), strings.NewReader(in), Options{}, func(*Part) error { return nil })
		if err != nil {
			t.Errorf("Walk(%q): %v", in, err)
			continue
		}
		if m.Size != int64(len(in)) {
			t.Errorf("Walk(%q): size %d, want %d", in, m.Size, len(in))
		}
	}
}

// TestDigests: an attachment has the digests of its decoded bytes; a body,
// which no rule matches by digest, has none.
func TestDigests(t *testing.T) {
	msg := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nHello.\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=a.bin\r\n\r\nabc\r\n--b--\r\n"
	digests := map[string][3]string{}
	if _, err := Walk(context.Background(), strings.NewReader(msg), Options{}, func(p *Part) error {
		digests[p.Where()] = [3]string{p.SHA256, p.SHA1, p.MD5}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string][3]string{
		"text body":        {},
		"attachment a.bin": {"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "a9993e364706816aba3e25717850c26c9cd0d89d", "900150983cd24fb0d6963f7d28e17f72"},
	}
	if !reflect.DeepEqual(digests, want) {
		t.Errorf("digests %v, want %v", digests, want)
	}
}
