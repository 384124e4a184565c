package auth

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ospreysec/osprey/internal/clocktest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// countChecks counts the bcrypt comparisons made until the test ends.
func countChecks(t *testing.T) *int {
	n := new(int)
	var mu sync.Mutex
	orig := checkPassword
	checkPassword = func(hash []byte, password string) bool {
		mu.Lock()
		*n++
		mu.Unlock()
		return orig(hash, password)
	}
	t.Cleanup(func() { checkPassword = orig })
	return n
}

func passwordAuthenticator(t *testing.T) (*Authenticator, *fakeStore, *clocktest.Clock) {
	t.Helper()
	hash, err := hashPassword("right password", 4)
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeStore{users: map[string]*ospreyv1.User{
		"ann": {Name: "ann", Role: ospreyv1.Role_ROLE_ADMIN, PasswordHash: hash},
	}}
	c := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	a, err := NewAuthenticator(Options{Users: st, NotFound: []error{errNotFound, errInvalidID}, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a, st, c
}

// TestBasicAuthThrottled: HTTP Basic is throttled as the sign-in form is,
// without a bcrypt comparison once throttled.
func TestBasicAuthThrottled(t *testing.T) {
	a, _, clock := passwordAuthenticator(t)
	checks := countChecks(t)
	basic := func(password string) error {
		r := httptest.NewRequest("GET", "/api/v1/sensors", nil)
		r.RemoteAddr = "192.0.2.7:40000"
		r.SetBasicAuth("ann", password)
		_, err := a.Authenticate(r)
		return err
	}
	for i := range 5 {
		if err := basic("guess"); !errors.Is(err, ErrUnauthenticated) || errors.Is(err, ErrThrottled) {
			t.Fatalf("failure %d: got %v, want ErrUnauthenticated", i+1, err)
		}
	}
	before := *checks
	if err := basic("right password"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("right password after 5 failures: got %v, want ErrThrottled", err)
	}
	if *checks != before {
		t.Errorf("a throttled attempt made %d bcrypt comparisons, want none", *checks-before)
	}
	clock.Advance(time.Minute)
	if err := basic("right password"); err != nil {
		t.Fatalf("right password a minute later: %v", err)
	}
}

// TestVerifiedPasswordsRemembered: the same credentials again cost no
// bcrypt comparison, until the password changes or a few minutes pass; a
// wrong password still costs one.
func TestVerifiedPasswordsRemembered(t *testing.T) {
	a, st, clock := passwordAuthenticator(t)
	checks := countChecks(t)
	ctx := context.Background()
	signIn := func(password string) error {
		_, err := a.AuthenticatePassword(ctx, "ann", password, "192.0.2.7")
		return err
	}
	for range 3 {
		if err := signIn("right password"); err != nil {
			t.Fatal(err)
		}
	}
	if *checks != 1 {
		t.Errorf("3 sign-ins with the same password made %d bcrypt comparisons, want 1", *checks)
	}
	if err := signIn("wrong password"); !errors.Is(err, ErrUnauthenticated) || *checks != 2 {
		t.Errorf("wrong password: got %v after %d comparisons, want ErrUnauthenticated after 2", err, *checks)
	}

	// A new password: the old one no longer signs in, remembered or not.
	hash, err := hashPassword("new password", 4)
	if err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.users["ann"].PasswordHash = hash
	st.mu.Unlock()
	if err := signIn("right password"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("the old password after a change: got %v, want ErrUnauthenticated", err)
	}
	if err := signIn("new password"); err != nil {
		t.Fatal(err)
	}
	n := *checks
	if err := signIn("new password"); err != nil || *checks != n {
		t.Errorf("the new password again: %v after %d more comparisons, want none", err, *checks-n)
	}
	clock.Advance(verifiedTTL)
	if err := signIn("new password"); err != nil || *checks != n+1 {
		t.Errorf("after %v: %v after %d more comparisons, want 1", verifiedTTL, err, *checks-n)
	}
}
