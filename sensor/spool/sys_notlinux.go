//go:build !linux

package spool

import (
	"errors"
	"os"
)

// fdatasync flushes f; this system has no fdatasync that Go exposes.
func fdatasync(f *os.File) error {
	return f.Sync()
}

// allocate is not available here: the caller writes zeros instead.
func allocate(*os.File, int64) error {
	return errors.ErrUnsupported
}
