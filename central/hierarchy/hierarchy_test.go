package hierarchy_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
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
	authn   *auth.Authenticator
	primary *hierarchy.Primary
	// stop ends the service (the PCN's process going away).
	stop func()
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
	if _, err := st.CreateUser(t.Context(), store.AllTenants(), &ospreyv1.User{Name: account, Role: ospreyv1.Role_ROLE_ADMIN, AllTenants: true, PasswordHash: hash, CreatedAt: timestamppb.Now()}); err != nil {
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
	p := &pcn{ca: ca, store: st, authn: authn}
	p.serve(t, opts)
	return p
}

// serve starts the PCN's hierarchy service, on a new address, until stop
// or the end of the test.
func (p *pcn) serve(t testing.TB, opts hierarchy.PrimaryOptions) {
	t.Helper()
	opts.Store, opts.CA, opts.Passwords, opts.NodeName = p.store, p.ca, p.authn, "pcn-1"
	opts.Channels = append(slices.Clip(opts.Channels), hierarchy.NewDown(p.store, nil)) // as central/node.go
	p.primary = hierarchy.NewPrimary(opts)
	cert, err := clusterca.NewServerCert(p.ca, []string{"127.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca.Cert)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS12, GetCertificate: cert.GetCertificate, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool,
	})))
	p.primary.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.primary.Run(ctx)
	}()
	var once sync.Once
	p.stop = func() {
		once.Do(func() {
			srv.Stop()
			cancel()
			<-done
		})
	}
	t.Cleanup(p.stop)
	p.addr = ln.Addr().String()
}

// startSCN runs an SCN's side with its own etcd until the test ends.
func startSCN(t testing.TB, chans ...hierarchy.SecondaryChannel) *hierarchy.Secondary {
	t.Helper()
	s, _ := startSCNStore(t, chans...)
	return s
}

// startSCNStore is startSCN that also returns the SCN's store.
func startSCNStore(t testing.TB, chans ...hierarchy.SecondaryChannel) (*hierarchy.Secondary, *store.Store) {
	t.Helper()
	kek := make([]byte, pki.KEKSize)
	if _, err := rand.Read(kek); err != nil {
		t.Fatal(err)
	}
	cli := etcdtest.Client(t)
	s, _ := startSCNNode(t, cli, kek, "scn-1", chans...)
	return s, store.New(cli)
}

// startSCNNode runs one node of an SCN, on the SCN's etcd and with its
// cluster key, until stop or the end of the test.
func startSCNNode(t testing.TB, cli *clientv3.Client, kek []byte, name string, chans ...hierarchy.SecondaryChannel) (s *hierarchy.Secondary, stop func()) {
	t.Helper()
	st := store.New(cli)
	s = hierarchy.NewSecondary(hierarchy.SecondaryOptions{
		Store: st, Client: cli, KEK: kek, NodeName: name, Version: "test",
		Counts: func(context.Context) (hierarchy.Counts, error) {
			return hierarchy.Counts{Sensors: 7, Alerts: 42, LastData: time.Now()}, nil
		},
		// As central/node.go.
		Channels:     append(slices.Clip(chans), hierarchy.NewDownApply(st, nil)),
		Disconnected: hierarchy.MakeLocal(st),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return s, stop
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
