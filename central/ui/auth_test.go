package ui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/central/ui"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestPagesRedirectToSignIn(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for _, path := range []string{
		"/", "/sensors", "/sensors?state=pending", "/sensors/s1", "/sensors/s1/smtp", "/sensors/s1/pop3",
		"/alerts", "/alerts?severity=high", "/alerts/default/0000000000000001-0000000000000001", "/rules", "/rules/default",
		"/cluster", "/users", "/tokens", "/no/such/page",
	} {
		t.Run(path, func(t *testing.T) {
			p := b.get(path)
			want := "/signin?next=" + url.QueryEscape(path)
			if path == "/" {
				want = "/signin"
			}
			if p.status != http.StatusSeeOther || p.location != want {
				t.Errorf("GET %s: got %d to %q, want 303 to %q", path, p.status, p.location, want)
			}
		})
	}
	for _, path := range []string{"/sensors/s1/approve", "/sensors/s1/smtp", "/users", "/tokens", "/signout", "/rules/default", "/rules/default/r1/delete"} {
		t.Run("POST "+path, func(t *testing.T) {
			p := b.postRaw(path, url.Values{"csrf": {"x"}})
			if p.status != http.StatusSeeOther || p.location != "/signin" {
				t.Errorf("POST %s: got %d to %q, want 303 to /signin", path, p.status, p.location)
			}
		})
	}
	t.Run("live status", func(t *testing.T) {
		p := b.get("/sensors.json?id=s1")
		if p.status != http.StatusUnauthorized || !strings.Contains(p.header.Get("Content-Type"), "json") {
			t.Errorf("GET /sensors.json: got %d %s, want 401 JSON", p.status, p.header.Get("Content-Type"))
		}
	})
	if sn, _, _ := e.store.GetSensor(t.Context(), store.AllTenants(), "s1"); sn.GetState() != ospreyv1.SensorState_SENSOR_STATE_PENDING {
		t.Errorf("s1 is %v after requests without a session, want pending", sn.GetState())
	}
}

func TestSignInGoesToNext(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct{ next, want string }{
		{"/sensors/s1/pop3", "/sensors/s1/pop3"},
		{"//evil.example/x", "/sensors"},
		{"https://evil.example/", "/sensors"},
		{"/\\evil.example", "/sensors"},
	} {
		b := e.browser()
		b.get("/signin?next=" + url.QueryEscape(tc.next))
		p := b.post("/signin", url.Values{"username": {"root"}, "password": {testPassword}, "next": {tc.next}})
		if p.status != http.StatusSeeOther || p.location != tc.want {
			t.Errorf("next %q: got %d to %q, want 303 to %q", tc.next, p.status, p.location, tc.want)
		}
	}
}

func TestSignInFailsWithOneMessage(t *testing.T) {
	e := newEnv(t)
	var msgs []string
	for _, tc := range []struct{ name, password string }{
		{"root", "wrong password"},
		{"nobody", testPassword},
		{"root", ""},
	} {
		b := e.browser()
		b.get("/signin")
		p := b.post("/signin", url.Values{"username": {tc.name}, "password": {tc.password}})
		if p.status != http.StatusUnauthorized {
			t.Errorf("%s/%q: got %d, want 401", tc.name, tc.password, p.status)
		}
		if strings.Contains(p.header.Get("Set-Cookie"), "osprey_session=") && !strings.Contains(p.header.Get("Set-Cookie"), "Max-Age=0") {
			t.Errorf("%s: a failed sign-in set a session cookie", tc.name)
		}
		msgs = append(msgs, text(byID(p.doc(t), "signin-error")))
	}
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Errorf("messages differ: %q and %q", msgs[0], m)
		}
	}
}

func TestSignInFormNeedsItsToken(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	// No token and no cookie: a form posted from elsewhere.
	p := b.postRaw("/signin", url.Values{"username": {"root"}, "password": {testPassword}})
	if p.status != http.StatusForbidden {
		t.Fatalf("sign-in without the form's token: got %d, want 403", p.status)
	}
	// A token from another browser's form does not match this one's cookie.
	other := e.browser()
	other.get("/signin")
	b.get("/signin")
	p = b.postRaw("/signin", url.Values{"username": {"root"}, "password": {testPassword}, "csrf": {other.csrf}})
	if p.status != http.StatusForbidden {
		t.Fatalf("sign-in with another form's token: got %d, want 403", p.status)
	}
}

func TestSignInThrottledByName(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	try := func(password string) page {
		b.get("/signin")
		return b.post("/signin", url.Values{"username": {"root"}, "password": {password}})
	}
	for i := range 5 {
		if p := try("wrong password"); p.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: got %d, want 401", i+1, p.status)
		}
	}
	p := try(testPassword)
	if p.status != http.StatusTooManyRequests {
		t.Fatalf("right password after 5 failures: got %d, want 429", p.status)
	}
	if !strings.Contains(p.body, "Sign-in failed.") {
		t.Errorf("a throttled sign-in does not show the usual message")
	}
	e.clock.Advance(time.Minute)
	if p := try(testPassword); p.status != http.StatusSeeOther {
		t.Fatalf("right password a minute later: got %d, want 303", p.status)
	}
}

func TestSignInThrottledByAddress(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	// 20 failures from one address, none of them 5 for one name (audrey has 4).
	var names []string
	for _, n := range []string{"root", "alice", "bob"} {
		names = append(names, n, n, n, n, n)
	}
	names = append(names, "audrey", "audrey", "audrey", "audrey", "nobody")
	for i, name := range names {
		b.get("/signin")
		if p := b.post("/signin", url.Values{"username": {name}, "password": {"wrong password"}}); p.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: got %d, want 401", i+1, p.status)
		}
	}
	b.get("/signin")
	if p := b.post("/signin", url.Values{"username": {"audrey"}, "password": {testPassword}}); p.status != http.StatusTooManyRequests {
		t.Fatalf("after 20 failures from one address: got %d, want 429", p.status)
	}
	e.clock.Advance(10 * time.Second)
	b.get("/signin")
	if p := b.post("/signin", url.Values{"username": {"audrey"}, "password": {testPassword}}); p.status != http.StatusSeeOther {
		t.Fatalf("10 s later: got %d, want 303", p.status)
	}
}

func TestSignOut(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	if p := b.post("/signout", nil); p.status != http.StatusSeeOther || p.location != "/signin" {
		t.Fatalf("sign out: got %d to %q", p.status, p.location)
	}
	if p := b.get("/sensors"); p.status != http.StatusSeeOther {
		t.Fatalf("after sign-out: got %d, want 303 to sign in", p.status)
	}
}

func TestSessionIdleTimeout(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	e.clock.Advance(ui.IdleTimeout - time.Minute)
	if p := b.get("/sensors"); p.status != http.StatusOK {
		t.Fatalf("before the idle timeout: got %d, want 200", p.status)
	}
	// Polling the live status is no activity.
	e.clock.Advance(ui.IdleTimeout - time.Minute)
	if p := b.get("/sensors.json?id=s1"); p.status != http.StatusOK {
		t.Fatalf("live status: got %d, want 200", p.status)
	}
	e.clock.Advance(2 * time.Minute)
	if p := b.get("/sensors.json?id=s1"); p.status != http.StatusUnauthorized {
		t.Fatalf("live status past the idle timeout: got %d, want 401", p.status)
	}
	if p := b.get("/sensors"); p.status != http.StatusSeeOther {
		t.Fatalf("page past the idle timeout: got %d, want 303", p.status)
	}
}

func TestSessionAbsoluteTimeout(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	for elapsed := time.Duration(0); elapsed+20*time.Minute < ui.AbsoluteTimeout; elapsed += 20 * time.Minute {
		e.clock.Advance(20 * time.Minute)
		if p := b.get("/users"); p.status != http.StatusOK {
			t.Fatalf("after %v of activity: got %d, want 200", elapsed, p.status)
		}
	}
	e.clock.Advance(20 * time.Minute)
	if p := b.get("/users"); p.status != http.StatusSeeOther {
		t.Fatalf("past the absolute timeout: got %d, want 303", p.status)
	}
}

func TestSessionEndsWhenUserChanges(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("alice")
	u, v, err := e.store.GetUser(t.Context(), store.AllTenants(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	u.Role = ospreyv1.Role_ROLE_AUDITOR
	if _, err := e.store.UpdateUser(t.Context(), store.AllTenants(), u, v); err != nil {
		t.Fatal(err)
	}
	if p := b.get("/sensors"); p.status != http.StatusSeeOther {
		t.Fatalf("after the user's role changed: got %d, want 303 to sign in", p.status)
	}
}

func TestCSRFRefused(t *testing.T) {
	e := newEnv(t)
	b := e.signedIn("root")
	other := e.signedIn("alice")
	for _, tc := range []struct {
		name   string
		form   url.Values
		header []string
	}{
		{"no token", url.Values{}, nil},
		{"wrong token", url.Values{"csrf": {"AAAA"}}, nil},
		{"another session's token", url.Values{"csrf": {other.csrf}}, nil},
		{"cross-site", url.Values{"csrf": {b.csrf}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"other origin", url.Values{"csrf": {b.csrf}}, []string{"Origin", "https://evil.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/sensors/s1/approve", "/sensors/s1/smtp", "/users", "/tokens", "/signout"} {
				form := url.Values{"listen": {"127.0.0.1:25"}, "enabled": {"on"}, "name": {"mallory"}}
				for k, v := range tc.form {
					form[k] = v
				}
				if p := b.postRaw(path, form, tc.header...); p.status != http.StatusForbidden {
					t.Errorf("POST %s: got %d, want 403", path, p.status)
				}
			}
		})
	}
	if sn, _, _ := e.store.GetSensor(t.Context(), store.AllTenants(), "s1"); sn.GetState() != ospreyv1.SensorState_SENSOR_STATE_PENDING {
		t.Errorf("s1 is %v, want still pending", sn.GetState())
	}
	if _, v, _ := e.store.GetSMTP(t.Context(), store.AllTenants(), "s1"); v != 0 {
		t.Errorf("s1's SMTP integration is at version %d, want never written", v)
	}
	if p := b.get("/sensors"); p.status != http.StatusOK {
		t.Errorf("refused forms signed the user out: got %d", p.status)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for _, path := range []string{"/signin", "/sensors"} {
		p := b.get(path)
		for k, want := range map[string]string{
			"Content-Security-Policy": "default-src 'self'",
			"X-Frame-Options":         "DENY",
			"Referrer-Policy":         "same-origin",
			"X-Content-Type-Options":  "nosniff",
		} {
			if got := p.header.Get(k); !strings.Contains(got, want) {
				t.Errorf("GET %s: %s is %q, want %q in it", path, k, got, want)
			}
		}
	}
}

func TestCookies(t *testing.T) {
	for _, tc := range []struct {
		name           string
		secure         bool
		signin, cookie string
	}{
		{"secure", true, "__Host-osprey_signin", "__Host-osprey_session"},
		{"dev", false, "osprey_signin", "osprey_session"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{secureCookies: tc.secure})
			b := e.browser()
			form := b.get("/signin")
			nonce := setCookie(t, form, tc.signin)
			// The jar keeps Secure cookies from plain-HTTP tests; send the nonce by hand.
			p := b.postRaw("/signin", url.Values{"username": {"root"}, "password": {testPassword}, "csrf": {b.csrf}},
				"Cookie", tc.signin+"="+nonce.Value)
			if p.status != http.StatusSeeOther {
				t.Fatalf("sign in: got %d", p.status)
			}
			for _, c := range []*http.Cookie{nonce, setCookie(t, p, tc.cookie)} {
				if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != tc.secure {
					t.Errorf("cookie %s: HttpOnly %v, SameSite %v, Path %q, Secure %v; want HttpOnly, Lax, /, Secure %v",
						c.Name, c.HttpOnly, c.SameSite, c.Path, c.Secure, tc.secure)
				}
			}
		})
	}
}

// setCookie returns the cookie name that a response sets.
func setCookie(t *testing.T, p page, name string) *http.Cookie {
	t.Helper()
	for _, line := range p.header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err == nil && c.Name == name && c.MaxAge >= 0 {
			return c
		}
	}
	t.Fatalf("no cookie %s set; Set-Cookie: %q", name, p.header.Values("Set-Cookie"))
	return nil
}

func TestStaticAssets(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	signin := b.get("/signin")
	for _, name := range []string{"style.css", "app.js", "favicon.svg"} {
		i := strings.Index(signin.body, "/static/"+name+"?v=")
		if i < 0 {
			t.Fatalf("the sign-in page does not link %s", name)
		}
		link := signin.body[i : i+strings.IndexByte(signin.body[i:], '"')]
		p := b.get(link)
		if p.status != http.StatusOK || !strings.Contains(p.header.Get("Cache-Control"), "immutable") || p.body == "" {
			t.Errorf("GET %s: got %d, Cache-Control %q", link, p.status, p.header.Get("Cache-Control"))
		}
	}
	if p := b.get("/static/nothing.js"); p.status != http.StatusNotFound {
		t.Errorf("GET /static/nothing.js: got %d, want 404", p.status)
	}
}
