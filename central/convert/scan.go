package convert

// Conversions of the scanning model: rules, alerts, message records, the
// syslog export.

import (
	"slices"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/sqlstore"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

var (
	severities = enum[ospreyv1.Severity, api.Severity]{
		what: "severity", fold: true,
		names: []api.Severity{"", api.SeverityLow, api.SeverityMedium, api.SeverityHigh, api.SeverityCritical},
	}
	ruleKinds = enum[ospreyv1.RuleKind, api.RuleKind]{
		what: "rule kind", fold: true,
		names: []api.RuleKind{"", api.RuleSHA256, api.RuleSHA1, api.RuleMD5, api.RuleSender,
			api.RuleSenderDomain, api.RuleURL, api.RuleURLHost, api.RuleAttachmentName, api.RuleAttachmentExtension, api.RuleAuthResult},
	}
	mailSources = enum[ospreyv1.MailSource, api.MailSource]{
		what:  "mail source",
		names: []api.MailSource{"", api.SourceSMTP, api.SourcePOP3},
	}
)

// Severities lists the severities' API names, lowest first.
func Severities() []api.Severity { return slices.Clone(severities.names[1:]) }

// SeverityFromProto returns the API name of a severity ("low" ... "critical").
func SeverityFromProto(s ospreyv1.Severity) api.Severity { return severities.toAPI(s) }

// SeverityToProto returns the severity named s, in any case; "" is UNSPECIFIED.
func SeverityToProto(s api.Severity) (ospreyv1.Severity, error) { return severities.toProto(s) }

// RuleKindFromProto returns the API name of a rule kind ("sha256", "url_host", ...).
func RuleKindFromProto(k ospreyv1.RuleKind) api.RuleKind { return ruleKinds.toAPI(k) }

// RuleKindToProto returns the rule kind named k, in any case; "" is UNSPECIFIED.
func RuleKindToProto(k api.RuleKind) (ospreyv1.RuleKind, error) { return ruleKinds.toProto(k) }

// RuleToProto converts a rule from a write. Tenant, CreatedAt and Version
// are the server's and are not copied.
func RuleToProto(in *api.Rule) (*ospreyv1.Rule, error) {
	var fe fieldErrors
	kind, err := ruleKinds.toProto(in.Kind)
	fe.check("kind", err)
	sev, err := severities.toProto(in.Severity)
	fe.check("severity", err)
	action, err := verdictActions.toProto(in.Action)
	fe.check("action", err)
	return &ospreyv1.Rule{
		Id: in.ID, Kind: kind, Value: in.Value, Severity: sev,
		Description: in.Description, Disabled: in.Disabled, Action: action,
	}, fe.err()
}

// RuleFromProto converts a stored rule for a read.
func RuleFromProto(p *ospreyv1.Rule) api.Rule {
	return api.Rule{
		ID:          p.GetId(),
		Tenant:      p.GetTenant(),
		Kind:        ruleKinds.toAPI(p.GetKind()),
		Value:       p.GetValue(),
		Severity:    severities.toAPI(p.GetSeverity()),
		Description: p.GetDescription(),
		Disabled:    p.GetDisabled(),
		Action:      verdictActions.toAPI(p.GetAction()),
		CreatedAt:   timeFromProto(p.GetCreatedAt()),
		Version:     p.GetVersion(),
		Global:      p.GetGlobal(),
		Origin:      p.GetOrigin(),
	}
}

func envelopeFromProto(p *ospreyv1.Envelope) *api.Envelope {
	if p == nil {
		return nil
	}
	return &api.Envelope{
		MailFrom:   p.GetMailFrom(),
		RcptTo:     cloneNonNil(p.GetRcptTo()),
		ClientAddr: p.GetClientAddr(),
		Helo:       p.GetHelo(),
		TLS:        p.GetTls(),
		ReceivedAt: timeFromProto(p.GetReceivedAt()),
		Mailbox:    p.GetMailbox(),
		TLSVersion: p.GetTlsVersion(),
		TLSCipher:  p.GetTlsCipher(),
		Auth:       authResultsFromProto(p.GetAuth()),
		AuthUser:   p.GetAuthUser(),
	}
}

func authResultsFromProto(a *ospreyv1.AuthResults) *api.AuthResults {
	if a == nil {
		return nil
	}
	out := &api.AuthResults{SPF: a.GetSpf(), SPFDomain: a.GetSpfDomain(), DMARC: a.GetDmarc(),
		DMARCPolicy: a.GetDmarcPolicy(), FromDomain: a.GetFromDomain()}
	for _, d := range a.GetDkim() {
		out.DKIM = append(out.DKIM, api.DKIMResult{Result: d.GetResult(), Domain: d.GetDomain(), Selector: d.GetSelector()})
	}
	return out
}

// AlertFromProto converts a stored alert for a read.
func AlertFromProto(p *ospreyv1.Alert) api.Alert {
	out := api.Alert{
		ID:          p.GetId(),
		Tenant:      p.GetTenant(),
		SensorID:    p.GetSensorId(),
		MessageID:   p.GetMessageId(),
		ServerID:    p.GetServerId(),
		Source:      mailSources.toAPI(p.GetSource()),
		Envelope:    envelopeFromProto(p.GetEnvelope()),
		Severity:    severities.toAPI(p.GetSeverity()),
		Matches:     make([]api.Match, 0, len(p.GetMatches())),
		Attachments: make([]api.Attachment, 0, len(p.GetAttachments())),
		CreatedAt:   timeFromProto(p.GetCreatedAt()),
		Node:        p.GetNode(),
		Verdict:     p.GetVerdict(),
		Size:        p.GetSize(),
		SHA256:      p.GetSha256(),
	}
	out.Headers = headersFromProto(p.GetHeaders())
	for _, m := range p.GetMatches() {
		out.Matches = append(out.Matches, api.Match{
			Engine: m.GetEngine(), RuleID: m.GetRuleId(), Severity: severities.toAPI(m.GetSeverity()),
			What: m.GetWhat(), Part: m.GetPart(),
		})
	}
	for _, a := range p.GetAttachments() {
		out.Attachments = append(out.Attachments, api.Attachment{
			Path: a.GetPath(), Filename: a.GetFilename(), DeclaredType: a.GetDeclaredType(),
			DetectedType: a.GetDetectedType(), Size: a.GetSize(),
			SHA256: a.GetSha256(), SHA1: a.GetSha1(), MD5: a.GetMd5(),
		})
	}
	return out
}

// MessageFromProto converts a message record for a read.
func MessageFromProto(p *ospreyv1.MessageRecord) api.MessageRecord {
	return api.MessageRecord{
		Headers:    headersFromProto(p.GetHeaders()),
		MessageID:  p.GetMessageId(),
		SensorID:   p.GetSensorId(),
		Tenant:     p.GetTenant(),
		Source:     mailSources.toAPI(p.GetSource()),
		Envelope:   envelopeFromProto(p.GetEnvelope()),
		Size:       p.GetSize(),
		SHA256:     p.GetSha256(),
		UploadedAt: timeFromProto(p.GetUploadedAt()),
		Node:       p.GetNode(),
		Verdict:    p.GetVerdict(),
		AlertID:    p.GetAlertId(),
		Spam:       spamFromProto(p.GetSpam()),
	}
}

// spamFromProto converts a spam result (nil: none).
func spamFromProto(s *ospreyv1.SpamResult) *api.SpamResult {
	if s == nil {
		return nil
	}
	out := &api.SpamResult{Score: s.GetScore(), RequiredScore: s.GetRequiredScore(), Action: s.GetAction(),
		NotChecked: s.GetNotChecked(), Symbols: make([]api.SpamSymbol, len(s.GetSymbols()))}
	for i, sym := range s.GetSymbols() {
		out.Symbols[i] = api.SpamSymbol{Name: sym.GetName(), Score: sym.GetScore()}
	}
	return out
}

// headersFromProto converts a header summary (nil: none).
func headersFromProto(h *ospreyv1.HeaderSummary) *api.HeaderSummary {
	if h == nil {
		return nil
	}
	return &api.HeaderSummary{
		From:                  h.GetFrom(),
		To:                    h.GetTo(),
		Cc:                    h.GetCc(),
		Subject:               h.GetSubject(),
		MessageID:             h.GetMessageId(),
		Date:                  timeFromProto(h.GetDate()),
		Received:              h.GetReceived(),
		AuthenticationResults: h.GetAuthenticationResults(),
	}
}

// AuditEventFromStore converts an entry of the message audit log.
func AuditEventFromStore(e sqlstore.AuditEvent) api.AuditEvent {
	out := api.AuditEvent{Kind: e.Kind, Time: e.Time, Tenant: e.Tenant, SensorID: e.SensorID}
	if e.Message != nil {
		m := MessageFromProto(e.Message)
		out.Message = &m
	}
	if r := e.Refusal; r != nil {
		out.Refusal = &api.AuditRefusal{Minute: r.Minute, ClientIP: r.ClientIP, Reason: r.Reason, Count: r.Count,
			FirstAt: r.FirstAt, LastAt: r.LastAt, MailFrom: r.MailFrom, Rcpt: r.Rcpt, Detail: r.Detail}
	}
	if d := e.Delivery; d != nil {
		out.Delivery = DeliveryFromStore(*d)
	}
	if q := e.Quarantine; q != nil {
		out.Quarantine = &api.AuditQuarantineStep{MessageID: e.QuarantineID, At: q.At, Action: q.Action, Actor: q.Actor, Detail: q.Detail}
	}
	return out
}

// DeliveryFromStore converts a delivery attempt of the audit log.
func DeliveryFromStore(d sqlstore.Delivery) *api.AuditDeliveryAttempt {
	out := &api.AuditDeliveryAttempt{MessageID: d.MessageID, Sender: d.Sender, Direction: d.Direction, NextHop: d.NextHop,
		Host: d.Host, TLS: d.TLS, Started: d.Started, TookMS: d.Took.Milliseconds(),
		Recipients: make([]api.AuditDeliveryRecipient, len(d.Recipients))}
	for i, r := range d.Recipients {
		out.Recipients[i] = api.AuditDeliveryRecipient{Address: r.Address, State: api.QueueState(r.State), Code: r.Code,
			Enhanced: r.Enhanced, Text: r.Text, NextAttempt: r.NextAttempt}
	}
	return out
}

// ExportToProto converts a syslog export from a write; pkg/validate checks it.
func ExportToProto(in *api.SyslogExport) *ospreyv1.SyslogExport {
	return &ospreyv1.SyslogExport{
		Enabled: in.Enabled, Address: in.Address, Tls: in.TLS, CaPem: in.CAPEM,
		ServerName: in.ServerName, Facility: in.Facility, AppName: in.AppName,
	}
}

// ExportFromProto converts a stored syslog export for a read.
func ExportFromProto(p *ospreyv1.SyslogExport) api.SyslogExport {
	return api.SyslogExport{
		Enabled: p.GetEnabled(), Address: p.GetAddress(), TLS: p.GetTls(), CAPEM: p.GetCaPem(),
		ServerName: p.GetServerName(), Facility: p.GetFacility(), AppName: p.GetAppName(),
	}
}
