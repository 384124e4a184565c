package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/acceptlist"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// maxImportBody bounds an imported file: a list's canonical text is at most
// acceptlist.MaxBytes, and a file may write its entries longer (unshortened
// IPv6, delimiters and spaces).
const maxImportBody = 4 * acceptlist.MaxBytes

// acceptanceKind reads the {kind} of an acceptance route.
func acceptanceKind(r *http.Request) (ospreyv1.AcceptanceListKind, error) {
	k, err := convert.ParseAcceptanceListKind(r.PathValue("kind"))
	if err != nil {
		return 0, badRequest("%v", err)
	}
	return k, nil
}

// getAcceptance answers a page of an acceptance list: ?offset= (0) and
// ?limit= (api.DefaultAcceptancePage, at most api.MaxAcceptancePage).
func (s *Server) getAcceptance(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	kind, err := acceptanceKind(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	offset, err := queryInt(q.Get("offset"), 0, 0, acceptlist.MaxEntries)
	if err != nil {
		return badRequest("offset: %v", err)
	}
	limit, err := queryInt(q.Get("limit"), api.DefaultAcceptancePage, 1, api.MaxAcceptancePage)
	if err != nil {
		return badRequest("limit: %v", err)
	}
	page, err := s.store.GetAcceptance(r.Context(), scope(p), r.PathValue("id"), kind, offset, limit)
	if err != nil {
		return err
	}
	setETag(w, page.Version)
	writeJSON(w, http.StatusOK, api.AcceptancePage{Entries: page.Entries, Offset: page.Offset, Total: page.Total, Version: page.Version})
	return nil
}

// queryInt reads an integer query parameter between lo and hi; "" is def.
func queryInt(v string, def, lo, hi int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("want a number from %d to %d, not %q", lo, hi, v)
	}
	return n, nil
}

// editAcceptance removes and adds entries (api.AcceptanceEdit); the body's
// version, when not 0, is the version the edit was made from.
func (s *Server) editAcceptance(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	kind, err := acceptanceKind(r)
	if err != nil {
		return err
	}
	var in api.AcceptanceEdit
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	expect := in.Version
	if expect == 0 {
		expect = store.AnyVersion
	}
	res, err := s.store.EditAcceptance(r.Context(), scope(p), r.PathValue("id"), kind, in.Add, in.Remove, expect)
	if err != nil {
		return err
	}
	s.acceptanceWritten(w, r, p, kind, res, "edited", "added", len(in.Add), "removed", len(in.Remove))
	return nil
}

// clearAcceptance deletes every entry of a list, if it is still at the
// version If-Match names (none: whatever version).
func (s *Server) clearAcceptance(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	kind, err := acceptanceKind(r)
	if err != nil {
		return err
	}
	expect, err := writeVersion(r)
	if err != nil {
		return err
	}
	res, err := s.store.ClearAcceptance(r.Context(), scope(p), r.PathValue("id"), kind, expect)
	if err != nil {
		return err
	}
	s.acceptanceWritten(w, r, p, kind, res, "cleared")
	return nil
}

// importAcceptance reads the body, a text file of entries (see
// acceptlist.Import), into a list: in place of its entries, or, with
// ?mode=append, beside them. A file with bad entries is a 400 naming each
// one's line; nothing is stored then.
func (s *Server) importAcceptance(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	kind, err := acceptanceKind(r)
	if err != nil {
		return err
	}
	var add bool
	switch mode := r.URL.Query().Get("mode"); mode {
	case "", "replace":
	case "append":
		add = true
	default:
		return badRequest("mode: want replace or append, not %q", mode)
	}
	expect, err := writeVersion(r)
	if err != nil {
		return err
	}
	body := http.MaxBytesReader(w, r.Body, maxImportBody)
	res, err := s.store.ImportAcceptance(r.Context(), scope(p), r.PathValue("id"), kind, body, add, expect)
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return badRequest("body larger than %d bytes", maxImportBody)
	}
	if err != nil {
		return err
	}
	how := "imported"
	if add {
		how = "imported, appended"
	}
	s.acceptanceWritten(w, r, p, kind, res, how)
	return nil
}

// exportAcceptance answers a list as a text file, one entry a line: the
// form an import reads.
func (s *Server) exportAcceptance(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	kind, err := acceptanceKind(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	page, err := s.store.GetAcceptance(r.Context(), scope(p), id, kind, 0, 0)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+"-"+string(convert.AcceptanceListKindFromProto(kind))+"-acceptance.txt"))
	w.Header().Set("Cache-Control", "no-store")
	setETag(w, page.Version)
	_ = acceptlist.Export(w, page.Entries) // The client went away; nothing useful to do.
	return nil
}

// acceptanceWritten answers a write of a list and logs it, as the other
// configuration changes are, when it changed anything.
func (s *Server) acceptanceWritten(w http.ResponseWriter, r *http.Request, p auth.Principal, kind ospreyv1.AcceptanceListKind, res store.AcceptanceResult, how string, attrs ...any) {
	if res.Changed {
		s.log.InfoContext(r.Context(), "acceptance list "+how, append([]any{"sensor", r.PathValue("id"),
			"list", convert.AcceptanceListKindFromProto(kind), "version", res.Version, "entries", res.Total, "user", p.Name}, attrs...)...)
	}
	setETag(w, res.Version)
	writeJSON(w, http.StatusOK, api.AcceptanceResult{Version: res.Version, Total: res.Total, Changed: res.Changed})
}
