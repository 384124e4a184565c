package agent

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ospreysec/osprey/pkg/jointoken"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// ErrUntrustedCentral is matched by the error of [Enroll] when the central's
// certificate chain does not lead to the CA that the join token pins: the
// target is another cluster, or someone is in the middle. Retrying does not
// help, so Enroll does not.
var ErrUntrustedCentral = errors.New("central is not the cluster the join token was made for (wrong --central, or someone in the middle)")

// enrollTimeout bounds one enrollment attempt.
const enrollTimeout = 30 * time.Second

// EnrollOptions are the parameters of [Enroll].
type EnrollOptions struct {
	// Target is the gRPC target of the central nodes: "host:port", or
	// "dns:///name:port" to use every address the name resolves to.
	Target string
	// Token is the parsed join token ([jointoken.Parse]).
	Token jointoken.Token
	// Name is the sensor's display name, unique within its tenant.
	Name string
	// SoftwareVersion is reported to the central.
	SoftwareVersion string
	// DataDir is where the identity is stored (see [LoadIdentity]); it is
	// created with mode 0700.
	DataDir string
	// Logger receives the enrollment's log lines; nil discards them.
	Logger *slog.Logger
	// Retry is how long to wait before attempt n+1 after attempt n failed
	// because no central answered; nil means [DefaultRetry].
	Retry func(attempt int, err error) time.Duration

	// dialOptions are added to the client connection's (tests).
	dialOptions []grpc.DialOption
}

// validate reports every missing parameter of an enrollment.
func (o EnrollOptions) validate() error {
	var errs []error
	if o.Target == "" {
		errs = append(errs, errors.New("central target is empty"))
	}
	if o.Token == (jointoken.Token{}) {
		errs = append(errs, errors.New("join token is empty"))
	}
	if o.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	return errors.Join(errs...)
}

// Enroll gives the sensor its identity: it makes a key, sends a CSR with the
// join token to the central over TLS pinned to the CA hash in the token,
// checks the certificate it gets back, and stores the identity in
// opts.DataDir. The returned identity's Fingerprint is what the
// administrator compares before approving the sensor; Enroll logs it too.
//
// When the data dir already holds an identity, Enroll returns it (with
// Loaded set) and does not enroll: the token is ignored. While no central
// answers it retries, paced by opts.Retry, until ctx is done; a central that
// fails the pin ([ErrUntrustedCentral]) or refuses the token ends it.
func Enroll(ctx context.Context, opts EnrollOptions) (*Identity, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.DataDir == "" {
		return nil, errors.New("enroll: data dir is empty")
	}
	id, err := LoadIdentity(opts.DataDir)
	if err == nil {
		id.Loaded = true
		log.Info("already enrolled; the join token is not used",
			"sensor_id", id.SensorID, "tenant", id.Tenant, "fingerprint", id.Fingerprint)
		return id, nil
	}
	if !errors.Is(err, ErrNotEnrolled) {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	// Make sure the identity can be stored before spending the token.
	if err := os.MkdirAll(filepath.Join(opts.DataDir, identityDir), dirPerm); err != nil {
		return nil, fmt.Errorf("enroll: create identity dir: %w", err)
	}
	retry := opts.Retry
	if retry == nil {
		retry = DefaultRetry
	}

	log.Info("enrolling", "central", opts.Target, "name", opts.Name, "token", opts.Token)
	var (
		resp *ospreyv1.EnrollResponse
		key  crypto.Signer
	)
	for attempt := 0; ; attempt++ {
		// A fresh key each time: the central refuses a key it has seen, and
		// an attempt that failed may have reached it.
		resp, key, err = enrollOnce(ctx, opts)
		if err == nil {
			break
		}
		if ctx.Err() != nil || !retryableEnrollError(err) {
			return nil, fmt.Errorf("enroll with %s: %w", opts.Target, err)
		}
		d := retry(attempt, err)
		log.Warn("enrollment attempt failed; retrying", "central", opts.Target, "err", err, "retry_in", d)
		if serr := sleep(ctx, d); serr != nil {
			return nil, fmt.Errorf("enroll with %s: %w (last attempt: %v)", opts.Target, serr, err)
		}
	}

	id, err = identityFromResponse(resp, opts, key)
	if err != nil {
		return nil, fmt.Errorf("enroll with %s: %w", opts.Target, err)
	}
	keyPEM, err := pki.MarshalKeyPEM(key)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if err := saveIdentity(opts.DataDir, id, keyPEM, time.Now()); err != nil {
		return nil, fmt.Errorf("enroll: store identity: %w", err)
	}
	msg := "enrolled; the sensor waits until an administrator approves it, who should compare the fingerprint first"
	if id.State == ospreyv1.SensorState_SENSOR_STATE_APPROVED {
		msg = "enrolled and approved"
	}
	log.Info(msg, "sensor_id", id.SensorID, "tenant", id.Tenant, "state", id.State.String(), "fingerprint", id.Fingerprint)
	return id, nil
}

// enrollOnce makes a key and asks for its certificate in one Enroll call
// over TLS pinned to the token's CA.
func enrollOnce(ctx context.Context, opts EnrollOptions) (*ospreyv1.EnrollResponse, crypto.Signer, error) {
	key, err := pki.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	csr, err := pki.NewCSR(key, opts.Name)
	if err != nil {
		return nil, nil, err
	}
	pin := &pinCheck{hash: opts.Token.CAHash}
	tlsConfig := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Go's own chain and name check is replaced by the pin check; no
		// ClientSessionCache, since a resumed session skips it.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: pin.verify,
	}
	conn, err := newClient(opts.Target, tlsConfig, opts.dialOptions)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, enrollTimeout)
	defer cancel()
	resp, err := ospreyv1.NewSensorServiceClient(conn).Enroll(ctx, &ospreyv1.EnrollRequest{
		TokenId:         opts.Token.ID,
		TokenSecret:     opts.Token.Secret,
		Name:            opts.Name,
		Csr:             csr,
		SoftwareVersion: opts.SoftwareVersion,
	})
	if err != nil {
		if perr := pin.failure(); perr != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrUntrustedCentral, perr)
		}
		return nil, nil, err
	}
	return resp, key, nil
}

// pinCheck verifies a central's chain against the join token's CA hash and
// remembers the last failure, which gRPC would otherwise bury in an
// Unavailable status.
type pinCheck struct {
	hash string
	mu   sync.Mutex
	err  error
}

func (p *pinCheck) verify(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	_, err := pki.VerifyPinnedChain(rawCerts, p.hash)
	if err != nil {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
	}
	return err
}

func (p *pinCheck) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// retryableEnrollError reports whether an enrollment failed for want of a
// central that answers, rather than because one refused.
func retryableEnrollError(err error) bool {
	if errors.Is(err, ErrUntrustedCentral) {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// identityFromResponse checks what the central sent: a CA certificate with
// the pinned key, and a client certificate that CA signed for our key and for
// the identity the response names.
func identityFromResponse(resp *ospreyv1.EnrollResponse, opts EnrollOptions, key crypto.Signer) (*Identity, error) {
	ca, err := x509.ParseCertificate(resp.GetCaCertificate())
	if err != nil {
		return nil, fmt.Errorf("parse the CA certificate the central sent: %w", err)
	}
	if pki.SPKIHash(ca) != opts.Token.CAHash {
		return nil, fmt.Errorf("%w: the CA certificate it sent does not have the pinned key", ErrUntrustedCentral)
	}
	if !ca.IsCA || ca.CheckSignatureFrom(ca) != nil {
		return nil, fmt.Errorf("%w: the CA certificate it sent is not a self-signed CA", ErrUntrustedCentral)
	}
	der := resp.GetCertificate()
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse the certificate the central issued: %w", err)
	}
	want := pki.Identity{Tenant: resp.GetTenant(), SensorID: resp.GetSensorId()}
	if err := checkClientCert(cert, ca, want, time.Now()); err != nil {
		return nil, fmt.Errorf("certificate the central issued: %w", err)
	}
	if !sameKey(cert, key) {
		return nil, errors.New("certificate the central issued is not for our key")
	}
	fp := pki.Fingerprint(der)
	if got := resp.GetFingerprint(); got != "" && !strings.EqualFold(got, fp) {
		return nil, fmt.Errorf("central reports fingerprint %s for a certificate whose fingerprint is %s", got, fp)
	}
	return &Identity{
		SensorID:    want.SensorID,
		Tenant:      want.Tenant,
		Name:        opts.Name,
		Targets:     []string{opts.Target},
		Fingerprint: fp,
		State:       resp.GetState(),
		CA:          ca,
		Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert},
	}, nil
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
