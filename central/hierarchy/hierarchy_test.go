package hierarchy_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/auth"
	"github.com/ospreysec/osprey/central/clusterca"
	"github.com/ospreysec/osprey/central/hierarchy"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/etcdtest"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

const (
	account  = "branch-account"
	password = "the branch account's password"
)

// pcn is a PCN's hierarchy service on a real gRPC server over TLS, as a
// central node serves it, with its own etcd.
type pcn struct {
	addr    string
	ca      *pki.CA
	store   *store.Store
	primary *hierarchy.Primary
}

func startPCN(t testing.TB, opts hierarchy.PrimaryOptions) *pcn {
	t.Helper()
	st := store.New(etcdtest.Client(t))
	ca, err := pki.NewCA("test PCN CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(t.Context(), store.AllTenants(), &ospreyv1.User{Name: account, Role: ospreyv1.Role_ROLE_ADMIN, PasswordHash: hash, CreatedAt: timestamppb.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateTenant(t.Context(), store.AllTenants(), &ospreyv1.Tenant{Id: "branches", Name: "Branches"}); err != nil {
		t.Fatal(err)
	}
	authn, err := auth.NewAuthenticator(auth.Options{
		Users: auth.UsersFunc(func(ctx context.Context, name string) (*ospreyv1.User, error) {
			u, _, err := st.GetUser(ctx, store.AllTenants(), name)
			return u, err
		}),
		NotFound: []error{store.ErrNotFound, store.ErrInvalidID},
	})
	if err != nil {
		t.Fatal(err)
	}
	opts.Store, opts.CA, opts.Passwords, opts.NodeName = st, ca, authn, "pcn-1"
	opts.Channels = append(opts.Channels, hierarchy.NewDown(st, nil)) // as central/node.go
	p := hierarchy.NewPrimary(opts)
	cert, err := clusterca.NewServerCert(ca, []string{"127.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS12, GetCertificate: cert.GetCertificate, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool,
	})))
	p.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(ctx)
	}()
	t.Cleanup(func() {
		srv.Stop()
		cancel()
		<-done
	})
	return &pcn{addr: ln.Addr().String(), ca: ca, store: st, primary: p}
}

// startSCN runs an SCN's side with its own etcd until the test ends.
func startSCN(t testing.TB) *hierarchy.Secondary {
	t.Helper()
	s, _ := startSCNStore(t)
	return s
}

// startSCNStore is startSCN that also returns the SCN's store.
func startSCNStore(t testing.TB) (*hierarchy.Secondary, *store.Store) {
	t.Helper()
	cli := etcdtest.Client(t)
	kek := make([]byte, pki.KEKSize)
	if _, err := rand.Read(kek); err != nil {
		t.Fatal(err)
	}
	st := store.New(cli)
	s := hierarchy.NewSecondary(hierarchy.SecondaryOptions{
		Store: st, Client: cli, KEK: kek, NodeName: "scn-1", Version: "test",
		Counts: func(context.Context) (hierarchy.Counts, error) {
			return hierarchy.Counts{Sensors: 7, Alerts: 42, LastData: time.Now()}, nil
		},
		// As central/node.go.
		Channels:     []hierarchy.SecondaryChannel{hierarchy.NewDownApply(st, nil)},
		Disconnected: hierarchy.MakeLocal(st),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s, st
}

// TestLinkRenewsItsCertificate links an SCN whose link certificates live
// six seconds: the SCN renews each at two thirds of its life, for a new
// key, and the link comes back each time, with its counts.
func TestLinkRenewsItsCertificate(t *testing.T) {
	p := startPCN(t, hierarchy.PrimaryOptions{CertValidity: 6 * time.Second, Heartbeat: 200 * time.Millisecond})
	s := startSCN(t)
	ctx := t.Context()
	fp, err := hierarchy.FetchFingerprint(ctx, p.addr)
	if err != nil {
		t.Fatal(err)
	}
	if want := pki.SPKIHash(p.ca.Cert); fp != want {
		t.Fatalf("fetched fingerprint %s, want the CA's %s", fp, want)
	}
	if _, err := s.Join(ctx, hierarchy.JoinInput{Address: p.addr, Fingerprint: fp, Name: "branch", Username: account, Password: password}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.primary.Accept(ctx, store.AllTenants(), "branch", "branches"); err != nil {
		t.Fatal(err)
	}
	var first string
	testwait.For(t, "the link with the SCN's counts", func() bool {
		v, err := p.primary.Server(ctx, store.AllTenants(), "branch")
		if err != nil || !v.Online || v.CertExpiresAt == nil {
			return false
		}
		first = v.CertExpiresAt.String()
		return v.Sensors == 7 && v.Alerts == 42
	})
	seen := map[string]bool{}
	testwait.For(t, "two renewals, each followed by the link", func() bool {
		v, err := p.primary.Server(ctx, store.AllTenants(), "branch")
		if err != nil || v.CertExpiresAt == nil || !v.Online {
			return false
		}
		if exp := v.CertExpiresAt.String(); exp != first {
			seen[exp] = true
		}
		return len(seen) >= 2
	})
	srv, _, err := p.store.GetServer(ctx, store.AllTenants(), "branch")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(srv.GetKeyFingerprints()); n != 2 {
		t.Errorf("the PCN keeps %d keys, want the last two", n)
	}
}

// TestJoinPinsTheFingerprint: a request made with a fingerprint other than
// the PCN's never reaches it.
func TestJoinPinsTheFingerprint(t *testing.T) {
	p := startPCN(t, hierarchy.PrimaryOptions{})
	s := startSCN(t)
	other, err := pki.NewCA("another CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Join(t.Context(), hierarchy.JoinInput{Address: p.addr, Fingerprint: pki.SPKIHash(other.Cert), Name: "branch", Username: account, Password: password})
	if err == nil {
		t.Fatal("join with another CA's fingerprint: accepted")
	}
	list, err := p.store.ListServers(t.Context(), store.AllTenants())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("the PCN recorded %d requests, want none", len(list))
	}
}
