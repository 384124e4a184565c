package sensorsvc

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Lifetimes of the sensors' client certificates: the defaults and bounds of
// CertLifetime's fields.
const (
	// DefaultCertValidity is how long a client certificate lives.
	DefaultCertValidity = 24 * time.Hour
	// MinCertValidity and MaxCertValidity bound it. Every renewal claims a
	// key in etcd for good, so an hour is as short as it goes; a sensor
	// that is lost is cut off by revocation, not by its certificate's
	// expiry, so a year is long enough.
	MinCertValidity = time.Hour
	MaxCertValidity = 365 * 24 * time.Hour
	// DefaultCertRenewFrom and DefaultCertRenewUntil are when, in percent
	// of its lifetime, a sensor renews its certificate: each certificate at
	// its own point of that window.
	DefaultCertRenewFrom  = 60
	DefaultCertRenewUntil = 75
	// MinCertRenewPercent and MaxCertRenewPercent bound the window: a
	// renewal earlier than a tenth of the lifetime is churn, and one later
	// than nine tenths leaves no time to try again.
	MinCertRenewPercent = 10
	MaxCertRenewPercent = 90
)

// CertLifetime is how long the sensors' client certificates live, and
// when, in percent of that lifetime, sensors renew them: each certificate
// at its own point of the window from RenewFrom to RenewUntil. Zero fields
// take the defaults (DefaultCertValidity, DefaultCertRenewFrom,
// DefaultCertRenewUntil).
type CertLifetime struct {
	Validity              time.Duration
	RenewFrom, RenewUntil int
}

// Validate reports every problem of the certificate lifetimes in o, by
// the Central Node's flags that set them (--sensor-cert-validity,
// --sensor-cert-renew-from, --sensor-cert-renew-until).
func (o CertLifetime) Validate() error {
	var errs []error
	switch v := o.Validity; {
	case v == 0:
	case v < MinCertValidity:
		errs = append(errs, fmt.Errorf("--sensor-cert-validity: %v is too short: at least %v", v, MinCertValidity))
	case v > MaxCertValidity:
		errs = append(errs, fmt.Errorf("--sensor-cert-validity: %v is too long: at most %v (365 days)", v, MaxCertValidity))
	}
	inRange := true
	for _, p := range []struct {
		flag    string
		percent int
	}{{"--sensor-cert-renew-from", o.RenewFrom}, {"--sensor-cert-renew-until", o.RenewUntil}} {
		if p.percent != 0 && (p.percent < MinCertRenewPercent || p.percent > MaxCertRenewPercent) {
			errs = append(errs, fmt.Errorf("%s: %d: want %d to %d (percent of a certificate's lifetime)", p.flag, p.percent, MinCertRenewPercent, MaxCertRenewPercent))
			inRange = false
		}
	}
	if from, until := o.renewWindow(); inRange && from > until {
		errs = append(errs, fmt.Errorf("--sensor-cert-renew-from %d is after --sensor-cert-renew-until %d: the renewal window would close before it opens", from, until))
	}
	return errors.Join(errs...)
}

// renewWindow is the renewal window of o, defaults filled in.
func (o CertLifetime) renewWindow() (from, until int) {
	from, until = o.RenewFrom, o.RenewUntil
	if from == 0 {
		from = DefaultCertRenewFrom
	}
	if until == 0 {
		until = DefaultCertRenewUntil
	}
	return from, until
}

// certificatePolicy is what a sensor that asks for it is told first on its
// stream.
func (s *Service) certificatePolicy() *ospreyv1.ConnectResponse {
	return &ospreyv1.ConnectResponse{Msg: &ospreyv1.ConnectResponse_CertificatePolicy{CertificatePolicy: &ospreyv1.CertificatePolicy{
		RenewFromPercent:  uint32(s.renewFrom),
		RenewUntilPercent: uint32(s.renewUntil),
	}}}
}

// current reports whether cert, a certificate the cluster issued the
// sensor of sn, may still hold a stream and get a new one: it is the latest
// the cluster issued the sensor, or the one before while the sensor has not
// been seen with the latest, or one issued after the latest the record
// knows (the record was restored from an older backup).
func current(sn *ospreyv1.Sensor, cert *x509.Certificate) bool {
	fp := pki.Fingerprint(cert.Raw)
	return fp == sn.GetCertFingerprint() || fp == sn.GetPreviousCertFingerprint() || newer(sn, cert)
}

// newer reports whether cert was issued after the latest certificate sn
// names, or sn names none (a record made outside enrollment, or restored
// from before the sensor enrolled): every certificate is recorded as it is
// issued, so only a record older than the certificate can be behind it. A
// record that names a certificate but not its start of validity (written
// by an older version) is behind nothing.
func newer(sn *ospreyv1.Sensor, cert *x509.Certificate) bool {
	if sn.GetCertFingerprint() == "" {
		return true
	}
	return sn.GetCertNotBefore() != nil && cert.NotBefore.After(sn.GetCertNotBefore().AsTime())
}

// unknownSensor is the refusal of a sensor that has no record (it was
// deleted, or never enrolled here).
func unknownSensor(id pki.Identity) error {
	return status.Errorf(codes.PermissionDenied, "sensor %s is not known to this cluster", id.SensorID)
}

// superseded is the refusal of a certificate that is not current.
func superseded(id pki.Identity) error {
	return status.Errorf(codes.PermissionDenied,
		"sensor %s: this certificate was superseded by a newer one the cluster issued the sensor; only the newest is accepted", id.SensorID)
}

// usable checks that the sensor of sn may get a new certificate: not
// revoked, and approved when approved is set.
func usable(sn *ospreyv1.Sensor, id pki.Identity, approved bool) error {
	switch sn.GetState() {
	case ospreyv1.SensorState_SENSOR_STATE_REVOKED:
		return status.Errorf(codes.PermissionDenied, "sensor %s is revoked", id.SensorID)
	case ospreyv1.SensorState_SENSOR_STATE_APPROVED:
		return nil
	}
	if approved {
		return status.Errorf(codes.FailedPrecondition, "sensor %s is not approved: an administrator must approve it before it gets a new certificate", id.SensorID)
	}
	return nil
}

// renew signs a new client certificate for a fresh key of the sensor of a
// stream, which holds the certificate held: the one the stream was opened
// with, or the last one renewed on it. It returns the new certificate.
func (s *Service) renew(ctx context.Context, id pki.Identity, held *x509.Certificate, csrDER []byte) (*x509.Certificate, error) {
	csr, err := parseCSR(csrDER)
	if err != nil {
		return nil, err
	}
	// The key first: a replayed request is refused as such (AlreadyExists).
	if err := s.claimKey(ctx, csr, id.SensorID); err != nil {
		return nil, err
	}
	cert, err := s.sign(csrDER, id)
	if err != nil {
		return nil, err
	}
	err = s.supersede(ctx, id, held, cert, func(sn *ospreyv1.Sensor) error { return usable(sn, id, false) })
	if err != nil {
		return nil, err
	}
	s.log.Info("renewed a sensor certificate", "sensor", id.SensorID, "tenant", id.Tenant,
		"old_sha256", pki.Fingerprint(held.Raw), "sha256", pki.Fingerprint(cert.Raw), "not_after", cert.NotAfter)
	return cert, nil
}

// sign issues a client certificate to id for the key of csrDER.
func (s *Service) sign(csrDER []byte, id pki.Identity) (*x509.Certificate, error) {
	der, err := s.ca.SignClient(csrDER, id, s.validity, s.now())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "sign: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "parse the certificate just signed: %v", err)
	}
	return cert, nil
}

// supersede records cert as the sensor's newest certificate, issued to the
// holder of the certificate held, which stays current until the sensor is
// seen with the new one ([Service.confirmCert]). It decides on the record as
// it is at the write: a revocation (allow refuses) or another certificate
// recorded in between (held no longer current) wins, and cert is never
// delivered.
func (s *Service) supersede(ctx context.Context, id pki.Identity, held, cert *x509.Certificate, allow func(*ospreyv1.Sensor) error) error {
	return s.updateSensor(ctx, id, func(sn *ospreyv1.Sensor) (bool, error) {
		if err := allow(sn); err != nil {
			return false, err
		}
		if !current(sn, held) {
			return false, superseded(id)
		}
		setLatest(sn, cert)
		sn.PreviousCertFingerprint = pki.Fingerprint(held.Raw)
		return true, nil
	})
}

// setLatest makes cert the latest certificate sn names, and the only
// current one.
func setLatest(sn *ospreyv1.Sensor, cert *x509.Certificate) {
	sn.CertFingerprint = pki.Fingerprint(cert.Raw)
	sn.CertNotBefore = timestamppb.New(cert.NotBefore)
	sn.PreviousCertFingerprint = ""
}

// recordEnrolled records cert as the certificate of a sensor enrolled into
// an existing record: the only current one.
func (s *Service) recordEnrolled(ctx context.Context, id pki.Identity, cert *x509.Certificate) error {
	return s.updateSensor(ctx, id, func(sn *ospreyv1.Sensor) (bool, error) {
		setLatest(sn, cert)
		return true, nil
	})
}

// confirmCert records that the sensor was seen holding cert, a current
// certificate of its: when it is the latest, the one before stops being
// current (and a record of an older version learns its start of validity);
// when it is newer than the latest the record names (the record was
// restored from an older backup), it becomes the latest.
func (s *Service) confirmCert(ctx context.Context, id pki.Identity, cert *x509.Certificate) error {
	fp := pki.Fingerprint(cert.Raw)
	return s.updateSensor(ctx, id, func(sn *ospreyv1.Sensor) (bool, error) {
		switch {
		case fp == sn.GetCertFingerprint():
			if settled(sn, cert) {
				return false, nil
			}
			setLatest(sn, cert)
		case sn.GetCertFingerprint() == "":
			return false, nil // see settled
		case newer(sn, cert):
			s.log.Warn("a sensor holds a certificate newer than the newest its record names (was the record restored from a backup?); taking it as the newest",
				"sensor", id.SensorID, "tenant", id.Tenant, "sha256", fp, "recorded_sha256", sn.GetCertFingerprint())
			setLatest(sn, cert)
		default:
			return false, nil
		}
		return true, nil
	})
}

// settled reports whether the record sn needs no confirmCert for cert: it
// names cert as the latest (with its start of validity) and nothing before
// it, or cert is the one before (the sensor has not got the newer one), or
// it names no certificate at all. Such a record is left so until the
// sensor's next certificate, so that a fleet of records made outside
// enrollment (a load test's simulated sensors) connects without a write
// each.
func settled(sn *ospreyv1.Sensor, cert *x509.Certificate) bool {
	fp := pki.Fingerprint(cert.Raw)
	switch sn.GetCertFingerprint() {
	case "":
		return true
	case fp:
		return sn.GetPreviousCertFingerprint() == "" && sn.GetCertNotBefore() != nil
	}
	return fp == sn.GetPreviousCertFingerprint()
}

// updateSensor changes the record of the sensor of id with change, which
// reports whether it changed anything, and writes it back if the record is
// still the one read; it starts again when another write came in between.
// A sensor that no longer exists is PermissionDenied.
func (s *Service) updateSensor(ctx context.Context, id pki.Identity, change func(*ospreyv1.Sensor) (bool, error)) error {
	scope := store.TenantScope(id.Tenant)
	for attempt := 0; ; attempt++ {
		sn, version, err := s.store.GetSensor(ctx, scope, id.SensorID)
		if err == nil {
			var changed bool
			if changed, err = change(sn); err != nil || !changed {
				return err
			}
			_, err = s.store.UpdateSensor(ctx, scope, sn, version)
		}
		switch {
		case errors.Is(err, store.ErrConflict) && attempt < 5:
			continue
		case errors.Is(err, store.ErrNotFound):
			return unknownSensor(id)
		}
		return toStatus(err)
	}
}
