// Package spool is the sensor's durable message store: the SMTP server and
// the POP3 poller [Spool.Put] every message here before they acknowledge it,
// and the uploader reads, uploads and [Spool.Remove]s it once a Central Node
// has acknowledged the upload. A message that Put accepted survives a crash
// of the process or of the machine.
//
// # Design
//
// The spool is a log. Messages are appended as records to segment files,
// and every Put that appended before a fdatasync of its segment began is
// made durable by that one fdatasync: a group commit of the data itself.
// The earlier design, one file per message with a fsync each, spent a
// disk flush per message and stayed between 1,000 and 2,200 messages/s
// with 40 concurrent Puts on the development VM, below the 3,500 durable
// messages/s that the SMTP ingest needs; the log takes 20,000 and more
// (see BenchmarkPut). The layout of the spool directory:
//
//	LOCK               flock(2)ed by the process that has the spool open
//	RESERVE            disk space kept for the removal log (see "A full
//	                   disk" below)
//	seg-<n>.log        a log segment, n in decimal, 16 digits; records of
//	                   messages, in the order they were appended
//	removed-<n>.log    the removal log: which messages were removed, and
//	                   which of them keep their POP3 UIDL known
//	<id>.msg           a spilled message, larger than 1 MiB, in a file of
//	                   its own
//	<id>.tmp           a spilled message being written; removed by Open
//	<id>.corrupt       a record that Open found damaged, kept for a human
//
// A record is
//
//	"OSPS" | version (1 byte, 1) | n (uint32, big endian) | header (n bytes)
//	| body | size of body (uint64, big endian) | CRC-32C of body (uint32) | "OSPE"
//
// The header is JSON (see [header]): the id, the source, the UIDL, the
// envelope in protojson and, in a segment, the size of the body, so that a
// scan can step from one record to the next. JSON rather than a protobuf
// message of our own keeps the package self-contained and a segment
// readable with less(1) when an operator needs to know what is stuck. The
// footer repeats the size, which a torn record is unlikely to match, and
// holds the CRC, which the reader that [Message.Open] returns checks when
// it reaches the end, so a bit flipped on disk is not uploaded as if it
// were mail. A spilled message is a file of exactly one record whose
// header has no size (it is written before the body is read to its end);
// a spool of the earlier design opens as a spool of spilled messages.
//
// # Writing a message
//
// Put reads the body to its end into memory first (up to 1 MiB, see
// below), reserving the byte budget as it reads, so that concurrent Puts
// never wait for each other's clients. Then it encodes the record and,
// under a short lock, writes it at the end of the active segment (one
// pwrite, a copy into the page cache) and queues for the next commit.
// Writing under the lock is simpler than reserving offsets and writing
// outside it, which would leave the committer to wait for the holes
// between the reservations to fill, and costs a few microseconds per
// message. The committer, one goroutine owned by the Spool, takes every
// queued Put, fdatasyncs the segments they wrote once, and answers them
// all; while its fdatasync runs, new Puts queue for the next one. At most
// one sync is in flight, and one sync serves every Put that appended
// while the previous one ran, so the number of Puts per sync grows with
// the load and the rate is bounded by the CPU and the disk's bandwidth
// rather than by its latency. A Put returns nil only after the fdatasync
// that covers its record has returned; that is the point after which the
// SMTP server may answer 250 and the POP3 poller may send DELE. After its
// append a Put waits for its commit without looking at its context: the
// wait is bounded by one sync, and giving up on it would leave on disk a
// message that the client was told had failed.
//
// The active segment is created on the first append and replaced by a new
// one when a record would take it past Options.SegmentSize (64 MiB); a new
// segment's directory entry is fsynced before it takes a record, so the
// fdatasyncs that follow never depend on directory metadata. Open never
// appends to a segment it found: the process starts a new one.
//
// A body larger than 1 MiB is not kept in memory: Put spills it to a file
// of its own following the recipe of maddy's queue (write <id>.tmp, fsync
// it, rename it to <id>.msg, fsync the directory through the committer,
// which shares that fsync between the Puts of a batch). Such messages are
// rare and large, so their own fsync costs little per byte.
//
// A Put whose Meta has a Seal calls it once the body is read and encodes
// the header then, so that what Seal sets in the envelope (a gateway's
// DKIM and DMARC results) is written with the message, before the commit
// that makes it durable. A spilled message's header was written before
// its body: it is written with SealRoom spaces after its JSON, and
// overwritten in place with the sealed header, padded to the same length,
// before the file's fsync.
//
// # Failures
//
// A Put that fails before its append leaves nothing behind: a failed body
// read (the SMTP server's size limit cut it, or the client went away), a
// cancelled context, an exhausted budget. When the write or the fdatasync
// of a segment fails, every Put of the batch fails, and the segment takes
// no further record, since after a failed fdatasync the kernel may have
// dropped pages that the file still appears to have; the next append
// starts a new segment. The failed Puts' records may still reach the
// disk: each gets a removal record, on a best effort basis, so that a
// restart does not upload a message whose sender was told to retry; if
// that fails too, the message is uploaded anyway, a duplicate we accept
// on a failing disk rather than a loss.
//
// An I/O error is remembered: [Spool.Check] reports it until a later
// write succeeds, so a sensor whose disk fails greets new SMTP clients
// with 421 instead of accepting mail it cannot keep. Since no Put comes
// while Check fails, Check itself probes the disk (a small file written,
// fsynced and removed) at most every 10 seconds and forgets the error once
// a probe succeeds.
//
// # Removal
//
// Remove takes the message out of the index and appends a line to the
// removal log; it does not wait for a sync. A removal that a crash loses
// brings the message back at the next Open, and the uploader uploads it
// again; uploads are idempotent by message id, so this costs an upload,
// never a second alert. Syncing every removal would cost the uploader a
// disk flush per message, the very cost the group commit of Put removes.
//
// A removal record must be durable, though, before the record it removes
// can vanish from disk, or a crash could lose the tombstone of a POP3
// message (see below) together with the message. The cleaner, a second
// goroutine of the Spool, deletes a segment once every record in it is
// removed and the segment is no longer active (an active segment all of
// whose records are removed is retired once it holds 1 MiB, or half
// Options.SegmentSize if that is less): it
// fdatasyncs the removal log, unlinks the segment files and spilled files,
// and fsyncs the directory, once for all the files of a pass.
//
// A message that is never removed (an upload that keeps failing) would
// keep its whole segment on disk. When the removed records in sealed
// segments exceed both the live bytes and four segments, the cleaner
// compacts: it copies the live records of the emptiest segment to the
// active one (through the same group commit), points the index at the
// copies, and deletes the segment. A crash in between leaves two copies
// of some messages; Open keeps the later one. So the segments hold at
// most about twice the live bytes, plus four segments and the active one.
// An uploader that removes messages in the order it lists them empties
// whole segments and never makes the cleaner compact.
//
// The removal log is rewritten by the cleaner when it holds twice the
// lines still needed plus 65,536, at its first pass after an Open that
// found a removal log or quarantined a record, and after a line was
// dropped (see "A full disk"): a new removed-<n+1>.log gets the lines of
// the removed records whose segments still exist and of the tombstones,
// it is fdatasynced and its directory entry fsynced, and only then are
// the older logs deleted; Open reads every removal log it finds, so a
// crash during a rewrite loses nothing. Each line is "<CRC-32C in hex> <JSON>";
// a line whose CRC does not match (a write cut by a crash) is skipped, and
// after a failed write the next line starts with a newline, so that a torn
// line never swallows the next.
//
// # POP3 UIDLs
//
// A message polled by POP3 carries its mailbox and UIDL in its header, so
// "this UIDL is spooled" becomes durable with the message: a poller that
// crashes between Put and DELE finds the UIDL with [Spool.HasUIDL] after
// its restart and deletes the message on the server without spooling it
// again. The memory must outlive the message, since the uploader may
// upload and remove it before the poller comes back: the removal record
// of a POP3 message therefore carries its mailbox and UIDL, a tombstone
// that keeps HasUIDL true. The poller forgets UIDLs with
// [Spool.ForgetUIDLs] once the server no longer lists them (a "forget"
// line, not synced: a forgotten tombstone that a crash brings back is
// forgotten again at the next call); a tombstone older than
// [Options.UIDLRetention] is dropped at Open in any case.
//
// # Recovery
//
// Open reads the removal logs, then scans every segment from its start,
// reading each record whole and checking its CRC. A record whose framing
// is broken ends the scan of its segment: it and everything after it are
// a torn tail, the appends of a batch whose fdatasync a crash cut short,
// and are truncated away (a bit flip in the framing of a synced record
// would also end up here; a log cannot step over a length it cannot
// trust, and searching for the next "OSPS" could find one inside a mail
// body). A record whose framing holds but whose CRC does not is skipped:
// a copy of it is quarantined as <id>.corrupt, a removal record keeps the
// next Open from finding it again, and the scan goes on. Removals are
// applied, the tombstones restored, the ids advanced past every id seen,
// the segments all of whose records are removed deleted; the removal log
// is left for the cleaner to rewrite (see below). Open reads the segments
// whole, once: it takes as long as reading them (seconds for a spool of
// gigabytes after a long outage of the central; the cleaner keeps the
// removed records in them below the live ones, see above). After a power cut, a torn record whose footer
// happened to reach the disk looks like a damaged one and is quarantined
// too: its Put never returned.
//
// # A full disk
//
// A sensor whose disk filled up (the spool stops taking mail below its
// floor, but other files grow too) must be able to start and upload its
// backlog, which is what frees the disk; so Open needs no free space at
// all. What it deletes (temporary files, torn tails, segments all
// removed) and syncs needs none, and it writes nothing else: the removal
// log it would rewrite is left to the cleaner, whose passes rewrite the
// log, compact and make the reserve only when statfs shows room for what
// they write, and otherwise wait for a later pass. A damaged record that
// Open has no room to quarantine stays where it is, out of the index, and
// keeps its segment from being deleted until an Open with room
// quarantines it.
//
// Removing must need no space either, or the backlog could never be
// removed. A removal line that the disk has no room for is dropped, unless
// it is a tombstone: the removal holds in memory, and the rewrite of the
// log, due from then on, writes it if its segment still exists. Dropping
// it is safe because only tombstones must outlive their records (above):
// a crash before the rewrite brings the message back, to be uploaded again
// as after any lost removal. A tombstone that finds no room takes the space
// of the reserve: RESERVE, a file of a sixteenth of the segment size (4
// MiB by default, at least 64 KiB), allocated by Open and by the cleaner
// while the disk has room for it above the floor, is deleted to make room,
// and made again once the disk has room. Together with the room left in
// the last page of the log, that is enough for the tombstones of a whole
// segment of POP3 messages averaging 3 KiB or more (a tombstone line takes
// about 170 bytes), after which the segment's deletion frees the disk. A
// tombstone that still finds no room fails its Remove, and the message
// stays, to be uploaded and removed again later.
//
// # Bounds and accounting
//
// Before taking a message Put checks the number of messages, their bytes
// (records, header and footer included) and the free space of the file
// system (statfs). The message count and bytes include the Puts in
// progress: each reserves its slot at the start and its bytes as it reads
// them, so a body that grows past what is left of the budget is cut with
// ErrFull while it is read. Free space is checked once per Put, and by
// Check, against the floor, MinFreeBytes (the sensor's --spool-min-free,
// which should hold a message of the largest size it accepts); below it
// both fail with a *LowDiskError, and the spool logs when the disk goes
// below the floor and when it is back. The budget counts live records
// only: removed records that wait for their segment to go, tombstones,
// quarantined records and the reserve count in neither. [Stats.DiskBytes]
// shows what the segments and spilled messages take.
//
// Ids are 16 bytes, hex: the Unix time in nanoseconds (forced to grow
// within a process and past every id found at Open) and 8 random bytes.
// They sort in arrival order, are valid file names, and are the message_id
// of the upload, the idempotency key at the Central Node.
package spool
