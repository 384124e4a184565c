package httpapi_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/api"
)

// TestAcceptanceLists drives one list through its routes: edits, a page,
// an import refused line by line, an append, an export, a stale write and
// a clear.
func TestAcceptanceLists(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.client(t, "alice")

	r1, err := c.EditAcceptance(ctx, "s1", api.AcceptanceOutbound, api.AcceptanceEdit{Add: []string{"2001:0DB8::1", "10.0.0.0/8", "mail.Example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Total != 3 || !r1.Changed || r1.Version == 0 {
		t.Errorf("edit: %+v", r1)
	}
	page, err := c.Acceptance(ctx, "s1", api.AcceptanceOutbound, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := api.AcceptancePage{Entries: []string{"2001:db8::1", "mail.example.com"}, Offset: 1, Total: 3, Version: r1.Version}
	if diff := cmp.Diff(want, *page); diff != "" {
		t.Errorf("page (-want +got):\n%s", diff)
	}

	// A bad edit names each entry; a stale one is a conflict.
	_, err = c.EditAcceptance(ctx, "s1", api.AcceptanceOutbound, api.AcceptanceEdit{Add: []string{"10.0.0.1/8"}, Remove: []string{"192.0.2.1"}})
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || len(apiErr.Fields) != 2 ||
		apiErr.Fields[0].Field != "remove[0]" || apiErr.Fields[1].Field != "add[0]" || !strings.Contains(apiErr.Fields[1].Message, "did you mean 10.0.0.0/8") {
		t.Errorf("bad edit: got %v, want 400 naming remove[0] and add[0]", err)
	}
	r2, err := c.EditAcceptance(ctx, "s1", api.AcceptanceOutbound, api.AcceptanceEdit{Remove: []string{"10.0.0.0/8"}, Add: []string{"10.0.0.0/9"}, Version: r1.Version})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.EditAcceptance(ctx, "s1", api.AcceptanceOutbound, api.AcceptanceEdit{Add: []string{"192.0.2.1"}, Version: r1.Version}); statusOf(err) != http.StatusConflict {
		t.Errorf("edit from a stale version: got %v, want 409", err)
	}

	// An import with bad lines: 400, every line named, nothing stored.
	_, err = c.ImportAcceptance(ctx, "s1", api.AcceptanceOutbound, strings.NewReader("192.0.2.1\r\n10.0.0.1/8, ok.example\r\nbad_name;!10.0.0.0/9\r\n"), true, 0)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad import: got %v, want 400", err)
	}
	var lines []string
	for _, f := range apiErr.Fields {
		lines = append(lines, f.Field)
	}
	if diff := cmp.Diff([]string{"line 2", "line 3", "line 3"}, lines); diff != "" {
		t.Errorf("bad import's fields (-want +got):\n%s\n%v", diff, err)
	}
	if p, _ := c.Acceptance(ctx, "s1", api.AcceptanceOutbound, 0, 0); p.Version != r2.Version {
		t.Errorf("a refused import wrote version %d", p.Version)
	}

	// Append, then export.
	r3, err := c.ImportAcceptance(ctx, "s1", api.AcceptanceOutbound, strings.NewReader("192.0.2.1, 192.0.2.2\n"), true, r2.Version)
	if err != nil || r3.Total != 5 {
		t.Fatalf("append: %+v, %v", r3, err)
	}
	var out bytes.Buffer
	if err := c.ExportAcceptance(ctx, "s1", api.AcceptanceOutbound, &out); err != nil {
		t.Fatal(err)
	}
	if want := "10.0.0.0/9\n192.0.2.1\n192.0.2.2\n2001:db8::1\nmail.example.com\n"; out.String() != want {
		t.Errorf("export %q, want %q", out.String(), want)
	}
	// The export imports back to the same list, unchanged.
	r4, err := c.ImportAcceptance(ctx, "s1", api.AcceptanceOutbound, &out, false, 0)
	if err != nil || r4.Changed || r4.Version != r3.Version {
		t.Errorf("import of the export: %+v, %v; want unchanged", r4, err)
	}

	// Clear, with and without a stale version.
	if _, err := c.ClearAcceptance(ctx, "s1", api.AcceptanceOutbound, r1.Version); statusOf(err) != http.StatusConflict {
		t.Errorf("clear from a stale version: got %v, want 409", err)
	}
	r5, err := c.ClearAcceptance(ctx, "s1", api.AcceptanceOutbound, r3.Version)
	if err != nil || r5.Total != 0 || r5.Version <= r3.Version {
		t.Errorf("clear: %+v, %v", r5, err)
	}

	// The raw routes: a bad kind, a bad page, a bad mode.
	for _, tc := range []struct{ method, path string }{
		{"GET", "/api/v1/sensors/s1/acceptance/trusted"},
		{"GET", "/api/v1/sensors/s1/acceptance/inbound?limit=0"},
		{"GET", "/api/v1/sensors/s1/acceptance/inbound?offset=-1"},
		{"PUT", "/api/v1/sensors/s1/acceptance/inbound?mode=merge"},
	} {
		req, err := http.NewRequestWithContext(ctx, tc.method, e.url+tc.path, strings.NewReader("192.0.2.1"))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("alice", testPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s: got %d, want 400", tc.method, tc.path, resp.StatusCode)
		}
	}
}

// TestAcceptanceRoles: auditors read and do not write; another tenant's
// operator finds no sensor; an admin reaches every tenant's.
func TestAcceptanceRoles(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.client(t, "alice").EditAcceptance(ctx, "s1", api.AcceptanceInbound, api.AcceptanceEdit{Add: []string{"192.0.2.1"}}); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(c *api.Client, sensor string) error{
		"get": func(c *api.Client, sensor string) error {
			_, err := c.Acceptance(ctx, sensor, api.AcceptanceInbound, 0, 0)
			return err
		},
		"export": func(c *api.Client, sensor string) error {
			return c.ExportAcceptance(ctx, sensor, api.AcceptanceInbound, &bytes.Buffer{})
		},
		"edit": func(c *api.Client, sensor string) error {
			_, err := c.EditAcceptance(ctx, sensor, api.AcceptanceInbound, api.AcceptanceEdit{Add: []string{"192.0.2.9"}})
			return err
		},
		"import": func(c *api.Client, sensor string) error {
			_, err := c.ImportAcceptance(ctx, sensor, api.AcceptanceInbound, strings.NewReader("192.0.2.8"), true, 0)
			return err
		},
		"clear": func(c *api.Client, sensor string) error {
			_, err := c.ClearAcceptance(ctx, sensor, api.AcceptanceAuth, 0)
			return err
		},
	}
	writes := map[string]bool{"edit": true, "import": true, "clear": true}
	for name, call := range calls {
		for _, tc := range []struct {
			user, sensor string
			want         int
		}{
			{"audrey", "s1", map[bool]int{true: http.StatusForbidden, false: 0}[writes[name]]},
			{"bob", "s1", http.StatusNotFound},
			{"bob", "s2", 0},
			{"root", "s2", 0},
		} {
			t.Run(fmt.Sprintf("%s %s %s", tc.user, name, tc.sensor), func(t *testing.T) {
				if got := statusOf(call(e.client(t, tc.user), tc.sensor)); got != tc.want {
					t.Errorf("got %d, want %d", got, tc.want)
				}
			})
		}
	}
	p, err := e.client(t, "root").Acceptance(ctx, "s1", api.AcceptanceInbound, 0, 0)
	if err != nil || !cmp.Equal(p.Entries, []string{"192.0.2.1"}) {
		t.Errorf("s1 after the others' attempts: %+v, %v", p, err)
	}
}

// BenchmarkAcceptancePage reads pages of 100 entries, spread over a list
// of 100,000, through the API: the figure in docs/BENCHMARKS.md.
func BenchmarkAcceptancePage(b *testing.B) {
	e := newEnv(b)
	ctx := b.Context()
	c := e.client(b, "alice")
	var file strings.Builder
	for i := range 100_000 {
		fmt.Fprintf(&file, "10.%d.%d.%d\n", i>>16, (i>>8)&255, i&255)
	}
	if _, err := c.ImportAcceptance(ctx, "s1", api.AcceptanceInbound, strings.NewReader(file.String()), false, 0); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		offset := (i * 4_700) % 99_900
		i++
		p, err := c.Acceptance(ctx, "s1", api.AcceptanceInbound, offset, 100)
		if err != nil {
			b.Fatal(err)
		}
		if p.Total != 100_000 || len(p.Entries) != 100 || p.Entries[0] != fmt.Sprintf("10.%d.%d.%d", offset>>16, (offset>>8)&255, offset&255) {
			b.Fatalf("page at %d: %d of %d entries", offset, len(p.Entries), p.Total)
		}
	}
}
