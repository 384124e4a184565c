package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

const (
	admin       = ospreyv1.Role_ROLE_ADMIN
	tenantAdmin = ospreyv1.Role_ROLE_TENANT_ADMIN
	auditor     = ospreyv1.Role_ROLE_AUDITOR
	localAdmin  = ospreyv1.Role_ROLE_LOCAL_ADMIN
	senior      = ospreyv1.Role_ROLE_SENIOR_OFFICER
	officer     = ospreyv1.Role_ROLE_OFFICER
)

// TestRoleCapabilities holds the role table against the product's roles, one
// capability at a time, with all tenants and with one.
func TestRoleCapabilities(t *testing.T) {
	all := []Capability{ReadConfig, Configure, ReadAlerts, HandleAlerts, ReadQuarantine, ManageQuarantine,
		ReadRules, WriteRules, ReadAudit, ReadUsers, ManageUsers, ManageTenants, ManageServers, ManageCluster}
	tests := []struct {
		role ospreyv1.Role
		// can is what the role may do with all tenants; limited to some,
		// it loses the global capabilities.
		can []Capability
	}{
		{admin, all},
		{localAdmin, []Capability{ReadConfig, Configure, ReadAlerts}},
		{senior, []Capability{ReadConfig, ReadAlerts, HandleAlerts, ReadQuarantine, ManageQuarantine, ReadRules, WriteRules, ReadAudit}},
		{officer, []Capability{ReadAlerts, HandleAlerts, ReadQuarantine, ReadRules, ReadAudit}},
		{auditor, []Capability{ReadConfig, ReadAlerts, ReadQuarantine, ReadRules, ReadAudit, ReadUsers}},
		{tenantAdmin, nil},
		{ospreyv1.Role_ROLE_UNSPECIFIED, nil},
	}
	for _, tt := range tests {
		t.Run(RoleTitle(tt.role), func(t *testing.T) {
			for _, limited := range []bool{false, true} {
				p := Principal{Name: "u", Role: tt.role, AllTenants: !limited}
				if limited {
					p.Tenants = []string{"acme"}
				}
				var got, want []Capability
				for _, c := range all {
					if p.Can(c) {
						got = append(got, c)
					}
					if slices.Contains(tt.can, c) && !(limited && c.Global()) {
						want = append(want, c)
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("limited to a tenant %v: capabilities (-want +got):\n%s", limited, diff)
				}
			}
		})
	}
	for _, c := range all {
		if c.String() == "" {
			t.Errorf("capability %d has no name", c)
		}
	}
}

func TestCanAccessTenant(t *testing.T) {
	tests := []struct {
		name   string
		p      Principal
		access []string // of "acme", "beta" and "other"
	}{
		{name: "all tenants", p: Principal{Name: "a", Role: admin, AllTenants: true}, access: []string{"acme", "beta", "other"}},
		{name: "one tenant", p: Principal{Name: "a", Role: officer, Tenants: []string{"acme"}}, access: []string{"acme"}},
		{name: "two tenants", p: Principal{Name: "a", Role: auditor, Tenants: []string{"acme", "beta"}}, access: []string{"acme", "beta"}},
		{name: "no tenant", p: Principal{Name: "a", Role: auditor}},
		{name: "no role", p: Principal{Name: "x", AllTenants: true}},
		{name: "retired role", p: Principal{Name: "x", Role: tenantAdmin, Tenants: []string{"acme"}}},
		{name: "zero", p: Principal{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, tenant := range []string{"acme", "beta", "other"} {
				if tt.p.CanAccessTenant(tenant) {
					got = append(got, tenant)
				}
			}
			if diff := cmp.Diff(tt.access, got); diff != "" {
				t.Errorf("CanAccessTenant (-want +got):\n%s", diff)
			}
			if tt.p.CanAccessTenant("") {
				t.Error(`CanAccessTenant(""): got true, want false`)
			}
		})
	}
}

func TestUpgrade(t *testing.T) {
	tests := []struct {
		name    string
		in      *ospreyv1.User
		want    *ospreyv1.User
		changed bool
	}{
		{"admin", &ospreyv1.User{Name: "r", Role: admin}, &ospreyv1.User{Name: "r", Role: admin, AllTenants: true}, true},
		{"admin with a stray tenant", &ospreyv1.User{Name: "r", Role: admin, Tenant: "acme"}, &ospreyv1.User{Name: "r", Role: admin, AllTenants: true}, true},
		{"tenant admin", &ospreyv1.User{Name: "t", Role: tenantAdmin, Tenant: "acme"}, &ospreyv1.User{Name: "t", Role: admin, Tenants: []string{"acme"}}, true},
		{"auditor of a tenant", &ospreyv1.User{Name: "a", Role: auditor, Tenant: "acme"}, &ospreyv1.User{Name: "a", Role: auditor, Tenants: []string{"acme"}}, true},
		{"auditor of all", &ospreyv1.User{Name: "a", Role: auditor}, &ospreyv1.User{Name: "a", Role: auditor, AllTenants: true}, true},
		{"tenant admin without a tenant", &ospreyv1.User{Name: "o", Role: tenantAdmin}, &ospreyv1.User{Name: "o", Role: tenantAdmin}, false},
		{"today's", &ospreyv1.User{Name: "s", Role: senior, Tenants: []string{"acme"}}, &ospreyv1.User{Name: "s", Role: senior, Tenants: []string{"acme"}}, false},
		{"today's, all tenants", &ospreyv1.User{Name: "s", Role: admin, AllTenants: true}, &ospreyv1.User{Name: "s", Role: admin, AllTenants: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Upgrade(tt.in); got != tt.changed {
				t.Errorf("Upgrade: got %v, want %v", got, tt.changed)
			}
			if diff := cmp.Diff(tt.want, tt.in, protocmp.Transform()); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHashPassword(t *testing.T) {
	// One hash at the real cost (slow under -race); the behaviour is tested at the lowest.
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatalf("HashPassword: %v", err)
	}
	if cost, err := bcrypt.Cost(h); err != nil || cost != BcryptCost {
		t.Errorf("cost: got %d, %v, want %d", cost, err, BcryptCost)
	}

	h, err = hashPassword("correct horse", bcrypt.MinCost)
	if err != nil {
		t.Fatalf("hashPassword: %v", err)
	}
	tests := []struct {
		password string
		want     bool
	}{
		{password: "correct horse", want: true},
		{password: "", want: false},
		{password: "correct horsE", want: false},
		{password: "correct horse ", want: false},
		{password: strings.Repeat("x", 100), want: false},
	}
	for _, tt := range tests {
		if got := CheckPassword(h, tt.password); got != tt.want {
			t.Errorf("CheckPassword(%q): got %v, want %v", tt.password, got, tt.want)
		}
	}
	if CheckPassword([]byte("not a hash"), "correct horse") {
		t.Error("CheckPassword with a broken hash: got true, want false")
	}
	for _, bad := range []string{"", strings.Repeat("x", MaxPasswordBytes+1)} {
		if _, err := HashPassword(bad); err == nil {
			t.Errorf("HashPassword of %d bytes: got no error, want one", len(bad))
		}
	}
}

func TestDummyHash(t *testing.T) {
	a, err := NewAuthenticator(Options{Users: &fakeStore{}})
	if err != nil {
		t.Fatal(err)
	}
	if string(a.dummy) != string(dummyHash) {
		t.Errorf("dummy hash: got %s, want %s", a.dummy, dummyHash)
	}
	cost, err := bcrypt.Cost(dummyHash)
	if err != nil || cost != BcryptCost {
		t.Errorf("dummy hash cost: got %d, %v, want %d, so that a missing user costs as much as a wrong password", cost, err, BcryptCost)
	}
}

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		p := GeneratePassword()
		if len(p) != GeneratedPasswordLength {
			t.Fatalf("got %q (%d characters), want %d", p, len(p), GeneratedPasswordLength)
		}
		if i := strings.IndexFunc(p, func(r rune) bool { return !strings.ContainsRune(passwordAlphabet, r) }); i >= 0 {
			t.Fatalf("got %q, want only characters of %q", p, passwordAlphabet)
		}
		if seen[p] {
			t.Fatalf("got %q twice", p)
		}
		seen[p] = true
	}
	if len(passwordAlphabet) != 56 || strings.ContainsAny(passwordAlphabet, "0Oo1Il") {
		t.Errorf("alphabet %q: want 56 characters without 0 O o 1 I l", passwordAlphabet)
	}
}

var tokenRE = regexp.MustCompile(`^osp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$`)

func TestNewToken(t *testing.T) {
	a, b := NewToken(), NewToken()
	if a.ID == b.ID || a.Bearer == b.Bearer {
		t.Errorf("two tokens: got %q and %q, want different ones", a.Bearer, b.Bearer)
	}
	for _, tok := range []IssuedToken{a, b} {
		if !tokenRE.MatchString(tok.Bearer) {
			t.Errorf("bearer: got %q, want it to match %s", tok.Bearer, tokenRE)
		}
		if !strings.HasPrefix(tok.Bearer, TokenPrefix+tok.ID+"_") {
			t.Errorf("bearer %q does not carry id %q", tok.Bearer, tok.ID)
		}
		id, hash, err := ParseToken(tok.Bearer)
		if err != nil {
			t.Fatalf("ParseToken(%q): %v", tok.Bearer, err)
		}
		if id != tok.ID {
			t.Errorf("id: got %q, want %q", id, tok.ID)
		}
		stored := &ospreyv1.Token{Id: tok.ID, SecretHash: tok.SecretHash}
		if !TokenMatches(stored, hash) {
			t.Error("TokenMatches with its own secret: got false, want true")
		}
		if TokenMatches(&ospreyv1.Token{SecretHash: b.SecretHash}, hashOf(a)) {
			t.Error("TokenMatches with another token's secret: got true, want false")
		}
	}
	if TokenMatches(&ospreyv1.Token{}, make([]byte, sha256.Size)) {
		t.Error("TokenMatches with no stored hash: got true, want false")
	}
}

func hashOf(tok IssuedToken) []byte {
	_, h, _ := ParseToken(tok.Bearer)
	return h
}

func TestParseTokenMalformed(t *testing.T) {
	good := "osp_0123456789abcdef_" + strings.Repeat("A", 43)
	if _, _, err := ParseToken(good); err != nil {
		t.Fatalf("ParseToken(%q): %v", good, err)
	}
	tests := []struct {
		name  string
		token string
	}{
		{name: "empty", token: ""},
		{name: "other prefix", token: "osx_" + good[4:]},
		{name: "no prefix", token: good[4:] + "AAAA"},
		{name: "upper-case id", token: "osp_0123456789ABCDEF_" + strings.Repeat("A", 43)},
		{name: "id not hex", token: "osp_0123456789abcdeg_" + strings.Repeat("A", 43)},
		{name: "no separator", token: "osp_0123456789abcdefX" + strings.Repeat("A", 43)},
		{name: "secret too short", token: good[:len(good)-1]},
		{name: "secret too long", token: good + "A"},
		{name: "secret not base64url", token: "osp_0123456789abcdef_" + strings.Repeat("+", 43)},
		{name: "secret with padding bits set", token: "osp_0123456789abcdef_" + strings.Repeat("A", 42) + "B"},
		{name: "whitespace", token: " " + good[1:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, _, err := ParseToken(tt.token)
			if !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("ParseToken(%q): got id %q, error %v, want ErrUnauthenticated", tt.token, id, err)
			}
		})
	}
}

// fakeStore is Users and Tokens over maps, with the store's error behaviour.
type fakeStore struct {
	mu     sync.Mutex
	users  map[string]*ospreyv1.User
	tokens map[string]*ospreyv1.Token
	fail   error // returned by every lookup when set
}

var (
	errNotFound  = errors.New("not found")
	errInvalidID = errors.New("invalid id")
	errStoreDown = errors.New("etcd unavailable")
)

func (s *fakeStore) GetUser(_ context.Context, name string) (*ospreyv1.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	if strings.ContainsAny(name, "/ ") {
		return nil, errInvalidID
	}
	u, ok := s.users[name]
	if !ok {
		return nil, errNotFound
	}
	return u, nil
}

func (s *fakeStore) GetToken(_ context.Context, id string) (*ospreyv1.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	t, ok := s.tokens[id]
	if !ok {
		return nil, errNotFound
	}
	return t, nil
}

func TestAuthenticate(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// Hashes at the lowest cost keep the test fast; the cost is the hash's own.
	hash := func(pw string) []byte {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	dummy := hash("thrown away") // the real dummy hash's cost is slow under -race
	users := map[string]*ospreyv1.User{
		"root":     {Name: "root", Role: admin, Tenant: "acme", PasswordHash: hash("rootpw")},
		"soc":      {Name: "soc", Role: senior, Tenants: []string{"other", "acme"}, PasswordHash: hash("socpw")},
		"lost":     {Name: "lost", Role: officer, PasswordHash: hash("lostpw")},
		"ops":      {Name: "ops", Role: tenantAdmin, Tenant: "acme", PasswordHash: hash("opspw")},
		"audit":    {Name: "audit", Role: auditor, PasswordHash: hash("auditpw")},
		"orphan":   {Name: "orphan", Role: tenantAdmin, PasswordHash: hash("orphanpw")},
		"norole":   {Name: "norole", PasswordHash: hash("norolepw")},
		"disabled": {Name: "disabled", Role: admin},
	}
	tokens := map[string]*ospreyv1.Token{}
	newToken := func(mut func(*ospreyv1.Token)) string {
		tok := NewToken()
		t := &ospreyv1.Token{Id: tok.ID, Kind: ospreyv1.TokenKind_TOKEN_KIND_API, User: "ops", SecretHash: tok.SecretHash}
		mut(t)
		tokens[tok.ID] = t
		return tok.Bearer
	}
	apiToken := newToken(func(*ospreyv1.Token) {})
	futureToken := newToken(func(t *ospreyv1.Token) { t.ExpiresAt = timestamppb.New(now.Add(time.Second)) })
	expiredToken := newToken(func(t *ospreyv1.Token) { t.ExpiresAt = timestamppb.New(now.Add(-time.Second)) })
	expiringNow := newToken(func(t *ospreyv1.Token) { t.ExpiresAt = timestamppb.New(now) })
	joinToken := newToken(func(t *ospreyv1.Token) { t.Kind = ospreyv1.TokenKind_TOKEN_KIND_JOIN; t.User = ""; t.Tenant = "acme" })
	joinWithUser := newToken(func(t *ospreyv1.Token) { t.Kind = ospreyv1.TokenKind_TOKEN_KIND_JOIN })
	orphanToken := newToken(func(t *ospreyv1.Token) { t.User = "gone" })
	noOwnerToken := newToken(func(t *ospreyv1.Token) { t.User = "" })
	auditorToken := newToken(func(t *ospreyv1.Token) { t.User = "audit" })
	unknownToken := NewToken().Bearer
	wrongSecret := apiToken[:len(apiToken)-2] + "AA"
	if wrongSecret == apiToken {
		wrongSecret = apiToken[:len(apiToken)-2] + "BA"
	}

	basic := func(user, pw string) http.Header {
		r := httptest.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pw)
		return r.Header
	}
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}

	tests := []struct {
		name      string
		header    http.Header
		noTokens  bool  // an Authenticator without Tokens
		storeFail error // every lookup fails with this
		want      Principal
		wantErr   error
	}{
		{name: "no credentials", header: hdr(), wantErr: ErrUnauthenticated},
		{name: "senior officer of two tenants", header: basic("soc", "socpw"), want: Principal{Name: "soc", Role: senior, Tenants: []string{"acme", "other"}}},
		{name: "user of no tenant", header: basic("lost", "lostpw"), wantErr: ErrUnauthenticated},
		{name: "admin of before the roles", header: basic("root", "rootpw"), want: Principal{Name: "root", Role: admin, AllTenants: true}},
		{name: "tenant admin of before the roles: an administrator of its tenant", header: basic("ops", "opspw"), want: Principal{Name: "ops", Role: admin, Tenants: []string{"acme"}}},
		{name: "auditor of every tenant", header: basic("audit", "auditpw"), want: Principal{Name: "audit", Role: auditor, AllTenants: true}},
		{name: "basic scheme in lower case", header: hdr("Authorization", "basic b3BzOm9wc3B3"), want: Principal{Name: "ops", Role: admin, Tenants: []string{"acme"}}},
		{name: "wrong password", header: basic("ops", "rootpw"), wantErr: ErrUnauthenticated},
		{name: "empty password", header: basic("ops", ""), wantErr: ErrUnauthenticated},
		{name: "unknown user", header: basic("nobody", "opspw"), wantErr: ErrUnauthenticated},
		{name: "user name the store cannot look up", header: basic("a/b", "x"), wantErr: ErrUnauthenticated},
		{name: "user without a password", header: basic("disabled", ""), wantErr: ErrUnauthenticated},
		{name: "tenant admin without a tenant", header: basic("orphan", "orphanpw"), wantErr: ErrUnauthenticated},
		{name: "user without a role", header: basic("norole", "norolepw"), wantErr: ErrUnauthenticated},
		{name: "basic not base64", header: hdr("Authorization", "Basic !!!"), wantErr: ErrUnauthenticated},
		{name: "basic without a colon", header: hdr("Authorization", "Basic b3Bz"), wantErr: ErrUnauthenticated},
		{name: "store down on sign-in", header: basic("ops", "opspw"), storeFail: errStoreDown, wantErr: errStoreDown},

		{name: "api token", header: hdr("Authorization", "Bearer "+apiToken), want: Principal{Name: "ops", Role: admin, Tenants: []string{"acme"}}},
		{name: "bearer in lower case, extra spaces", header: hdr("Authorization", "bearer   "+apiToken+" "), want: Principal{Name: "ops", Role: admin, Tenants: []string{"acme"}}},
		{name: "token acts with its owner's current role", header: hdr("Authorization", "Bearer "+auditorToken), want: Principal{Name: "audit", Role: auditor, AllTenants: true}},
		{name: "token not yet expired", header: hdr("Authorization", "Bearer "+futureToken), want: Principal{Name: "ops", Role: admin, Tenants: []string{"acme"}}},
		{name: "expired token", header: hdr("Authorization", "Bearer "+expiredToken), wantErr: ErrUnauthenticated},
		{name: "token expiring now", header: hdr("Authorization", "Bearer "+expiringNow), wantErr: ErrUnauthenticated},
		{name: "wrong secret", header: hdr("Authorization", "Bearer "+wrongSecret), wantErr: ErrUnauthenticated},
		{name: "unknown token", header: hdr("Authorization", "Bearer "+unknownToken), wantErr: ErrUnauthenticated},
		{name: "join token", header: hdr("Authorization", "Bearer "+joinToken), wantErr: ErrUnauthenticated},
		{name: "join token with a user", header: hdr("Authorization", "Bearer "+joinWithUser), wantErr: ErrUnauthenticated},
		{name: "token of a deleted user", header: hdr("Authorization", "Bearer "+orphanToken), wantErr: ErrUnauthenticated},
		{name: "token without an owner", header: hdr("Authorization", "Bearer "+noOwnerToken), wantErr: ErrUnauthenticated},
		{name: "malformed token", header: hdr("Authorization", "Bearer osp_xyz"), wantErr: ErrUnauthenticated},
		{name: "empty bearer", header: hdr("Authorization", "Bearer"), wantErr: ErrUnauthenticated},
		{name: "no token lookup configured", header: hdr("Authorization", "Bearer "+apiToken), noTokens: true, wantErr: ErrUnauthenticated},
		{name: "store down on a token", header: hdr("Authorization", "Bearer "+apiToken), storeFail: errStoreDown, wantErr: errStoreDown},

		{name: "two authorization headers", header: hdr("Authorization", "Bearer "+apiToken, "Authorization", "Bearer "+apiToken), wantErr: ErrUnauthenticated},
		{name: "other scheme", header: hdr("Authorization", "Digest username=ops"), wantErr: ErrUnauthenticated},
		{name: "token in a basic header", header: basic(apiToken, ""), wantErr: ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &fakeStore{users: users, tokens: tokens, fail: tt.storeFail}
			opts := Options{Users: store, Tokens: store, NotFound: []error{errNotFound, errInvalidID}, Now: func() time.Time { return now }}
			if tt.noTokens {
				opts.Tokens = nil
			}
			a, err := NewAuthenticator(opts)
			if err != nil {
				t.Fatal(err)
			}
			a.dummy = dummy
			r := httptest.NewRequest("GET", "/api/v1/sensors", nil)
			r.Header = tt.header
			got, err := a.Authenticate(r)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == ErrUnauthenticated && err != ErrUnauthenticated && !strings.HasPrefix(err.Error(), "malformed token") {
				t.Errorf("got error %q, want one that does not say what was wrong", err)
			}
			if tt.wantErr != nil && !errors.Is(tt.wantErr, ErrUnauthenticated) && errors.Is(err, ErrUnauthenticated) {
				t.Errorf("got %v, a store failure must not read as bad credentials", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("principal (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewAuthenticatorNeedsUsers(t *testing.T) {
	if _, err := NewAuthenticator(Options{}); err == nil {
		t.Error("NewAuthenticator without Users: got no error, want one")
	}
}

func TestFuncAdapters(t *testing.T) {
	var users Users = UsersFunc(func(_ context.Context, name string) (*ospreyv1.User, error) {
		return &ospreyv1.User{Name: name}, nil
	})
	var tokens Tokens = TokensFunc(func(_ context.Context, id string) (*ospreyv1.Token, error) {
		return &ospreyv1.Token{Id: id}, nil
	})
	u, _ := users.GetUser(t.Context(), "x")
	tok, _ := tokens.GetToken(t.Context(), "y")
	if u.GetName() != "x" || tok.GetId() != "y" {
		t.Errorf("got user %q, token %q, want x and y", u.GetName(), tok.GetId())
	}
}
