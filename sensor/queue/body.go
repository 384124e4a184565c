package queue

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Bodies of FileBodySize bytes and more live in files of their own, in
// the bodies directory beside the database, and the bodies table names
// the file: a body in the database is written twice (into the WAL, then
// by the checkpoint into the database file), which for large messages
// makes the disk's bandwidth, not its fsyncs, the queue's limit. A file is
// written once: Enqueue writes it and fsyncs it before its transaction,
// and the transaction fsyncs the directory before it commits, so that a
// committed row never names a file a crash could lose. Small bodies stay
// in the database, where a batch of them costs one fsync.
//
// A file's name is the message id and a random suffix, so that two
// Enqueues of one message (idempotent: one adds it) never write one file:
// the one that did not add removes its own. A file no row names (its
// transaction failed, or a crash came between its write and the commit,
// or between a message's deletion and its file's) is removed by Open.

// FileBodySize is the body size from which the queue keeps a body in a
// file of its own.
const FileBodySize = 32 << 10

// bodiesDir is the directory of the body files, in the queue's.
const bodiesDir = "bodies"

func (q *Queue) bodiesPath() string { return filepath.Join(q.dir, bodiesDir) }

// writeBodyFile writes body to a new file for message id, durably (its
// directory entry is the transaction's to sync), and returns its name.
func (q *Queue) writeBodyFile(id string, body []byte) (string, error) {
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", err
	}
	name := fileSafe(id) + "." + hex.EncodeToString(suffix[:])
	f, err := os.OpenFile(filepath.Join(q.bodiesPath(), name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("write the body file: %w", err)
	}
	_, err = f.Write(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write the body file: %w", err)
	}
	return name, nil
}

// fileSafe is id as the start of a file name: the characters of the
// spool's and the notices' ids, anything else replaced.
func fileSafe(id string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, id)
}

// readBody returns the body of a row of bodies: inline, or in file.
func (q *Queue) readBody(inline []byte, file string) ([]byte, error) {
	if file == "" {
		return inline, nil
	}
	b, err := os.ReadFile(filepath.Join(q.bodiesPath(), file))
	if err != nil {
		return nil, fmt.Errorf("read the body file: %w", err)
	}
	return b, nil
}

// removeBodyFile removes a body file no row names any more; one left
// behind is removed by the next Open.
func (q *Queue) removeBodyFile(file string) {
	if file == "" {
		return
	}
	if err := os.Remove(filepath.Join(q.bodiesPath(), file)); err != nil && !errors.Is(err, os.ErrNotExist) {
		q.log.Warn("remove a body file; the next start removes it", "file", file, "err", err)
	}
}

// syncBodies fsyncs the bodies directory: the entries of the files
// written for a transaction, before it commits.
func (q *Queue) syncBodies() error {
	d, err := os.Open(q.bodiesPath())
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", q.bodiesPath(), err)
	}
	return nil
}

// collectBodies makes the bodies directory if needed and removes the
// files no row names. Open calls it before anything can write.
func (q *Queue) collectBodies(ctx context.Context) error {
	dir := q.bodiesPath()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	removed := 0
	for _, e := range entries {
		var one int
		err := q.db.QueryRowContext(ctx, "SELECT 1 FROM bodies WHERE file = ?", e.Name()).Scan(&one)
		if err == nil {
			continue
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
		removed++
	}
	if removed > 0 {
		q.log.InfoContext(ctx, "removed body files that no queued message names", "files", removed)
	}
	return nil
}
