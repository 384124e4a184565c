package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/acceptlist"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The acceptance list pages of a gateway sensor, one per list, as Symantec
// Messaging Gateway's SMTP tab shows them: the entries a page at a time
// (entries per page, a range selector, first / previous / next / last and
// 50 pages ahead), Add, Edit, Delete, Delete all, Import (a file) and
// Export. Every write goes through the store's edit of the list, tied to
// the version the page was rendered with: a list someone else changed
// meanwhile is reported, not overwritten.

// acceptancePerPage are the page sizes offered; the first is the default.
var acceptancePerPage = []int{25, 50, 100, 500}

// maxRangeChoices bounds the options of the range selector: the pages
// around the current one, and the first and last.
const maxRangeChoices = 101

// maxUpload bounds an imported file (see the API's import).
const maxUpload = 4 * acceptlist.MaxBytes

// acceptanceKinds are the lists, with what the pages say of each.
var acceptanceKinds = []struct {
	kind           ospreyv1.AcceptanceListKind
	title, purpose string
}{
	{ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND, "Inbound acceptance list",
		"The clients the inbound listeners take mail from, when they accept only listed clients."},
	{ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND, "Outbound acceptance list",
		"The clients that may relay mail to any domain: the only clients of the outbound listeners, and the clients the inbound listeners take mail for other domains from."},
	{ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_AUTH, "Authentication acceptance list",
		"The clients the submission listener takes authenticated mail from, when it accepts only listed clients."},
}

type acceptanceTab struct {
	Kind, Title string
	Current     bool
}

type acceptanceRow struct {
	N     int // from 1
	Entry string
}

// rangeChoice is an option of the range selector.
type rangeChoice struct {
	Page     int
	Label    string
	Selected bool
}

type acceptanceData struct {
	Sensor          sensorHead
	Kind            string
	Title, Purpose  string
	Mode            string // what the list's listener does with it now
	Tabs            []acceptanceTab
	Rows            []acceptanceRow
	Total           int
	Version         int64
	Per             int
	PerChoices      []int
	Page, Pages     int
	From, To        int
	Ranges          []rangeChoice
	First, Prev     string // links; "" when there is none
	Next, Last      string
	Ahead           string // 50 pages ahead, when there are more than 50 left
	Errors          []string
	Conflict        string
	Add, Old, New   string // the forms, shown again after a refusal
	ReadOnly        bool
	Return          string // this page's URL, for the forms to come back to
	ExportURL, Base string
}

func acceptanceURL(id, kind string, per, page int) string {
	v := url.Values{}
	if per != acceptancePerPage[0] {
		v.Set("per", strconv.Itoa(per))
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	u := "/sensors/" + url.PathEscape(id) + "/acceptance/" + kind
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	return u
}

// acceptanceParams reads the list and the page a request is about.
func acceptanceParams(r *http.Request) (ospreyv1.AcceptanceListKind, int, int, error) {
	kind, err := convert.ParseAcceptanceListKind(r.PathValue("kind"))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%w: %v", store.ErrNotFound, err)
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		q = r.PostForm
	}
	per := acceptancePerPage[0]
	if v, err := strconv.Atoi(q.Get("per")); err == nil {
		for _, p := range acceptancePerPage {
			if p == v {
				per = v
			}
		}
	}
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		page = 1
	}
	return kind, per, page, nil
}

func (s *Server) acceptanceData(r *http.Request, req *request, kind ospreyv1.AcceptanceListKind, per, page int) (acceptanceData, error) {
	id := r.PathValue("id")
	head, err := s.sensorHead(r, req, id)
	if err != nil {
		return acceptanceData{}, err
	}
	name := string(convert.AcceptanceListKindFromProto(kind))
	d := acceptanceData{Sensor: head, Kind: name, Per: per, PerChoices: acceptancePerPage, ReadOnly: !req.p.Can(auth.Configure),
		Base: "/sensors/" + url.PathEscape(id) + "/acceptance/" + name}
	d.ExportURL = d.Base + "/export"
	for _, k := range acceptanceKinds {
		kn := string(convert.AcceptanceListKindFromProto(k.kind))
		d.Tabs = append(d.Tabs, acceptanceTab{Kind: kn, Title: k.title, Current: k.kind == kind})
		if k.kind == kind {
			d.Title, d.Purpose = k.title, k.purpose
		}
	}
	smtp, _, err := s.store.GetSMTP(r.Context(), req.scope, id)
	if err != nil {
		return acceptanceData{}, err
	}
	d.Mode = acceptanceMode(smtp, kind)
	// The page count comes from the list's size, which the read returns:
	// read the page asked for, and again the last one if it was past it.
	p, err := s.store.GetAcceptance(r.Context(), req.scope, id, kind, (page-1)*per, per)
	if err != nil {
		return acceptanceData{}, err
	}
	d.Pages = max(1, (p.Total+per-1)/per)
	if page > d.Pages {
		page = d.Pages
		if p, err = s.store.GetAcceptance(r.Context(), req.scope, id, kind, (page-1)*per, per); err != nil {
			return acceptanceData{}, err
		}
		d.Pages = max(1, (p.Total+per-1)/per)
	}
	d.Page, d.Total, d.Version = page, p.Total, p.Version
	for i, e := range p.Entries {
		d.Rows = append(d.Rows, acceptanceRow{N: p.Offset + i + 1, Entry: e})
	}
	if len(p.Entries) > 0 {
		d.From, d.To = p.Offset+1, p.Offset+len(p.Entries)
	}
	link := func(to int) string { return acceptanceURL(id, name, per, to) }
	d.Return = link(page)
	if page > 1 {
		d.First, d.Prev = link(1), link(page-1)
	}
	if page < d.Pages {
		d.Next, d.Last = link(page+1), link(d.Pages)
	}
	if page+50 <= d.Pages {
		d.Ahead = link(page + 50)
	}
	d.Ranges = pageRanges(page, d.Pages, per, p.Total)
	return d, nil
}

// pageRanges are the options of the range selector: the first page, up to
// maxRangeChoices pages around the current one, and the last.
func pageRanges(page, pages, per, total int) []rangeChoice {
	half := maxRangeChoices / 2
	lo, hi := max(1, page-half), min(pages, page+half)
	var out []rangeChoice
	add := func(n int) {
		from, to := (n-1)*per+1, min(n*per, total)
		label := fmt.Sprintf("%d–%d", from, to)
		if total == 0 {
			label = "none"
		}
		out = append(out, rangeChoice{Page: n, Label: label, Selected: n == page})
	}
	if lo > 1 {
		add(1)
	}
	for n := lo; n <= hi; n++ {
		add(n)
	}
	if hi < pages {
		add(pages)
	}
	return out
}

// acceptanceMode says what the listener of a list does with it now.
func acceptanceMode(cfg *ospreyv1.SmtpIntegration, kind ospreyv1.AcceptanceListKind) string {
	g := cfg.GetGateway()
	gateway := cfg.GetEnabled() && validate.Gateway(cfg.GetMode())
	switch kind {
	case ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_INBOUND:
		switch {
		case !gateway || !validate.Inbound(cfg.GetMode()):
			return "The sensor runs no inbound listener now."
		case g.GetInboundAcceptance() == ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED:
			return "The inbound listeners accept mail only from the clients listed here."
		}
		return "The inbound listeners accept mail from all IP addresses and domains: this list is kept, not used. Choose “only the inbound acceptance list” on the SMTP page to use it."
	case ospreyv1.AcceptanceListKind_ACCEPTANCE_LIST_KIND_OUTBOUND:
		if !gateway {
			return "The sensor is not a gateway now: nothing is relayed."
		}
		return "The clients listed here may relay to any domain."
	}
	if g.GetSubmission().GetAcceptance() == ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED {
		return "The submission listener accepts authenticated mail only from the clients listed here."
	}
	return "The submission listener accepts authenticated mail from all IP addresses and domains: this list is kept, not used."
}

func (s *Server) renderAcceptance(w http.ResponseWriter, status int, req *request, d acceptanceData) {
	s.render(w, status, req, "acceptance", page{Title: d.Sensor.Name + " · " + d.Title, Nav: "sensors", Data: d})
}

func (s *Server) acceptancePage(w http.ResponseWriter, r *http.Request, req *request) error {
	kind, per, page, err := acceptanceParams(r)
	if err != nil {
		return err
	}
	d, err := s.acceptanceData(r, req, kind, per, page)
	if err != nil {
		return err
	}
	s.renderAcceptance(w, http.StatusOK, req, d)
	return nil
}

// acceptanceExport downloads the list, one entry a line.
func (s *Server) acceptanceExport(w http.ResponseWriter, r *http.Request, req *request) error {
	kind, _, _, err := acceptanceParams(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	p, err := s.store.GetAcceptance(r.Context(), req.scope, id, kind, 0, 0)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+"-"+r.PathValue("kind")+"-acceptance.txt"))
	_ = acceptlist.Export(w, p.Entries) // The browser went away; nothing useful to do.
	return nil
}

// acceptanceAction runs a write of the list (add, edit, delete, clear,
// import) from the version the page showed, then shows the page again:
// with a flash after a write, with the errors after a refusal.
func (s *Server) acceptanceAction(w http.ResponseWriter, r *http.Request, req *request) error {
	kind, per, page, err := acceptanceParams(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	version, err := strconv.ParseInt(r.PostFormValue("version"), 10, 64)
	if err != nil || version < 0 {
		return fmt.Errorf("list version %q: %w", r.PostFormValue("version"), errBadForm)
	}
	form := struct{ add, old, new string }{r.PostFormValue("add"), r.PostFormValue("old"), r.PostFormValue("new")}
	var (
		res  store.AcceptanceResult
		done string
	)
	ctx := r.Context()
	switch action := r.PathValue("action"); action {
	case "add":
		entries := strings.FieldsFunc(form.add, func(c rune) bool { return strings.ContainsRune(",; \t\r\n", c) })
		if len(entries) == 0 {
			err = validate.Errors{{Field: "add", Message: "enter an IP address, a CIDR prefix or a domain"}}
			break
		}
		res, err = s.store.EditAcceptance(ctx, req.scope, id, kind, entries, nil, version)
		done = fmt.Sprintf("Added %s.", plural(len(entries), "entry", "entries"))
	case "edit":
		selected := r.PostForm["entry"]
		if len(selected) != 1 || strings.TrimSpace(form.new) == "" {
			err = validate.Errors{{Field: "edit", Message: "select one entry, and enter what it becomes"}}
			break
		}
		form.old = selected[0]
		res, err = s.store.EditAcceptance(ctx, req.scope, id, kind, []string{strings.TrimSpace(form.new)}, []string{form.old}, version)
		done = fmt.Sprintf("Changed %s to %s.", form.old, strings.TrimSpace(form.new))
	case "delete":
		selected := r.PostForm["entry"]
		if len(selected) == 0 {
			err = validate.Errors{{Field: "delete", Message: "select the entries to delete"}}
			break
		}
		res, err = s.store.EditAcceptance(ctx, req.scope, id, kind, nil, selected, version)
		done = fmt.Sprintf("Deleted %s.", plural(len(selected), "entry", "entries"))
	case "clear":
		res, err = s.store.ClearAcceptance(ctx, req.scope, id, kind, version)
		done = "Deleted every entry."
	case "import":
		f, _, ferr := r.FormFile("file")
		if ferr != nil {
			err = validate.Errors{{Field: "file", Message: "choose a file to import"}}
			break
		}
		defer f.Close()
		appendMode := r.PostFormValue("append") == "on"
		res, err = s.store.ImportAcceptance(ctx, req.scope, id, kind, f, appendMode, version)
		done = "Imported the file, in place of the entries."
		if appendMode {
			done = "Imported the file, beside the entries."
		}
	default:
		return store.ErrNotFound
	}
	verrs, invalid := validate.AsErrors(err)
	switch {
	case err == nil:
		if res.Changed {
			s.log.InfoContext(ctx, "acceptance list changed", "sensor", id, "list", r.PathValue("kind"), "action", r.PathValue("action"),
				"version", res.Version, "entries", res.Total, "user", req.p.Name)
			s.flash(req, "ok", "%s The list holds %s. The sensor gets it with its configuration.", done, plural(res.Total, "entry", "entries"))
		} else {
			s.flash(req, "ok", "Nothing changed: the list holds %s.", plural(res.Total, "entry", "entries"))
		}
		redirect(w, r, acceptanceURL(id, r.PathValue("kind"), per, page))
		return nil
	case errors.Is(err, store.ErrConflict):
		d, derr := s.acceptanceData(r, req, kind, per, page)
		if derr != nil {
			return derr
		}
		d.Conflict = fmt.Sprintf("Someone else changed this list while you were looking at it (you saw version %d; it is now at version %d). "+
			"Nothing was changed. The page now shows the list as it is: check it and try again.", version, d.Version)
		s.renderAcceptance(w, http.StatusConflict, req, d)
		return nil
	case !invalid:
		return err
	}
	d, err := s.acceptanceData(r, req, kind, per, page)
	if err != nil {
		return err
	}
	for _, e := range verrs {
		d.Errors = append(d.Errors, e.Error())
	}
	d.Add, d.Old, d.New = form.add, form.old, form.new
	s.renderAcceptance(w, http.StatusUnprocessableEntity, req, d)
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}
