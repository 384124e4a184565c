package delivery

import (
	"bufio"
	"bytes"
	"io"
	"net/textproto"
	"testing"
)

// viaDotWriter is what net/textproto's DotWriter sends for msg, the final
// dot included.
func viaDotWriter(t *testing.T, msg []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	w := textproto.NewWriter(bw).DotWriter()
	if _, err := w.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// viaDotStuffer is what send sends for msg written in pieces of the sizes
// cuts gives in turn: the stuffer's bytes, then the end through a
// DotWriter that shares the connection, as the DataCommand does.
func viaDotStuffer(t *testing.T, msg []byte, cuts []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	conn := bufio.NewWriter(&out) // the Client's own buffer: empty
	d := newDotStuffer(bufio.NewWriterSize(&out, 64))
	for i := 0; len(msg) > 0; i++ {
		n := len(msg)
		if len(cuts) > 0 {
			n = min(n, int(cuts[i%len(cuts)])+1)
		}
		if k, err := d.Write(msg[:n]); err != nil || k != n {
			t.Fatalf("Write: %d, %v", k, err)
		}
		msg = msg[n:]
	}
	end := textproto.NewWriter(conn).DotWriter()
	if err := d.finish(end); err != nil {
		t.Fatal(err)
	}
	if err := end.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// crlfOnly reports whether every CR of msg begins a CRLF: what the
// gateway's listener lets into a message.
func crlfOnly(msg []byte) bool {
	for i, c := range msg {
		if c == '\r' && (i+1 == len(msg) || msg[i+1] != '\n') {
			return false
		}
	}
	return true
}

func TestDotStuffer(t *testing.T) {
	for _, msg := range []string{
		"", "x", ".", "..", "a\r\n", ".a\r\n.\r\n..\r\nb", "Subject: hi\r\n\r\n.\r\n", "bare\nlf\n.dot\n",
		"no end", "line\r\n.", "\r\n\r\n", "\n", "\r\n.\r\n",
	} {
		for _, cuts := range [][]byte{nil, {0}, {1}, {2, 0, 5}} {
			want, got := viaDotWriter(t, []byte(msg)), viaDotStuffer(t, []byte(msg), cuts)
			if !bytes.Equal(got, want) {
				t.Errorf("%q in pieces %v:\n got %q\nwant %q", msg, cuts, got, want)
			}
		}
	}
}

// FuzzDotStuffer: for a message the listener could have taken, the bytes
// on the wire are the DotWriter's exactly, however the body is read in
// pieces; for any bytes, the wire holds the message, its line ends made
// CRLF, once the dots are undone.
func FuzzDotStuffer(f *testing.F) {
	for _, s := range []string{"", ".\r\n", "a\r\n.b\r\n..\r\n", "x\ny\r\n.", "\r", "a\r\rb\r\n"} {
		f.Add([]byte(s), []byte{3, 0, 7})
	}
	f.Fuzz(func(t *testing.T, msg, cuts []byte) {
		got := viaDotStuffer(t, msg, cuts)
		if crlfOnly(msg) {
			if want := viaDotWriter(t, msg); !bytes.Equal(got, want) {
				t.Fatalf("%q in pieces %v:\n got %q\nwant %q", msg, cuts, got, want)
			}
			return
		}
		back, err := io.ReadAll(textproto.NewReader(bufio.NewReader(bytes.NewReader(got))).DotReader())
		if err != nil {
			t.Fatalf("%q: the wire %q does not read back: %v", msg, got, err)
		}
		// DotReader gives lines ending in LF; compare with the message's
		// lines, each CRLF and bare LF one LF, a lone CR kept.
		want := bytes.ReplaceAll(msg, crlf, []byte("\n"))
		if len(want) > 0 && want[len(want)-1] != '\n' {
			want = append(want, '\n')
		}
		if !bytes.Equal(back, want) {
			t.Fatalf("%q: read back %q, want %q", msg, back, want)
		}
	})
}

// BenchmarkDotStuffing: a 100 KB message of 76-character lines, some
// beginning with a dot, through net/textproto's DotWriter (go-smtp's
// DataCommand) and through dotStuffer.
func BenchmarkDotStuffing(b *testing.B) {
	line := bytes.Repeat([]byte("x"), 74)
	var msg []byte
	for i := 0; len(msg) < 100<<10; i++ {
		if i%50 == 0 {
			msg = append(msg, '.')
		}
		msg = append(append(msg, line...), crlf...)
	}
	b.Run("DotWriter", func(b *testing.B) {
		bw := bufio.NewWriterSize(io.Discard, 32<<10)
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			w := textproto.NewWriter(bw).DotWriter()
			w.Write(msg)
			w.Close()
		}
	})
	b.Run("dotStuffer", func(b *testing.B) {
		bw := bufio.NewWriterSize(io.Discard, 32<<10)
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			d := newDotStuffer(bw)
			for p := msg; len(p) > 0; p = p[min(len(p), 32<<10):] {
				d.Write(p[:min(len(p), 32<<10)])
			}
			end := textproto.NewWriter(bw).DotWriter()
			d.finish(end)
			end.Close()
		}
	})
}
