package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/pkg/acceptlist"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// A gateway's acceptance lists are kept as a head and chunks (see the key
// layout in keys.go); these are their reads and writes.

const (
	// maxChunkBytes bounds one chunk of an acceptance list.
	maxChunkBytes = 256 << 10
	// chunksPerTxn is how many chunks one transaction puts: 1 MiB, within
	// etcd's default 1.5 MiB per request.
	chunksPerTxn = 4
	// emptyGeneration is the generation of the empty list: no chunks.
	emptyGeneration = "0"
)

// acceptanceHead is the value of a list's head key.
type acceptanceHead struct {
	generation string
	counts     []int // entries of each chunk
	total      int
}

func (h acceptanceHead) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d", h.generation, h.total)
	for _, n := range h.counts {
		fmt.Fprintf(&b, " %d", n)
	}
	return b.String()
}

func parseAcceptanceHead(key string, v []byte) (acceptanceHead, error) {
	f := strings.Fields(string(v))
	bad := func() (acceptanceHead, error) {
		return acceptanceHead{}, fmt.Errorf("decode %s: not an acceptance list head: %q", key, v)
	}
	if len(f) < 2 || (f[0] != emptyGeneration && !validGeneration(f[0])) {
		return bad()
	}
	h := acceptanceHead{generation: f[0]}
	total, err := strconv.Atoi(f[1])
	if err != nil || total < 0 {
		return bad()
	}
	for _, s := range f[2:] {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return bad()
		}
		h.counts = append(h.counts, n)
		h.total += n
	}
	if h.total != total || (h.generation == emptyGeneration) != (total == 0) {
		return bad()
	}
	return h, nil
}

// chunkEntries splits a chunk's value, checking it holds want entries.
func chunkEntries(key string, v []byte, want int) ([]string, error) {
	entries := strings.Split(string(v), "\n")
	if len(v) == 0 || len(entries) != want {
		return nil, fmt.Errorf("decode %s: %d entries, its head says %d", key, len(entries), want)
	}
	return entries, nil
}

// AcceptancePage is a page of a sensor's acceptance list.
type AcceptancePage struct {
	// Entries are the entries from Offset on, in the list's order.
	Entries []string
	Offset  int
	// Total is the number of entries of the whole list.
	Total int
	// Version is the list's version (0: never written).
	Version int64
}

// checkKind refuses a kind that names no acceptance list.
func checkKind(kind ospreyv1.AcceptanceListKind) error {
	if _, ok := acceptanceKinds[kind]; !ok {
		return fieldError("kind", "must be inbound, outbound or auth")
	}
	return nil
}

// GetAcceptance returns limit entries of a sensor's acceptance list from
// offset on (limit 0 or less: all of them), with the list's size and
// version, as of one revision: the head, then the chunks that hold the page.
// A sensor outside scope is ErrNotFound.
func (s *Store) GetAcceptance(ctx context.Context, scope Scope, sensorID string, kind ospreyv1.AcceptanceListKind, offset, limit int) (*AcceptancePage, error) {
	if err := checkKind(kind); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fieldError("offset", "must not be negative")
	}
	tenant, err := s.sensorTenant(ctx, scope, sensorID)
	if err != nil {
		return nil, err
	}
	for {
		page, err := s.readAcceptance(ctx, tenant, sensorID, kind, offset, limit)
		if errors.Is(err, ErrCompacted) {
			continue // compacted between the head and its chunks: read again
		}
		return page, err
	}
}

// readAcceptance reads a page of a list: the head (with the sensor's
// existence) in one transaction, then the chunks of the page at the head's
// revision.
func (s *Store) readAcceptance(ctx context.Context, tenant, id string, kind ospreyv1.AcceptanceListKind, offset, limit int) (*AcceptancePage, error) {
	h, version, rev, err := s.acceptanceHead(ctx, tenant, id, kind)
	if err != nil {
		return nil, err
	}
	page := &AcceptancePage{Offset: offset, Total: h.total, Version: version, Entries: []string{}}
	end := h.total
	if limit > 0 {
		end = min(end, offset+limit)
	}
	if offset >= end {
		return page, nil
	}
	// Chunks first..last hold entries [offset, end); start is the index of
	// chunk first's first entry.
	first, start := 0, 0
	for start+h.counts[first] <= offset {
		start += h.counts[first]
		first++
	}
	last, upto := first, start+h.counts[first]
	for upto < end {
		last++
		upto += h.counts[last]
	}
	from := acceptanceChunkKey(tenant, id, kind, h.generation, first)
	to := acceptanceChunkKey(tenant, id, kind, h.generation, last+1)
	resp, err := s.cli.Get(ctx, from, clientv3.WithRange(to), clientv3.WithRev(rev))
	if err != nil {
		return nil, etcdErr("range", from, err)
	}
	if len(resp.Kvs) != last-first+1 {
		return nil, fmt.Errorf("acceptance list %s: %d chunks of generation %s from %d, want %d", acceptanceHeadKey(tenant, id, kind), len(resp.Kvs), h.generation, first, last-first+1)
	}
	page.Entries = make([]string, 0, end-offset)
	for i, kv := range resp.Kvs {
		entries, err := chunkEntries(string(kv.Key), kv.Value, h.counts[first+i])
		if err != nil {
			return nil, err
		}
		lo, hi := max(offset-start, 0), min(end-start, len(entries))
		page.Entries = append(page.Entries, entries[lo:hi]...)
		start += len(entries)
	}
	return page, nil
}

// acceptanceHead reads a list's head with the sensor's existence: the head
// (the empty list when absent), its version and the revision read at.
func (s *Store) acceptanceHead(ctx context.Context, tenant, id string, kind ospreyv1.AcceptanceListKind) (acceptanceHead, int64, int64, error) {
	key := acceptanceHeadKey(tenant, id, kind)
	resp, err := s.cli.Txn(ctx).Then(probe(sensorKey(tenant, id, partMeta)), clientv3.OpGet(key)).Commit()
	if err != nil {
		return acceptanceHead{}, 0, 0, etcdErr("txn", key, err)
	}
	if !found(resp.Responses[0]) {
		return acceptanceHead{}, 0, 0, fmt.Errorf("sensor %q: %w", id, ErrNotFound)
	}
	kvs := resp.Responses[1].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return acceptanceHead{generation: emptyGeneration}, 0, resp.Header.Revision, nil
	}
	h, err := parseAcceptanceHead(key, kvs[0].Value)
	if err != nil {
		return acceptanceHead{}, 0, 0, err
	}
	return h, kvs[0].ModRevision, resp.Header.Revision, nil
}

// AcceptanceResult is the state of a list after a write.
type AcceptanceResult struct {
	Version int64
	Total   int
	// Changed is false when the write left the list as it was (and stored
	// nothing).
	Changed bool
}

// ReplaceAcceptance replaces a sensor's acceptance list with entries (in
// any order and form: they are stored canonical) if its version is still
// expect (AnyVersion: the version it reads first). Bad entries are
// validate.Errors ("entries[3]"); a list that changes nothing is not
// written.
func (s *Store) ReplaceAcceptance(ctx context.Context, scope Scope, sensorID string, kind ospreyv1.AcceptanceListKind, entries []string, expect int64) (AcceptanceResult, error) {
	l, err := acceptlist.Parse(entries)
	if err != nil {
		return AcceptanceResult{}, validate.AcceptanceErrors(err)
	}
	return s.updateAcceptance(ctx, scope, sensorID, kind, expect, false, func(*acceptlist.List) (*acceptlist.List, error) { return l, nil })
}

// ImportAcceptance reads a file of entries (see acceptlist.Import) into a
// sensor's acceptance list: in place of its entries, or, with add, beside
// them. Every bad entry is refused with its line ("line 3"), and nothing
// is stored then. expect is as for ReplaceAcceptance.
func (s *Store) ImportAcceptance(ctx context.Context, scope Scope, sensorID string, kind ospreyv1.AcceptanceListKind, r io.Reader, add bool, expect int64) (AcceptanceResult, error) {
	if !add {
		l, err := acceptlist.Import(r, nil)
		if err != nil {
			return AcceptanceResult{}, validate.AcceptanceErrors(err)
		}
		return s.updateAcceptance(ctx, scope, sensorID, kind, expect, false, func(*acceptlist.List) (*acceptlist.List, error) { return l, nil })
	}
	// Read the file once, since a conflict makes the merge run again.
	text, err := io.ReadAll(io.LimitReader(r, acceptlist.MaxBytes+1))
	if err != nil {
		return AcceptanceResult{}, fmt.Errorf("read import: %w", err)
	}
	return s.updateAcceptance(ctx, scope, sensorID, kind, expect, true, func(cur *acceptlist.List) (*acceptlist.List, error) {
		l, err := acceptlist.Import(strings.NewReader(string(text)), cur)
		return l, validate.AcceptanceErrors(err)
	})
}

// EditAcceptance removes the entries of remove from a sensor's acceptance
// list and adds those of add (see acceptlist.List.Edit: an entry is edited
// by removing it and adding its new form) if the list's version is still
// expect. Bad entries are validate.Errors ("add[0]", "remove[2]").
func (s *Store) EditAcceptance(ctx context.Context, scope Scope, sensorID string, kind ospreyv1.AcceptanceListKind, add, remove []string, expect int64) (AcceptanceResult, error) {
	return s.updateAcceptance(ctx, scope, sensorID, kind, expect, true, func(cur *acceptlist.List) (*acceptlist.List, error) {
		l, err := cur.Edit(add, remove)
		return l, validate.AcceptanceErrors(err)
	})
}

// ClearAcceptance deletes every entry of a sensor's acceptance list if its
// version is still expect. The list keeps its head (empty), so its version
// only grows.
func (s *Store) ClearAcceptance(ctx context.Context, scope Scope, sensorID string, kind ospreyv1.AcceptanceListKind, expect int64) (AcceptanceResult, error) {
	return s.updateAcceptance(ctx, scope, sensorID, kind, expect, false, func(*acceptlist.List) (*acceptlist.List, error) { return nil, nil })
}

// updateAcceptance reads a list (its entries too when current is set, for
// next), makes the new list with next, and writes it if the list is still
// at expect (AnyVersion: the version read). Without current, next gets nil
// and the stored entries are read only to tell whether the list changes.
func (s *Store) updateAcceptance(ctx context.Context, scope Scope, id string, kind ospreyv1.AcceptanceListKind, expect int64, current bool,
	next func(*acceptlist.List) (*acceptlist.List, error)) (AcceptanceResult, error) {
	if err := checkKind(kind); err != nil {
		return AcceptanceResult{}, err
	}
	tenant, err := s.sensorTenant(ctx, scope, id)
	if err != nil {
		return AcceptanceResult{}, err
	}
	if !current {
		// The new list does not depend on the stored one: refuse a bad
		// one before reading anything.
		if _, err := next(nil); err != nil {
			return AcceptanceResult{}, err
		}
	}
	var stored *AcceptancePage
	for {
		stored, err = s.readAcceptance(ctx, tenant, id, kind, 0, 0)
		if !errors.Is(err, ErrCompacted) {
			break
		}
	}
	if err != nil {
		return AcceptanceResult{}, err
	}
	if expect != AnyVersion && expect != stored.Version {
		return AcceptanceResult{}, fmt.Errorf("sensor %q %s acceptance list: at version %d, not %d: %w", id, acceptanceKinds[kind], stored.Version, expect, ErrConflict)
	}
	var cur *acceptlist.List
	if current {
		// Stored entries are canonical: parsing them cannot fail but for
		// a damaged value.
		if cur, err = acceptlist.Parse(stored.Entries); err != nil {
			return AcceptanceResult{}, fmt.Errorf("stored %s acceptance list of sensor %q: %w", acceptanceKinds[kind], id, err)
		}
	}
	l, err := next(cur)
	if err != nil {
		return AcceptanceResult{}, err
	}
	entries := l.Entries()
	if equalStrings(entries, stored.Entries) {
		return AcceptanceResult{Version: stored.Version, Total: stored.Total}, nil
	}
	v, err := s.writeAcceptance(ctx, tenant, id, kind, entries, stored.Version, nil, nil)
	if err != nil {
		return AcceptanceResult{}, err
	}
	return AcceptanceResult{Version: v, Total: len(entries), Changed: true}, nil
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// writeAcceptance stores entries (canonical) as a list's new generation
// and makes it the list's if its head is still at headVersion (0: absent)
// and conds hold; also are written with the head. It returns the list's
// new version. See the key layout in keys.go for the order of the writes.
func (s *Store) writeAcceptance(ctx context.Context, tenant, id string, kind ospreyv1.AcceptanceListKind, entries []string, headVersion int64,
	conds []clientv3.Cmp, also []clientv3.Op) (int64, error) {
	meta, headKey := sensorKey(tenant, id, partMeta), acceptanceHeadKey(tenant, id, kind)
	chunks, counts := chunk(entries)
	h := acceptanceHead{generation: emptyGeneration, counts: counts, total: len(entries)}
	if len(chunks) > 0 {
		h.generation = newGeneration()
	}
	var written []string // the chunk keys put, to remove when the swap fails
	cleanup := func() {
		// Best effort: a chunk left behind is ignored by readers and
		// removed by the next write of the list.
		_ = s.deleteKeys(context.WithoutCancel(ctx), written)
	}
	for start := 0; start < len(chunks); start += chunksPerTxn {
		var ops []clientv3.Op
		for n := start; n < min(start+chunksPerTxn, len(chunks)); n++ {
			key := acceptanceChunkKey(tenant, id, kind, h.generation, n)
			ops = append(ops, clientv3.OpPut(key, chunks[n]))
			written = append(written, key)
		}
		resp, err := s.cli.Txn(ctx).If(exists(meta)).Then(ops...).Commit()
		if err != nil {
			cleanup()
			return 0, etcdErr("txn", headKey, err)
		}
		if !resp.Succeeded {
			cleanup()
			return 0, fmt.Errorf("sensor %q: %w", id, ErrNotFound)
		}
	}
	swap := append([]clientv3.Cmp{exists(meta), clientv3.Compare(clientv3.ModRevision(headKey), "=", headVersion)}, conds...)
	resp, err := s.cli.Txn(ctx).If(swap...).Then(append([]clientv3.Op{clientv3.OpPut(headKey, h.String())}, also...)...).
		Else(probe(meta), probe(headKey)).Commit()
	if err != nil {
		cleanup()
		return 0, etcdErr("txn", headKey, err)
	}
	if !resp.Succeeded {
		cleanup()
		switch {
		case !found(resp.Responses[0]):
			return 0, fmt.Errorf("sensor %q: %w", id, ErrNotFound)
		case modRevision(resp.Responses[1]) != headVersion:
			return 0, fmt.Errorf("sensor %q %s acceptance list: at version %d, not %d: %w", id, acceptanceKinds[kind], modRevision(resp.Responses[1]), headVersion, ErrConflict)
		}
		return 0, fmt.Errorf("sensor %q %s acceptance list: %w", id, acceptanceKinds[kind], errRetry)
	}
	version := resp.Header.Revision
	// Best effort, as above.
	_ = s.deleteStaleChunks(ctx, tenant, id, kind, h.generation, version)
	return version, nil
}

// chunk splits entries into chunks of at most maxChunkBytes, one entry a
// line, and returns them with the number of entries of each.
func chunk(entries []string) (chunks []string, counts []int) {
	var b strings.Builder
	n := 0
	for _, e := range entries {
		if b.Len() > 0 && b.Len()+1+len(e) > maxChunkBytes {
			chunks, counts = append(chunks, b.String()), append(counts, n)
			b.Reset()
			n = 0
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e)
		n++
	}
	if n > 0 {
		chunks, counts = append(chunks, b.String()), append(counts, n)
	}
	return chunks, counts
}

// newGeneration returns a random generation: one per write, so that two
// writers never put chunks under the same keys.
func newGeneration() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// deleteStaleChunks deletes the chunks of a list that are not of
// generation keep and were written before revision swapped, when keep
// became the list's: the previous generation, and those of writes that
// were interrupted or lost to another. A write that read the head after
// the swap puts its chunks after it, so they are not touched here.
func (s *Store) deleteStaleChunks(ctx context.Context, tenant, id string, kind ospreyv1.AcceptanceListKind, keep string, swapped int64) error {
	prefix := acceptanceHeadKey(tenant, id, kind) + "/"
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return etcdErr("range", prefix, err)
	}
	var stale []string
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		if !strings.HasPrefix(key, prefix+keep+"/") && kv.ModRevision < swapped {
			stale = append(stale, key)
		}
	}
	return s.deleteKeys(ctx, stale)
}

// deleteKeys deletes keys in transactions of up to maxTxnOps.
func (s *Store) deleteKeys(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), maxTxnOps)]
		keys = keys[len(batch):]
		ops := make([]clientv3.Op, len(batch))
		for i, k := range batch {
			ops[i] = clientv3.OpDelete(k)
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return etcdErr("txn", batch[0], err)
		}
	}
	return nil
}
