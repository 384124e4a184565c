//go:build linux

// Package tmpfstest gives the sensor's tests a small file system of their own
// that they can fill to the last byte: a tmpfs the test mounts on a temporary
// directory. Filling a shared disk to test what the sensor does when its disk
// is full would hurt everything else on the machine; a tmpfs of a few MiB
// fills in milliseconds and vanishes with the test.
//
// Mounting needs root (CAP_SYS_ADMIN), as the tests have here and in CI.
// Where it is impossible the test is skipped with the reason, or fails when
// OSPREY_REQUIRE_PEERS=1, as for the other peers the tests need.
package tmpfstest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a new temporary directory, returns
// that directory, and unmounts it when the test ends. Register whatever
// keeps files open in it (a spool, a sensor) after Mount, so that its
// cleanup runs before the unmount.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size))
	if err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs of %d bytes on %s (it needs root or CAP_SYS_ADMIN; uid %d): %v", size, dir, os.Geteuid(), err)
		if os.Getenv("OSPREY_REQUIRE_PEERS") == "1" {
			t.Fatal(msg + " and OSPREY_REQUIRE_PEERS=1")
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount the tmpfs on %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes a file in dir until its file system is full, and returns the
// file's path; removing the file frees the space again. It fails the test
// unless the file system ends up with no byte free.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "filler-")
	if err != nil {
		t.Fatalf("fill %s: %v", dir, err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	// Big writes first, then smaller ones for the last pages.
	for len(buf) > 0 {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			buf = buf[:len(buf)/2]
		}
	}
	if free := Free(t, dir); free != 0 {
		t.Fatalf("fill %s: %d bytes still free", dir, free)
	}
	return filepath.Clean(f.Name())
}

// Free returns the bytes free in the file system of dir.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	return int64(st.Bavail) * st.Bsize
}
