package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ErrUnauthenticated is the error for missing, malformed or wrong credentials (HTTP 401).
// It never says which part was wrong.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrThrottled is the error for a password sign-in refused, without checking the
// password, after too many failures for the user name or from the client's address (see
// Throttle; HTTP 429). It matches ErrUnauthenticated too.
var ErrThrottled = fmt.Errorf("%w: too many failed sign-ins, try again later", ErrUnauthenticated)

// checkPassword is CheckPassword; tests count its calls.
var checkPassword = CheckPassword

// Verified passwords are remembered for verifiedTTL, so that a client that sends HTTP
// Basic credentials with every request does not cost a bcrypt comparison each time; at
// most maxVerified of them.
const (
	verifiedTTL = 5 * time.Minute
	maxVerified = 4096
)

// Users looks users up by name.
type Users interface {
	GetUser(ctx context.Context, name string) (*ospreyv1.User, error)
}

// Tokens looks tokens up by id.
type Tokens interface {
	GetToken(ctx context.Context, id string) (*ospreyv1.Token, error)
}

// UsersFunc adapts a function to Users.
type UsersFunc func(ctx context.Context, name string) (*ospreyv1.User, error)

// GetUser calls f.
func (f UsersFunc) GetUser(ctx context.Context, name string) (*ospreyv1.User, error) {
	return f(ctx, name)
}

// TokensFunc adapts a function to Tokens.
type TokensFunc func(ctx context.Context, id string) (*ospreyv1.Token, error)

// GetToken calls f.
func (f TokensFunc) GetToken(ctx context.Context, id string) (*ospreyv1.Token, error) {
	return f(ctx, id)
}

// Options configures an Authenticator.
type Options struct {
	// Users finds the user of a password sign-in and the owner of an API token. Required.
	Users Users
	// Tokens finds API tokens; nil refuses every bearer token.
	Tokens Tokens
	// NotFound lists the errors (matched with errors.Is) with which Users and Tokens say that
	// there is no such user or token, such as the store's ErrNotFound, and an error for a
	// name the store cannot look up at all. They authenticate nobody; any other lookup error
	// is returned as it is, since the store failing is not the caller's fault.
	NotFound []error
	// Now is the clock that token expiry and the throttle use; nil means time.Now.
	Now func() time.Time
}

// Authenticator checks the credentials of requests. It is safe for concurrent use.
type Authenticator struct {
	users    Users
	tokens   Tokens
	notFound []error
	now      func() time.Time
	dummy    []byte // compared when there is no hash to compare: dummyHash but in tests
	throttle *Throttle

	// verified maps an HMAC of "name\x00password", under a key made at start, to the
	// password hash it matched and until when: a later sign-in with the same credentials
	// succeeds without bcrypt while the user's hash is still that one. Neither passwords
	// nor anything that can be checked against them without the key are kept.
	verifyKey []byte
	mu        sync.Mutex
	verified  map[[sha256.Size]byte]verifiedPassword
}

type verifiedPassword struct {
	hash  []byte
	until time.Time
}

// NewAuthenticator returns an Authenticator for opts.
func NewAuthenticator(opts Options) (*Authenticator, error) {
	if opts.Users == nil {
		return nil, errors.New("auth: no Users")
	}
	a := &Authenticator{users: opts.Users, tokens: opts.Tokens, notFound: opts.NotFound, now: opts.Now, dummy: dummyHash,
		verifyKey: make([]byte, 32), verified: map[[sha256.Size]byte]verifiedPassword{}}
	if a.now == nil {
		a.now = time.Now
	}
	a.throttle = NewThrottle(a.now)
	if _, err := rand.Read(a.verifyKey); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return a, nil
}

// Authenticate returns the principal of r's credentials: HTTP Basic with a user's password,
// or "Authorization: Bearer" with an API token. Missing or bad credentials, a join token
// and a token past its expiry are ErrUnauthenticated; other errors come from the lookups.
func (a *Authenticator) Authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Values("Authorization")
	if len(h) != 1 {
		return Principal{}, ErrUnauthenticated // none, or ambiguous
	}
	scheme, rest, _ := strings.Cut(h[0], " ")
	switch {
	case strings.EqualFold(scheme, "Basic"):
		name, password, ok := r.BasicAuth()
		if !ok {
			return Principal{}, ErrUnauthenticated
		}
		return a.AuthenticatePassword(r.Context(), name, password, ClientAddr(r))
	case strings.EqualFold(scheme, "Bearer"):
		return a.AuthenticateToken(r.Context(), strings.TrimSpace(rest))
	}
	return Principal{}, ErrUnauthenticated
}

// AuthenticatePassword returns the principal of a user signing in with a password from the
// client address addr (see ClientAddr), as the web UI's sign-in form and HTTP Basic do.
// After too many failures for the name or from the address it fails with ErrThrottled
// without looking further. Otherwise it costs one bcrypt comparison whether or not the
// user exists, unless the same name and password matched the user's current hash in the
// last few minutes.
func (a *Authenticator) AuthenticatePassword(ctx context.Context, name, password, addr string) (Principal, error) {
	if !a.throttle.Allow(name, addr) {
		return Principal{}, ErrThrottled
	}
	u, err := a.users.GetUser(ctx, name)
	if err != nil && !a.isNotFound(err) {
		return Principal{}, fmt.Errorf("authenticate: look up user: %w", err)
	}
	hash := u.GetPasswordHash()
	if len(hash) == 0 {
		checkPassword(a.dummy, password) // spend the same time as a wrong password
		a.throttle.Failed(name, addr)
		return Principal{}, ErrUnauthenticated
	}
	key := a.verifiedKey(name, password)
	if !a.wasVerified(key, hash) {
		if !checkPassword(hash, password) {
			a.throttle.Failed(name, addr)
			return Principal{}, ErrUnauthenticated
		}
		a.remember(key, hash)
	}
	a.throttle.Succeeded(name)
	p, ok := principalOf(u)
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	return p, nil
}

// AuthenticateToken returns the principal of an API token: the user who owns it, with that
// user's current role and tenant. Join tokens authenticate nobody here.
func (a *Authenticator) AuthenticateToken(ctx context.Context, bearer string) (Principal, error) {
	id, hash, err := ParseToken(bearer)
	if err != nil || a.tokens == nil {
		return Principal{}, ErrUnauthenticated
	}
	t, err := a.tokens.GetToken(ctx, id)
	switch {
	case err != nil && a.isNotFound(err):
		return Principal{}, ErrUnauthenticated
	case err != nil:
		return Principal{}, fmt.Errorf("authenticate: look up token: %w", err)
	case !TokenMatches(t, hash):
		return Principal{}, ErrUnauthenticated
	case t.GetKind() != ospreyv1.TokenKind_TOKEN_KIND_API, t.GetUser() == "":
		return Principal{}, ErrUnauthenticated
	case t.GetExpiresAt() != nil && !a.now().Before(t.GetExpiresAt().AsTime()):
		return Principal{}, ErrUnauthenticated
	}
	u, err := a.users.GetUser(ctx, t.GetUser())
	switch {
	case err != nil && a.isNotFound(err):
		return Principal{}, ErrUnauthenticated // the owner is gone, and its tokens with it
	case err != nil:
		return Principal{}, fmt.Errorf("authenticate: look up token owner: %w", err)
	}
	p, ok := principalOf(u)
	if !ok {
		return Principal{}, ErrUnauthenticated
	}
	return p, nil
}

func (a *Authenticator) verifiedKey(name, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, a.verifyKey)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

// wasVerified reports whether the credentials of key matched hash recently.
func (a *Authenticator) wasVerified(key [sha256.Size]byte, hash []byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.verified[key]
	return ok && a.now().Before(v.until) && subtle.ConstantTimeCompare(v.hash, hash) == 1
}

func (a *Authenticator) remember(key [sha256.Size]byte, hash []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if len(a.verified) >= maxVerified {
		for k, v := range a.verified {
			if !now.Before(v.until) {
				delete(a.verified, k)
			}
		}
		for k := range a.verified {
			if len(a.verified) < maxVerified {
				break
			}
			delete(a.verified, k) // map order: an arbitrary one
		}
	}
	a.verified[key] = verifiedPassword{hash: hash, until: now.Add(verifiedTTL)}
}

func (a *Authenticator) isNotFound(err error) bool {
	for _, nf := range a.notFound {
		if errors.Is(err, nf) {
			return true
		}
	}
	return false
}
