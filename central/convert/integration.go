package convert

import (
	"slices"

	"github.com/ospreysec/osprey/api"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// SMTPToProto converts an SMTP integration from a write. The only error is validate.Errors,
// for unknown enum names; the message is returned with it, filled with everything that did
// convert, so a caller can validate the rest and report every problem at once. KeySet is
// ignored; an empty KeyPEM keeps the stored key (store.PutSMTP). Parts of the gateway
// that hold nothing are left out (nil), so that a read written back is the same
// configuration, byte for byte.
func SMTPToProto(in *api.SMTPIntegration) (*ospreyv1.SmtpIntegration, error) {
	if in == nil {
		return &ospreyv1.SmtpIntegration{}, nil
	}
	var errs fieldErrors
	out := &ospreyv1.SmtpIntegration{
		Enabled:            in.Enabled,
		Listen:             in.Listen,
		DestinationDomains: slices.Clone(in.DestinationDomains),
		Clients:            slices.Clone(in.Clients),
	}
	out.MaxMessageSize = sizeLimitToProto(&errs, "max_message_size.unit", in.MaxMessageSize)
	out.Tls = smtpTLSToProto(&errs, "tls.", in.TLS)
	if l := in.Limits; l != nil {
		out.Limits = &ospreyv1.SmtpLimits{
			MaxRecipients:           l.MaxRecipients,
			MaxConnections:          l.MaxConnections,
			MaxConnectionsPerClient: l.MaxConnectionsPerClient,
			CommandTimeoutSeconds:   l.CommandTimeoutSeconds,
			DataTimeoutSeconds:      l.DataTimeoutSeconds,
			SessionTimeoutSeconds:   l.SessionTimeoutSeconds,
			MaxErrors:               l.MaxErrors,
		}
	}
	mode, err := SMTPModeToProto(in.Mode)
	errs.check("mode", err)
	out.Mode = mode
	out.Gateway = gatewayToProto(&errs, in.Gateway)
	if err := errs.err(); err != nil {
		return out, err
	}
	return out, nil
}

// smtpTLSToProto converts the TLS part of a listener (at field prefix, "tls.").
func smtpTLSToProto(errs *fieldErrors, prefix string, t *api.SMTPTLS) *ospreyv1.SmtpTls {
	if t == nil {
		return nil
	}
	mode, err := TLSModeToProto(t.Mode)
	errs.check(prefix+"mode", err)
	cc, err := ClientCertModeToProto(t.ClientCert)
	errs.check(prefix+"client_cert", err)
	return &ospreyv1.SmtpTls{
		Mode:        mode,
		CertPem:     t.CertPEM,
		KeyPem:      t.KeyPEM,
		ClientCert:  cc,
		ClientCaPem: t.ClientCAPEM,
	}
}

// smtpTLSFromProto converts the TLS part of a listener for a read: KeySet, never the key.
func smtpTLSFromProto(t *ospreyv1.SmtpTls) *api.SMTPTLS {
	if t == nil {
		return nil
	}
	return &api.SMTPTLS{
		Mode:        TLSModeFromProto(t.GetMode()),
		CertPEM:     t.GetCertPem(),
		KeySet:      t.GetKeyPem() != "",
		ClientCert:  ClientCertModeFromProto(t.GetClientCert()),
		ClientCAPEM: t.GetClientCaPem(),
	}
}

// SMTPFromProto converts an SMTP integration for a read. No private key is copied:
// KeySet says whether there is one. Lists are never nil, so they read as [] rather than
// null, and the mode and the gateway are always there (an integration written before
// they existed reads as monitor, with an empty gateway).
func SMTPFromProto(p *ospreyv1.SmtpIntegration) *api.SMTPIntegration {
	out := &api.SMTPIntegration{
		Enabled:            p.GetEnabled(),
		Listen:             p.GetListen(),
		DestinationDomains: cloneNonNil(p.GetDestinationDomains()),
		Clients:            cloneNonNil(p.GetClients()),
	}
	if m := p.GetMaxMessageSize(); m != nil {
		out.MaxMessageSize = sizeLimitFromProto(m)
	}
	out.TLS = smtpTLSFromProto(p.GetTls())
	out.Mode = SMTPModeFromProto(p.GetMode())
	out.Gateway = gatewayFromProto(p.GetGateway())
	if l := p.GetLimits(); l != nil {
		out.Limits = &api.SMTPLimits{
			MaxRecipients:           l.GetMaxRecipients(),
			MaxConnections:          l.GetMaxConnections(),
			MaxConnectionsPerClient: l.GetMaxConnectionsPerClient(),
			CommandTimeoutSeconds:   l.GetCommandTimeoutSeconds(),
			DataTimeoutSeconds:      l.GetDataTimeoutSeconds(),
			SessionTimeoutSeconds:   l.GetSessionTimeoutSeconds(),
			MaxErrors:               l.GetMaxErrors(),
		}
	}
	return out
}

// POP3ToProto converts a POP3 integration from a write. The only error is validate.Errors,
// for unknown enum names, returned with the message as SMTPToProto does. PasswordSet is
// ignored; an empty Password keeps the stored one (store.PutPOP3).
func POP3ToProto(in *api.POP3Integration) (*ospreyv1.Pop3Integration, error) {
	if in == nil {
		return &ospreyv1.Pop3Integration{}, nil
	}
	var errs fieldErrors
	mode, err := POP3TLSModeToProto(in.TLSMode)
	errs.check("tls_mode", err)
	policy, err := TLSCertificatePolicyToProto(in.TLSCertificate)
	errs.check("tls_certificate", err)
	return &ospreyv1.Pop3Integration{
		Enabled:         in.Enabled,
		Server:          in.Server,
		Port:            in.Port,
		IntervalSeconds: in.IntervalSeconds,
		Tls:             in.TLS,
		TlsMode:         mode,
		Username:        in.Username,
		Password:        in.Password,
		TlsCertificate:  policy,
		CipherSuite:     in.CipherSuite,
		CaPem:           in.CAPEM,
	}, errs.err()
}

// POP3FromProto converts a POP3 integration for a read. The password is not copied:
// PasswordSet says whether there is one.
func POP3FromProto(p *ospreyv1.Pop3Integration) *api.POP3Integration {
	return &api.POP3Integration{
		Enabled:         p.GetEnabled(),
		Server:          p.GetServer(),
		Port:            p.GetPort(),
		IntervalSeconds: p.GetIntervalSeconds(),
		TLS:             p.GetTls(),
		TLSMode:         POP3TLSModeFromProto(p.GetTlsMode()),
		Username:        p.GetUsername(),
		PasswordSet:     p.GetPassword() != "",
		TLSCertificate:  TLSCertificatePolicyFromProto(p.GetTlsCertificate()),
		CipherSuite:     p.GetCipherSuite(),
		CAPEM:           p.GetCaPem(),
	}
}

// cloneNonNil returns a copy of s that is not nil, so it marshals as [] rather than null.
func cloneNonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}

// sizeLimitToProto converts a size limit from a write (nil stays nil),
// recording an unknown unit under field.
func sizeLimitToProto(errs *fieldErrors, field string, m *api.SizeLimit) *ospreyv1.SizeLimit {
	if m == nil {
		return nil
	}
	unit, err := SizeUnitToProto(m.Unit)
	errs.check(field, err)
	return &ospreyv1.SizeLimit{Unlimited: m.Unlimited, Value: m.Value, Unit: unit}
}

func sizeLimitFromProto(m *ospreyv1.SizeLimit) *api.SizeLimit {
	return &api.SizeLimit{Unlimited: m.GetUnlimited(), Value: m.GetValue(), Unit: SizeUnitFromProto(m.GetUnit())}
}
