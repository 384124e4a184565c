package gossip

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/memberlist"
)

// KeySize is the size of a gossip key: AES-256.
const KeySize = 32

// ErrNotEncrypted is returned by the key methods of a cluster that runs
// without gossip encryption.
var ErrNotEncrypted = errors.New("gossip is not encrypted")

// NewKey returns a new random gossip key.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate gossip key: %w", err)
	}
	return k, nil
}

// EncodeKey returns the base64 form of key, as --gossip-key takes it.
func EncodeKey(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// ParseKey decodes the base64 of a 32-byte gossip key. It never puts the
// key in its error.
func ParseKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("gossip key: not valid base64")
	}
	if len(k) != KeySize {
		return nil, fmt.Errorf("gossip key: %d bytes, want %d", len(k), KeySize)
	}
	return k, nil
}

// ReadKeyringFile reads a keyring file: a JSON array of base64 keys, the
// primary (the one that encrypts) first.
func ReadKeyringFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	var enc []string
	if err := json.Unmarshal(b, &enc); err != nil {
		return nil, fmt.Errorf("read keyring %s: want a JSON array of base64 keys: %w", path, err)
	}
	if len(enc) == 0 {
		return nil, fmt.Errorf("read keyring %s: no key", path)
	}
	keys := make([][]byte, 0, len(enc))
	for i, s := range enc {
		k, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("read keyring %s: key %d: %w", path, i, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// WriteKeyringFile writes keys, primary first, to path (mode 0600), replacing
// it atomically.
func WriteKeyringFile(path string, keys [][]byte) error {
	enc := make([]string, len(keys))
	for i, k := range keys {
		enc[i] = EncodeKey(k)
	}
	b, err := json.MarshalIndent(enc, "", "  ")
	if err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".keyring-*")
	if err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	return nil
}

// loadKeyring builds the memberlist keyring from the options; nil when gossip
// runs in plaintext.
func loadKeyring(o *Options) (*memberlist.Keyring, error) {
	var keys [][]byte
	switch {
	case o.Key != "":
		k, err := ParseKey(o.Key)
		if err != nil {
			return nil, err
		}
		keys = [][]byte{k}
	case o.KeyringFile != "":
		var err error
		if keys, err = ReadKeyringFile(o.KeyringFile); err != nil {
			return nil, err
		}
	default:
		if o.RequireEncryption {
			return nil, ErrEncryptionRequired
		}
		return nil, nil
	}
	kr, err := memberlist.NewKeyring(keys, keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	return kr, nil
}

// Key rotation, done on every node of the cluster in three rounds:
//
//  1. AddKey(new) on every node: each one now decrypts with both keys and
//     still encrypts with the old one.
//  2. UseKey(new) on every node: each one encrypts with the new key; nodes
//     not yet switched still decrypt it (step 1).
//  3. RemoveKey(old) on every node, once all have switched.
//
// A round must reach every node before the next starts; a node that missed
// step 1 is cut off by step 2 until it gets the key. With a KeyringFile the
// change is written back, so a restart keeps it.

// AddKey installs key for decryption; it does not change the primary key.
func (c *Cluster) AddKey(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("gossip key: %d bytes, want %d", len(key), KeySize)
	}
	return c.changeKeys(func(kr *memberlist.Keyring) error { return kr.AddKey(key) })
}

// UseKey makes an installed key the primary one, which encrypts.
func (c *Cluster) UseKey(key []byte) error {
	return c.changeKeys(func(kr *memberlist.Keyring) error { return kr.UseKey(key) })
}

// RemoveKey removes a key that is not the primary one.
func (c *Cluster) RemoveKey(key []byte) error {
	return c.changeKeys(func(kr *memberlist.Keyring) error { return kr.RemoveKey(key) })
}

// Keys returns the installed keys, the primary first.
func (c *Cluster) Keys() ([][]byte, error) {
	if c.keyring == nil {
		return nil, ErrNotEncrypted
	}
	return orderedKeys(c.keyring), nil
}

func orderedKeys(kr *memberlist.Keyring) [][]byte {
	primary := kr.GetPrimaryKey()
	keys := [][]byte{primary}
	for _, k := range kr.GetKeys() {
		if !bytes.Equal(k, primary) {
			keys = append(keys, k)
		}
	}
	return keys
}

func (c *Cluster) changeKeys(f func(*memberlist.Keyring) error) error {
	if c.keyring == nil {
		return ErrNotEncrypted
	}
	c.keyMu.Lock()
	defer c.keyMu.Unlock()
	if err := f(c.keyring); err != nil {
		return fmt.Errorf("gossip keyring: %w", err)
	}
	if c.opts.KeyringFile != "" {
		return WriteKeyringFile(c.opts.KeyringFile, orderedKeys(c.keyring))
	}
	return nil
}
