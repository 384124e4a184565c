package ui

import (
	"errors"
	"net/http"
	"strings"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/central/uplink"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ---- Servers (distributed mode) ----
//
// One page for an administrator: on a PCN, its SCNs (pending requests with
// Accept, choosing the tenant, and Reject; the others with their link); on
// any node, its own place, and the join: the PCN's address, its fingerprint
// to compare, then the confirmed request.

type serversData struct {
	Primary  bool
	Pending  []api.Server
	Servers  []api.Server
	Tenants  []*ospreyv1.Tenant
	Self     api.Hierarchy
	Uplink   bool
	Fetched  *api.PCNFingerprint
	JoinName string
	// Management is an SCN administrator's switch of the PCN's writes.
	Management api.SensorManagement
}

// serversData is what the Servers page shows in scope: on a PCN, the SCNs
// of the tenants the user may see (pending requests, of no tenant yet, to
// users of all tenants only).
func (s *Server) serversData(r *http.Request, scope store.Scope) (*serversData, error) {
	d := &serversData{Primary: s.primary != nil, Uplink: s.uplink != nil}
	if s.primary != nil {
		list, err := s.primary.Servers(r.Context(), scope)
		if err != nil {
			return nil, err
		}
		if list, err = uplink.WithData(r.Context(), s.messages, scope, list, s.now()); err != nil {
			return nil, err
		}
		for _, sv := range list {
			if sv.State == api.ServerPending {
				d.Pending = append(d.Pending, sv)
			} else {
				d.Servers = append(d.Servers, sv)
			}
		}
		if d.Tenants, err = s.store.ListTenants(r.Context(), scope); err != nil {
			return nil, err
		}
	}
	if s.uplink != nil {
		v, err := s.uplink.View(r.Context())
		if err != nil {
			return nil, err
		}
		d.Self = v
		m, err := s.store.SensorManagement(r.Context())
		if err != nil {
			return nil, err
		}
		d.Management = api.SensorManagement{PCNWrites: !m.GetRefuseWrites(), ChangedBy: m.GetChangedBy()}
	}
	return d, nil
}

func (s *Server) serversPage(w http.ResponseWriter, r *http.Request, req *request) error {
	d, err := s.serversData(r, req.scope)
	if err != nil {
		return err
	}
	s.render(w, http.StatusOK, req, "servers", page{Title: "Servers", Nav: "servers", Data: d})
	return nil
}

// serverAction runs an administrator's decision on an SCN and comes back
// to the page with what happened.
func (s *Server) serverAction(w http.ResponseWriter, r *http.Request, req *request) error {
	if s.primary == nil {
		return store.ErrNotFound
	}
	id := r.PathValue("id")
	var err error
	switch r.PathValue("action") {
	case "accept":
		tenant := r.PostFormValue("tenant")
		if _, err = s.primary.Accept(r.Context(), req.scope, id, tenant); err == nil {
			s.flash(req, "ok", "Server %s accepted into tenant %s: it links at its next poll.", id, tenant)
		}
	case "reject":
		if err = s.primary.Reject(r.Context(), req.scope, id); err == nil {
			s.flash(req, "ok", "Request of server %s rejected.", id)
		}
	case "disconnect":
		if _, err = s.primary.Disconnect(r.Context(), req.scope, id); err == nil {
			s.flash(req, "ok", "Server %s disconnected: its link is refused from now on.", id)
		}
	default:
		return store.ErrNotFound
	}
	if err != nil && !errors.Is(err, hierarchy.ErrNotPending) && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		return err
	}
	if err != nil {
		s.flash(req, "error", "Server %s: %v.", id, err)
	}
	redirect(w, r, "/servers")
	return nil
}

// pcnFingerprint fetches the fingerprint of the PCN at the address given and
// shows it beside the form that sends the request pinned to it.
func (s *Server) pcnFingerprint(w http.ResponseWriter, r *http.Request, req *request) error {
	addr := strings.TrimSpace(r.PostFormValue("address"))
	fp, err := hierarchy.FetchFingerprint(r.Context(), addr)
	if err != nil {
		s.flash(req, "error", "%v", err)
		redirect(w, r, "/servers")
		return nil
	}
	d, err := s.serversData(r, req.scope)
	if err != nil {
		return err
	}
	d.Fetched = &api.PCNFingerprint{Address: addr, Fingerprint: fp}
	d.JoinName = s.node.Name
	s.render(w, http.StatusOK, req, "servers", page{Title: "Servers", Nav: "servers", Data: d})
	return nil
}

// pcnJoin sends the request the administrator confirmed.
func (s *Server) pcnJoin(w http.ResponseWriter, r *http.Request, req *request) error {
	if s.uplink == nil {
		return store.ErrNotFound
	}
	in := hierarchy.JoinInput{
		Address: r.PostFormValue("address"), Fingerprint: r.PostFormValue("fingerprint"), Name: r.PostFormValue("name"),
		Username: r.PostFormValue("username"), Password: r.PostFormValue("password"), OwnAddress: r.Host,
	}
	if _, err := s.uplink.Join(r.Context(), in); err != nil {
		s.flash(req, "error", "The request was not sent: %s", hierarchy.Explain(err))
	} else {
		s.flash(req, "ok", "Request sent to %s: it waits for the PCN's administrator.", in.Address)
	}
	redirect(w, r, "/servers")
	return nil
}

// pcnLogin renews an expired token with the PCN account.
func (s *Server) pcnLogin(w http.ResponseWriter, r *http.Request, req *request) error {
	if s.uplink == nil {
		return store.ErrNotFound
	}
	if _, err := s.uplink.Login(r.Context(), r.PostFormValue("username"), r.PostFormValue("password")); err != nil {
		s.flash(req, "error", "The PCN did not renew the token: %s", hierarchy.Explain(err))
	} else {
		s.flash(req, "ok", "Token renewed: the link comes back in a moment.")
	}
	redirect(w, r, "/servers")
	return nil
}
