package store

import (
	"context"
	"errors"
	"testing"

	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestValidationFailureChangesNothing makes writes that package validate
// refuses, and checks that each returns validate.Errors and that neither
// the stored value nor any version changed.
func TestValidationFailureChangesNothing(t *testing.T) {
	st, cli := testStore(t)
	seedTwoTenants(t, st)
	mustCreate(t, st, nil, [2]string{"a", "a2"})
	all := AllTenants()

	badSMTP := smtp("example.com")
	badSMTP.Listen = "not an address"
	badSMTP.Clients = []string{"300.1.2.3"}
	badPOP3 := pop3("pop.example.com")
	badPOP3.Port = 70000
	badPOP3.IntervalSeconds = 1
	unnamed := tenant("a")
	unnamed.Name = ""
	overused := joinToken("a", "jx", 1)
	overused.UsesLeft = 2
	// absentOK reads an object a refused create must not have made.
	absentOK := func(v any, version int64, err error) (any, int64, error) {
		if errors.Is(err, ErrNotFound) {
			return nil, 0, nil
		}
		return v, version, err
	}

	for _, tc := range []struct {
		name string
		call func(ctx context.Context, version int64) error
		// read returns the stored value and its version.
		read func(ctx context.Context) (any, int64, error)
	}{
		{"PutSMTP",
			func(ctx context.Context, v int64) error { _, err := st.PutSMTP(ctx, all, "a1", badSMTP, v); return err },
			func(ctx context.Context) (any, int64, error) { return st.GetSMTP(ctx, all, "a1") }},
		{"PutPOP3",
			func(ctx context.Context, v int64) error { _, err := st.PutPOP3(ctx, all, "a1", badPOP3, v); return err },
			func(ctx context.Context) (any, int64, error) { return st.GetPOP3(ctx, all, "a1") }},
		{"PutPOP3 never written",
			func(ctx context.Context, v int64) error { _, err := st.PutPOP3(ctx, all, "a2", badPOP3, v); return err },
			func(ctx context.Context) (any, int64, error) { return st.GetPOP3(ctx, all, "a2") }},
		{"CreateTenant",
			func(ctx context.Context, v int64) error {
				_, err := st.CreateTenant(ctx, all, &ospreyv1.Tenant{Id: "c"})
				return err
			},
			func(ctx context.Context) (any, int64, error) { return absentOK(st.GetTenant(ctx, all, "c")) }},
		{"UpdateTenant",
			func(ctx context.Context, v int64) error { _, err := st.UpdateTenant(ctx, all, unnamed, v); return err },
			func(ctx context.Context) (any, int64, error) { return st.GetTenant(ctx, all, "a") }},
		{"CreateUser",
			func(ctx context.Context, v int64) error {
				_, err := st.CreateUser(ctx, all, user("", "dave", ospreyv1.Role_ROLE_OFFICER))
				return err
			},
			func(ctx context.Context) (any, int64, error) { return absentOK(st.GetUser(ctx, all, "dave")) }},
		{"UpdateUser",
			func(ctx context.Context, v int64) error {
				_, err := st.UpdateUser(ctx, all, user("a", "alice", ospreyv1.Role_ROLE_UNSPECIFIED), v)
				return err
			},
			func(ctx context.Context) (any, int64, error) { return st.GetUser(ctx, all, "alice") }},
		{"CreateToken",
			func(ctx context.Context, v int64) error { _, err := st.CreateToken(ctx, all, overused); return err },
			func(ctx context.Context) (any, int64, error) { return absentOK(st.GetToken(ctx, all, "jx")) }},
		{"UpdateSensor to another tenant",
			func(ctx context.Context, v int64) error {
				_, err := st.UpdateSensor(ctx, all, sensor("b", "a1"), v)
				return err
			},
			func(ctx context.Context) (any, int64, error) { return st.GetSensor(ctx, all, "a1") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			before, version, err := tc.read(ctx)
			if err != nil {
				t.Fatalf("read before: %v", err)
			}
			rev := revision(t, cli)

			err = tc.call(ctx, version)
			var fields validate.Errors
			if !errors.As(err, &fields) || len(fields) == 0 {
				t.Fatalf("got error %v, want validate.Errors", err)
			}

			after, afterVersion, err := tc.read(ctx)
			if err != nil {
				t.Fatalf("read after: %v", err)
			}
			if d := diff(before, after); d != "" || afterVersion != version {
				t.Errorf("after a refused write: version %d, want %d; diff (-before +after):\n%s", afterVersion, version, d)
			}
			if got := revision(t, cli); got != rev {
				t.Errorf("etcd revision: got %d, want %d", got, rev)
			}
		})
	}
}
