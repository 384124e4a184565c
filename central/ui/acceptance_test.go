package ui_test

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/html"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

const inboundList = ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND

// entriesShown returns the entries of an acceptance page's table.
func entriesShown(t *testing.T, doc *html.Node) []string {
	t.Helper()
	var out []string
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "code" && strings.Contains(attr(n, "class"), "acc-entry") {
			out = append(out, text(n))
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out
}

func listEntries(t *testing.T, e *env, id string) (*store.AcceptancePage, []string) {
	t.Helper()
	p, err := e.store.GetAcceptance(t.Context(), store.AllTenants(), id, inboundList, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p, p.Entries
}

// TestAcceptancePageEdits: add, edit, delete and delete all through the
// page's forms, each tied to the version the page showed; refusals shown
// on the page with nothing changed.
func TestAcceptancePageEdits(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("alice")
	p := b.get("/sensors/s1/acceptance/inbound")
	if p.status != http.StatusOK || byID(p.doc(t), "acc-empty") == nil {
		t.Fatalf("empty list: %d\n%s", p.status, p.body)
	}
	version := func() string {
		lp, _ := listEntries(t, e, "s1")
		return strconv.FormatInt(lp.Version, 10)
	}
	p = b.post("/sensors/s1/acceptance/inbound/add", url.Values{"version": {version()}, "add": {"192.0.2.10, 2001:0DB8::1 mail.Example.com"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("add: %d\n%s", p.status, p.body)
	}
	if _, got := listEntries(t, e, "s1"); !cmp.Equal(got, []string{"192.0.2.10", "2001:db8::1", "mail.example.com"}) {
		t.Errorf("after add: %q", got)
	}
	doc := b.get(p.location).doc(t)
	if got := entriesShown(t, doc); !cmp.Equal(got, []string{"192.0.2.10", "2001:db8::1", "mail.example.com"}) {
		t.Errorf("shown: %q", got)
	}
	if !strings.Contains(text(doc), "Added 3 entries.") {
		t.Error("no flash after the add")
	}

	// Edit: the selected entry becomes the new one.
	p = b.post("/sensors/s1/acceptance/inbound/edit", url.Values{"version": {version()}, "entry": {"192.0.2.10"}, "new": {"192.0.2.0/24"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("edit: %d\n%s", p.status, p.body)
	}
	// A bad edit: refused, shown, nothing changed.
	before := version()
	p = b.post("/sensors/s1/acceptance/inbound/edit", url.Values{"version": {before}, "entry": {"2001:db8::1"}, "new": {"2001:db8::1/64"}})
	if p.status != http.StatusUnprocessableEntity || !strings.Contains(text(byID(p.doc(t), "acc-errors")), "did you mean 2001:db8::/64") {
		t.Errorf("bad edit: %d, want 422 naming the prefix meant\n%s", p.status, p.body)
	}
	if version() != before {
		t.Error("a refused edit changed the list")
	}
	// A stale version: a conflict, nothing changed.
	p = b.post("/sensors/s1/acceptance/inbound/delete", url.Values{"version": {"1"}, "entry": {"mail.example.com"}})
	if p.status != http.StatusConflict || byID(p.doc(t), "acc-conflict") == nil {
		t.Errorf("stale delete: %d, want 409 with the conflict shown", p.status)
	}
	p = b.post("/sensors/s1/acceptance/inbound/delete", url.Values{"version": {version()}, "entry": {"mail.example.com", "2001:db8::1"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("delete: %d\n%s", p.status, p.body)
	}
	if _, got := listEntries(t, e, "s1"); !cmp.Equal(got, []string{"192.0.2.0/24"}) {
		t.Errorf("after edit and delete: %q", got)
	}
	p = b.post("/sensors/s1/acceptance/inbound/clear", url.Values{"version": {version()}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("clear: %d", p.status)
	}
	if lp, got := listEntries(t, e, "s1"); len(got) != 0 || lp.Version == 0 {
		t.Errorf("after delete all: %q at version %d", got, lp.Version)
	}
}

// postFile posts a multipart form with a file, as the import form does.
func postFile(t *testing.T, b *browser, path string, fields url.Values, file string) page {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fields.Set("csrf", b.csrf)
	for k, vs := range fields {
		for _, v := range vs {
			if err := w.WriteField(k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	fw, err := w.CreateFormFile("file", "list.txt")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write([]byte(file))
	w.Close()
	req, err := http.NewRequest("POST", b.e.url+path, &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	return b.do(req)
}

// TestAcceptancePageImportExport: a file imports (replacing, then
// appending), a file with bad lines is refused naming each line, and the
// export is one entry a line.
func TestAcceptancePageImportExport(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("alice")
	b.get("/sensors/s1/acceptance/inbound")
	p := postFile(t, b, "/sensors/s1/acceptance/inbound/import", url.Values{"version": {"0"}}, "192.0.2.1;192.0.2.2\r\n10.0.0.0/8\r\n")
	if p.status != http.StatusSeeOther {
		t.Fatalf("import: %d\n%s", p.status, p.body)
	}
	lp, _ := listEntries(t, e, "s1")
	b.get("/sensors/s1/acceptance/inbound")
	p = postFile(t, b, "/sensors/s1/acceptance/inbound/import", url.Values{"version": {fmt.Sprint(lp.Version)}, "append": {"on"}}, "example.org\n10.0.0.1/8\nbad_name\n")
	if p.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad import: %d", p.status)
	}
	msgs := text(byID(p.doc(t), "acc-errors"))
	for _, want := range []string{`line 2: "10.0.0.1/8": host bits set`, `line 3: "bad_name"`} {
		if !strings.Contains(msgs, want) {
			t.Errorf("errors %q: missing %q", msgs, want)
		}
	}
	p = postFile(t, b, "/sensors/s1/acceptance/inbound/import", url.Values{"version": {fmt.Sprint(lp.Version)}, "append": {"on"}}, "example.org\n")
	if p.status != http.StatusSeeOther {
		t.Fatalf("append: %d\n%s", p.status, p.body)
	}
	p = b.get("/sensors/s1/acceptance/inbound/export")
	if p.status != http.StatusOK || p.body != "10.0.0.0/8\n192.0.2.1\n192.0.2.2\nexample.org\n" ||
		!strings.Contains(p.header.Get("Content-Disposition"), "s1-inbound-acceptance.txt") {
		t.Errorf("export: %d %q %v", p.status, p.body, p.header)
	}
}

// TestAcceptancePagePaging: a list of 1,300 entries a page at a time, with
// the range selector, first / previous / next / last and 50 pages ahead.
func TestAcceptancePagePaging(t *testing.T) {
	e := newEnv(t)
	entries := make([]string, 1300)
	for i := range entries {
		entries[i] = fmt.Sprintf("10.0.%d.%d", i/256, i%256)
	}
	if _, err := e.store.ReplaceAcceptance(t.Context(), store.AllTenants(), "s1", inboundList, entries, store.AnyVersion); err != nil {
		t.Fatal(err)
	}
	b := e.signedIn("alice")
	doc := b.get("/sensors/s1/acceptance/inbound").doc(t)
	if got := entriesShown(t, doc); len(got) != 25 || got[0] != "10.0.0.0" {
		t.Fatalf("first page: %d entries from %q", len(got), got[:min(1, len(got))])
	}
	if byID(doc, "acc-first") != nil || byID(doc, "acc-prev") != nil {
		t.Error("first and previous links on the first page")
	}
	for id, want := range map[string]string{"acc-next": "?page=2", "acc-last": "?page=52", "acc-ahead": "?page=51"} {
		if got := attr(byID(doc, id), "href"); !strings.HasSuffix(got, want) {
			t.Errorf("#%s: %q, want …%s", id, got, want)
		}
	}
	if got := text(byID(doc, "acc-showing")); !strings.Contains(got, "Entries 1–25 of 1300 · page 1 of 52") {
		t.Errorf("showing %q", got)
	}
	// 500 a page, the third: the range selector holds every page.
	doc = b.get("/sensors/s1/acceptance/inbound?per=500&page=3").doc(t)
	got := entriesShown(t, doc)
	if len(got) != 300 || got[0] != entries[1000] {
		t.Errorf("third page of 500: %d entries from %q", len(got), got[0])
	}
	var ranges []string
	for c := byID(doc, "acc-range").FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode {
			ranges = append(ranges, text(c))
		}
	}
	if diff := cmp.Diff([]string{"1–500", "501–1000", "1001–1300"}, ranges); diff != "" {
		t.Errorf("ranges (-want +got):\n%s", diff)
	}
	if byID(doc, "acc-ahead") != nil || byID(doc, "acc-next") != nil {
		t.Error("links past the last page")
	}
	// A page past the end shows the last one.
	if got := entriesShown(t, b.get("/sensors/s1/acceptance/inbound?page=99").doc(t)); len(got) != 0 && got[0] != entries[1275] {
		t.Errorf("page past the end starts at %q", got[0])
	}
}

// TestAcceptancePageRoles: an auditor sees the list without its forms and
// cannot post; another tenant's operator finds no sensor.
func TestAcceptancePageRoles(t *testing.T) {
	e := newEnv(t)
	if _, err := e.store.ReplaceAcceptance(t.Context(), store.AllTenants(), "s1", inboundList, []string{"192.0.2.1"}, store.AnyVersion); err != nil {
		t.Fatal(err)
	}
	a := e.signedIn("audrey")
	doc := a.get("/sensors/s1/acceptance/inbound").doc(t)
	if got := entriesShown(t, doc); !cmp.Equal(got, []string{"192.0.2.1"}) {
		t.Errorf("auditor sees %q", got)
	}
	for _, id := range []string{"acc-add-form", "acc-import-form", "acc-clear-form", "acc-edit"} {
		if byID(doc, id) != nil {
			t.Errorf("auditor sees #%s", id)
		}
	}
	if p := a.post("/sensors/s1/acceptance/inbound/clear", url.Values{"version": {"0"}}); p.status != http.StatusForbidden {
		t.Errorf("auditor's clear: %d, want 403", p.status)
	}
	bob := e.signedIn("bob")
	if p := bob.get("/sensors/s1/acceptance/inbound"); p.status != http.StatusNotFound {
		t.Errorf("other tenant's page: %d, want 404", p.status)
	}
	if p := bob.post("/sensors/s1/acceptance/inbound/clear", url.Values{"version": {"0"}}); p.status != http.StatusNotFound {
		t.Errorf("other tenant's clear: %d, want 404", p.status)
	}
	if p := bob.get("/sensors/s1/acceptance/inbound/export"); p.status != http.StatusNotFound {
		t.Errorf("other tenant's export: %d, want 404", p.status)
	}
	if p := bob.get("/sensors/s2/acceptance/trusted"); p.status != http.StatusNotFound {
		t.Errorf("unknown list: %d, want 404", p.status)
	}
}
