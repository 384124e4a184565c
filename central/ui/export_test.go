package ui

import "github.com/ospreysec/osprey/central/auth"

// RouteNeed is a route of the UI and the capability it needs (public -1,
// signed in 0), for tests of the route table by role.
type RouteNeed struct {
	Method, Pattern string
	Needs           auth.Capability
}

// RouteNeeds lists the UI's routes.
func RouteNeeds() []RouteNeed {
	var out []RouteNeed
	for _, rt := range routes() {
		out = append(out, RouteNeed{rt.method, rt.pattern, rt.needs})
	}
	return out
}
