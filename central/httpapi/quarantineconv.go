package httpapi

import (
	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/quarantine"
	"github.com/ospreysec/osprey/central/sqlstore"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// quarantinedFromStore converts a quarantined message for a read.
func quarantinedFromStore(m quarantine.Message) api.QuarantinedMessage {
	return api.QuarantinedMessage{
		Tenant: m.Tenant, SensorID: m.SensorID, MessageID: m.MessageID, QuarantinedAt: m.At,
		State: api.QuarantineState(m.State), Sender: m.Sender, Recipients: append([]string{}, m.Rcpts...), Subject: m.Subject,
		Reason: m.Reason, Verdict: m.Verdict, Direction: m.Direction, Size: m.Size, UpdatedAt: m.UpdatedAt,
		Available: m.Available, Pending: m.Pending, PendingTo: m.PendingTo, PendingBy: m.PendingBy,
	}
}

// quarantineDetailFromStore converts one quarantined message with its
// history and preview.
func quarantineDetailFromStore(d quarantine.Detail) api.QuarantinedMessage {
	out := quarantinedFromStore(d.Message)
	for _, e := range d.History {
		out.History = append(out.History, quarantineEventFromStore(e))
	}
	out.Preview = previewFromProto(d.Preview)
	out.PreviewError = d.PreviewError
	return out
}

// quarantineEventFromStore converts a step of a quarantined message's history.
func quarantineEventFromStore(e sqlstore.QuarantineEvent) api.QuarantineEvent {
	return api.QuarantineEvent{At: e.At, Action: e.Action, Actor: e.Actor, Detail: e.Detail}
}

// previewFromProto converts a sensor's preview of a message (nil stays nil).
func previewFromProto(p *ospreyv1.MessagePreview) *api.MessagePreview {
	if p == nil {
		return nil
	}
	out := &api.MessagePreview{Headers: []api.HeaderField{}, Text: p.GetText(), TextType: p.GetTextType(),
		TextTruncated: p.GetTextTruncated(), Attachments: []api.PreviewAttachment{}, Notes: p.GetNotes()}
	for _, h := range p.GetHeaders() {
		out.Headers = append(out.Headers, api.HeaderField{Name: h.GetName(), Value: h.GetValue()})
	}
	for _, a := range p.GetAttachments() {
		out.Attachments = append(out.Attachments, api.PreviewAttachment{Filename: a.GetFilename(), ContentType: a.GetContentType(),
			Size: a.GetSize(), SHA256: a.GetSha256()})
	}
	return out
}
