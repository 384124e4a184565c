package pop3poll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ospreysec/osprey/pkg/pop3"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/spool"
)

// hashPrefix starts the UIDL key of a message deduplicated by content.
const hashPrefix = "sha256:"

// maxDeletedMemory bounds the UIDs remembered as deleted, for the
// detection of reused UIDs.
const maxDeletedMemory = 100000

// sessionResult is what a session did.
type sessionResult struct {
	listed    int   // messages on the server
	retrieved int   // messages retrieved (counts towards the batch)
	bytes     int64 // their sizes
	spooled   int   // messages Put into the spool
	deleted   int   // deletions committed by QUIT
	more      bool  // the batch bound left messages behind
	tooLarge  map[string]int64
	// hashReason is set when this session found UIDs unusable.
	hashReason string
	// certWarning is set when the pinned certificate changed.
	certWarning string
}

// session is one connection to the server: see the package comment.
func (p *Poller) session(ctx context.Context, j *job, stop, lost <-chan struct{}) (res sessionResult, err error) {
	// The session's I/O runs under its own context: stopping lets the
	// current message finish, for StopGrace at most; a lost lock cuts at
	// once.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.SessionTimeout)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-lost:
			cancel()
			return
		case <-ctx.Done():
		case <-stop:
		case <-done:
			return
		}
		t := time.NewTimer(p.opts.StopGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-lost:
			cancel()
		case <-done:
		}
	}()
	stopping := func() bool {
		return ctx.Err() != nil || isClosed(stop) || isClosed(lost)
	}

	c, err := pop3.Dial(sctx, j.client)
	if err != nil {
		return res, err
	}
	defer c.Close()
	res.certWarning = p.checkPin(j, c.TLS())
	if err := c.Login(sctx, j.cfg.GetUsername(), j.cfg.GetPassword()); err != nil {
		return res, fmt.Errorf("login: %w", err)
	}
	count, _, err := c.Stat(sctx)
	if err != nil {
		return res, err
	}
	res.listed = count
	var list []pop3.MessageInfo
	if count > 0 {
		if list, err = c.List(sctx); err != nil {
			return res, err
		}
	}

	p.mu.Lock()
	hashReason := p.mbox.hashReason
	if count == 0 {
		// As the spool's content-hash UIDLs (see ForgetUIDLs below).
		p.mbox.hashes = nil
	}
	p.mu.Unlock()
	uids := map[int]string{}
	if count > 0 && hashReason == "" {
		hashReason, err = p.listUIDs(sctx, c, j.mailbox, list, uids)
		if err != nil {
			return res, err
		}
		if hashReason != "" {
			res.hashReason = hashReason
			clear(uids)
		}
	}
	listed := make(map[string]bool, len(uids))
	for _, u := range uids {
		listed[u] = true
	}
	if err := p.opts.Spool.ForgetUIDLs(j.mailbox, func(u string) bool {
		if strings.HasPrefix(u, hashPrefix) {
			return count > 0
		}
		return listed[u]
	}); err != nil {
		p.log.Warn("cannot forget UIDLs", "mailbox", j.mailbox, "err", err)
	}

	deleted := map[string]known{} // UIDs marked deleted, in UIDL mode
	meta := spool.Meta{
		Source:   ospreyv1.MailSource_MAIL_SOURCE_POP3,
		Envelope: &ospreyv1.Envelope{Mailbox: j.mailbox, Tls: c.TLS() != nil},
	}
	// dele marks message m deleted; sum is its content-hash key if this
	// session retrieved it.
	dele := func(m pop3.MessageInfo, sum string) error {
		if err := c.Dele(sctx, m.Number); err != nil {
			return err
		}
		if uid, ok := uids[m.Number]; ok {
			deleted[uid] = known{size: m.Size, sum: sum}
		}
		return nil
	}
	loop := func() error {
		for _, m := range list {
			if stopping() {
				return nil
			}
			uid, byUID := uids[m.Number]
			if byUID && p.opts.Spool.HasUIDL(j.mailbox, uid) {
				if err := dele(m, ""); err != nil {
					return err
				}
				continue
			}
			if m.Size > p.opts.MaxMessageSize {
				if res.tooLarge == nil {
					res.tooLarge = map[string]int64{}
				}
				name := uid
				if !byUID {
					name = "#" + strconv.Itoa(m.Number)
				}
				res.tooLarge[name] = m.Size
				continue
			}
			if res.retrieved > 0 && (res.retrieved >= p.opts.BatchMessages || res.bytes+m.Size > p.opts.BatchBytes) {
				res.more = true
				return nil
			}
			res.retrieved++
			res.bytes += m.Size
			key := uid
			var verify func(io.Reader) io.Reader
			if !byUID {
				sum, err := p.contentHash(sctx, c, m.Number)
				if err != nil {
					return err
				}
				key = hashPrefix + hex.EncodeToString(sum)
				// Spooled under this hash, or under its UID before
				// the hashes were in use.
				if p.opts.Spool.HasUIDL(j.mailbox, key) || p.knownHash(key) {
					if err := dele(m, ""); err != nil {
						return err
					}
					continue
				}
				verify = func(r io.Reader) io.Reader { return &verifyReader{r: r, h: sha256.New(), want: sum} }
			}
			r, err := c.Retr(sctx, m.Number)
			if err != nil {
				return err
			}
			var h hash.Hash
			if verify != nil {
				r = verify(r)
			} else {
				// The content hash of a message spooled under its UID,
				// should the UIDs become unusable later.
				h = sha256.New()
				r = io.TeeReader(r, h)
			}
			meta.UIDL = key
			if _, err := p.opts.Spool.Put(sctx, meta, r); err != nil {
				return fmt.Errorf("spool message %d: %w", m.Number, err)
			}
			res.spooled++
			var sumKey string
			if h != nil {
				sumKey = hashPrefix + hex.EncodeToString(h.Sum(nil))
			}
			p.mu.Lock()
			p.st.spooled++
			p.st.spooledBytes += uint64(m.Size)
			if sumKey != "" {
				p.addHashLocked(sumKey)
			}
			p.mu.Unlock()
			if err := dele(m, sumKey); err != nil {
				return err
			}
		}
		return nil
	}
	loopErr := loop()
	// QUIT commits the deletions of the messages that are spooled, also
	// after a failure, if the connection still works.
	qctx, qcancel := context.WithTimeout(sctx, 30*time.Second)
	defer qcancel()
	if qerr := c.Quit(qctx); qerr != nil {
		if loopErr == nil {
			return res, fmt.Errorf("quit (deletions not committed): %w", qerr)
		}
		return res, loopErr
	}
	res.deleted = len(deleted)
	if hashReason == "" {
		p.rememberDeleted(deleted)
	}
	return res, loopErr
}

// listUIDs reads the UIDL listing into uids; list is the LIST listing. It
// returns why the UIDs are unusable, if they are, rather than an error:
// the caller falls back to content hashes. An I/O error is an error.
func (p *Poller) listUIDs(ctx context.Context, c *pop3.Client, mailbox string, list []pop3.MessageInfo, uids map[int]string) (hashReason string, err error) {
	ul, err := c.UIDL(ctx)
	var perr *pop3.Error
	switch {
	case errors.As(err, &perr):
		return p.useHashes("the server does not support UIDL (" + perr.Error() + ")"), nil
	case errors.Is(err, pop3.ErrMalformed):
		p.useHashes("the server's UIDL listing is malformed (" + err.Error() + ")")
		return "", err // the connection is gone; the next session uses hashes
	case err != nil:
		return "", err
	}
	seen := make(map[string]int, len(ul))
	for _, m := range ul {
		if n, dup := seen[m.UID]; dup {
			return p.useHashes(fmt.Sprintf("the server lists unique id %q for messages %d and %d", m.UID, n, m.Number)), nil
		}
		seen[m.UID] = m.Number
		uids[m.Number] = m.UID
	}
	sizes := make(map[int]int64, len(list))
	for _, m := range list {
		sizes[m.Number] = m.Size
	}
	for _, m := range ul {
		same, err := p.sameAsDeleted(ctx, c, mailbox, m, sizes[m.Number])
		if err != nil {
			return "", err
		}
		if !same {
			return p.useHashes(fmt.Sprintf("the server reuses unique id %q of a deleted message", m.UID)), nil
		}
	}
	return "", nil
}

// sameAsDeleted reports whether message m (of the given size), if its UID
// is one that this poller deleted, is still the message it deleted: the
// server keeps messages whose deletion it confirmed. The message under a
// UID that the spool forgot since (a listing without it came in between),
// or whose size or content changed, is another one: the server reuses
// UIDs. The content is compared, with one more RETR, when this poller
// retrieved the message it deleted; when it deleted the message without
// retrieving it (the spool knew its UID, from before a restart), the
// spool's word and the size are all there is to go by.
func (p *Poller) sameAsDeleted(ctx context.Context, c *pop3.Client, mailbox string, m pop3.MessageInfo, size int64) (bool, error) {
	p.mu.Lock()
	d, ok := p.mbox.deleted[m.UID]
	p.mu.Unlock()
	switch {
	case !ok:
		return true, nil
	case !p.opts.Spool.HasUIDL(mailbox, m.UID) || d.size != size:
		return false, nil
	}
	if !d.kept && d.sum != "" {
		sum, err := p.contentHash(ctx, c, m.Number)
		if err != nil {
			return false, err
		}
		if hashPrefix+hex.EncodeToString(sum) != d.sum {
			return false, nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	d.kept = true
	p.mbox.deleted[m.UID] = d
	if p.mbox.keeps == "" {
		p.mbox.keeps = fmt.Sprintf("unique id %q is listed again, unchanged, after its deletion was confirmed", m.UID)
		p.log.Warn("the server keeps messages whose deletion it confirmed; they are deleted again in every session, not spooled again",
			"mailbox", mailbox, "uid", m.UID)
	}
	return true, nil
}

// useHashes switches the current mailbox to content hashes.
func (p *Poller) useHashes(reason string) string {
	p.mu.Lock()
	if p.mbox.hashReason == "" {
		p.mbox.hashReason = reason
		p.log.Warn("unique ids unusable; deduplicating by content hash", "mailbox", p.mbox.name, "reason", reason)
	}
	p.mu.Unlock()
	return reason
}

// rememberDeleted records UIDs whose deletion the server confirmed. What
// is known of a UID already remembered stays, unless this session
// retrieved its message anew.
func (p *Poller) rememberDeleted(uids map[string]known) {
	if len(uids) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mbox.deleted == nil || len(p.mbox.deleted)+len(uids) > maxDeletedMemory {
		p.mbox.deleted = make(map[string]known, len(uids))
	}
	for u, k := range uids {
		if _, ok := p.mbox.deleted[u]; ok && k.sum == "" {
			continue
		}
		p.mbox.deleted[u] = k
	}
}

// addHashLocked remembers the content-hash key of a message spooled under
// its UID; p.mu is held.
func (p *Poller) addHashLocked(key string) {
	if p.mbox.hashes == nil || len(p.mbox.hashes) >= maxDeletedMemory {
		p.mbox.hashes = make(map[string]bool)
	}
	p.mbox.hashes[key] = true
}

// knownHash reports whether key is the content-hash key of a message
// spooled under its UID.
func (p *Poller) knownHash(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mbox.hashes[key]
}

// contentHash retrieves message n and returns the SHA-256 of its bytes.
func (p *Poller) contentHash(ctx context.Context, c *pop3.Client, n int) ([]byte, error) {
	r, err := c.Retr(ctx, n)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// verifyReader fails at the end of a message whose hash is not want, so
// that the spool keeps nothing of it.
type verifyReader struct {
	r    io.Reader
	h    hash.Hash
	want []byte
}

func (v *verifyReader) Read(b []byte) (int, error) {
	n, err := v.r.Read(b)
	v.h.Write(b[:n])
	if errors.Is(err, io.EOF) && !bytes.Equal(v.h.Sum(nil), v.want) {
		return n, errors.New("message changed between two retrievals")
	}
	return n, err
}

// checkPin pins the fingerprint of a self-signed certificate and returns a
// warning when it changed.
func (p *Poller) checkPin(j *job, st *pop3.TLSState) string {
	if st == nil || st.Trust != pop3.TrustSelfSigned {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.mbox.pin
	p.mbox.pin = st.Fingerprint
	switch old {
	case "":
		p.log.Info("pinned the server's self-signed certificate", "mailbox", j.mailbox, "sha256", st.Fingerprint)
		return ""
	case st.Fingerprint:
		return ""
	}
	w := fmt.Sprintf("WARNING: pop3 %s: the server's self-signed certificate changed (SHA-256 %s, was %s); if the server did not renew it, someone may be intercepting the connection",
		j.mailbox, st.Fingerprint, old)
	p.log.Warn("the server's self-signed certificate changed", "mailbox", j.mailbox, "sha256", st.Fingerprint, "was", old)
	return w
}
