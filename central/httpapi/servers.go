package httpapi

import (
	"errors"
	"net/http"
	"time"

	"google.golang.org/grpc/status"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/central/uplink"
)

// The distributed mode's routes: on a PCN, its SCNs (/api/v1/servers); on
// any node, its own place and the join (/api/v1/pcn). Every one is an
// admin's, as joining and accepting bind a whole node to a tenant.

// errNotPrimary answers the PCN's routes on another node.
var errNotPrimary = &sensorError{status: http.StatusConflict, msg: "this node is not a PCN: start its nodes with --pcn to accept SCNs"}

// errNoUplink answers the SCN's routes on a node built without one (tests).
var errNoUplink = &sensorError{status: http.StatusConflict, msg: "this node cannot join a PCN"}

// hierarchyError turns the hierarchy's refusals into answers; other errors
// go to writeError as they are.
func hierarchyError(err error) error {
	switch {
	case errors.Is(err, hierarchy.ErrNotPending), errors.Is(err, hierarchy.ErrLinked), errors.Is(err, hierarchy.ErrIsPrimary), errors.Is(err, hierarchy.ErrNotJoined):
		return &sensorError{status: http.StatusConflict, msg: err.Error()}
	}
	if _, ok := status.FromError(errors.Unwrap(err)); ok {
		return &sensorError{status: http.StatusBadGateway, msg: hierarchy.Explain(err)}
	}
	return err
}

// listServers lists the SCNs of the tenants p may see (a pending request,
// of no tenant yet, only to those of all tenants).
func (s *Server) listServers(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	if s.primary == nil {
		return errNotPrimary
	}
	list, err := s.primary.Servers(r.Context(), scope(p))
	if err != nil {
		return err
	}
	if list, err = uplink.WithData(r.Context(), s.messages, scope(p), list, time.Now()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ServerList{Servers: list})
	return nil
}

func (s *Server) acceptServer(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	var in api.AcceptServer
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if s.primary == nil {
		return errNotPrimary
	}
	if in.Tenant == "" {
		return badRequest("tenant: required (the tenant the SCN serves)")
	}
	id := r.PathValue("id")
	if _, err := s.primary.Accept(r.Context(), store.AllTenants(), id, in.Tenant); err != nil {
		return hierarchyError(err)
	}
	return s.writeServer(w, r, id)
}

func (s *Server) rejectServer(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	if s.primary == nil {
		return errNotPrimary
	}
	id := r.PathValue("id")
	v, err := s.primary.Server(r.Context(), store.AllTenants(), id)
	if err != nil {
		return err
	}
	if err := s.primary.Reject(r.Context(), store.AllTenants(), id); err != nil {
		return hierarchyError(err)
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) disconnectServer(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	if s.primary == nil {
		return errNotPrimary
	}
	id := r.PathValue("id")
	if _, err := s.primary.Disconnect(r.Context(), store.AllTenants(), id); err != nil {
		return hierarchyError(err)
	}
	return s.writeServer(w, r, id)
}

func (s *Server) writeServer(w http.ResponseWriter, r *http.Request, id string) error {
	v, err := s.primary.Server(r.Context(), store.AllTenants(), id)
	if err != nil {
		return err
	}
	list, err := uplink.WithData(r.Context(), s.messages, store.AllTenants(), []api.Server{v}, time.Now())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list[0])
	return nil
}

func (s *Server) getHierarchy(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	if s.uplink == nil {
		return errNoUplink
	}
	v, err := s.uplink.View(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) pcnFingerprint(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	var in api.PCNAddress
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	fp, err := hierarchy.FetchFingerprint(r.Context(), in.Address)
	if err != nil {
		return &sensorError{status: http.StatusBadGateway, msg: err.Error()}
	}
	writeJSON(w, http.StatusOK, api.PCNFingerprint{Address: in.Address, Fingerprint: fp})
	return nil
}

func (s *Server) joinPCN(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	var in api.JoinPCN
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if s.uplink == nil {
		return errNoUplink
	}
	if in.Address == "" || in.Fingerprint == "" || in.Name == "" || in.Username == "" || in.Password == "" {
		return badRequest("address, fingerprint, name, username and password: all required")
	}
	if _, err := s.uplink.Join(r.Context(), hierarchy.JoinInput{
		Address: in.Address, Fingerprint: in.Fingerprint, Name: in.Name, Username: in.Username, Password: in.Password, OwnAddress: r.Host,
	}); err != nil {
		return hierarchyError(err)
	}
	return s.getHierarchy(w, r, auth.Principal{})
}

func (s *Server) loginPCN(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	var in api.PCNLogin
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if s.uplink == nil {
		return errNoUplink
	}
	if _, err := s.uplink.Login(r.Context(), in.Username, in.Password); err != nil {
		return hierarchyError(err)
	}
	return s.getHierarchy(w, r, auth.Principal{})
}
