//go:build linux || darwin || freebsd

package backup

import (
	"errors"
	"io/fs"
	"os"
	"syscall"
)

// locked reports whether another process holds a lock on the file at
// path, as etcd's database (bbolt) does while a member runs. A missing
// file is not locked.
func locked(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return false, syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
