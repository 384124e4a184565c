// Package uplink carries an SCN's alerts and message-log summaries up the
// distributed mode's link to its PCN: Sender is the SCN's channel on the
// link, Receiver the PCN's (hierarchy.Channel).
//
// Design note. Nothing is skipped and nothing is stored twice across
// outages, PCN restarts and failovers of the link between the SCN's nodes,
// without an outbox on the SCN:
//
//   - The cursor is the SCN's alert number (sqlstore's per-tenant seq),
//     which follows commit order without gaps, on SQLite and on a
//     PostgreSQL shared by the SCN's nodes alike (a counter row that each
//     alert's transaction updates orders them). "The alerts after n" read
//     at any time never misses one that commits late, as "the rows after
//     sequence value n" would on PostgreSQL, whose sequences hand out
//     values at insert and commit out of order.
//   - The PCN keeps the cursor, per SCN and SCN tenant, and moves it in the
//     transaction that stores the alerts; when a link starts it tells the
//     SCN where it stands (UplinkCursor). Whichever SCN node holds the link
//     resumes from what the PCN stored, so an ack lost with the link, a PCN
//     restart, or a link that moved to another SCN node costs a resend at
//     most, and a resent alert is stored once (the PCN's key is the server
//     and the SCN's alert id).
//   - The SCN sends batches in order, a window of them at a time, and
//     reads from the store again only what the PCN has not acknowledged.
//     What waits for an absent PCN is the SCN's own alerts, bounded by its
//     retention: an outage of days holds no more than the SCN keeps anyway,
//     and the alerts its retention dropped meanwhile are skipped by number.
//
// Message-log summaries are absolute counts per sensor, minute and verdict,
// upserted on the PCN, so sending one again is harmless: the SCN sends the
// buckets from the end the PCN acknowledged (the PCN says where at the
// start of a link), an hour a message while it catches up, and then, at
// every interval, the last few minutes up to the current one, which also
// counts the records of a minute that committed late.
//
// On the PCN, the SCNs' alerts join its own in the alerts table with their
// tenant (the one the SCN was accepted for) and server id, under the same
// retention; Receiver.Run deletes the alerts of disconnected SCNs, in
// batches, and keeps their summaries.
package uplink

import (
	"time"
)

// Defaults of the options.
const (
	// DefaultBatch is how many alerts a batch carries.
	DefaultBatch = 200
	// DefaultWindow is how many batches may await their acknowledgement.
	DefaultWindow = 4
	// DefaultPoll is how often the SCN looks for alerts that its other
	// nodes stored (its own wake it at once).
	DefaultPoll = time.Second
	// DefaultSummaryEvery is how often the SCN sends the current summaries.
	DefaultSummaryEvery = 30 * time.Second
	// DefaultCleanEvery is how often the PCN looks for disconnected SCNs
	// whose alerts it still holds.
	DefaultCleanEvery = 30 * time.Second
)

// maxBatchBytes bounds the alerts of one batch (encoded), well within
// gRPC's 4 MiB message limit; a batch holds at least one alert (an alert
// is at most 512 KiB).
const maxBatchBytes = 1 << 20

// maxSummaries bounds the summaries of one message (each some 60 bytes
// encoded): a span with more is cut at a bucket's start.
const maxSummaries = 20_000

// summaryLate is how many of the last minutes the SCN always counts
// again: records of those minutes may have committed after they were
// counted.
const summaryLate = 3 * time.Minute

// summaryChunk is the span of one summaries message while catching up.
const summaryChunk = time.Hour

// summaryBackfill is how far back an SCN's first summaries go (the default
// retention of message records).
const summaryBackfill = 30 * 24 * time.Hour
