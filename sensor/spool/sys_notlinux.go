//go:build !linux

package spool

import "os"

// fdatasync flushes f; this system has no fdatasync that Go exposes.
func fdatasync(f *os.File) error {
	return f.Sync()
}
