package httpapi

// Conversions between the JSON types of package api and the scanning model
// (rules, alerts, message records, the syslog export). They follow package
// convert's rules: a write reports every unknown enum name at once as
// validate.Errors with the field's JSON path, and checks nothing else.

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/pkg/validate"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// names maps a proto enum's values to the API's names; names[0] is "" for
// the unspecified value.
type names[P ~int32, A ~string] []A

func (n names[P, A]) toAPI(p P) A {
	if p == 0 {
		return ""
	}
	if int(p) > 0 && int(p) < len(n) {
		return n[p]
	}
	return A(strconv.Itoa(int(p))) // a value from a newer model: show it
}

// toProto maps a name (case-insensitively) to its value; "" is 0.
func (n names[P, A]) toProto(what string, a A) (P, error) {
	if a == "" {
		return 0, nil
	}
	for i, name := range n[1:] {
		if strings.EqualFold(string(name), string(a)) {
			return P(i + 1), nil
		}
	}
	list := make([]string, 0, len(n)-1)
	for _, name := range n[1:] {
		list = append(list, string(name))
	}
	return 0, fmt.Errorf("unknown %s %q; want %s", what, a, strings.Join(list, ", "))
}

var (
	severities = names[ospreyv1.Severity, api.Severity]{"", api.SeverityLow, api.SeverityMedium, api.SeverityHigh, api.SeverityCritical}
	ruleKinds  = names[ospreyv1.RuleKind, api.RuleKind]{"", api.RuleSHA256, api.RuleSHA1, api.RuleMD5, api.RuleSender,
		api.RuleSenderDomain, api.RuleURL, api.RuleURLHost, api.RuleAttachmentName, api.RuleAttachmentExtension}
	mailSources = names[ospreyv1.MailSource, api.MailSource]{"", api.SourceSMTP, api.SourcePOP3}
)

// ruleToProto converts a rule from a write. Tenant, CreatedAt and Version
// are the server's and are not copied.
func ruleToProto(in *api.Rule) (*ospreyv1.Rule, error) {
	var errs validate.Errors
	kind, err := ruleKinds.toProto("kind", in.Kind)
	if err != nil {
		errs = append(errs, validate.FieldError{Field: "kind", Message: err.Error()})
	}
	sev, err := severities.toProto("severity", in.Severity)
	if err != nil {
		errs = append(errs, validate.FieldError{Field: "severity", Message: err.Error()})
	}
	out := &ospreyv1.Rule{
		Id: in.ID, Kind: kind, Value: in.Value, Severity: sev,
		Description: in.Description, Disabled: in.Disabled,
	}
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}

func ruleFromProto(p *ospreyv1.Rule) api.Rule {
	return api.Rule{
		ID:          p.GetId(),
		Tenant:      p.GetTenant(),
		Kind:        ruleKinds.toAPI(p.GetKind()),
		Value:       p.GetValue(),
		Severity:    severities.toAPI(p.GetSeverity()),
		Description: p.GetDescription(),
		Disabled:    p.GetDisabled(),
		CreatedAt:   protoTime(p.GetCreatedAt()),
		Version:     p.GetVersion(),
	}
}

func envelopeFromProto(p *ospreyv1.Envelope) *api.Envelope {
	if p == nil {
		return nil
	}
	return &api.Envelope{
		MailFrom:   p.GetMailFrom(),
		RcptTo:     orEmpty(p.GetRcptTo()),
		ClientAddr: p.GetClientAddr(),
		Helo:       p.GetHelo(),
		TLS:        p.GetTls(),
		ReceivedAt: protoTime(p.GetReceivedAt()),
		Mailbox:    p.GetMailbox(),
	}
}

func alertFromProto(p *ospreyv1.Alert) api.Alert {
	out := api.Alert{
		ID:          p.GetId(),
		Tenant:      p.GetTenant(),
		SensorID:    p.GetSensorId(),
		MessageID:   p.GetMessageId(),
		Source:      mailSources.toAPI(p.GetSource()),
		Envelope:    envelopeFromProto(p.GetEnvelope()),
		Severity:    severities.toAPI(p.GetSeverity()),
		Matches:     make([]api.Match, 0, len(p.GetMatches())),
		Attachments: make([]api.Attachment, 0, len(p.GetAttachments())),
		CreatedAt:   protoTime(p.GetCreatedAt()),
		Node:        p.GetNode(),
		Verdict:     p.GetVerdict(),
		Size:        p.GetSize(),
		SHA256:      p.GetSha256(),
	}
	if h := p.GetHeaders(); h != nil {
		out.Headers = &api.HeaderSummary{
			From:                  h.GetFrom(),
			To:                    h.GetTo(),
			Cc:                    h.GetCc(),
			Subject:               h.GetSubject(),
			MessageID:             h.GetMessageId(),
			Date:                  protoTime(h.GetDate()),
			Received:              h.GetReceived(),
			AuthenticationResults: h.GetAuthenticationResults(),
		}
	}
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

func messageFromProto(p *ospreyv1.MessageRecord) api.MessageRecord {
	return api.MessageRecord{
		MessageID:  p.GetMessageId(),
		SensorID:   p.GetSensorId(),
		Tenant:     p.GetTenant(),
		Source:     mailSources.toAPI(p.GetSource()),
		Envelope:   envelopeFromProto(p.GetEnvelope()),
		Size:       p.GetSize(),
		SHA256:     p.GetSha256(),
		UploadedAt: protoTime(p.GetUploadedAt()),
		Node:       p.GetNode(),
		Verdict:    p.GetVerdict(),
		AlertID:    p.GetAlertId(),
	}
}

func exportToProto(in *api.SyslogExport) *ospreyv1.SyslogExport {
	return &ospreyv1.SyslogExport{
		Enabled: in.Enabled, Address: in.Address, Tls: in.TLS, CaPem: in.CAPEM,
		ServerName: in.ServerName, Facility: in.Facility, AppName: in.AppName,
	}
}

func exportFromProto(p *ospreyv1.SyslogExport) api.SyslogExport {
	return api.SyslogExport{
		Enabled: p.GetEnabled(), Address: p.GetAddress(), TLS: p.GetTls(), CAPEM: p.GetCaPem(),
		ServerName: p.GetServerName(), Facility: p.GetFacility(), AppName: p.GetAppName(),
	}
}

// protoTime returns t in UTC, or the zero time (which the JSON types omit) for nil.
func protoTime(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
