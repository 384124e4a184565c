package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/internal/testwait"
)

// bodyFiles lists the files of the queue's bodies directory.
func (h *harness) bodyFiles() []string {
	h.t.Helper()
	entries, err := os.ReadDir(filepath.Join(h.dir, bodiesDir))
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// largeBody is a message of size bytes, its end recognisable.
func largeBody(id string, size int) []byte {
	head := "Subject: large " + id + "\r\n\r\n"
	line := strings.Repeat("x", 76) + "\r\n"
	b := []byte(head + strings.Repeat(line, (size-len(head))/len(line)+1))
	return append(b, "end of "+id+"\r\n"...)
}

// TestLargeBodyInFile: a body of FileBodySize and more is kept in a file
// of its own and delivered from it byte for byte; a second Enqueue of the
// message leaves no second file; the file goes with the message once it
// is delivered; a small body stays in the database.
func TestLargeBodyInFile(t *testing.T) {
	h := newHarness(t, Config{MinBackoff: 10 * time.Minute})
	body := largeBody("big1", FileBodySize+100)
	for range 2 {
		if _, err := h.q.Enqueue(t.Context(), Message{ID: "big1", From: "s@example.org", Rcpts: []string{"ok@a.test"},
			Direction: Inbound, Verdict: "clean", Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	if files := h.bodyFiles(); len(files) != 1 || !strings.HasPrefix(files[0], "big1.") {
		t.Fatalf("body files %v, want one for big1", files)
	}
	h.enqueue("s@example.org", "ok@a.test") // a small one
	if files := h.bodyFiles(); len(files) != 1 {
		t.Errorf("body files %v after a small message, want still one", files)
	}
	h.run()
	h.waitGone("big1")
	reqs := h.d.requests(func(r recorded) bool { return r.ID == "big1" })
	if len(reqs) != 1 || !strings.HasSuffix(reqs[0].body, string(body)) || !strings.HasPrefix(reqs[0].body, VerdictHeader+": clean\r\n") {
		t.Fatalf("delivered big1 %d times; want once, its body whole after the verdict header", len(reqs))
	}
	testwait.For(t, "the body file removed", func() bool { return len(h.bodyFiles()) == 0 })
}

// TestBodyFilesCollected: body files no row names (a crash between a
// file's write and its commit, or between a deletion and the file's
// removal) are removed when the queue opens again; those of queued
// messages stay and their messages are delivered.
func TestBodyFilesCollected(t *testing.T) {
	h := newHarness(t, Config{MinBackoff: 10 * time.Minute})
	body := largeBody("kept", FileBodySize)
	if _, err := h.q.Enqueue(t.Context(), Message{ID: "kept", From: "s@example.org", Rcpts: []string{"ok@a.test"},
		Direction: Inbound, Verdict: "clean", Body: body}); err != nil {
		t.Fatal(err)
	}
	h.close()
	for _, name := range []string{"orphan.0123456789abcdef", "kept.0000000000000000"} {
		if err := os.WriteFile(filepath.Join(h.dir, bodiesDir, name), []byte("left behind"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.open(Config{MinBackoff: 10 * time.Minute})
	if files := h.bodyFiles(); len(files) != 1 || !strings.HasPrefix(files[0], "kept.") || files[0] == "kept.0000000000000000" {
		t.Fatalf("body files after reopening %v, want kept's own only", files)
	}
	h.run()
	h.waitGone("kept")
	if reqs := h.d.requests(func(r recorded) bool { return r.ID == "kept" }); len(reqs) != 1 || !bytes.HasSuffix([]byte(reqs[0].body), body) {
		t.Errorf("kept delivered %d times, want once with its body", len(reqs))
	}
}

// TestDeleteLargeWithNotice: deleting a message whose body is in a file,
// with a notice, quotes its headers in the notice and removes the file.
func TestDeleteLargeWithNotice(t *testing.T) {
	h := newHarness(t, Config{MinBackoff: 10 * time.Minute})
	if _, err := h.q.Enqueue(t.Context(), Message{ID: "gone", From: "s@example.org", Rcpts: []string{"ok@a.test"},
		Direction: Inbound, Verdict: "clean", Body: largeBody("gone", 2*FileBodySize)}); err != nil {
		t.Fatal(err)
	}
	if err := h.q.Delete(t.Context(), "gone", true); err != nil {
		t.Fatal(err)
	}
	if files := h.bodyFiles(); len(files) != 0 {
		t.Errorf("body files %v after the deletion, want none", files)
	}
	h.run()
	testwait.For(t, "the failure notice delivered", func() bool {
		return len(h.d.requests(func(r recorded) bool {
			return strings.Contains(r.body, "Subject: large gone") && strings.Contains(r.body, "Action: failed")
		})) == 1
	})
}
