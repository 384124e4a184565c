//go:build !(linux || darwin || freebsd)

package spool

import "math"

// freeBytes does not know the free space here: the spool never reports
// ErrLowDisk on this system.
func freeBytes(string) (int64, error) {
	return math.MaxInt64, nil
}

// lockDir does not lock on this system.
func lockDir(string) (func() error, error) {
	return func() error { return nil }, nil
}

// isNoSpace does not recognise a full disk on this system.
func isNoSpace(error) bool { return false }
