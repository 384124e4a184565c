package smtpauth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ospreysec/osprey/internal/clocktest"
	"github.com/ospreysec/osprey/internal/slapdtest"
	"github.com/ospreysec/osprey/internal/testwait"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	client  = netip.MustParseAddr("192.0.2.10")
	client2 = netip.MustParseAddr("192.0.2.11")
	users   = map[string]string{"alice": "alice-pw", "bob": "b0b pw é", "carol": "carol-pw"}
)

// directory starts a slapd with the test users (and a second entry with
// carol's mail, which makes a search for it ambiguous).
func directory(t *testing.T) *slapdtest.Server {
	t.Helper()
	return slapdtest.Start(t, slapdtest.Options{Users: users, LDIF: fmt.Sprintf(
		"dn: uid=carol2,%s\nobjectClass: inetOrgPerson\nuid: carol2\ncn: c\nsn: c\nmail: carol@example.com\nuserPassword: %s\n\n",
		slapdtest.PeopleDN, slapdtest.SSHA("carol-pw"))})
}

// submission returns enabled settings with the LDAP source a.
func submission(a *ospreyv1.LdapAuth) *ospreyv1.SubmissionSettings {
	return &ospreyv1.SubmissionSettings{Enabled: true, Source: ospreyv1.AuthSource_AUTH_SOURCE_LDAP, Ldap: a, DisableCache: true}
}

// newAuth returns an Authenticator with s applied, closed when t ends.
func newAuth(t *testing.T, s *ospreyv1.SubmissionSettings, opts Options) *Authenticator {
	t.Helper()
	a := New(opts)
	if err := a.Apply(s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	t.Cleanup(func() { _ = a.Apply(nil) })
	return a
}

// result names an Authenticate answer for the tables.
func result(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrInvalid):
		return "invalid"
	case errors.Is(err, ErrThrottled):
		return "throttled"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	}
	return "other: " + err.Error()
}

type attempt struct {
	name, user, password, want string
}

// basicAttempts are what every source is asked.
var basicAttempts = []attempt{
	{"good", "alice", "alice-pw", "ok"},
	{"good, spaces and UTF-8", "bob", "b0b pw é", "ok"},
	{"wrong password", "alice", "bob-pw", "invalid"},
	{"unknown user", "dave", "alice-pw", "invalid"},
	{"empty password", "alice", "", "invalid"},
}

func check(t *testing.T, a *Authenticator, from netip.Addr, tests []attempt) {
	t.Helper()
	for _, tt := range tests {
		err := a.Authenticate(t.Context(), from, tt.user, tt.password)
		if got := result(err); got != tt.want {
			t.Errorf("%s: Authenticate(%q) = %v, want %s", tt.name, tt.user, err, tt.want)
		}
		if err != nil && tt.password != "" && strings.Contains(err.Error(), tt.password) {
			t.Errorf("%s: the error %q holds the password", tt.name, err)
		}
	}
}

func TestLDAP(t *testing.T) {
	d := directory(t)
	host := strings.TrimPrefix(d.URL, "ldap://")
	tests := []struct {
		name string
		ldap *ospreyv1.LdapAuth
	}{
		{"bind as the user", &ospreyv1.LdapAuth{Url: d.URL, BindDnTemplate: slapdtest.BindTemplate}},
		{"search as the search account, then bind", &ospreyv1.LdapAuth{Url: d.URL, BaseDn: slapdtest.PeopleDN, Filter: slapdtest.Filter,
			SearchBindDn: slapdtest.SearchDN, SearchBindPassword: slapdtest.SearchPassword}},
		{"anonymous search, then bind", &ospreyv1.LdapAuth{Url: d.URL, BaseDn: slapdtest.Suffix, Filter: "(uid=%s)"}},
		{"StartTLS", &ospreyv1.LdapAuth{Url: d.URL, StartTls: true, CaPem: string(d.CAPEM), BindDnTemplate: slapdtest.BindTemplate}},
		{"LDAPS", &ospreyv1.LdapAuth{Url: d.TLSURL, CaPem: string(d.CAPEM), BaseDn: slapdtest.PeopleDN, Filter: slapdtest.Filter,
			SearchBindDn: slapdtest.SearchDN, SearchBindPassword: slapdtest.SearchPassword}},
		{"StartTLS to a name of the certificate", &ospreyv1.LdapAuth{Url: "ldap://localhost:" + host[strings.LastIndexByte(host, ':')+1:],
			StartTls: true, CaPem: string(d.CAPEM), BindDnTemplate: slapdtest.BindTemplate}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.ldap.TimeoutMs = 10000
			a := newAuth(t, submission(tt.ldap), Options{})
			check(t, a, client, append(basicAttempts[:len(basicAttempts):len(basicAttempts)],
				attempt{"empty user", "", "alice-pw", "invalid"},
				attempt{"a name that would change the DN", "alice,ou=people", "alice-pw", "invalid"},
				attempt{"a name that would change the filter", "*", "alice-pw", "invalid"},
				attempt{"again", "alice", "alice-pw", "ok"},
			))
			if p := a.Problem(); p != "" {
				t.Errorf("Problem() = %q, want none", p)
			}
			st := a.Stats()
			if st.SourceOK != 3 || st.CacheHits != 0 {
				t.Errorf("Stats() = %+v, want 3 good checks at the source and no cache hits", st)
			}
		})
	}
	t.Run("by mail", func(t *testing.T) {
		a := newAuth(t, submission(&ospreyv1.LdapAuth{Url: d.URL, BaseDn: slapdtest.PeopleDN, Filter: slapdtest.Filter}), Options{})
		check(t, a, client, []attempt{
			{"mail", "alice@example.com", "alice-pw", "ok"},
			{"two entries with this mail", "carol@example.com", "carol-pw", "invalid"},
			{"uid of one of them", "carol", "carol-pw", "ok"},
		})
	})
}

// TestLDAPEmptyPasswordNeverAsked: an empty password would be an
// unauthenticated bind, which slapd lets through; it never reaches the
// directory.
func TestLDAPEmptyPasswordNeverAsked(t *testing.T) {
	d := directory(t)
	a := newAuth(t, submission(&ospreyv1.LdapAuth{Url: d.URL, BindDnTemplate: slapdtest.BindTemplate, TimeoutMs: 10000}), Options{})
	check(t, a, client, []attempt{{"empty password", "alice", "", "invalid"}})
	if st := a.Stats(); st.SourceOK+st.SourceInvalid+st.SourceErrors != 0 {
		t.Errorf("Stats() = %+v, want the directory never asked", st)
	}
}

func TestLDAPTLSFailures(t *testing.T) {
	d := directory(t)
	otherCA, _, _ := slapdtest.Certificate(t, "127.0.0.1")
	for _, tt := range []struct {
		name string
		ldap *ospreyv1.LdapAuth
		want string
	}{
		{"LDAPS, another CA", &ospreyv1.LdapAuth{Url: d.TLSURL, CaPem: string(otherCA), BindDnTemplate: slapdtest.BindTemplate}, "certificate"},
		{"StartTLS, another CA", &ospreyv1.LdapAuth{Url: d.URL, StartTls: true, CaPem: string(otherCA), BindDnTemplate: slapdtest.BindTemplate}, "StartTLS"},
		{"LDAPS on the plain port", &ospreyv1.LdapAuth{Url: "ldaps://" + d.Addr(), CaPem: string(d.CAPEM), BindDnTemplate: slapdtest.BindTemplate}, "TLS"},
		{"wrong search password", &ospreyv1.LdapAuth{Url: d.URL, BaseDn: slapdtest.PeopleDN, Filter: slapdtest.Filter,
			SearchBindDn: slapdtest.SearchDN, SearchBindPassword: "wrong"}, "search_bind_dn"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.ldap.TimeoutMs = 10000
			a := newAuth(t, submission(tt.ldap), Options{})
			err := a.Authenticate(t.Context(), client, "alice", "alice-pw")
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Authenticate() = %v, want ErrUnavailable naming %q", err, tt.want)
			}
			if p := a.Problem(); !strings.Contains(p, "LDAP directory ldap") || !strings.Contains(p, tt.want) {
				t.Errorf("Problem() = %q, want a warning naming the directory and %q", p, tt.want)
			}
			if strings.Contains(err.Error()+a.Problem(), "wrong") && tt.name == "wrong search password" {
				t.Errorf("the search password reached an error: %v", err)
			}
		})
	}
}

// TestLDAPDirectoryDown: a directory that stops answering makes checks a
// temporary failure (never a refused password) and a status problem,
// which the probes clear once it is back.
func TestLDAPDirectoryDown(t *testing.T) {
	d := directory(t)
	a := newAuth(t, submission(&ospreyv1.LdapAuth{Url: d.URL, BaseDn: slapdtest.PeopleDN, Filter: slapdtest.Filter,
		SearchBindDn: slapdtest.SearchDN, SearchBindPassword: slapdtest.SearchPassword, TimeoutMs: 5000}), Options{ProbeInterval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	ran := make(chan error)
	go func() { ran <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run() = %v", err)
		}
	}()
	check(t, a, client, []attempt{{"up", "alice", "alice-pw", "ok"}})

	d.Stop()
	check(t, a, client, []attempt{
		{"down", "alice", "alice-pw", "unavailable"},
		{"down, wrong password", "alice", "nope", "unavailable"},
	})
	if p := a.Problem(); !strings.HasPrefix(p, "WARNING: submission: the LDAP directory "+d.URL) {
		t.Errorf("Problem() = %q, want a warning naming the directory", p)
	}
	// Nobody authenticates meanwhile: the probes keep the warning, and
	// clear it once the directory is back.
	d.Start()
	testwait.For(t, "the probes to find the directory back", func() bool { return a.Problem() == "" })
	check(t, a, client, []attempt{{"back", "alice", "alice-pw", "ok"}, {"back, wrong password", "alice", "nope", "invalid"}})

	d.Stop()
	testwait.For(t, "the probes to find the directory down", func() bool { return a.Problem() != "" })
	d.Start()
	testwait.For(t, "the probes to find the directory back again", func() bool { return a.Problem() == "" })
}

func TestCache(t *testing.T) {
	d := directory(t)
	clock := clocktest.New(time.Unix(1_800_000_000, 0))
	s := submission(&ospreyv1.LdapAuth{Url: d.URL, BindDnTemplate: slapdtest.BindTemplate, TimeoutMs: 5000})
	s.DisableCache, s.CacheSeconds = false, 60
	a := newAuth(t, s, Options{Now: clock.Now})
	check(t, a, client, []attempt{{"first", "alice", "alice-pw", "ok"}, {"cached", "alice", "alice-pw", "ok"}})
	if st := a.Stats(); st.SourceOK != 1 || st.CacheHits != 1 {
		t.Fatalf("Stats() = %+v, want one check at the source and one from the cache", st)
	}
	d.Stop()
	check(t, a, client, []attempt{
		{"cached while the directory is down", "alice", "alice-pw", "ok"},
		{"another password is not cached", "alice", "alice-pw2", "unavailable"},
		{"another name is not cached", "alice2", "alice-pw", "unavailable"},
	})
	clock.Advance(61 * time.Second)
	check(t, a, client, []attempt{{"expired", "alice", "alice-pw", "unavailable"}})

	d.Start()
	s.DisableCache = true
	if err := a.Apply(s); err != nil {
		t.Fatal(err)
	}
	check(t, a, client, []attempt{{"cache off", "alice", "alice-pw", "ok"}, {"cache off, again", "alice", "alice-pw", "ok"}})
	if st := a.Stats(); st.SourceOK != 3 || st.CacheHits != 2 {
		t.Errorf("Stats() = %+v, want every check at the source with the cache off", st)
	}
}

func TestThrottle(t *testing.T) {
	d := directory(t)
	clock := clocktest.New(time.Unix(1_800_000_000, 0))
	s := submission(&ospreyv1.LdapAuth{Url: d.URL, BindDnTemplate: slapdtest.BindTemplate, TimeoutMs: 5000})
	s.MaxFailuresPerUser, s.MaxFailuresPerClient, s.FailureWindowSeconds = 3, 5, 60
	a := newAuth(t, s, Options{Now: clock.Now})

	// Per user name, from any client, without case.
	check(t, a, client, []attempt{
		{"fail 1", "alice", "wrong-1", "invalid"}, {"fail 2", "Alice", "wrong-2", "invalid"},
	})
	check(t, a, client2, []attempt{
		{"fail 3", "ALICE", "wrong-3", "invalid"},
		{"throttled, even the right password", "alice", "alice-pw", "throttled"},
		{"other names go on", "bob", "b0b pw é", "ok"},
	})
	asked := a.Stats()
	clock.Advance(61 * time.Second)
	check(t, a, client, []attempt{{"the window passed", "alice", "alice-pw", "ok"}})

	// Per client: five failures with different names.
	for i := range 5 {
		check(t, a, client, []attempt{{"client fail", fmt.Sprintf("nobody%d", i), "wrong-password", "invalid"}})
	}
	check(t, a, client, []attempt{{"client throttled", "carol", "carol-pw", "throttled"}})
	check(t, a, client2, []attempt{{"another client", "carol", "carol-pw", "ok"}})
	// An IPv6 client is one /64.
	for i := range 5 {
		check(t, a, netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i+1)), []attempt{{"v6 fail", fmt.Sprintf("someone%d", i), "wrong-password", "invalid"}})
	}
	check(t, a, netip.MustParseAddr("2001:db8::ffff"), []attempt{{"same /64", "carol", "carol-pw", "throttled"}})
	check(t, a, netip.MustParseAddr("2001:db8:0:1::1"), []attempt{{"next /64", "carol", "carol-pw", "ok"}})
	if st := a.Stats(); st.SourceInvalid != asked.SourceInvalid+10 {
		t.Errorf("the throttled attempts reached the directory: %+v, want %d refused there", st, asked.SourceInvalid+10)
	}

	// A success forgets the name's failures, not the client's.
	clock.Advance(61 * time.Second)
	check(t, a, client, []attempt{{"fail", "bob", "wrong-1", "invalid"}, {"fail", "bob", "wrong-2", "invalid"}, {"ok", "bob", "b0b pw é", "ok"},
		{"fail", "bob", "wrong-1", "invalid"}, {"fail", "bob", "wrong-2", "invalid"}, {"not yet throttled", "bob", "b0b pw é", "ok"}})
}

// TestConcurrent: many checks at once share the pools; every one gets its
// answer.
func TestConcurrent(t *testing.T) {
	d := directory(t)
	a := newAuth(t, submission(&ospreyv1.LdapAuth{Url: d.URL, BaseDn: slapdtest.PeopleDN, Filter: slapdtest.Filter,
		SearchBindDn: slapdtest.SearchDN, SearchBindPassword: slapdtest.SearchPassword, TimeoutMs: 30000}), Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			user, pw, want := "alice", "alice-pw", "ok"
			if i%3 == 0 {
				pw, want = "wrong", "invalid"
			}
			if got := result(a.Authenticate(t.Context(), netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i)}), user, pw)); got != want {
				errs <- fmt.Errorf("check %d: %s, want %s", i, got, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestApplyReplacesTheSource: a new source takes over at once, and the
// cache of the old one is dropped.
func TestApplyReplacesTheSource(t *testing.T) {
	d := directory(t)
	other := slapdtest.Start(t, slapdtest.Options{Users: map[string]string{"alice": "other-pw"}})
	s := submission(&ospreyv1.LdapAuth{Url: d.URL, BindDnTemplate: slapdtest.BindTemplate, TimeoutMs: 5000})
	s.DisableCache = false
	a := newAuth(t, s, Options{})
	check(t, a, client, []attempt{{"first directory", "alice", "alice-pw", "ok"}})
	s.Ldap.Url = other.URL
	if err := a.Apply(s); err != nil {
		t.Fatal(err)
	}
	check(t, a, client, []attempt{{"old password, new directory", "alice", "alice-pw", "invalid"}, {"new", "alice", "other-pw", "ok"}})
	if err := a.Apply(&ospreyv1.SubmissionSettings{}); err != nil {
		t.Fatal(err)
	}
	check(t, a, client, []attempt{{"disabled", "alice", "other-pw", "unavailable"}})
	if p := a.Problem(); p != "" {
		t.Errorf("Problem() = %q with no source, want none", p)
	}
}
