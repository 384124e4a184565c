package convert

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/ospreysec/osprey/api"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// gatewayToProto converts the gateway part of an SMTP integration from a write,
// recording unknown enum names in errs under "gateway.". A part that holds nothing
// (an empty listener, queue or gateway) is nil, as it reads.
func gatewayToProto(errs *fieldErrors, in *api.SMTPGateway) *ospreyv1.SmtpGateway {
	if in == nil {
		return nil
	}
	onTimeout, err := HoldTimeoutActionToProto(in.OnTimeout)
	errs.check("gateway.on_timeout", err)
	inboundAcceptance, err := AcceptanceModeToProto(in.InboundAcceptance)
	errs.check("gateway.inbound_acceptance", err)
	out := &ospreyv1.SmtpGateway{
		Inbound:            listenerToProto(errs, "gateway.inbound.", in.Inbound),
		Outbound:           listenerToProto(errs, "gateway.outbound.", in.Outbound),
		InboundAcceptance:  inboundAcceptance,
		RelayHosts:         nextHopsToProto(in.RelayHosts),
		RequireTlsDomains:  slices.Clone(in.RequireTLSDomains),
		HeloName:           in.HeloName,
		HoldTimeoutSeconds: in.HoldTimeoutSeconds,
		OnTimeout:          onTimeout,
	}
	// Kept, for validate to refuse with a word on where the list lives now.
	//lint:ignore SA1019 see above
	out.TrustedNetworks = slices.Clone(in.TrustedNetworks)
	for _, d := range in.LocalDomains {
		out.LocalDomains = append(out.LocalDomains, &ospreyv1.LocalDomain{
			Domain: d.Domain, Hosts: nextHopsToProto(d.Hosts), RequireTls: d.RequireTLS,
		})
	}
	if q := in.Queue; q != nil {
		out.Queue = nilIfEmpty(&ospreyv1.DeliveryQueueSettings{
			MinBackoffSeconds:      q.MinBackoffSeconds,
			MaxBackoffSeconds:      q.MaxBackoffSeconds,
			MaxLifetimeSeconds:     q.MaxLifetimeSeconds,
			DelayWarningSeconds:    q.DelayWarningSeconds,
			DestinationConcurrency: q.DestinationConcurrency,
			Concurrency:            q.Concurrency,
		})
	}
	if q := in.Quarantine; q != nil {
		out.Quarantine = nilIfEmpty(&ospreyv1.QuarantineSettings{
			MaxMessages: q.MaxMessages,
			MaxSize:     sizeLimitToProto(errs, "gateway.quarantine.max_size.unit", q.MaxSize),
		})
	}
	out.SenderAuth = senderAuthToProto(errs, in.SenderAuth)
	out.Submission = submissionToProto(errs, in.Submission)
	out.RecipientVerification = recipientVerificationToProto(in.RecipientVerification)
	out.RateLimits = rateLimitsToProto(in.RateLimits)
	return nilIfEmpty(out)
}

func senderAuthToProto(errs *fieldErrors, in *api.SenderAuthSettings) *ospreyv1.SenderAuthSettings {
	if in == nil {
		return nil
	}
	temp, err := AuthErrorTreatmentToProto(in.DMARCTempError)
	errs.check("gateway.sender_auth.dmarc_temperror", err)
	perm, err := AuthErrorTreatmentToProto(in.DMARCPermError)
	errs.check("gateway.sender_auth.dmarc_permerror", err)
	return nilIfEmpty(&ospreyv1.SenderAuthSettings{
		Enabled: in.Enabled, AuthservId: in.AuthservID, DmarcTemperror: temp, DmarcPermerror: perm,
		LookupTimeoutMs: in.LookupTimeoutMs, CheckTimeoutMs: in.CheckTimeoutMs,
	})
}

func senderAuthFromProto(s *ospreyv1.SenderAuthSettings) *api.SenderAuthSettings {
	return &api.SenderAuthSettings{
		Enabled: s.GetEnabled(), AuthservID: s.GetAuthservId(),
		DMARCTempError:  AuthErrorTreatmentFromProto(s.GetDmarcTemperror()),
		DMARCPermError:  AuthErrorTreatmentFromProto(s.GetDmarcPermerror()),
		LookupTimeoutMs: s.GetLookupTimeoutMs(), CheckTimeoutMs: s.GetCheckTimeoutMs(),
	}
}

func listenerToProto(errs *fieldErrors, prefix string, in *api.GatewayListener) *ospreyv1.GatewayListener {
	if in == nil {
		return nil
	}
	return nilIfEmpty(&ospreyv1.GatewayListener{
		Listen:   in.Listen,
		ListenV6: in.ListenV6,
		Tls:      smtpTLSToProto(errs, prefix+"tls.", in.TLS),
	})
}

func nextHopsToProto(in []api.NextHop) []*ospreyv1.NextHop {
	var out []*ospreyv1.NextHop
	for _, h := range in {
		out = append(out, &ospreyv1.NextHop{Host: h.Host, Port: h.Port, MxLookup: h.MXLookup, Preference: h.Preference})
	}
	return out
}

// nilIfEmpty returns nil for a message that holds nothing, so that it is left out
// of the stored configuration as a part never written is.
func nilIfEmpty[M proto.Message](m M) M {
	var zero M
	if proto.Size(m) == 0 {
		return zero
	}
	return m
}

// gatewayFromProto converts the gateway part of an SMTP integration for a read.
// Nothing is nil: both listeners, the queue, sender_auth, recipient_verification,
// rate_limits and submission are there, lists are [], and the
// listeners' private keys become key_set.
func gatewayFromProto(g *ospreyv1.SmtpGateway) *api.SMTPGateway {
	q := g.GetQueue()
	out := &api.SMTPGateway{
		Inbound:            listenerFromProto(g.GetInbound()),
		Outbound:           listenerFromProto(g.GetOutbound()),
		LocalDomains:       make([]api.LocalDomain, 0, len(g.GetLocalDomains())),
		InboundAcceptance:  AcceptanceModeFromProto(g.GetInboundAcceptance()),
		RelayHosts:         nextHopsFromProto(g.GetRelayHosts()),
		RequireTLSDomains:  cloneNonNil(g.GetRequireTlsDomains()),
		HeloName:           g.GetHeloName(),
		HoldTimeoutSeconds: g.GetHoldTimeoutSeconds(),
		OnTimeout:          HoldTimeoutActionFromProto(g.GetOnTimeout()),
		Queue: &api.DeliveryQueueSettings{
			MinBackoffSeconds:      q.GetMinBackoffSeconds(),
			MaxBackoffSeconds:      q.GetMaxBackoffSeconds(),
			MaxLifetimeSeconds:     q.GetMaxLifetimeSeconds(),
			DelayWarningSeconds:    q.GetDelayWarningSeconds(),
			DestinationConcurrency: q.GetDestinationConcurrency(),
			Concurrency:            q.GetConcurrency(),
		},
		Quarantine:            &api.QuarantineSettings{MaxMessages: g.GetQuarantine().GetMaxMessages()},
		SenderAuth:            senderAuthFromProto(g.GetSenderAuth()),
		RecipientVerification: recipientVerificationFromProto(g.GetRecipientVerification()),
		RateLimits:            rateLimitsFromProto(g.GetRateLimits()),
		Submission:            submissionFromProto(g.GetSubmission()),
	}
	if m := g.GetQuarantine().GetMaxSize(); m != nil {
		out.Quarantine.MaxSize = sizeLimitFromProto(m)
	}
	// Shown while no node has moved them into the outbound acceptance list.
	//lint:ignore SA1019 see above
	out.TrustedNetworks = slices.Clone(g.GetTrustedNetworks())
	for _, d := range g.GetLocalDomains() {
		out.LocalDomains = append(out.LocalDomains, api.LocalDomain{
			Domain: d.GetDomain(), Hosts: nextHopsFromProto(d.GetHosts()), RequireTLS: d.GetRequireTls(),
		})
	}
	return out
}

func listenerFromProto(l *ospreyv1.GatewayListener) *api.GatewayListener {
	return &api.GatewayListener{Listen: l.GetListen(), ListenV6: l.GetListenV6(), TLS: smtpTLSFromProto(l.GetTls())}
}

func nextHopsFromProto(hops []*ospreyv1.NextHop) []api.NextHop {
	out := make([]api.NextHop, 0, len(hops))
	for _, h := range hops {
		out = append(out, api.NextHop{Host: h.GetHost(), Port: h.GetPort(), MXLookup: h.GetMxLookup(), Preference: h.GetPreference()})
	}
	return out
}
