package clamav_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/central/scan"
	"github.com/ospreysec/osprey/central/scan/clamav"
	"github.com/ospreysec/osprey/central/scan/scantest"
	"github.com/ospreysec/osprey/central/scan/walk"
	"github.com/ospreysec/osprey/internal/testwait"
)

const clamdBinary = "/usr/sbin/clamd"

// marker is what the test signature database detects, by an .ndb body
// signature.
const marker = "OSPREY-CLAMAV-TEST-MARKER-5f0c2a"

// hashed is a file the test database detects by its MD5 (.hdb).
var hashed = []byte("osprey clamav test file detected by its md5\n")

// requireClamd skips t, or fails it when OSPREY_REQUIRE_PEERS=1, unless
// clamd is installed (Debian package clamav-daemon).
func requireClamd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs clamd; skipped with -short")
	}
	bin := clamdBinary
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("clamd")
		if lerr != nil {
			if os.Getenv("OSPREY_REQUIRE_PEERS") == "1" {
				t.Fatalf("clamd is missing (Debian package clamav-daemon) and OSPREY_REQUIRE_PEERS=1: %v", err)
			}
			t.Skipf("clamd not installed (%v); install clamav-daemon", err)
		}
		bin = p
	}
	return bin
}

// startClamd runs a private clamd on a unix socket in a temporary directory,
// with a signature database the test writes, and returns a client of it.
func startClamd(t *testing.T) *clamav.Client {
	t.Helper()
	bin := requireClamd(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(hashed)
	files := map[string]string{
		"osprey.ndb": fmt.Sprintf("Osprey.Test.Marker:0:*:%s\n", hex.EncodeToString([]byte(marker))),
		"osprey.hdb": fmt.Sprintf("%s:%d:Osprey.Test.Hash\n", hex.EncodeToString(sum[:]), len(hashed)),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(db, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "clamd.sock")
	conf := filepath.Join(dir, "clamd.conf")
	cfg := strings.Join([]string{
		"Foreground yes",
		"LocalSocket " + sock,
		"DatabaseDirectory " + db,
		"LogFile " + filepath.Join(dir, "clamd.log"),
		"PidFile " + filepath.Join(dir, "clamd.pid"),
		"TemporaryDirectory " + dir,
		"StreamMaxLength 1M",
		"MaxThreads 4",
		"SelfCheck 0",
		"",
	}, "\n")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start clamd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("clamd's output:\n%s", out.String())
		}
	})
	c, err := clamav.New(clamav.Options{Network: "unix", Address: sock})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for PONG: clamd loads its database before it listens.
	testwait.For(t, "clamd to answer PING", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		err := c.Ping(ctx)
		cancel()
		if err != nil {
			select {
			case werr := <-exited:
				exited <- werr // for the cleanup
				t.Fatalf("clamd exited (%v) before answering PING", werr)
			default:
			}
		}
		return err == nil
	})
	return c
}

func TestClamd(t *testing.T) {
	c := startClamd(t)
	tests := []struct {
		name    string
		data    []byte
		wantSig string
		wantErr error
	}{
		{"clean", []byte("just a plain file\n"), "", nil},
		{"empty", nil, "", nil},
		{"marker", []byte("prefix " + marker + " suffix"), "Osprey.Test.Marker.UNOFFICIAL", nil},
		{"md5", hashed, "Osprey.Test.Hash.UNOFFICIAL", nil},
		{"marker past a chunk", append(bytes.Repeat([]byte("x"), 200<<10), marker...), "Osprey.Test.Marker.UNOFFICIAL", nil},
		{"too long", bytes.Repeat([]byte("y"), 3<<20), "", clamav.ErrSizeLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Scan(t.Context(), bytes.NewReader(tt.data))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Scan error: got %v, want %v", err, tt.wantErr)
			}
			if res.Signature != tt.wantSig {
				t.Errorf("signature: got %q, want %q", res.Signature, tt.wantSig)
			}
		})
	}
	t.Run("size limit is a bound", func(t *testing.T) {
		if !errors.Is(clamav.ErrSizeLimit, walk.ErrLimit) {
			t.Error("ErrSizeLimit does not wrap walk.ErrLimit")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := c.Scan(ctx, bytes.NewReader([]byte("x"))); !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})
}

func TestScannerWithClamd(t *testing.T) {
	c := startClamd(t)
	s, err := scan.New(scan.Options{Engines: append(scan.DefaultEngines(), clamav.NewEngine(c))})
	if err != nil {
		t.Fatal(err)
	}
	hdr := scantest.Headers("alice@example.com", "bob@example.org", "clamd")
	tests := []struct {
		name      string
		msg       []byte
		verdict   string
		wantParts []string // parts of the clamav matches
	}{
		{"clean", scantest.Message(hdr, scantest.Multipart("mixed", "b1",
			scantest.Text("hello"), scantest.Attachment("a.txt", "text/plain", []byte("nothing here")))), scan.VerdictClean, nil},
		{"attachment", scantest.Message(hdr, scantest.Multipart("mixed", "b1",
			scantest.Text("hello"), scantest.Attachment("m.bin", "application/octet-stream", []byte(marker)))),
			scan.VerdictDetected, []string{"attachment m.bin"}},
		{"in a zip", scantest.Message(hdr, scantest.Multipart("mixed", "b1",
			scantest.Text("hello"), scantest.Attachment("z.zip", "application/zip",
				scantest.Zip(scantest.File{Name: "dir/h.dat", Data: hashed})))),
			scan.VerdictDetected, []string{"attachment z.zip > dir/h.dat"}},
		{"too large for clamd", scantest.Message(hdr, scantest.Multipart("mixed", "b1",
			scantest.Attachment("big.bin", "application/octet-stream", bytes.Repeat([]byte("z"), 2<<20)))),
			scan.VerdictUnscannableLimit, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Scan(t.Context(), bytes.NewReader(tt.msg), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != tt.verdict {
				t.Errorf("verdict: got %q, want %q (matches %v, errors %v, notes %v)", res.Verdict, tt.verdict, res.Matches, res.Errors, res.Notes)
			}
			var parts []string
			for _, m := range res.Matches {
				if m.GetEngine() == clamav.Name {
					parts = append(parts, m.GetPart())
				}
			}
			if strings.Join(parts, ",") != strings.Join(tt.wantParts, ",") {
				t.Errorf("clamav matches: got %q, want %q", parts, tt.wantParts)
			}
		})
	}
	t.Run("clamd down", func(t *testing.T) {
		bad, err := clamav.New(clamav.Options{Network: "unix", Address: filepath.Join(t.TempDir(), "none.sock")})
		if err != nil {
			t.Fatal(err)
		}
		s, err := scan.New(scan.Options{Engines: []scan.Engine{clamav.NewEngine(bad)}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.Scan(t.Context(), bytes.NewReader(scantest.Message(hdr, scantest.Text("hello"))), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Verdict != scan.VerdictUnscannableError || len(res.Errors) != 1 {
			t.Errorf("got verdict %q errors %q, want %q and one error", res.Verdict, res.Errors, scan.VerdictUnscannableError)
		}
	})
}
