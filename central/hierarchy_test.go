package central_test

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/ospreysec/osprey/central"
	"github.com/ospreysec/osprey/central/clusterca"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// TestLinkAndSensorCertificatesDoNotMix runs a PCN and presents, on its gRPC
// address, certificates its own CA signed: a sensor's certificate cannot
// open an SCN's link (nor log in, nor renew), and an SCN's link certificate
// cannot act as a sensor.
func TestLinkAndSensorCertificatesDoNotMix(t *testing.T) {
	dir := t.TempDir()
	n := startNode(t, central.Options{DataDir: dir, Dev: true, NodeName: "pcn", HTTP: central.HTTPOptions{Addr: "127.0.0.1:0"},
		Hierarchy: central.HierarchyOptions{Primary: true}})
	kek, err := pki.LoadOrCreateKEK(filepath.Join(dir, "cluster.key"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := clusterca.Load(t.Context(), store.New(n.ready.Etcd), kek)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(sign func(csr []byte) ([]byte, error)) tls.Certificate {
		key, err := pki.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		csr, err := pki.NewCSR(key, "x")
		if err != nil {
			t.Fatal(err)
		}
		der, err := sign(csr)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	// The node's own sensor is enrolled and approved: its identity is real.
	sensorCert := issue(func(csr []byte) ([]byte, error) {
		return ca.SignClient(csr, pki.Identity{Tenant: "default", SensorID: n.ready.LocalSensorID}, time.Hour, time.Now())
	})
	linkCert := issue(func(csr []byte) ([]byte, error) { return ca.SignServerLink(csr, "branch", time.Hour, time.Now()) })
	dial := func(cert tls.Certificate) *grpc.ClientConn {
		pool := x509.NewCertPool()
		pool.AddCert(ca.Cert)
		conn, err := grpc.NewClient(n.ready.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
			RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{cert},
		})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}

	hier := ospreyv1.NewHierarchyServiceClient(dial(sensorCert))
	stream, err := hier.Link(t.Context())
	if err == nil {
		_, err = stream.Recv()
	}
	wantRefused(t, "a sensor's certificate opening a link", err, codes.Unauthenticated, "not a server's link certificate")
	_, err = hier.Login(t.Context(), &ospreyv1.LoginRequest{Username: "admin", Password: "x"})
	wantRefused(t, "a sensor's certificate logging in", err, codes.Unauthenticated, "not a server's link certificate")
	_, err = hier.RenewLink(t.Context(), &ospreyv1.RenewLinkRequest{})
	wantRefused(t, "a sensor's certificate renewing a link", err, codes.Unauthenticated, "not a server's link certificate")

	sensors := ospreyv1.NewSensorServiceClient(dial(linkCert))
	conn, err := sensors.Connect(t.Context())
	if err == nil {
		_, err = conn.Recv()
	}
	wantRefused(t, "a link certificate connecting as a sensor", err, codes.Unauthenticated, "no sensor identity")
}

func wantRefused(t *testing.T, what string, err error, code codes.Code, msg string) {
	t.Helper()
	if st, _ := status.FromError(err); st.Code() != code || !strings.Contains(st.Message(), msg) {
		t.Errorf("%s: got %v, want %v with %q", what, err, code, msg)
	}
}
