package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestBrowserAcceptanceLists drives a gateway sensor's outbound acceptance
// list page: a file imported, the entries paged (entries per page, the
// range selector, next, 50 pages ahead, last, first), an entry added,
// edited and deleted, a bad entry refused on the page, the export link,
// and Delete all after a confirmation.
func TestBrowserAcceptanceLists(t *testing.T) {
	ctx := newBrowser(t)
	n := startUINode(t)
	n.seed(t)
	// dc-frankfurt is a gateway: the Acceptance lists tab shows.
	if _, err := n.store.PutSMTP(t.Context(), store.AllTenants(), "dc-frankfurt", &ospreyv1.SmtpIntegration{
		Enabled: true, Mode: ospreyv1.SmtpMode_SMTP_MODE_OUTBOUND, MaxMessageSize: &ospreyv1.SizeLimit{Unlimited: true},
		Gateway: &ospreyv1.SmtpGateway{Outbound: &ospreyv1.GatewayListener{Listen: "0.0.0.0:587"}},
	}, store.AnyVersion); err != nil {
		t.Fatal(err)
	}
	var file strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&file, "10.%d.%d.0/24;", i/256, i%256)
		if i%10 == 9 {
			file.WriteString("\r\n")
		}
	}
	name := filepath.Join(t.TempDir(), "networks.csv")
	if err := os.WriteFile(name, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	uiSignIn(t, ctx, n.url, "admin", uiAdminPassword)
	text := func(what, id string) string {
		t.Helper()
		return uiRun(t, ctx, what, chromedp.Text(chromedp.ID(id)))
	}
	uiDo(t, ctx, "the sensor's SMTP page", chromedp.Navigate(n.url+"/sensors/dc-frankfurt/smtp"), chromedp.WaitVisible(chromedp.ID("tab-acceptance")))
	if status := uiSubmit(t, ctx, "the acceptance lists tab", "#tab-acceptance"); status != 200 {
		t.Fatalf("acceptance lists tab: status %d", status)
	}
	if status := uiSubmit(t, ctx, "the outbound list", "#acc-tab-outbound"); status != 200 {
		t.Fatalf("outbound list: status %d", status)
	}
	uiDo(t, ctx, "choose the file", chromedp.WaitVisible(chromedp.ID("acc-empty")), chromedp.SetUploadFiles(chromedp.ID("acc-file"), []string{name}))
	if status := uiSubmit(t, ctx, "import", "#acc-import"); status != 200 {
		t.Fatalf("import: status %d", status)
	}
	if got := text("after the import", "acc-showing"); !strings.Contains(got, "Entries 1–25 of 3000 · page 1 of 120") {
		t.Fatalf("after the import: %q", got)
	}

	// Paging.
	uiDo(t, ctx, "100 a page", chromedp.SetValue(chromedp.ID("acc-per"), "100"))
	if status := uiSubmit(t, ctx, "show 100 a page", "#acc-show"); status != 200 {
		t.Fatalf("100 a page: status %d", status)
	}
	uiDo(t, ctx, "the range 1001–1100", chromedp.SetValue(chromedp.ID("acc-range"), "11"))
	uiSubmit(t, ctx, "show the range", "#acc-show")
	if got := text("range", "acc-showing"); !strings.Contains(got, "Entries 1001–1100 of 3000 · page 11 of 30") {
		t.Errorf("after choosing a range: %q", got)
	}
	uiSubmit(t, ctx, "next", "#acc-next")
	if got := text("next", "acc-showing"); !strings.Contains(got, "page 12 of 30") {
		t.Errorf("after next: %q", got)
	}
	uiSubmit(t, ctx, "last", "#acc-last")
	if got := text("last", "acc-showing"); !strings.Contains(got, "Entries 2901–3000 of 3000") {
		t.Errorf("after last: %q", got)
	}
	uiSubmit(t, ctx, "first", "#acc-first")
	uiDo(t, ctx, "25 a page", chromedp.SetValue(chromedp.ID("acc-per"), "25"))
	uiSubmit(t, ctx, "show 25 a page", "#acc-show")
	uiSubmit(t, ctx, "50 pages ahead", "#acc-ahead")
	if got := text("ahead", "acc-showing"); !strings.Contains(got, "page 51 of 120") {
		t.Errorf("after 50 pages ahead: %q", got)
	}
	uiScreenshot(t, ctx, "acceptance-list")

	// Add, refused and then accepted; edit; delete.
	uiDo(t, ctx, "a bad entry", chromedp.SendKeys(chromedp.ID("acc-add"), "192.0.2.1/24"))
	if status := uiSubmit(t, ctx, "add a bad entry", "#acc-add-btn"); status != 422 {
		t.Fatalf("add a bad entry: status %d, want 422", status)
	}
	if got := text("errors", "acc-errors"); !strings.Contains(got, "did you mean 192.0.2.0/24") {
		t.Errorf("refusal shown: %q", got)
	}
	uiDo(t, ctx, "a good entry", chromedp.SetValue(chromedp.ID("acc-add"), "192.0.2.0/24 2001:DB8::25"))
	if status := uiSubmit(t, ctx, "add", "#acc-add-btn"); status != 200 {
		t.Fatalf("add: status %d", status)
	}
	p, err := n.store.GetAcceptance(t.Context(), store.AllTenants(), "dc-frankfurt", ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND, 3000, 10)
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 3002 || strings.Join(p.Entries, " ") != "192.0.2.0/24 2001:db8::25" {
		t.Fatalf("after the add: %d entries, ending %q", p.Total, p.Entries)
	}
	uiSubmit(t, ctx, "last page", "#acc-last")
	uiDo(t, ctx, "select 2001:db8::25 and give its new form",
		chromedp.Click(chromedp.CSS(`input[name="entry"][value="2001:db8::25"]`)),
		chromedp.SendKeys(chromedp.ID("acc-new"), "2001:db8::/64"))
	if status := uiSubmit(t, ctx, "edit", "#acc-edit"); status != 200 {
		t.Fatalf("edit: status %d", status)
	}
	uiDo(t, ctx, "select 192.0.2.0/24", chromedp.Click(chromedp.CSS(`input[name="entry"][value="192.0.2.0/24"]`)))
	if status := uiSubmit(t, ctx, "delete", "#acc-delete"); status != 200 {
		t.Fatalf("delete: status %d", status)
	}
	p, err = n.store.GetAcceptance(t.Context(), store.AllTenants(), "dc-frankfurt", ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND, 3000, 10)
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 3001 || strings.Join(p.Entries, " ") != "2001:db8::/64" {
		t.Errorf("after edit and delete: %d entries, ending %q", p.Total, p.Entries)
	}
	href := uiRun(t, ctx, "export link", chromedp.Evaluate[string](`document.getElementById("acc-export").getAttribute("href")`))
	if href != "/sensors/dc-frankfurt/acceptance/outbound/export" {
		t.Errorf("export link %q", href)
	}
	export := uiRun(t, ctx, "export", chromedp.Evaluate[string](`fetch("`+href+`", {credentials: "same-origin"}).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if lines := strings.Split(strings.TrimSuffix(export, "\n"), "\n"); len(lines) != 3001 || lines[0] != "10.0.0.0/24" || lines[3000] != "2001:db8::/64" {
		t.Errorf("export: %d lines", len(lines))
	}

	// Delete all, after a confirmation.
	uiDo(t, ctx, "answer confirmations yes", chromedp.Evaluate[chromedp.Void](`window.confirm = () => true`))
	if status := uiSubmit(t, ctx, "delete all", "#acc-clear"); status != 200 {
		t.Fatalf("delete all: status %d", status)
	}
	uiDo(t, ctx, "empty", chromedp.WaitVisible(chromedp.ID("acc-empty")))
}
