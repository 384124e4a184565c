package sensorsvc

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// reissueTimeout bounds the wait for a sensor's request after the challenge.
const reissueTimeout = 10 * time.Second

// maxCertificateSize bounds the certificate a sensor sends for a reissue;
// ours are well under a kilobyte.
const maxCertificateSize = 16 << 10

// Reissue gives a sensor whose certificate expired a new one, without a
// person (see the package documentation): it sends a fresh challenge, takes
// the sensor's one request (its certificate, a CSR for a new key, and a
// proof by the certificate's key over the three), checks it, and answers
// with the new certificate.
func (s *Service) Reissue(stream ospreyv1.SensorService_ReissueServer) error {
	ctx := stream.Context()
	nonce := make([]byte, pki.ReissueNonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return status.Errorf(codes.Internal, "make a challenge: %v", err)
	}
	challenge := &ospreyv1.ReissueResponse{Msg: &ospreyv1.ReissueResponse_Challenge{Challenge: &ospreyv1.ReissueChallenge{Nonce: nonce}}}
	if err := stream.Send(challenge); err != nil {
		return err
	}
	req, err := recvReissue(ctx, stream)
	if err != nil {
		return err
	}
	out, err := s.reissue(ctx, nonce, req)
	if err != nil {
		return err
	}
	return stream.Send(&ospreyv1.ReissueResponse{Msg: &ospreyv1.ReissueResponse_Certificate{Certificate: out}})
}

// recvReissue waits for the sensor's request, for reissueTimeout at most.
func recvReissue(ctx context.Context, stream ospreyv1.SensorService_ReissueServer) (*ospreyv1.ReissueRequest, error) {
	type result struct {
		req *ospreyv1.ReissueRequest
		err error
	}
	ch := make(chan result, 1)
	go func() {
		req, err := stream.Recv()
		ch <- result{req, err}
	}()
	timer := time.NewTimer(reissueTimeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.req, r.err
	case <-timer.C:
		// Returning ends the stream, which ends the Recv above.
		return nil, status.Errorf(codes.DeadlineExceeded, "no request within %s of the challenge", reissueTimeout)
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// reissue checks a request against the challenge nonce and, if it holds,
// issues the certificate. Every refusal of a certificate is logged.
func (s *Service) reissue(ctx context.Context, nonce []byte, req *ospreyv1.ReissueRequest) (*ospreyv1.ReissuedCertificate, error) {
	oldDER := req.GetCertificate()
	if len(oldDER) == 0 || len(oldDER) > maxCertificateSize {
		return nil, status.Errorf(codes.InvalidArgument, "certificate: want a DER certificate of at most %d bytes", maxCertificateSize)
	}
	old, err := x509.ParseCertificate(oldDER)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "certificate: %v", err)
	}
	out, id, err := s.reissueFor(ctx, nonce, old, req)
	if err != nil {
		// What the certificate claims, when TLS would not vouch for it: it
		// may be someone trying a stolen or forged one. No secrets: the
		// request has none (a signature over a one-time challenge).
		claimed, _ := pki.IdentityFromCert(old)
		s.log.Warn("refused to reissue a sensor certificate", "sensor", claimed.SensorID, "tenant", claimed.Tenant,
			"old_sha256", pki.Fingerprint(oldDER), "code", status.Code(err).String(), "err", err)
		return nil, err
	}
	s.log.Info("reissued a sensor certificate", "sensor", id.SensorID, "tenant", id.Tenant,
		"old_sha256", pki.Fingerprint(oldDER), "old_not_after", old.NotAfter,
		"sha256", out.GetFingerprint(), "software", req.GetSoftwareVersion())
	return out, nil
}

// reissueFor decides on a request for a new certificate by the holder of
// old. The checks that need no store come first, so that someone who does
// not hold a sensor's key learns nothing of its record.
func (s *Service) reissueFor(ctx context.Context, nonce []byte, old *x509.Certificate, req *ospreyv1.ReissueRequest) (*ospreyv1.ReissuedCertificate, pki.Identity, error) {
	id, err := s.ca.VerifyIssuedClient(old)
	if err != nil {
		return nil, id, status.Errorf(codes.Unauthenticated, "certificate: not a sensor certificate of this cluster: %v", err)
	}
	if err := pki.VerifyReissueProof(old, nonce, req.GetCsr(), req.GetSignature()); err != nil {
		return nil, id, status.Errorf(codes.Unauthenticated, "signature: %v", err)
	}
	csr, err := parseCSR(req.GetCsr())
	if err != nil {
		return nil, id, err
	}
	// Refuse before a key is claimed what the record refuses now; supersede
	// decides again at the write.
	allow := func(sn *ospreyv1.Sensor) error { return usable(sn, id, true) }
	sn, err := s.sensor(ctx, id)
	if err == nil {
		err = allow(sn)
	}
	if err == nil && !current(sn, old) {
		err = superseded(id)
	}
	if err != nil {
		return nil, id, err
	}
	if err := s.claimKey(ctx, csr, id.SensorID); err != nil {
		return nil, id, err
	}
	cert, err := s.sign(req.GetCsr(), id)
	if err != nil {
		return nil, id, err
	}
	if err := s.supersede(ctx, id, old, cert, allow); err != nil {
		return nil, id, err
	}
	return &ospreyv1.ReissuedCertificate{Certificate: cert.Raw, Fingerprint: pki.Fingerprint(cert.Raw)}, id, nil
}
