package queue

import (
	"bytes"
	"errors"
	"time"

	"github.com/ospreysec/osprey/pkg/dsn"
)

// The kinds of notices the queue sends.
const (
	kindFailure = "failure"
	kindDelay   = "delay"
)

// notice enqueues, in t, a delivery status notification about message m
// to its sender: from the null sender, in the other direction, delivered
// like any message. There is none for a message from the null sender.
func (q *Queue) notice(t *tx, m *msgRow, kind string, recips []dsn.Recipient, now time.Time) error {
	if m.sender == "" {
		return nil
	}
	body, err := dsn.Build(dsn.Report{
		ReportingMTA: q.config().ReportingMTA,
		To:           m.sender,
		QueueID:      m.id,
		Arrival:      m.arrival,
		Recipients:   recips,
		Original:     headerSection(m.body),
		Now:          now,
	})
	if errors.Is(err, dsn.ErrNullSender) {
		return nil
	}
	if err != nil {
		return err
	}
	dir := Inbound
	if m.direction == Inbound {
		dir = Outbound
	}
	n := Message{ID: newID(m.id, kind), Rcpts: []string{m.sender}, Body: body, Arrival: now, Direction: dir}
	if _, err := q.insert(t, &n, []string{q.deliverer.Destination(m.sender)}, kind, now, ""); err != nil {
		return err
	}
	t.onCommit(func() { q.m.dsns.WithLabelValues(kind).Inc() })
	return nil
}

// headerSection returns the header section of a message: up to the
// empty line that ends it, that line excluded; the whole of msg when it
// has none.
func headerSection(msg []byte) []byte {
	if bytes.HasPrefix(msg, []byte("\r\n")) || bytes.HasPrefix(msg, []byte("\n")) {
		return nil
	}
	end := len(msg)
	if i := bytes.Index(msg, []byte("\n\r\n")); i >= 0 {
		end = i + 1
	}
	if i := bytes.Index(msg, []byte("\n\n")); i >= 0 && i+1 < end {
		end = i + 1
	}
	return msg[:end]
}
