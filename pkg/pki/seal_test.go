package pki

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func newKEK(t *testing.T) []byte {
	t.Helper()
	kek := make([]byte, KEKSize)
	if _, err := rand.Read(kek); err != nil {
		t.Fatal(err)
	}
	return kek
}

func TestSealOpen(t *testing.T) {
	kek := newKEK(t)
	plaintext := []byte("-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n")
	sealed, err := Seal(plaintext, kek, CAKeyLabel)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	if bytes.Contains(sealed, []byte("secret")) {
		t.Error("sealed blob holds the plaintext")
	}
	if got, want := len(sealed), 1+12+len(plaintext)+16; got != want {
		t.Errorf("len(sealed): got %d, want %d", got, want)
	}
	if sealed[0] != sealVersion {
		t.Errorf("version byte: got %d, want %d", sealed[0], sealVersion)
	}
	got, err := Open(sealed, kek, CAKeyLabel)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(got, plaintext) {
		t.Errorf("Open: got %q, want %q", got, plaintext)
	}

	again, err := Seal(plaintext, kek, CAKeyLabel)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again[1:13], sealed[1:13]) {
		t.Error("two seals share a nonce")
	}

	empty, err := Seal(nil, kek, CAKeyLabel)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Open(empty, kek, CAKeyLabel); err != nil || len(got) != 0 {
		t.Errorf("Open(Seal(nil)): got %q, %v, want empty, nil", got, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	kek := newKEK(t)
	sealed, err := Seal([]byte("the CA key"), kek, CAKeyLabel)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x80
		return b
	}
	tests := []struct {
		name   string
		blob   []byte
		kek    []byte
		label  string
		wantIs error // nil: any error
	}{
		{name: "wrong key", blob: sealed, kek: newKEK(t), label: CAKeyLabel, wantIs: ErrOpen},
		{name: "wrong label", blob: sealed, kek: kek, label: "osprey/other", wantIs: ErrOpen},
		{name: "empty label", blob: sealed, kek: kek, label: "", wantIs: ErrOpen},
		{name: "version changed", blob: flip(0), kek: kek, label: CAKeyLabel, wantIs: ErrOpen},
		{name: "nonce changed", blob: flip(5), kek: kek, label: CAKeyLabel, wantIs: ErrOpen},
		{name: "ciphertext changed", blob: flip(14), kek: kek, label: CAKeyLabel, wantIs: ErrOpen},
		{name: "tag changed", blob: flip(len(sealed) - 1), kek: kek, label: CAKeyLabel, wantIs: ErrOpen},
		{name: "truncated", blob: sealed[:len(sealed)-1], kek: kek, label: CAKeyLabel, wantIs: ErrOpen},
		{name: "appended", blob: append(bytes.Clone(sealed), 0), kek: kek, label: CAKeyLabel, wantIs: ErrOpen},
		{name: "too short", blob: sealed[:20], kek: kek, label: CAKeyLabel, wantIs: ErrOpen},
		{name: "empty", blob: nil, kek: kek, label: CAKeyLabel, wantIs: ErrOpen},
		{name: "short key", blob: sealed, kek: kek[:16], label: CAKeyLabel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Open(tt.blob, tt.kek, tt.label)
			if err == nil {
				t.Fatalf("Open: got %q, want an error", got)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Open: got error %v, want one matching %v", err, tt.wantIs)
			}
		})
	}
	if _, err := Seal([]byte("x"), kek[:31], CAKeyLabel); err == nil {
		t.Error("Seal with a 31-byte key: got nil error")
	}
}

func FuzzOpen(f *testing.F) {
	kek := bytes.Repeat([]byte{7}, KEKSize)
	sealed, err := Seal([]byte("hello"), kek, CAKeyLabel)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte{})
	f.Add([]byte{sealVersion})
	f.Fuzz(func(t *testing.T, blob []byte) {
		got, err := Open(blob, kek, CAKeyLabel)
		if err != nil {
			return
		}
		resealed, err := Seal(got, kek, CAKeyLabel)
		if err != nil {
			t.Fatal(err)
		}
		if len(resealed) != len(blob) {
			t.Fatalf("Open accepted %d bytes that reseal to %d", len(blob), len(resealed))
		}
	})
}

func TestLoadOrCreateKEK(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "kek")
	kek, err := LoadOrCreateKEK(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if len(kek) != KEKSize {
		t.Errorf("len: got %d, want %d", len(kek), KEKSize)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if got := st.Mode().Perm(); got != 0o600 {
			t.Errorf("mode: got %#o, want 0600", got)
		}
	}
	again, err := LoadOrCreateKEK(path)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !bytes.Equal(again, kek) {
		t.Error("load returned another key than the one created")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "sub", ".kek.tmp*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestLoadOrCreateKEKRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string
	}{
		{
			name:  "group-writable",
			setup: func(t *testing.T, path string) { writeFile(t, path, make([]byte, KEKSize), 0o660) },
			want:  "mode 0660",
		},
		{
			name:  "world-readable",
			setup: func(t *testing.T, path string) { writeFile(t, path, make([]byte, KEKSize), 0o604) },
			want:  "chmod 600",
		},
		{
			name:  "short",
			setup: func(t *testing.T, path string) { writeFile(t, path, make([]byte, 16), 0o600) },
			want:  "has 16 bytes, want 32",
		},
		{
			name:  "hex text instead of bytes",
			setup: func(t *testing.T, path string) { writeFile(t, path, []byte(strings.Repeat("ab", 32)+"\n"), 0o600) },
			want:  "has 65 bytes, want 32",
		},
		{
			name:  "empty",
			setup: func(t *testing.T, path string) { writeFile(t, path, nil, 0o600) },
			want:  "has 0 bytes",
		},
		{
			name: "directory",
			setup: func(t *testing.T, path string) {
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			},
			want: "not a regular file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if runtime.GOOS == "windows" && strings.Contains(tt.name, "readable") {
				t.Skip("no permission bits on Windows")
			}
			path := filepath.Join(t.TempDir(), "kek")
			tt.setup(t, path)
			before, _ := os.ReadFile(path)
			kek, err := LoadOrCreateKEK(path)
			if err == nil {
				t.Fatalf("LoadOrCreateKEK: got a key of %d bytes, want an error containing %q", len(kek), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadOrCreateKEK: got error %q, want it to contain %q", err, tt.want)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Error("LoadOrCreateKEK changed the file it refused")
			}
		})
	}
}

func writeFile(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // past the umask
		t.Fatal(err)
	}
}

func TestLoadOrCreateKEKRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	const n = 8
	keys := make(chan []byte, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			k, err := LoadOrCreateKEK(path)
			keys <- k
			errs <- err
		}()
	}
	var first []byte
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("LoadOrCreateKEK: %v", err)
		}
		k := <-keys
		if first == nil {
			first = k
		} else if !bytes.Equal(k, first) {
			t.Error("racing callers got different keys")
		}
	}
}

// TestLoadKEKGroupReadable: a key its group may read (a Kubernetes Secret
// mounted for a non-root user with fsGroup) is accepted.
func TestLoadKEKGroupReadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.key")
	want := bytes.Repeat([]byte{7}, KEKSize)
	writeFile(t, path, want, 0o440)
	got, err := LoadOrCreateKEK(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("LoadOrCreateKEK of a 0440 key: %x, %v", got, err)
	}
}

// TestLoadKEK reads a key as LoadOrCreateKEK does, and never makes one.
func TestLoadKEK(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.key")
	if _, err := LoadKEK(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadKEK of a missing file: got %v, want os.ErrNotExist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadKEK made %s (%v)", path, err)
	}
	made, err := LoadOrCreateKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadKEK(path)
	if err != nil || !bytes.Equal(got, made) {
		t.Errorf("LoadKEK: %x, %v; want %x", got, err, made)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKEK(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadKEK of a world-readable key: got %v, want it refused", err)
	}
}
