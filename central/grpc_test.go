package central

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/ospreysec/osprey/central/clusterca"
	"github.com/ospreysec/osprey/pkg/pki"
)

// TestGRPCPanicFailsTheCall registers a method that panics on the node's
// gRPC server: the call fails with Internal, is counted, and the server
// (the process) goes on serving.
func TestGRPCPanicFailsTheCall(t *testing.T) {
	ca, err := pki.NewCA("test CA", 0)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := clusterca.NewServerCert(ca, []string{"127.0.0.1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := newGRPCServer(cert, ca, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	boom := func(_ any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
		in := new(emptypb.Empty)
		if err := dec(in); err != nil {
			return nil, err
		}
		handler := func(context.Context, any) (any, error) { panic("nil map write") }
		return icpt(ctx, in, &grpc.UnaryServerInfo{FullMethod: "/test.Panics/Boom"}, handler)
	}
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "test.Panics",
		HandlerType: (*any)(nil),
		Methods:     []grpc.MethodDesc{{MethodName: "Boom", Handler: boom}},
	}, struct{}{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 2 {
		err := conn.Invoke(t.Context(), "/test.Panics/Boom", new(emptypb.Empty), new(emptypb.Empty))
		if status.Code(err) != codes.Internal {
			t.Fatalf("got %v, want Internal", err)
		}
	}
	if got := gathered(t, reg, "osprey_grpc_panics_total"); got != 2 {
		t.Errorf("osprey_grpc_panics_total = %v, want 2", got)
	}
}

// gathered returns the value of the counter name, which has no labels.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("%s not gathered", name)
	return 0
}
