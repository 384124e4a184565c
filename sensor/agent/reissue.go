package agent

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// reissueTimeout bounds one Reissue call.
const reissueTimeout = 30 * time.Second

// reissueError is why the sensor got no new certificate through Reissue.
type reissueError struct{ err error }

func (e *reissueError) Error() string { return "reissue certificate: " + e.err.Error() }
func (e *reissueError) Unwrap() error { return e.err }

// connect holds one stream with target, as session does. When the client
// certificate has expired, by the agent's clock or by the central's (which
// refuses it in the handshake), it first gets a new one through Reissue,
// proving it holds the expired one's key: a sensor offline for longer than
// its certificate lives comes back by itself.
func (a *Agent) connect(ctx context.Context, target string) (time.Duration, error) {
	if leaf := a.pair.Load().Leaf; !a.now().Before(leaf.NotAfter) {
		a.log.Info("the client certificate has expired; asking the central for a new one",
			"central", target, "not_after", leaf.NotAfter)
		if err := a.reissue(ctx, target); err != nil {
			return 0, err
		}
	}
	lived, err := a.session(ctx, target)
	if lived > 0 || !refusedAsExpired(err) {
		return lived, err
	}
	a.log.Info("the central refuses the client certificate as expired (its clock is ahead of the sensor's); asking it for a new one",
		"central", target, "not_after", a.pair.Load().Leaf.NotAfter)
	if err := a.reissue(ctx, target); err != nil {
		return 0, err
	}
	return a.session(ctx, target)
}

// refusedAsExpired reports whether err is a central refusing the client
// certificate as expired during the TLS handshake. gRPC reports a failed
// handshake as Unavailable with the TLS alert in the message text, which is
// all there is to go by. (The alert may also be lost when the central closes
// the connection first; the next attempt then sees it.)
func refusedAsExpired(err error) bool {
	return status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "tls: expired certificate")
}

// reissue gets a certificate for a new key through Reissue, and stores and
// uses it as a renewal does. Errors are *reissueError.
func (a *Agent) reissue(ctx context.Context, target string) error {
	if err := a.reissueOnce(ctx, target); err != nil {
		return &reissueError{err}
	}
	return nil
}

func (a *Agent) reissueOnce(ctx context.Context, target string) error {
	pair := a.pair.Load()
	oldKey, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return fmt.Errorf("the client key (%T) cannot sign", pair.PrivateKey)
	}
	key, err := pki.GenerateKey()
	if err != nil {
		return err
	}
	csr, err := pki.NewCSR(key, a.identity.SensorID)
	if err != nil {
		return err
	}
	// Server-authenticated TLS: the expired certificate would fail the
	// handshake, so it travels in the request, with the proof.
	conn, err := newClient(target, a.serverTLSConfig(), a.opts.dialOptions)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, reissueTimeout)
	defer cancel()
	stream, err := ospreyv1.NewSensorServiceClient(conn).Reissue(ctx)
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	nonce := first.GetChallenge().GetNonce()
	if nonce == nil {
		return errors.New("the central's first message is not a challenge")
	}
	sig, err := pki.SignReissueProof(oldKey, nonce, pair.Certificate[0], csr)
	if err != nil {
		return err
	}
	err = stream.Send(&ospreyv1.ReissueRequest{
		Certificate:     pair.Certificate[0],
		Csr:             csr,
		Signature:       sig,
		SoftwareVersion: a.opts.SoftwareVersion,
	})
	if err != nil && !errors.Is(err, io.EOF) { // io.EOF: the central answered already; Recv says what
		return err
	}
	resp, err := stream.Recv()
	if err != nil {
		return err
	}
	der := resp.GetCertificate().GetCertificate()
	if der == nil {
		return errors.New("the central's answer holds no certificate")
	}
	return a.installCert(der, key, "got a new client certificate")
}

// logReissueFailure says why the sensor got no new certificate, with what
// to do about it.
func (a *Agent) logReissueFailure(target string, err error, retryIn time.Duration) {
	log := a.log.With("central", target, "retry_in", retryIn, "err", err)
	dir := filepath.Join(a.opts.DataDir, identityDir)
	switch status.Code(err) {
	case codes.FailedPrecondition:
		log.Info("the client certificate has expired and the central has not approved this sensor: it gets a new certificate once an administrator approves it (compare the fingerprint first)",
			"fingerprint", a.State().Fingerprint)
	case codes.PermissionDenied:
		log.Error("the central refuses this sensor a new certificate: it was revoked or deleted, or its certificate was superseded by a newer one; unless an administrator approves it again, to enroll again remove the identity dir and start with a new join token",
			"identity_dir", dir)
	case codes.Unauthenticated:
		log.Error("the central does not take the sensor's certificate as one it issued (another cluster?); to enroll again, remove the identity dir and start with a new join token",
			"identity_dir", dir)
	case codes.Unimplemented:
		log.Error("the central cannot reissue certificates (it runs an older version): upgrade it; otherwise, to enroll again, remove the identity dir and start with a new join token",
			"identity_dir", dir)
	default:
		log.Warn("no new client certificate yet; retrying")
	}
}
