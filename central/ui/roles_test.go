package ui_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/ui"
)

// TestEveryPageByRole opens every page and posts every form as a user of
// each role (of tenant default, and root of all tenants): a role without the
// route's capability gets 403, and nothing else does.
func TestEveryPageByRole(t *testing.T) {
	e := newEnv(t)
	fill := strings.NewReplacer("{tenant}", "default", "{id}", "s1", "{sensor}", "s1", "{msg}", "m1", "{message}", "m1",
		"{kind}", "inbound", "{action}", "nothing", "{control}", "nothing", "{$}", "")
	for _, u := range testUsers {
		if u.GetName() == "bob" {
			continue // alice's twin in the other tenant
		}
		p := auth.Principal{Name: u.GetName(), Role: u.GetRole(), AllTenants: u.GetAllTenants(), Tenants: u.GetTenants()}
		t.Run(auth.RoleTitle(u.GetRole())+" "+u.GetName(), func(t *testing.T) {
			b := e.signedIn(u.GetName())
			for _, rt := range ui.RouteNeeds() {
				if rt.Needs < 0 || rt.Method == "" || rt.Pattern == "/signout" {
					continue // public, the catch-all, and the end of the session
				}
				path := fill.Replace(rt.Pattern)
				var pg page
				if rt.Method == "GET" {
					pg = b.get(path)
				} else {
					pg = b.post(path, nil)
				}
				may := rt.Needs == 0 || p.Can(rt.Needs)
				if rt.Pattern == "/cluster" {
					may = may && p.AllTenants // node addresses: for those who see every tenant
				}
				if forbidden := pg.status == http.StatusForbidden; forbidden == may || pg.status == http.StatusSeeOther && strings.Contains(pg.header.Get("Location"), "/signin") {
					t.Errorf("%s %s (needs %v): got %d; want 403: %v", rt.Method, path, rt.Needs, pg.status, !may)
				}
			}
		})
	}
}

// TestNavigationByRole: the menu offers each role the pages it may open.
func TestNavigationByRole(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		user    string
		links   []string
		noLinks []string
	}{
		{"root", []string{"/sensors", "/alerts", "/audit", "/quarantine", "/rules", "/cluster", "/tokens", "/users"}, nil},
		{"lena", []string{"/sensors", "/alerts", "/tokens"}, []string{"/audit", "/quarantine", "/rules", "/users"}},
		{"sam", []string{"/sensors", "/alerts", "/audit", "/quarantine", "/rules", "/tokens"}, []string{"/users"}},
		{"otto", []string{"/alerts", "/audit", "/quarantine", "/rules"}, []string{"/sensors", "/tokens", "/users"}},
		{"audrey", []string{"/sensors", "/alerts", "/audit", "/quarantine", "/rules", "/users"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			p := e.signedIn(tt.user).get("/alerts")
			if p.status != http.StatusOK {
				t.Fatalf("alerts: got %d", p.status)
			}
			nav := p.body[strings.Index(p.body, `<nav class="mainnav"`):]
			nav = nav[:strings.Index(nav, "</nav>")]
			for _, l := range tt.links {
				if !strings.Contains(nav, `href="`+l+`"`) {
					t.Errorf("no link to %s", l)
				}
			}
			for _, l := range tt.noLinks {
				if strings.Contains(nav, `href="`+l+`"`) {
					t.Errorf("a link to %s, which the role may not open", l)
				}
			}
		})
	}
	if p := e.signedIn("otto").get("/"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/alerts" {
		t.Errorf("a security officer's home: got %d to %q, want the alerts", p.status, p.header.Get("Location"))
	}
}
