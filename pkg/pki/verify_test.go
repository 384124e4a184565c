package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cluster is a CA with one central node's serving certificate and one
// enrolled sensor's client certificate.
type cluster struct {
	ca          *CA
	pin         string
	server      tls.Certificate
	serverChain [][]byte
	sensor      tls.Certificate
	id          Identity
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	ca := newTestCA(t)
	nodeKey, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.SignServer(nodeKey.Public(), []string{"central-1", "127.0.0.1"}, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.TLSCertificate(leaf, nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	sensorKey, csr := newTestCSR(t, nil)
	id := Identity{Tenant: "default", SensorID: "s1"}
	clientDER, err := ca.SignClient(csr, id, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{
		ca:          ca,
		pin:         SPKIHash(ca.Cert),
		server:      server,
		serverChain: server.Certificate,
		sensor:      tls.Certificate{Certificate: [][]byte{clientDER}, PrivateKey: sensorKey},
		id:          id,
	}
}

func TestVerifyPinnedChain(t *testing.T) {
	c := newCluster(t)
	mitm := newCluster(t) // another CA, with its own server certificate

	expired := issue(t, c.ca, &x509.Certificate{
		DNSNames:    []string{"central-1"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		NotBefore:   time.Now().Add(-48 * time.Hour),
		NotAfter:    time.Now().Add(-47 * time.Hour),
	}).Raw
	// A certificate with our CA's key and name, signed by the other CA: anyone
	// can make one, since our CA's public key is public.
	forgedCA := issueWithKey(t, mitm.ca, &x509.Certificate{
		Subject:               c.ca.Cert.Subject,
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
	}, c.ca.Cert.PublicKey)

	tests := []struct {
		name   string
		chain  [][]byte
		pin    string
		want   string // substring of the error; "" for success
		wantIs error
	}{
		{name: "our cluster", chain: c.serverChain, pin: c.pin},
		{name: "upper-case pin", chain: c.serverChain, pin: strings.ToUpper(c.pin)},
		{name: "another cluster's CA (MITM)", chain: mitm.serverChain, pin: c.pin, wantIs: ErrPinMismatch},
		{name: "MITM leaf next to our CA", chain: [][]byte{mitm.serverChain[0], c.ca.Cert.Raw}, pin: c.pin, want: "verify server certificate"},
		{name: "MITM leaf next to a forged CA with our key", chain: [][]byte{mitm.serverChain[0], forgedCA.Raw}, pin: c.pin, want: "not a self-signed CA"},
		{name: "wrong pin", chain: c.serverChain, pin: mitm.pin, wantIs: ErrPinMismatch},
		{name: "leaf only", chain: c.serverChain[:1], pin: c.pin, wantIs: ErrPinMismatch},
		{name: "CA only", chain: [][]byte{c.ca.Cert.Raw}, pin: c.pin, wantIs: ErrPinMismatch},
		{name: "CA as its own leaf", chain: [][]byte{c.ca.Cert.Raw, c.ca.Cert.Raw}, pin: c.pin, want: "it is a CA"},
		{name: "sensor certificate as server", chain: [][]byte{c.sensor.Certificate[0], c.ca.Cert.Raw}, pin: c.pin, want: "does not allow server authentication"},
		{name: "expired server certificate", chain: [][]byte{expired, c.ca.Cert.Raw}, pin: c.pin, want: "expired"},
		{name: "no certificates", chain: nil, pin: c.pin, want: "no certificate"},
		{name: "garbage leaf", chain: [][]byte{[]byte("junk"), c.ca.Cert.Raw}, pin: c.pin, want: "parse server certificate"},
		{name: "garbage in chain", chain: [][]byte{c.serverChain[0], []byte("junk")}, pin: c.pin, want: "certificate 2 of the server chain"},
		{name: "empty pin", chain: c.serverChain, pin: "", want: "has 0 characters"},
		{name: "sha256: pin", chain: c.serverChain, pin: "sha256:" + c.pin[:57], want: "not hex"},
		{name: "certificate fingerprint as pin", chain: c.serverChain, pin: Fingerprint(c.ca.Cert.Raw), wantIs: ErrPinMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyPinnedChain(tt.chain, tt.pin)
			if tt.want == "" && tt.wantIs == nil {
				if err != nil {
					t.Fatalf("VerifyPinnedChain: %v", err)
				}
				if !got.Equal(c.ca.Cert) {
					t.Errorf("VerifyPinnedChain: got CA %v, want %v", got.Subject, c.ca.Cert.Subject)
				}
				return
			}
			if err == nil {
				t.Fatalf("VerifyPinnedChain: got CA %v, want an error", got.Subject)
			}
			if tt.want != "" && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("VerifyPinnedChain: got error %q, want it to contain %q", err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("VerifyPinnedChain: got error %v, want one matching %v", err, tt.wantIs)
			}
		})
	}
}

func issueWithKey(t *testing.T, ca *CA, tmpl *x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	serial, err := newSerial()
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return parseCert(t, der)
}

func TestVerifyAgainstCA(t *testing.T) {
	c := newCluster(t)
	mitm := newCluster(t)
	tests := []struct {
		name  string
		chain [][]byte
		want  string
	}{
		{name: "our central", chain: c.serverChain},
		{name: "leaf alone", chain: c.serverChain[:1]},
		{name: "another cluster", chain: mitm.serverChain, want: "unknown authority"},
		{name: "another cluster's leaf with our CA", chain: [][]byte{mitm.serverChain[0], c.ca.Cert.Raw}, want: "unknown authority"},
		{name: "sensor certificate", chain: c.sensor.Certificate, want: "does not allow server authentication"},
		{name: "our CA", chain: [][]byte{c.ca.Cert.Raw}, want: "it is a CA"},
		{name: "none", chain: nil, want: "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf, err := VerifyAgainstCA(tt.chain, c.ca.Cert)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("VerifyAgainstCA: %v", err)
				}
				if !leaf.Equal(c.server.Leaf) {
					t.Errorf("VerifyAgainstCA: got leaf %v, want %v", leaf.Subject, c.server.Leaf.Subject)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("VerifyAgainstCA: got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// handshake runs one TLS handshake on loopback and reports each side's error
// and the server's view of the connection. The server writes a byte after its
// handshake so that the client sees a late refusal of its certificate (TLS 1.3
// checks it after the client's handshake is done).
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) (state tls.ConnectionState, serverErr, clientErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			serverErr = err
			return
		}
		s := tls.Server(conn, serverCfg)
		defer s.Close()
		if serverErr = s.HandshakeContext(t.Context()); serverErr == nil {
			state = s.ConnectionState()
			_, serverErr = s.Write([]byte{1})
		}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(conn, clientCfg)
	if clientErr = c.HandshakeContext(t.Context()); clientErr == nil {
		_, clientErr = io.ReadFull(c, make([]byte, 1))
	}
	c.Close()
	<-done
	return state, serverErr, clientErr
}

// enrollConfig is the sensor's TLS configuration for Enroll: no client
// certificate, the server checked against the pin only.
func enrollConfig(pin string, gotCA **x509.Certificate) *tls.Config {
	return &tls.Config{
		ServerName:         "osprey.example", // SNI only: not checked
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			ca, err := VerifyPinnedChain(raw, pin)
			*gotCA = ca
			return err
		},
	}
}

// sensorConfig is the sensor's TLS configuration once enrolled.
func sensorConfig(ca *x509.Certificate, cert tls.Certificate) *tls.Config {
	return &tls.Config{
		ServerName:         "osprey.example",
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := VerifyAgainstCA(raw, ca)
			return err
		},
	}
}

// centralConfig is the central node's gRPC TLS configuration: client
// certificates are optional (Enroll has none) and checked against the CA.
func centralConfig(c *cluster) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(c.ca.Cert)
	return &tls.Config{
		Certificates: []tls.Certificate{c.server},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    pool,
	}
}

func TestTLSEnrollment(t *testing.T) {
	c := newCluster(t)
	mitm := newCluster(t)

	t.Run("pinned handshake with our central", func(t *testing.T) {
		var gotCA *x509.Certificate
		_, serverErr, clientErr := handshake(t, centralConfig(c), enrollConfig(c.pin, &gotCA))
		if clientErr != nil || serverErr != nil {
			t.Fatalf("handshake: client %v, server %v", clientErr, serverErr)
		}
		if gotCA == nil || !gotCA.Equal(c.ca.Cert) {
			t.Error("the verified CA is not the cluster's")
		}
	})
	t.Run("pinned handshake with a man in the middle", func(t *testing.T) {
		var gotCA *x509.Certificate
		_, _, clientErr := handshake(t, centralConfig(mitm), enrollConfig(c.pin, &gotCA))
		if !errors.Is(clientErr, ErrPinMismatch) {
			t.Errorf("handshake: got client error %v, want ErrPinMismatch", clientErr)
		}
		if gotCA != nil {
			t.Error("a CA was returned for a chain that failed")
		}
	})
	t.Run("mutual TLS after enrollment", func(t *testing.T) {
		state, serverErr, clientErr := handshake(t, centralConfig(c), sensorConfig(c.ca.Cert, c.sensor))
		if clientErr != nil || serverErr != nil {
			t.Fatalf("handshake: client %v, server %v", clientErr, serverErr)
		}
		if len(state.VerifiedChains) == 0 {
			t.Fatal("server verified no client chain")
		}
		got, err := IdentityFromCert(state.VerifiedChains[0][0])
		if err != nil {
			t.Fatalf("IdentityFromCert: %v", err)
		}
		if diff := cmp.Diff(c.id, got); diff != "" {
			t.Errorf("identity (-want +got):\n%s", diff)
		}
	})
	t.Run("enrolled sensor meets a man in the middle", func(t *testing.T) {
		_, _, clientErr := handshake(t, centralConfig(mitm), sensorConfig(c.ca.Cert, c.sensor))
		if clientErr == nil || !strings.Contains(clientErr.Error(), "unknown authority") {
			t.Errorf("handshake: got client error %v, want an unknown authority", clientErr)
		}
	})
	t.Run("sensor certificate from another CA", func(t *testing.T) {
		_, serverErr, clientErr := handshake(t, centralConfig(c), sensorConfig(c.ca.Cert, mitm.sensor))
		if serverErr == nil || clientErr == nil {
			t.Errorf("handshake: got server error %v, client error %v, want both to fail", serverErr, clientErr)
		}
	})
}
