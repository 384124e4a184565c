package httpapi

import (
	"net/http"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	"github.com/ospreysec/osprey/pkg/validate"
)

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	users, err := s.store.ListUsers(r.Context(), scope(p))
	if err != nil {
		return err
	}
	out := api.UserList{Users: make([]api.User, 0, len(users))}
	for _, u := range users {
		out.Users = append(out.Users, convert.UserFromProto(u))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in api.User
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if !in.CreatedAt.IsZero() {
		return validate.Errors{{Field: "created_at", Message: "is set by the server; leave it out"}}
	}
	u, err := convert.UserToProto(in)
	if err != nil {
		return err
	}
	// A user without tenants, made by a user of exactly one, is of that one
	// (the store fills it in alike); the answer says so, as it says what was
	// stored.
	if len(u.Tenants) == 0 && !u.AllTenants && p.OnlyTenant() != "" {
		u.Tenants = []string{p.OnlyTenant()}
	}
	// Every problem at once, before the password's costly hash.
	errs, _ := validate.AsErrors(validate.User(u))
	if problem := auth.NewPasswordProblem(in.Password); problem != "" {
		errs = append(errs, validate.FieldError{Field: "password", Message: problem})
	}
	if len(errs) > 0 {
		return errs
	}
	if u.PasswordHash, err = auth.HashPassword(in.Password); err != nil {
		return err
	}
	r, cancel := retimed(r)
	defer cancel()
	u.CreatedAt = timestamppb.New(s.now())
	if _, err := s.store.CreateUser(r.Context(), scope(p), u); err != nil {
		return err
	}
	slices.Sort(u.Tenants) // as stored
	writeJSON(w, http.StatusCreated, convert.UserFromProto(u))
	return nil
}

// deleteUser deletes a user (with If-Match, only if it is still that
// version) and answers with the user it deleted. On an SCN, a user the PCN
// manages is refused (403).
func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	expect, err := writeVersion(r)
	if err != nil {
		return err
	}
	gone, err := s.store.DeleteUser(r.Context(), scope(p), r.PathValue("name"), expect)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, convert.UserFromProto(gone))
	return nil
}
