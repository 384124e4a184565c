package httpapi

import (
	"net/http"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/convert"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// createToken issues an API token for the caller (it acts as the caller, with
// the caller's current role, so any role may have one) or a join token for
// enrolling sensors into a tenant (auth.Configure). The secret is in this
// response only; the store keeps its hash.
func (s *Server) createToken(w http.ResponseWriter, r *http.Request, p auth.Principal) error {
	var in api.TokenRequest
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	t, err := convert.TokenFromRequest(in, s.now())
	if err != nil {
		return err
	}
	var secret string
	switch t.Kind {
	case ospreyv1.TokenKind_TOKEN_KIND_API:
		issued := auth.NewToken()
		t.Id, t.SecretHash, secret = issued.ID, issued.SecretHash, issued.Bearer
		// The store gives the token its owner's tenant (one, or none).
		t.User, t.Tenant = p.Name, ""
	case ospreyv1.TokenKind_TOKEN_KIND_JOIN:
		if !p.Can(auth.Configure) {
			return errForbidden
		}
		if s.joinTokens == nil {
			return badRequest("join tokens are not available on this node")
		}
		if t.Tenant == "" {
			t.Tenant = p.OnlyTenant()
		}
		if secret, err = s.joinTokens(t); err != nil {
			return err
		}
	}
	if _, err := s.store.CreateToken(r.Context(), scope(p), t); err != nil {
		return err
	}
	out := convert.TokenFromProto(t)
	out.Secret = secret
	writeJSON(w, http.StatusCreated, out)
	return nil
}
