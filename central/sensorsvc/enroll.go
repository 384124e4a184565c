package sensorsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/jointoken"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// errBadToken is the one answer to every token problem, so that a caller
// cannot tell an unknown id from a wrong secret.
var errBadToken = status.Error(codes.Unauthenticated, "invalid join token")

// Enroll exchanges a join token and a CSR for a client certificate. The
// certificate's identity (tenant, sensor id) is assigned here, never taken
// from the CSR; the sensor is pending until an administrator approves it
// (unless the token was bound to a sensor record made beforehand).
func (s *Service) Enroll(ctx context.Context, req *ospreyv1.EnrollRequest) (*ospreyv1.EnrollResponse, error) {
	name := strings.TrimSpace(req.GetName())
	if name == "" || len(name) > 64 || strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return nil, status.Error(codes.InvalidArgument, "name: 1 to 64 printable characters")
	}
	all := store.AllTenants()
	tok, _, err := s.store.GetToken(ctx, all, req.GetTokenId())
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrInvalidID) {
		return nil, errBadToken
	}
	if err != nil {
		return nil, toStatus(err)
	}
	if tok.GetKind() != ospreyv1.TokenKind_TOKEN_KIND_JOIN || !jointoken.Verify(req.GetTokenSecret(), tok.GetSecretHash()) {
		return nil, errBadToken
	}
	csr, err := parseCSR(req.GetCsr())
	if err != nil {
		return nil, err
	}
	sensorID := tok.GetSensorId()
	if sensorID == "" {
		if sensorID, err = newSensorID(); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	if err := s.claimKey(ctx, csr, sensorID); err != nil {
		return nil, err
	}
	tok, err = s.store.ConsumeJoinToken(ctx, all, tok.GetId(), s.now())
	if err != nil {
		return nil, toStatus(err)
	}
	id := pki.Identity{Tenant: tok.GetTenant(), SensorID: sensorID}
	cert, err := s.sign(req.GetCsr(), id)
	if err != nil {
		return nil, err
	}
	fp := pki.Fingerprint(cert.Raw)
	state := ospreyv1.SensorState_SENSOR_STATE_PENDING
	if tok.GetSensorId() != "" {
		// A token bound to a sensor record: enroll into it, keeping its state.
		if err := s.recordEnrolled(ctx, id, cert); err != nil {
			return nil, err
		}
		sn, _, err := s.store.GetSensor(ctx, store.TenantScope(id.Tenant), sensorID)
		if err != nil {
			return nil, toStatus(err)
		}
		state = sn.GetState()
	} else {
		_, err = s.store.CreateSensor(ctx, store.TenantScope(id.Tenant), &ospreyv1.Sensor{
			Id: sensorID, Tenant: id.Tenant, Name: name, State: state, CreatedAt: timestamppb.New(s.now()),
			CertFingerprint: fp, CertNotBefore: timestamppb.New(cert.NotBefore),
		})
		if err != nil {
			return nil, toStatus(err)
		}
	}
	s.log.Info("sensor enrolled", "sensor", sensorID, "tenant", id.Tenant, "name", name, "state", state, "sha256", fp)
	return &ospreyv1.EnrollResponse{
		SensorId:      sensorID,
		Tenant:        id.Tenant,
		Certificate:   cert.Raw,
		CaCertificate: s.ca.Cert.Raw,
		Fingerprint:   fp,
		State:         state,
	}, nil
}

// newSensorID makes a sensor id: "s-" and 12 random hex digits.
func newSensorID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "s-" + hex.EncodeToString(b), nil
}
