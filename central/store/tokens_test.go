package store

import (
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestConsumeJoinTokenConcurrently(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"})
	if _, err := st.CreateToken(ctx, AllTenants(), joinToken("a", "once", 1)); err != nil {
		t.Fatalf("create token: %v", err)
	}
	now := created.AsTime().Add(time.Hour)

	const consumers = 8
	errs := make([]error, consumers)
	var wg sync.WaitGroup
	for i := range consumers {
		wg.Go(func() {
			_, errs[i] = st.ConsumeJoinToken(ctx, AllTenants(), "once", now)
		})
	}
	wg.Wait()

	var ok, usedUp int
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ErrTokenUsedUp):
			usedUp++
		default:
			t.Errorf("consumer %d: got %v, want nil or ErrTokenUsedUp", i, err)
		}
	}
	if ok != 1 || usedUp != consumers-1 {
		t.Errorf("got %d successes and %d used up, want 1 and %d", ok, usedUp, consumers-1)
	}
	tok, _, err := st.GetToken(ctx, AllTenants(), "once")
	if err != nil || tok.GetUsesLeft() != 0 {
		t.Errorf("token after consumption: uses_left %d (%v), want 0", tok.GetUsesLeft(), err)
	}
}

func TestConsumeJoinToken(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"})
	expires := created.AsTime().Add(24 * time.Hour)
	withExpiry := func(tok *ospreyv1.Token) *ospreyv1.Token {
		tok.ExpiresAt = timestamppb.New(expires)
		return tok
	}
	for _, tok := range []*ospreyv1.Token{
		withExpiry(joinToken("a", "expiring", 3)),
		joinToken("a", "unlimited", 0),
		joinToken("a", "twice", 2),
		apiToken("", "api", "root"),
	} {
		if tok.GetKind() == ospreyv1.TokenKind_TOKEN_KIND_API {
			if _, err := st.CreateUser(ctx, AllTenants(), user("*", "root", ospreyv1.Role_ROLE_ADMIN)); err != nil {
				t.Fatalf("create user: %v", err)
			}
		}
		if _, err := st.CreateToken(ctx, AllTenants(), tok); err != nil {
			t.Fatalf("create token %s: %v", tok.GetId(), err)
		}
	}

	before := expires.Add(-time.Second)
	for _, tc := range []struct {
		name     string
		id       string
		now      time.Time
		want     error
		wantLeft uint32
	}{
		{"before expiry", "expiring", before, nil, 2},
		{"at expiry", "expiring", expires, ErrTokenExpired, 0},
		{"after expiry", "expiring", expires.Add(time.Hour), ErrTokenExpired, 0},
		{"unlimited", "unlimited", before, nil, 0},
		{"unlimited again", "unlimited", before, nil, 0},
		{"first of two", "twice", before, nil, 1},
		{"second of two", "twice", before, nil, 0},
		{"third of two", "twice", before, ErrTokenUsedUp, 0},
		{"api token", "api", before, ErrNotFound, 0},
		{"missing", "missing", before, ErrNotFound, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := st.ConsumeJoinToken(t.Context(), AllTenants(), tc.id, tc.now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			if err == nil && tok.GetUsesLeft() != tc.wantLeft {
				t.Errorf("uses_left: got %d, want %d", tok.GetUsesLeft(), tc.wantLeft)
			}
		})
	}
}
