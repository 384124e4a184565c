package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ErrUnauthenticated is the error for missing, malformed or wrong credentials (HTTP 401).
// It never says which part was wrong.
var ErrUnauthenticated = errors.New("unauthenticated")

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
	// Now is the clock that token expiry is checked against; nil means time.Now.
	Now func() time.Time
}

// Authenticator checks the credentials of requests. It is safe for concurrent use.
type Authenticator struct {
	users    Users
	tokens   Tokens
	notFound []error
	now      func() time.Time
	dummy    []byte // compared when there is no hash to compare: dummyHash but in tests
}

// NewAuthenticator returns an Authenticator for opts.
func NewAuthenticator(opts Options) (*Authenticator, error) {
	if opts.Users == nil {
		return nil, errors.New("auth: no Users")
	}
	a := &Authenticator{users: opts.Users, tokens: opts.Tokens, notFound: opts.NotFound, now: opts.Now, dummy: dummyHash}
	if a.now == nil {
		a.now = time.Now
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
		return a.AuthenticatePassword(r.Context(), name, password)
	case strings.EqualFold(scheme, "Bearer"):
		return a.AuthenticateToken(r.Context(), strings.TrimSpace(rest))
	}
	return Principal{}, ErrUnauthenticated
}

// AuthenticatePassword returns the principal of a user signing in with a password, as the
// web UI's sign-in form does. It costs one bcrypt comparison whether or not the user exists.
func (a *Authenticator) AuthenticatePassword(ctx context.Context, name, password string) (Principal, error) {
	u, err := a.users.GetUser(ctx, name)
	if err != nil && !a.isNotFound(err) {
		return Principal{}, fmt.Errorf("authenticate: look up user: %w", err)
	}
	hash := u.GetPasswordHash()
	if len(hash) == 0 {
		CheckPassword(a.dummy, password) // spend the same time as a wrong password
		return Principal{}, ErrUnauthenticated
	}
	if !CheckPassword(hash, password) {
		return Principal{}, ErrUnauthenticated
	}
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

func (a *Authenticator) isNotFound(err error) bool {
	for _, nf := range a.notFound {
		if errors.Is(err, nf) {
			return true
		}
	}
	return false
}
