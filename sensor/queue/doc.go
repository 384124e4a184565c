// Package queue is a gateway sensor's delivery queue: the messages that
// the scan let through wait here, on the sensor's disk, until the
// Deliverer (the SMTP client) has handed them to their next hops, and are
// retried, bounced with a notice, held or quarantined as Postfix's queue
// manager and the gateways we reproduce do.
//
// # Design note
//
// Storage. One SQLite database (modernc.org/sqlite, pure Go) in the
// queue's directory, in WAL mode with synchronous=FULL, its schema in
// goose migrations embedded in the binary. A message is a row of
// messages (envelope, arrival, verdict, direction, flags), its body a row
// of bodies (kept apart so that the message rows stay small and a listing
// reads dense pages; a body of FileBodySize or more is a file of its own,
// see body.go), and one row of rcpts per recipient: its destination
// (the Deliverer's routing key), its state, its attempts and next
// attempt, and the last reply. SQLite rather than files and a log of our
// own (the spool's design): the queue's data is small rows that change
// state many times and are searched by an operator (by state, sender,
// recipient, destination, age), which is what a database does; a
// transaction makes each step atomic (an outcome stored with the notice
// it causes and the deletion of a finished message), and a crash leaves
// the database as of its last commit. The counts table keeps the
// recipients per state, updated by the transaction that moves them, so
// that Open knows the depths without counting.
//
// Group commit. Every write (Enqueue, an attempt's outcome, a management
// call) goes through one writer that makes one transaction, one fsync of
// the WAL, of all the writes waiting at the same time, each in a
// savepoint of its own so that one failing fails alone. Enqueue returns
// once its transaction is durable, and while one commit runs the next
// batch gathers, so the rate follows the disk's fsyncs times the batch,
// not the fsyncs alone. The deletions of delivered messages ride in the
// same transactions. The committing goroutine runs only while writes
// wait.
//
// Scheduling. A job is the recipients of one message that share a
// destination: one Request. Only the jobs due within the next minute
// live in memory, at most maxWaiting of them, in one heap per
// destination ordered by due time then message id (so by arrival), and
// the destinations in a heap of their own ordered by when their first
// job may go. The rest stays in the database: load pages jobs in from a
// partial index on (next_attempt, msg, dest) of the recipients waiting,
// in index order from a cursor, and the invariant is that every waiting
// recipient at or before the cursor is in memory (or in a worker's
// hands). A write that makes a job due at or before the cursor puts it
// in memory itself, or moves the cursor back when memory is full. Memory
// therefore stays bounded with a million deferred messages, and a
// restart reads only the first page of what is due before the first
// delivery starts. The package does not use sensor/schedule: that
// scheduler holds every item in memory, computes due times on its own
// clock, and has no per-destination concurrency limit, all three of which
// the queue needs otherwise; it does use its Backoff. A recipient's
// destination is the Deliverer's at Enqueue; when the configuration
// changes it (a domain gets hosts of its own), the recipient moves to its
// new destination's job at its next try, due at once.
//
// Delivery. Run's dispatcher hands due jobs to workers within the limits:
// Concurrency in all, and per destination a limit that starts at
// InitialDestinationConcurrency and grows by one after as many successes
// as the limit, up to DestinationConcurrency (Postfix's qmgr). A 2xx
// delivers a recipient, a 5xx bounces it at once with a failure notice
// (RFC 3464, dsn.Build) to the envelope sender, never to the null sender;
// a 4xx or no answer defers it by MinBackoff doubling up to MaxBackoff,
// less a random part of up to half, until MaxLifetime after arrival, when
// it bounces. A message undelivered after DelayWarning gets one delay
// notice. Notices are messages of the queue, enqueued in the transaction
// that decided them. An attempt that reached no host and got only 4.4.x
// results of ours (the destination is down) also holds its destination:
// its waiting jobs are written back as deferred until the hold ends
// without an attempt of their own, and the hold grows with the
// destination's failures in a row (Postfix's dead destination).
//
// Crash safety. At least once: a recipient is marked delivered only by
// the transaction that stores its 2xx, written after Deliver returned. A
// crash before that commit leaves it waiting in the database, due as it
// was, and the next Run delivers it again; nothing acknowledged by
// Enqueue is lost. A crash cannot lose state between memory and disk
// either: memory holds only a copy of what is due, rebuilt by load.
package queue
