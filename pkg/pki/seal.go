package pki

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// KEKSize is the size of a key-encryption key: AES-256.
const KEKSize = 32

// CAKeyLabel is the label the CA private key is sealed under.
const CAKeyLabel = "osprey/ca-key"

// A sealed blob is
//
//	version (1 byte, sealVersion) || nonce (12 bytes) || AES-256-GCM ciphertext and tag
//
// and the GCM additional data is sealDomain || version || label, so neither
// the version byte nor the label can be changed without Open failing.
const (
	sealVersion = 1
	sealDomain  = "osprey seal\x00"
)

// ErrOpen is returned by [Open] when a blob does not decrypt: a wrong key, a
// wrong label, or a blob that was changed.
var ErrOpen = errors.New("sealed data does not open: wrong key or label, or tampered")

// Seal encrypts plaintext under kek (32 bytes, AES-256-GCM, a random nonce per
// call). The label names what the blob is for, such as [CAKeyLabel]: it is
// authenticated with the blob, so a blob sealed for one use cannot be moved
// into another (say, a sealed secret put where the CA key is expected) under
// the same kek. The label is not secret and not stored; [Open] needs the same
// one.
func Seal(plaintext, kek []byte, label string) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = sealVersion
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		return nil, fmt.Errorf("seal: generate nonce: %w", err)
	}
	return aead.Seal(out, out[1:], plaintext, additionalData(sealVersion, label)), nil
}

// Open decrypts what [Seal] made with the same kek and label. A blob that
// does not decrypt yields an error wrapping [ErrOpen].
func Open(ciphertext, kek []byte, label string) ([]byte, error) {
	aead, err := newAEAD(kek)
	if err != nil {
		return nil, err
	}
	if len(ciphertext) < 1+aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("open: %d bytes is too short: %w", len(ciphertext), ErrOpen)
	}
	if v := ciphertext[0]; v != sealVersion {
		return nil, fmt.Errorf("open: unknown version %d: %w", v, ErrOpen)
	}
	nonce := ciphertext[1 : 1+aead.NonceSize()]
	plaintext, err := aead.Open(nil, nonce, ciphertext[1+aead.NonceSize():], additionalData(ciphertext[0], label))
	if err != nil {
		return nil, fmt.Errorf("open: %w", ErrOpen)
	}
	return plaintext, nil
}

func newAEAD(kek []byte) (cipher.AEAD, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("key-encryption key has %d bytes, want %d", len(kek), KEKSize)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("new cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("new GCM: %w", err)
	}
	return aead, nil
}

func additionalData(version byte, label string) []byte {
	ad := make([]byte, 0, len(sealDomain)+1+len(label))
	ad = append(ad, sealDomain...)
	ad = append(ad, version)
	return append(ad, label...)
}

// LoadOrCreateKEK reads the key-encryption key at path, or makes one there (32
// random bytes, mode 0600, its directory 0700 if missing) when there is none.
// Two processes racing to make it end up with the same key: the file is
// created whole or not at all, and never replaced.
//
// It refuses a file that is not exactly 32 bytes, and (outside Windows) one
// that others may access or its group may write: a key others can read
// protects nothing. Group read is allowed (0640, 0440), as a Kubernetes
// Secret mounted for a non-root user through fsGroup needs it.
func LoadOrCreateKEK(path string) ([]byte, error) {
	key, err := loadKEK(path)
	if !errors.Is(err, os.ErrNotExist) {
		return key, err
	}
	key = make([]byte, KEKSize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, fmt.Errorf("generate key-encryption key: %w", err)
	}
	if err := createFileOnce(path, key, 0o600); err != nil {
		if errors.Is(err, os.ErrExist) {
			return loadKEK(path) // someone else made it first
		}
		return nil, err
	}
	return key, nil
}

// LoadKEK reads the key-encryption key at path, with the checks of
// [LoadOrCreateKEK], and never makes one: a missing file is an error
// matching [os.ErrNotExist].
func LoadKEK(path string) ([]byte, error) { return loadKEK(path) }

func loadKEK(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key-encryption key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key-encryption key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key-encryption key %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); runtime.GOOS != "windows" && perm&0o037 != 0 {
		return nil, fmt.Errorf("key-encryption key %s has mode %#o: others may access it or its group may write it; chmod 600 it", path, perm)
	}
	if st.Size() != KEKSize {
		return nil, fmt.Errorf("key-encryption key %s has %d bytes, want %d", path, st.Size(), KEKSize)
	}
	key := make([]byte, KEKSize)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("read key-encryption key %s: %w", path, err)
	}
	return key, nil
}

// createFileOnce writes data to a temporary file beside name, fsyncs it, and
// links it to name, which fails with an error matching os.ErrExist when name
// exists: unlike [WriteFileAtomic], it never replaces a file.
func createFileOnce(name string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(name), err)
	}
	return placeFile(name, data, perm, os.Link)
}
