package httpapi

import (
	"net/http"

	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/store"
)

// listNodes shows the cluster as this node sees it. Node addresses and
// health are not tenant data: every authenticated role may read them.
func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, _ auth.Principal) error {
	if s.nodes == nil {
		return store.ErrNotFound
	}
	out, err := s.nodes(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
