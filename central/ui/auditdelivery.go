package ui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ospreysec/osprey/central/sqlstore"
)

// The delivery attempts of gateway sensors, as the Audit log shows them: a
// row an attempt in the list, whose details unfold as a refusal's do, and
// the attempts of one message on its detail. The next hop's replies are
// written by whoever runs it, so they go through display too.

// deliveryView is a delivery attempt: where it went, over what, and each
// recipient's reply and state.
type deliveryView struct {
	ID         string // the id of its detail element
	MessageID  string
	Direction  string
	NextHop    string
	Host       string // "" when no host answered
	TLS        string // "" without TLS
	Started    time.Time
	Took       string
	States     []deliveryState // the recipients' states, each once, in their order
	Recipients []deliveryRecipientView
}

// deliveryState is a state a recipient was left in, with its badge's class.
type deliveryState struct{ Name, Class string }

type deliveryRecipientView struct {
	Address     string
	State       deliveryState
	Reply       string // "250 2.0.0 Ok: queued as 4F"
	NextAttempt time.Time
}

// stateClass is the class of a delivery state's badge: delivered reads as
// clean, bounced as detected, deferred as a warning.
func stateClass(state string) string {
	switch state {
	case "delivered":
		return "verdict-clean"
	case "bounced":
		return "verdict-detected"
	case "deferred":
		return "verdict-unscannable"
	}
	return "verdict-other"
}

// reply writes an SMTP reply as a log line does: code, enhanced code, text.
func reply(code int, enhanced, text string) string {
	var parts []string
	if code != 0 {
		parts = append(parts, strconv.Itoa(code))
	}
	if enhanced != "" && !strings.HasPrefix(text, enhanced) {
		parts = append(parts, enhanced)
	}
	if text != "" {
		parts = append(parts, text)
	}
	return display(strings.Join(parts, " "))
}

// tookText writes how long an attempt took, to the millisecond.
func tookText(d time.Duration) string {
	if d < time.Millisecond {
		return "under 1 ms"
	}
	return d.Round(time.Millisecond).String()
}

func newDeliveryView(d *sqlstore.Delivery, id string) *deliveryView {
	v := &deliveryView{
		ID: id, MessageID: display(d.MessageID), Direction: display(d.Direction), NextHop: display(d.NextHop),
		Host: display(d.Host), TLS: display(d.TLS), Started: d.Started, Took: tookText(d.Took),
	}
	for _, r := range d.Recipients {
		st := deliveryState{Name: display(r.State), Class: stateClass(r.State)}
		if !slices.Contains(v.States, st) {
			v.States = append(v.States, st)
		}
		v.Recipients = append(v.Recipients, deliveryRecipientView{Address: display(r.Address), State: st,
			Reply: reply(r.Code, r.Enhanced, r.Text), NextAttempt: r.NextAttempt})
	}
	return v
}

// deliveryRow fills row with the columns of e, a delivery attempt; i
// numbers the row on its page.
func deliveryRow(row *auditRow, e sqlstore.AuditEvent, i int) {
	d := e.Delivery
	row.Key = fmt.Sprintf("%s/%s/%d/%s", e.SensorID, d.MessageID, d.Started.UnixMicro(), d.NextHop)
	row.Source = short(d.Direction)
	row.Sender = short(d.Sender)
	if d.Sender == "" {
		row.Sender = "<>"
	}
	rcpts := make([]string, len(d.Recipients))
	for j, r := range d.Recipients {
		rcpts[j] = r.Address
	}
	row.Rcpts, row.MoreRcpt = rcptList(rcpts)
	row.Delivery = newDeliveryView(d, "delivery-"+strconv.Itoa(i))
}
