package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/pkg/acceptlist"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

const (
	inbound  = ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND
	outbound = ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND
	authList = ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_AUTH
)

// manyEntries returns n canonical entries, in order: IPv4 addresses, then
// IPv6 /64 prefixes, then domains.
func manyEntries(n int) []string {
	var v4, v6, names []string
	for i := range n {
		switch i % 3 {
		case 0:
			v4 = append(v4, fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255))
		case 1:
			v6 = append(v6, fmt.Sprintf("2001:db8:%x:%x::/64", i>>16, i&0xffff))
		default:
			names = append(names, fmt.Sprintf("host%07d.example.com", i))
		}
	}
	l, err := acceptlist.Parse(append(append(v4, v6...), names...))
	if err != nil {
		panic(err)
	}
	return l.Entries()
}

func getAll(t *testing.T, st *Store, scope Scope, id string, kind ospreyv1.AcceptanceListKind) *AcceptancePage {
	t.Helper()
	p, err := st.GetAcceptance(t.Context(), scope, id, kind, 0, 0)
	if err != nil {
		t.Fatalf("get %s list of %s: %v", kind, id, err)
	}
	return p
}

// TestAcceptanceLargeListRoundTrip stores a list of 100,000 entries in an
// etcd with its default limits (1.5 MiB a request, 128 operations a
// transaction) and reads it back whole and a page at a time.
func TestAcceptanceLargeListRoundTrip(t *testing.T) {
	st, cli := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	want := manyEntries(100_000)

	res, err := st.ReplaceAcceptance(ctx, TenantScope("a"), "s1", inbound, want, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != len(want) || !res.Changed || res.Version == 0 {
		t.Errorf("replace: %+v, want %d entries, changed, a version", res, len(want))
	}
	got := getAll(t, st, TenantScope("a"), "s1", inbound)
	if got.Version != res.Version || got.Total != len(want) {
		t.Errorf("read version %d total %d, want %d and %d", got.Version, got.Total, res.Version, len(want))
	}
	if diff := cmp.Diff(want, got.Entries); diff != "" {
		t.Fatalf("entries read back (-want +got):\n%s", diff)
	}

	// Several chunks, none past the bound.
	chunks, err := cli.Get(ctx, acceptanceHeadKey("a", "s1", inbound)+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks.Kvs) < 2 {
		t.Errorf("%d chunks, want several", len(chunks.Kvs))
	}
	for _, kv := range chunks.Kvs {
		if len(kv.Value) > maxChunkBytes {
			t.Errorf("chunk %s holds %d bytes, more than %d", kv.Key, len(kv.Value), maxChunkBytes)
		}
	}

	// Pages, some across chunk boundaries, and past the end.
	for _, pg := range []struct{ offset, limit int }{{0, 25}, {14990, 500}, {50_000, 100}, {99_990, 500}, {100_000, 50}, {123_456, 10}} {
		p, err := st.GetAcceptance(ctx, AllTenants(), "s1", inbound, pg.offset, pg.limit)
		if err != nil {
			t.Fatal(err)
		}
		end := min(pg.offset+pg.limit, len(want))
		wantPage := []string{}
		if pg.offset < end {
			wantPage = want[pg.offset:end]
		}
		if diff := cmp.Diff(wantPage, p.Entries); diff != "" {
			t.Errorf("page %+v (-want +got):\n%s", pg, diff)
		}
		if p.Total != len(want) || p.Version != res.Version {
			t.Errorf("page %+v: total %d version %d, want %d and %d", pg, p.Total, p.Version, len(want), res.Version)
		}
	}

	// Replaced by a small list: the old chunks are gone.
	small, err := st.ReplaceAcceptance(ctx, AllTenants(), "s1", inbound, []string{"192.0.2.1"}, res.Version)
	if err != nil {
		t.Fatal(err)
	}
	if small.Version <= res.Version {
		t.Errorf("version %d after %d", small.Version, res.Version)
	}
	chunks, err = cli.Get(ctx, acceptanceHeadKey("a", "s1", inbound)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if chunks.Count != 1 {
		t.Errorf("%d chunks left, want 1", chunks.Count)
	}
}

func TestAcceptanceEdits(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	sc := TenantScope("a")

	empty := getAll(t, st, sc, "s1", outbound)
	if empty.Version != 0 || empty.Total != 0 || len(empty.Entries) != 0 {
		t.Errorf("never written: %+v, want empty at version 0", empty)
	}
	r1, err := st.EditAcceptance(ctx, sc, "s1", outbound, []string{"2001:DB8::1", "192.0.2.0/24", "mail.example.com"}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Edit an entry: remove the old form, add the new.
	r2, err := st.EditAcceptance(ctx, sc, "s1", outbound, []string{"192.0.2.0/25"}, []string{"192.0.2.0/24"}, r1.Version)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"192.0.2.0/25", "2001:db8::1", "mail.example.com"}, getAll(t, st, sc, "s1", outbound).Entries); diff != "" {
		t.Errorf("after edits (-want +got):\n%s", diff)
	}
	// A stale version changes nothing.
	if _, err := st.EditAcceptance(ctx, sc, "s1", outbound, []string{"198.51.100.1"}, nil, r1.Version); !errors.Is(err, ErrConflict) {
		t.Errorf("edit at a stale version: got %v, want ErrConflict", err)
	}
	// Bad entries are field errors, and nothing is written.
	_, err = st.EditAcceptance(ctx, sc, "s1", outbound, []string{"10.0.0.1/8"}, []string{"example.org"}, AnyVersion)
	es, ok := validate.AsErrors(err)
	if !ok {
		t.Fatalf("bad edit: got %v, want validate.Errors", err)
	}
	var fields []string
	for _, e := range es {
		fields = append(fields, e.Field)
	}
	if diff := cmp.Diff([]string{"remove[0]", "add[0]"}, fields); diff != "" {
		t.Errorf("fields (-want +got):\n%s\n%v", diff, err)
	}
	// Adding what is there changes nothing, and keeps the version.
	r3, err := st.EditAcceptance(ctx, sc, "s1", outbound, []string{"mail.example.com"}, nil, AnyVersion)
	if err != nil || r3.Changed || r3.Version != r2.Version {
		t.Errorf("edit to the same list: %+v, %v; want unchanged at %d", r3, err, r2.Version)
	}
	// Clear keeps a head, so the version grows.
	r4, err := st.ClearAcceptance(ctx, sc, "s1", outbound, r2.Version)
	if err != nil || !r4.Changed || r4.Version <= r2.Version || r4.Total != 0 {
		t.Errorf("clear: %+v, %v", r4, err)
	}
	if p := getAll(t, st, sc, "s1", outbound); p.Total != 0 || p.Version != r4.Version {
		t.Errorf("after clear: %+v", p)
	}
	if r5, err := st.ClearAcceptance(ctx, sc, "s1", outbound, AnyVersion); err != nil || r5.Changed {
		t.Errorf("clear of an empty list: %+v, %v; want unchanged", r5, err)
	}
	// Other lists are untouched.
	if p := getAll(t, st, sc, "s1", inbound); p.Version != 0 {
		t.Errorf("inbound list at version %d, want never written", p.Version)
	}
}

func TestAcceptanceImport(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	sc := AllTenants()

	r1, err := st.ImportAcceptance(ctx, sc, "s1", authList, strings.NewReader("192.0.2.1, 192.0.2.2;example.com\n2001:db8::/32\n"), false, AnyVersion)
	if err != nil || r1.Total != 4 {
		t.Fatalf("import: %+v, %v", r1, err)
	}
	r2, err := st.ImportAcceptance(ctx, sc, "s1", authList, strings.NewReader("198.51.100.0/24\n192.0.2.1\n"), true, r1.Version)
	if err != nil || r2.Total != 5 {
		t.Fatalf("append: %+v, %v", r2, err)
	}
	want := []string{"192.0.2.1", "192.0.2.2", "198.51.100.0/24", "2001:db8::/32", "example.com"}
	if diff := cmp.Diff(want, getAll(t, st, sc, "s1", authList).Entries); diff != "" {
		t.Errorf("after append (-want +got):\n%s", diff)
	}
	// A file with bad lines: each named, nothing stored.
	_, err = st.ImportAcceptance(ctx, sc, "s1", authList, strings.NewReader("203.0.113.1\n10.0.0.1/8\n\nbad_name\n!192.0.2.2\n"), true, AnyVersion)
	es, ok := validate.AsErrors(err)
	if !ok {
		t.Fatalf("bad import: got %v, want validate.Errors", err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Error())
	}
	wantErrs := []string{
		`line 2: "10.0.0.1/8": host bits set, did you mean 10.0.0.0/8`,
		`line 4: "bad_name": not an IP address, CIDR prefix or domain: invalid domain name: idna: disallowed rune U+005F`,
		`line 5: "!192.0.2.2": the same entry is both included and excluded: the list holds "192.0.2.2"`,
	}
	if diff := cmp.Diff(wantErrs, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if p := getAll(t, st, sc, "s1", authList); p.Version != r2.Version || p.Total != 5 {
		t.Errorf("after a refused import: version %d total %d, want %d and 5", p.Version, p.Total, r2.Version)
	}
	// Replace.
	r3, err := st.ImportAcceptance(ctx, sc, "s1", authList, strings.NewReader("203.0.113.0/24"), false, r2.Version)
	if err != nil || r3.Total != 1 {
		t.Fatalf("replace: %+v, %v", r3, err)
	}
}

func TestAcceptanceScope(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a", "b"}, [2]string{"a", "s1"}, [2]string{"b", "s2"})
	if _, err := st.ReplaceAcceptance(ctx, AllTenants(), "s2", inbound, []string{"192.0.2.1"}, AnyVersion); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"get": func() error { _, err := st.GetAcceptance(ctx, TenantScope("a"), "s2", inbound, 0, 10); return err },
		"replace": func() error {
			_, err := st.ReplaceAcceptance(ctx, TenantScope("a"), "s2", inbound, []string{"192.0.2.9"}, AnyVersion)
			return err
		},
		"edit": func() error {
			_, err := st.EditAcceptance(ctx, TenantScope("a"), "s2", inbound, nil, []string{"192.0.2.1"}, AnyVersion)
			return err
		},
		"import": func() error {
			_, err := st.ImportAcceptance(ctx, TenantScope("a"), "s2", inbound, strings.NewReader("192.0.2.9"), true, AnyVersion)
			return err
		},
		"clear": func() error {
			_, err := st.ClearAcceptance(ctx, TenantScope("a"), "s2", inbound, AnyVersion)
			return err
		},
		"missing": func() error { _, err := st.GetAcceptance(ctx, AllTenants(), "nope", inbound, 0, 10); return err },
	} {
		if err := call(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s of another tenant's sensor: got %v, want ErrNotFound", name, err)
		}
	}
	if p := getAll(t, st, AllTenants(), "s2", inbound); p.Total != 1 {
		t.Errorf("s2's list changed: %+v", p)
	}
	if _, err := st.GetAcceptance(ctx, AllTenants(), "s2", 0, 0, 10); err == nil {
		t.Error("a list without a kind was read")
	}
}

// TestAcceptanceOrphans checks that the chunks of a write that never
// swapped the head are ignored by readers and removed by the next write.
func TestAcceptanceOrphans(t *testing.T) {
	st, cli := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	r1, err := st.ReplaceAcceptance(ctx, AllTenants(), "s1", outbound, []string{"192.0.2.1"}, AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	orphan := acceptanceChunkKey("a", "s1", outbound, "00000000deadbeef", 0)
	if _, err := cli.Put(ctx, orphan, "203.0.113.66"); err != nil {
		t.Fatal(err)
	}
	if p := getAll(t, st, AllTenants(), "s1", outbound); !cmp.Equal(p.Entries, []string{"192.0.2.1"}) || p.Version != r1.Version {
		t.Errorf("with an orphan chunk: %+v", p)
	}
	cfg, err := st.SensorConfig(ctx, AllTenants(), "s1")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version() != r1.Version {
		t.Errorf("configuration version %d, want the list's %d", cfg.Version(), r1.Version)
	}
	if _, err := st.EditAcceptance(ctx, AllTenants(), "s1", outbound, []string{"192.0.2.2"}, nil, r1.Version); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, orphan)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Error("the orphan chunk outlived the next write")
	}
}

// TestAcceptanceConcurrentWrites races writers of one list from the same
// version: one wins, the others get ErrConflict, and the list is the
// winner's, whole.
func TestAcceptanceConcurrentWrites(t *testing.T) {
	st, cli := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	base := manyEntries(30_000) // several chunks each
	r0, err := st.ReplaceAcceptance(ctx, AllTenants(), "s1", inbound, base, AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	const writers = 4
	var wg sync.WaitGroup
	errs := make([]error, writers)
	lists := make([][]string, writers)
	for i := range writers {
		lists[i] = append([]string{fmt.Sprintf("192.0.2.%d", i+1)}, base[1:]...)
		wg.Go(func() {
			_, errs[i] = st.ReplaceAcceptance(ctx, AllTenants(), "s1", inbound, lists[i], r0.Version)
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Errorf("writers %d and %d both won", winner, i)
		case !errors.Is(err, ErrConflict):
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	got := getAll(t, st, AllTenants(), "s1", inbound)
	want, _ := acceptlist.Parse(lists[winner])
	if diff := cmp.Diff(want.Entries(), got.Entries); diff != "" {
		t.Errorf("list after the race (-winner's +got):\n%s", diff)
	}
	// Only the winner's chunks are left.
	h, _, _, err := st.acceptanceHead(ctx, "a", "s1", inbound)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, acceptanceHeadKey("a", "s1", inbound)+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != len(h.counts) {
		t.Errorf("%d chunks left, want the %d of the list", len(resp.Kvs), len(h.counts))
	}
}

// TestAcceptancePushed checks that a follower's configuration carries the
// lists, follows their changes, and takes their versions as its own.
func TestAcceptancePushed(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	h := startHub(t, st)
	f := follow(t, h, TenantScope("a"), "s1")
	first := next(t, f)
	if lists, err := first.Acceptance(); err != nil || len(lists) != 0 {
		t.Fatalf("no lists yet: got %v, %v", lists, err)
	}
	big := manyEntries(50_000)
	r1, err := st.ReplaceAcceptance(ctx, AllTenants(), "s1", outbound, big, AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := st.EditAcceptance(ctx, AllTenants(), "s1", authList, []string{"192.0.2.1"}, nil, AnyVersion)
	if err != nil {
		t.Fatal(err)
	}
	cfg := nextAt(t, f, r2.Version)
	if cfg.Version() != r2.Version {
		t.Errorf("configuration version %d, want %d", cfg.Version(), r2.Version)
	}
	lists, err := cfg.Acceptance()
	if err != nil {
		t.Fatal(err)
	}
	want := []*ospreyv1.AcceptanceList{{Kind: outbound, Entries: big}, {Kind: authList, Entries: []string{"192.0.2.1"}}}
	if d := diff(want, lists); d != "" {
		t.Errorf("lists (-want +got):\n%s", d[:min(len(d), 2000)])
	}
	for _, l := range lists {
		if err := validate.AcceptanceList(l); err != nil {
			t.Errorf("pushed %s list: %v", l.GetKind(), err)
		}
	}
	// Cleared: the list is no longer pushed, and the version still grows.
	r3, err := st.ClearAcceptance(ctx, AllTenants(), "s1", outbound, r1.Version)
	if err != nil {
		t.Fatal(err)
	}
	cfg = nextAt(t, f, r3.Version)
	lists, err = cfg.Acceptance()
	if err != nil {
		t.Fatal(err)
	}
	if len(lists) != 1 || lists[0].GetKind() != authList || cfg.Version() != r3.Version {
		t.Errorf("after clear: version %d, lists %v", cfg.Version(), lists)
	}
}
