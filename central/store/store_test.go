package store

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/internal/etcdtest"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

func TestMain(m *testing.M) {
	// Every etcd server and client of a test is closed by its cleanup, so a
	// goroutine left when all tests end is a leak, ours or etcd's.
	goleak.VerifyTestMain(m)
}

// testStore returns a Store over a fresh etcd, and its client for checks.
func testStore(t *testing.T) (*Store, *clientv3.Client) {
	t.Helper()
	cli := etcdtest.Client(t)
	return New(cli), cli
}

// revision returns etcd's current revision.
func revision(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	resp, err := cli.Get(t.Context(), "/never-written")
	if err != nil {
		t.Fatalf("get revision: %v", err)
	}
	return resp.Header.Revision
}

var created = timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))

func tenant(id string) *ospreyv1.Tenant {
	return &ospreyv1.Tenant{Id: id, Name: "Tenant " + id, CreatedAt: created}
}

func sensor(tenant, id string) *ospreyv1.Sensor {
	return &ospreyv1.Sensor{
		Id: id, Tenant: tenant, Name: "Sensor " + id,
		State: ospreyv1.SensorState_SENSOR_STATE_PENDING, CreatedAt: created,
	}
}

func smtp(domains ...string) *ospreyv1.SmtpIntegration {
	return &ospreyv1.SmtpIntegration{
		Enabled:            true,
		Listen:             "0.0.0.0:25",
		DestinationDomains: domains,
		MaxMessageSize:     &ospreyv1.SizeLimit{Value: 25, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB},
		Tls:                &ospreyv1.SmtpTls{Mode: ospreyv1.TlsMode_TLS_MODE_OFF, ClientCert: ospreyv1.ClientCertMode_CLIENT_CERT_MODE_OFF},
	}
}

func pop3(server string) *ospreyv1.Pop3Integration {
	return &ospreyv1.Pop3Integration{
		Enabled:         true,
		Server:          server,
		Port:            995,
		IntervalSeconds: 60,
		Tls:             true,
		TlsMode:         ospreyv1.Pop3TlsMode_POP3_TLS_MODE_IMPLICIT,
		Username:        "journal",
		Password:        "secret",
		TlsCertificate:  ospreyv1.TlsCertificatePolicy_TLS_CERTIFICATE_POLICY_TRUSTED_ONLY,
	}
}

// user makes a user of tenants: "*" for all tenants, "a,b" for a and b, ""
// for none (the scope's one tenant, on a write).
func user(tenants, name string, role ospreyv1.Role) *ospreyv1.User {
	u := &ospreyv1.User{Name: name, Role: role, PasswordHash: []byte("$2a$10$hash"), CreatedAt: created}
	switch tenants {
	case "*":
		u.AllTenants = true
	case "":
	default:
		u.Tenants = strings.Split(tenants, ",")
	}
	return u
}

func joinToken(tenant, id string, uses uint32) *ospreyv1.Token {
	return &ospreyv1.Token{
		Id: id, Kind: ospreyv1.TokenKind_TOKEN_KIND_JOIN, Tenant: tenant,
		SecretHash: []byte("0123456789abcdef0123456789abcdef"), CreatedAt: created,
		MaxUses: uses, UsesLeft: uses,
	}
}

// mustCreate creates tenants and one sensor per (tenant, id) pair.
func mustCreate(t *testing.T, st *Store, tenants []string, sensors ...[2]string) {
	t.Helper()
	for _, id := range tenants {
		if _, err := st.CreateTenant(t.Context(), AllTenants(), tenant(id)); err != nil {
			t.Fatalf("create tenant %s: %v", id, err)
		}
	}
	for _, s := range sensors {
		if _, err := st.CreateSensor(t.Context(), AllTenants(), sensor(s[0], s[1])); err != nil {
			t.Fatalf("create sensor %s/%s: %v", s[0], s[1], err)
		}
	}
}

// diff compares messages and configurations; a configuration's
// acceptance lists, read only by followers, are left out (the tests of
// acceptance lists compare them on their own).
func diff(want, got any) string {
	return cmp.Diff(want, got, protocmp.Transform(), cmpopts.IgnoreUnexported(SensorConfig{}))
}

func TestCreateAndGet(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})

	if _, err := st.CreateTenant(ctx, AllTenants(), tenant("a")); !errors.Is(err, ErrExists) {
		t.Errorf("create tenant again: got %v, want ErrExists", err)
	}
	if _, err := st.CreateSensor(ctx, AllTenants(), sensor("a", "s1")); !errors.Is(err, ErrExists) {
		t.Errorf("create sensor again: got %v, want ErrExists", err)
	}
	if _, err := st.CreateSensor(ctx, AllTenants(), sensor("nope", "s2")); !errors.Is(err, ErrNotFound) {
		t.Errorf("create sensor in missing tenant: got %v, want ErrNotFound", err)
	}
	// An empty tenant in a tenant scope means that tenant.
	v, err := st.CreateSensor(ctx, TenantScope("a"), sensor("", "s2"))
	if err != nil {
		t.Fatalf("create sensor in own scope: %v", err)
	}
	got, gotV, err := st.GetSensor(ctx, AllTenants(), "s2")
	if err != nil {
		t.Fatalf("get sensor: %v", err)
	}
	if d := diff(sensor("a", "s2"), got); d != "" || gotV != v {
		t.Errorf("get sensor: version %d, want %d; diff (-want +got):\n%s", gotV, v, d)
	}

	smtpCfg, smtpV, err := st.GetSMTP(ctx, AllTenants(), "s1")
	if err != nil || smtpV != 0 || !proto.Equal(smtpCfg, &ospreyv1.SmtpIntegration{}) {
		t.Errorf("get never-written smtp: got %v at %d (%v), want zero at 0", smtpCfg, smtpV, err)
	}
	if _, _, err := st.GetSMTP(ctx, AllTenants(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get smtp of missing sensor: got %v, want ErrNotFound", err)
	}
	if _, err := st.PutPOP3(ctx, AllTenants(), "nope", pop3("pop.example.com"), AnyVersion); !errors.Is(err, ErrNotFound) {
		t.Errorf("put pop3 of missing sensor: got %v, want ErrNotFound", err)
	}
	if _, _, err := st.GetSensor(ctx, AllTenants(), "../a"); !errors.Is(err, ErrInvalidID) {
		t.Errorf("get sensor ../a: got %v, want ErrInvalidID", err)
	}

	// Approve: a state change with compare-and-swap.
	approved := sensor("a", "s1")
	approved.State = ospreyv1.SensorState_SENSOR_STATE_APPROVED
	_, v1, err := st.GetSensor(ctx, AllTenants(), "s1")
	if err != nil {
		t.Fatalf("get sensor: %v", err)
	}
	v2, err := st.UpdateSensor(ctx, AllTenants(), approved, v1)
	if err != nil || v2 <= v1 {
		t.Fatalf("approve: got version %d (%v), want > %d", v2, err, v1)
	}
	moved := sensor("b", "s1")
	if _, err := st.UpdateSensor(ctx, AllTenants(), moved, AnyVersion); err == nil {
		t.Errorf("move sensor to another tenant: got nil error, want one")
	}

	cfg, err := st.SensorConfig(ctx, AllTenants(), "s1")
	if err != nil {
		t.Fatalf("sensor config: %v", err)
	}
	want := &SensorConfig{
		Revision: cfg.Revision, Sensor: approved, SensorVersion: v2,
		SMTP: &ospreyv1.SmtpIntegration{}, POP3: &ospreyv1.Pop3Integration{},
	}
	if d := diff(want, cfg); d != "" || cfg.Revision < v2 {
		t.Errorf("sensor config at %d (want >= %d): diff (-want +got):\n%s", cfg.Revision, v2, d)
	}
}

func TestCASConflict(t *testing.T) {
	st, _ := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	if _, err := st.PutSMTP(ctx, AllTenants(), "s1", smtp("example.com"), AnyVersion); err != nil {
		t.Fatalf("put smtp: %v", err)
	}
	_, read, err := st.GetSMTP(ctx, AllTenants(), "s1")
	if err != nil {
		t.Fatalf("get smtp: %v", err)
	}

	// Two writers that read the same version race; exactly one wins.
	writes := []*ospreyv1.SmtpIntegration{smtp("one.example.com"), smtp("two.example.com")}
	versions := make([]int64, len(writes))
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, cfg := range writes {
		wg.Go(func() {
			versions[i], errs[i] = st.PutSMTP(ctx, TenantScope("a"), "s1", cfg, read)
		})
	}
	wg.Wait()

	winner, loser := 0, 1
	if errs[0] != nil {
		winner, loser = 1, 0
	}
	if errs[winner] != nil {
		t.Fatalf("no writer won: %v, %v", errs[0], errs[1])
	}
	if !errors.Is(errs[loser], ErrConflict) {
		t.Fatalf("losing writer: got %v, want ErrConflict", errs[loser])
	}
	got, gotV, err := st.GetSMTP(ctx, AllTenants(), "s1")
	if err != nil {
		t.Fatalf("get smtp: %v", err)
	}
	if d := diff(writes[winner], got); d != "" {
		t.Errorf("stored value is not the winner's: diff (-want +got):\n%s", d)
	}
	if gotV != versions[winner] {
		t.Errorf("stored version: got %d, want the winner's %d", gotV, versions[winner])
	}

	// A stale writer keeps failing and changes nothing.
	if _, err := st.PutSMTP(ctx, AllTenants(), "s1", smtp("three.example.com"), read); !errors.Is(err, ErrConflict) {
		t.Errorf("stale write: got %v, want ErrConflict", err)
	}
	if _, err := st.PutPOP3(ctx, AllTenants(), "s1", pop3("pop.example.com"), 12345); !errors.Is(err, ErrConflict) {
		t.Errorf("write expecting a wrong version of a never-written key: got %v, want ErrConflict", err)
	}
	if _, v, _ := st.GetPOP3(ctx, AllTenants(), "s1"); v != 0 {
		t.Errorf("pop3 version after refused write: got %d, want 0", v)
	}
	if _, v, _ := st.GetSMTP(ctx, AllTenants(), "s1"); v != gotV {
		t.Errorf("smtp version after refused write: got %d, want %d", v, gotV)
	}
	// Expecting version 0 creates only when never written.
	if _, err := st.PutPOP3(ctx, AllTenants(), "s1", pop3("pop.example.com"), 0); err != nil {
		t.Errorf("write expecting version 0 of a never-written key: %v", err)
	}
}

func TestUnchangedWriteIsNoop(t *testing.T) {
	st, cli := testStore(t)
	ctx := t.Context()
	mustCreate(t, st, []string{"a"}, [2]string{"a", "s1"})
	v1, err := st.PutSMTP(ctx, AllTenants(), "s1", smtp("example.com"), AnyVersion)
	if err != nil {
		t.Fatalf("put smtp: %v", err)
	}
	f := follow(t, startHub(t, st), AllTenants(), "s1")
	if cfg := next(t, f); cfg.SMTPVersion != v1 {
		t.Fatalf("first configuration: smtp version %d, want %d", cfg.SMTPVersion, v1)
	}
	before := revision(t, cli)

	for _, expect := range []int64{v1, AnyVersion, v1 - 1} {
		// A fresh but equal message: equality is by marshalled bytes.
		v, err := st.PutSMTP(ctx, AllTenants(), "s1", smtp("example.com"), expect)
		if err != nil || v != v1 {
			t.Errorf("unchanged write expecting %d: got version %d (%v), want %d", expect, v, err, v1)
		}
	}
	if _, v, _ := st.GetSMTP(ctx, AllTenants(), "s1"); v != v1 {
		t.Errorf("version after unchanged writes: got %d, want %d", v, v1)
	}
	if after := revision(t, cli); after != before {
		t.Errorf("etcd revision after unchanged writes: got %d, want %d", after, before)
	}

	// The next configuration a follower sees is the next real change.
	v2, err := st.PutSMTP(ctx, AllTenants(), "s1", smtp("changed.example.com"), v1)
	if err != nil {
		t.Fatalf("put changed smtp: %v", err)
	}
	cfg := next(t, f)
	if cfg.Revision != v2 {
		t.Errorf("next configuration: revision %d, want %d", cfg.Revision, v2)
	}
	if d := diff(smtp("changed.example.com"), cfg.SMTP); d != "" {
		t.Errorf("next configuration smtp: diff (-want +got):\n%s", d)
	}
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"sensor-01.hq_x", true},
		{"0", true},
		{"", false},
		{"A", false},
		{"-a", false},
		{".a", false},
		{"..", false},
		{"a/b", false},
		{"a b", false},
		{"a\x00", false},
		{"é", false},
		{string(make([]byte, 64)), false},
		{"a23456789012345678901234567890123456789012345678901234567890123", true},
		{"a234567890123456789012345678901234567890123456789012345678901234", false},
	} {
		t.Run(tc.id, func(t *testing.T) {
			if got := validID(tc.id); got != tc.want {
				t.Errorf("validID(%q): got %v, want %v", tc.id, got, tc.want)
			}
		})
	}

	for _, tc := range []struct {
		name string
		want bool
	}{
		{"alice", true},
		{"Alice.Smith@example.com", true},
		{"a_b-c", true},
		{"@a", false},
		{".a", false},
		{"a/b", false},
		{"a b", false},
		{"", false},
		{"a123456789012345678901234567890123456789012345678901234567890123", true},
		{"a1234567890123456789012345678901234567890123456789012345678901234", false},
	} {
		t.Run("user "+tc.name, func(t *testing.T) {
			if got := validUserName(tc.name); got != tc.want {
				t.Errorf("validUserName(%q): got %v, want %v", tc.name, got, tc.want)
			}
		})
	}

	tenant, id, part, ok := parseSensorKey(sensorKey("t1", "s1", partPOP3))
	if !ok || tenant != "t1" || id != "s1" || part != partPOP3 {
		t.Errorf("parseSensorKey: got %q %q %q %v, want t1 s1 pop3 true", tenant, id, part, ok)
	}
	if _, _, _, ok := parseSensorKey(tenantKey("t1")); ok {
		t.Errorf("parseSensorKey(tenant key): got ok, want not ok")
	}
	if got, ok := parseTenantKey(tenantKey("t1")); !ok || got != "t1" {
		t.Errorf("parseTenantKey: got %q %v, want t1 true", got, ok)
	}
	if _, ok := parseTenantKey(sensorKey("t1", "s1", partMeta)); ok {
		t.Errorf("parseTenantKey(sensor key): got ok, want not ok")
	}
}
