// Package durable writes files that survive a crash or a power loss once
// the write has returned: the data is fsynced before the file takes its
// name, and the directory is fsynced after, so that the name is on disk
// too. A crash in between leaves the old file (or none) and a temporary
// file the caller's next start may remove.
package durable

import (
	"fmt"
	"os"
	"path/filepath"
)

// TempSuffix ends the names of the files WriteFile writes before renaming
// them.
const TempSuffix = ".tmp"

// WriteFile writes the parts to path, one after the other, durably; an
// existing file at path is replaced whole. The file is private to the
// sensor's user.
func WriteFile(path string, parts ...[]byte) error {
	tmp := path + TempSuffix
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	for _, p := range parts {
		if _, err = f.Write(p); err != nil {
			break
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = SyncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Remove removes the file at path, durably; a file already gone is no
// error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory, so that the names in it are on disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
