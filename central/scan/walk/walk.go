// Package walk reads a raw RFC 5322 message as a stream and visits every
// part a scanner should look at: text and HTML bodies, attachments, attached
// messages and the members of zip, gzip and tar archives, each with its
// declared and detected type, name, size and, for all but bodies, hashes of
// its decoded bytes.
//
// Design. The message is read once, front to back, and never held whole:
// each non-multipart part is decoded (and hashed) as it streams by, and its
// bytes are kept (in memory up to Limits.MemoryBytes, then in an unlinked
// temporary file) only while the engines look at it and while its own
// members are walked (archives need random access). So at any time the
// walk holds at most one part per nesting level. Every resource is bounded
// by Limits; hitting a bound is recorded in Message.Limits and the walk
// goes on where it safely can (a container too deep is kept whole but not
// opened, a member too large is skipped) or stops (too many parts, too many
// bytes in all). Malformed input never fails the walk: what can be read is
// visited and Message.Notes says what was wrong. Only an error reading the
// input itself, a cancelled context or an error from the visit function
// ends it with an error.
//
// The walk is parsed with github.com/emersion/go-message's textproto header
// reader, address and header-word decoding, and charset tables; multipart
// bodies are split by our own bounded, lenient reader (multipart.go).
package walk

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Kind says what a part is to the message.
type Kind int

const (
	// KindBody is a text or HTML body: an inline text/plain or text/html
	// part without a file name.
	KindBody Kind = iota + 1
	// KindAttachment is any other MIME part, attached messages included.
	KindAttachment
	// KindMember is a member of an archive.
	KindMember
)

func (k Kind) String() string {
	switch k {
	case KindBody:
		return "body"
	case KindAttachment:
		return "attachment"
	case KindMember:
		return "member"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Container kinds of a part whose content the walk opens.
const (
	ContainerMessage = "message"
	ContainerZip     = "zip"
	ContainerGzip    = "gzip"
	ContainerTar     = "tar"
)

// MaxAttachments bounds Message.Attachments (an alert must stay small);
// parts past it are still walked and visited, only not listed.
const MaxAttachments = 500

// headSize is how much of a part's start Part.Head keeps.
const headSize = 512

// Part is one body, attachment or archive member. Its content can be read
// with Open only during the visit.
type Part struct {
	// ID numbers MIME parts as IMAP does ("1", "1.2"); the message's own
	// body has "". Archive members have their container's ID.
	ID   string
	Kind Kind
	// Names is the part's place in the message: the names of its containers
	// (attachment names, archive member paths), then its own. A body's own
	// name is "text body" or "HTML body"; an unnamed attachment's is
	// "part <ID>".
	Names []string
	// Filename is the part's declared file name (for a member: its base
	// name), "" if none.
	Filename     string
	DeclaredType string
	DetectedType string
	// Size is the number of decoded bytes (for a skipped or encrypted
	// member: its declared size).
	Size int64
	// Hex digests of all the decoded bytes; empty when not known (a member
	// skipped at a bound, an encrypted member) and for a body.
	SHA256, SHA1, MD5 string
	// Depth is the nesting level: parts of the message are at 1.
	Depth int
	// InArchive is true for archive members and everything inside them.
	InArchive bool
	// Encrypted marks an archive member that cannot be read without a
	// password.
	Encrypted bool
	// Truncated means Open gives only a prefix of the content (or nothing).
	Truncated bool
	// Container is ContainerMessage, ContainerZip, ContainerGzip or
	// ContainerTar for a part whose content the walk recognised as one.
	Container string
	// Expanded means the walk visited all of this container's content, with
	// no bound hit and no fault; an engine that could scan the container
	// whole may then rely on its members having been visited.
	Expanded bool

	head    []byte
	content *blob
}

// Head returns up to the first 512 bytes of the content.
func (p *Part) Head() []byte { return p.head }

// Open returns a reader of the content kept (all of it unless Truncated).
// It is valid only during the visit.
func (p *Part) Open() *io.SectionReader {
	if p.content == nil {
		return io.NewSectionReader(emptyReaderAt{}, 0, 0)
	}
	return p.content.reader()
}

// Bytes returns the content when it is held in memory, for engines that can
// avoid a copy; ok is false when it is in a file.
func (p *Part) Bytes() (b []byte, ok bool) {
	if p.content == nil {
		return nil, true
	}
	return p.content.bytes()
}

// Stored is the number of content bytes Open gives.
func (p *Part) Stored() int64 {
	if p.content == nil {
		return 0
	}
	return p.content.size
}

// Path names the part through its containers, "report.zip/inner/a.exe".
func (p *Part) Path() string { return strings.Join(p.Names, "/") }

// Where names the part for people: "text body",
// "attachment invoice.zip > a.exe".
func (p *Part) Where() string {
	if p.Kind == KindBody && len(p.Names) == 1 {
		return p.Names[0]
	}
	return "attachment " + strings.Join(p.Names, " > ")
}

// Attachment describes the part for an alert.
func (p *Part) Attachment() *ospreyv1.Attachment {
	return &ospreyv1.Attachment{
		Path:         p.Path(),
		Filename:     p.Filename,
		DeclaredType: p.DeclaredType,
		DetectedType: p.DetectedType,
		Size:         p.Size,
		Sha256:       p.SHA256,
		Sha1:         p.SHA1,
		Md5:          p.MD5,
	}
}

type emptyReaderAt struct{}

func (emptyReaderAt) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }

// Message is what the walk learnt of the whole message.
type Message struct {
	Headers *ospreyv1.HeaderSummary
	// From is the bare address of the header From, lower-case.
	From string
	// Text and HTML are the first text and HTML bodies, decoded to UTF-8,
	// at most Limits.MaxBodyBytes each.
	Text, HTML string
	// URLs are the distinct URLs of all bodies (attached messages' too),
	// normalized by NormalizeURL, in order of appearance.
	URLs []string
	// Attachments lists every part but bodies, archive members included, in
	// message order (a container before its members).
	Attachments []*ospreyv1.Attachment
	// Parts counts the entities and members visited.
	Parts int
	// Size and SHA256 are those of the raw message as read.
	Size   int64
	SHA256 string
	// Limits names each bound that was hit (LimitDepth...), once.
	Limits []string
	// Notes say, for people, which bounds were hit where and what was
	// malformed.
	Notes []string
}

// Options configure a walk.
type Options struct {
	Limits Limits
	// TempDir is where large parts spill; "" means os.TempDir.
	TempDir string
}

// VisitFunc is called for every body, attachment and member, after the
// members of a container. An error ends the walk and is returned by Walk.
type VisitFunc func(p *Part) error

// Walk reads the message from r to its end and calls visit for each part.
// It returns an error only when reading r fails, ctx ends, or visit fails;
// malformed MIME is noted in Message.Notes.
func Walk(ctx context.Context, r io.Reader, opts Options, visit VisitFunc) (*Message, error) {
	if err := opts.Limits.Validate(); err != nil {
		return nil, err
	}
	w := &walker{
		ctx:     ctx,
		lim:     opts.Limits.withDefaults(),
		dir:     opts.TempDir,
		visit:   visit,
		msg:     &Message{},
		src:     &srcReader{ctx: ctx, r: r, h: sha256.New()},
		urlSet:  map[string]struct{}{},
		rawURLs: map[string]struct{}{},
		sha256:  sha256.New(),
		sha1:    sha1.New(),
		md5:     md5.New(),
	}
	w.buf = copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(w.buf)
	w.countPart()
	w.walkEntity(w.src, 0, nil, "", true)
	if w.err == nil && w.src.err == nil {
		// The rest of the message after a stop, or after the last part:
		// read for the message's size and digest.
		_, _ = io.CopyBuffer(io.Discard, w.src, *w.buf)
	}
	if w.src.err != nil {
		return nil, w.src.err
	}
	if w.err != nil {
		return nil, w.err
	}
	w.msg.Size = w.src.n
	w.msg.SHA256 = hex.EncodeToString(w.src.h.Sum(nil))
	if w.msg.Headers == nil {
		w.msg.Headers = &ospreyv1.HeaderSummary{}
	}
	return w.msg, nil
}

// srcReader reads the message, digests it, and turns a cancelled context
// or a read error into the walk's fatal error.
type srcReader struct {
	ctx context.Context
	r   io.Reader
	h   hash.Hash
	n   int64
	err error
}

func (s *srcReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if err := s.ctx.Err(); err != nil {
		s.err = err
		return 0, err
	}
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) {
		s.err = fmt.Errorf("read message: %w", err)
		return n, s.err
	}
	return n, err
}

type walker struct {
	ctx   context.Context
	lim   Limits
	dir   string
	visit VisitFunc
	msg   *Message
	src   *srcReader

	total      int64 // content bytes kept, all parts
	stopped    bool  // a global bound was hit
	incomplete int   // bounds hit and faults, to tell whether a container was expanded whole
	err        error // from visit, or the context
	urlSet     map[string]struct{}
	rawURLs    map[string]struct{} // the URLs as written, already added or refused
	urlsFull   bool
	bombed     bool // an archive broke the compression ratio: expand no more archives

	sha256, sha1, md5 hash.Hash
	buf               *[]byte
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// done reports whether the walk must unwind.
func (w *walker) done() bool {
	if w.err == nil && w.src.err == nil {
		if err := w.ctx.Err(); err != nil {
			w.err = err
		}
	}
	return w.stopped || w.err != nil || w.src.err != nil
}

// fatal reports whether the walk must end at once (unlike a stop at a
// bound, after which the current part is still visited).
func (w *walker) fatal() bool {
	w.done()
	return w.err != nil || w.src.err != nil
}

func (w *walker) note(format string, args ...any) {
	if len(w.msg.Notes) >= 100 {
		return
	}
	w.msg.Notes = append(w.msg.Notes, fmt.Sprintf(format, args...))
}

// limit records a bound hit at where.
func (w *walker) limit(name, where string) {
	w.incomplete++
	found := false
	for _, l := range w.msg.Limits {
		if l == name {
			found = true
		}
	}
	if !found {
		w.msg.Limits = append(w.msg.Limits, name)
	}
	w.note("limit %s hit at %s", name, where)
}

// countPart counts one more entity or member; past MaxParts it stops the
// walk.
func (w *walker) countPart() bool {
	if w.msg.Parts >= w.lim.MaxParts {
		if !w.stopped {
			w.limit(LimitParts, fmt.Sprintf("part %d", w.msg.Parts+1))
			w.stopped = true
		}
		return false
	}
	w.msg.Parts++
	return true
}

func childID(parent string, i int) string {
	if parent == "" {
		return strconv.Itoa(i)
	}
	return parent + "." + strconv.Itoa(i)
}

func where(names []string, id string) string {
	if len(names) == 0 {
		if id == "" {
			return "message"
		}
		return "part " + id
	}
	if id == "" {
		return strings.Join(names, " > ")
	}
	return strings.Join(names, " > ") + " (part " + id + ")"
}

// walkEntity walks one entity (a message or a MIME part): its header, then
// its body.
func (w *walker) walkEntity(r io.Reader, depth int, names []string, id string, top bool) {
	if w.done() {
		return
	}
	h, body, hl, err := w.readHeader(r)
	if err != nil {
		if w.done() {
			return
		}
		if hl.tripped {
			w.limit(LimitHeaderBytes, where(names, id))
			return
		}
		w.note("malformed header in %s: %v", where(names, id), clipErr(err))
	}
	if top {
		s, from, notes := summarize(h)
		w.msg.Headers, w.msg.From = s, from
		for _, n := range notes {
			w.note("%s", n)
		}
	}
	mt, params, bad := contentType(&h)
	if bad {
		w.note("malformed Content-Type in %s", where(names, id))
	}
	if strings.HasPrefix(mt, "multipart/") {
		if b := params["boundary"]; b != "" {
			w.walkMultipart(body, b, depth, names, id)
			return
		}
		w.note("multipart without boundary in %s: read as text", where(names, id))
		mt = "text/plain"
	}
	name, attachment := filename(&h, params)
	dec, st := decodeTransfer(h.Get("Content-Transfer-Encoding"), body)
	m := leafMeta{
		kind:     KindAttachment,
		id:       id,
		filename: name,
		declared: mt,
		charset:  params["charset"],
		depth:    depth,
		names:    names,
	}
	if !attachment && name == "" && (mt == "text/plain" || mt == "text/html") {
		m.kind = KindBody
	}
	// A body is not a file: no rule matches its digests and no alert lists
	// them, so it is not hashed (for a message mostly of text, the three
	// digests were a tenth of the scan's CPU).
	s := w.store(dec, w.partBudget(), true, m.kind != KindBody)
	w.mimeBounds(s, names, id)
	for _, n := range st.notes {
		w.note("%s in %s", n, where(names, id))
	}
	if s.readErr != nil && !w.done() {
		w.note("decode %s: %v", where(names, id), clipErr(s.readErr))
	}
	w.finishLeaf(s, m)
}

func (w *walker) walkMultipart(body io.Reader, boundary string, depth int, names []string, id string) {
	if depth+1 > w.lim.MaxDepth {
		w.limit(LimitDepth, where(names, id))
		return
	}
	mr := newMultipartReader(body, boundary, 4096)
	pre := w.store(mr.preamble(), w.partBudget(), true, true)
	if !mr.sawDelimiter {
		w.mimeBounds(pre, names, id)
	}
	if w.done() {
		pre.close(w)
		return
	}
	if !mr.sawDelimiter {
		// No delimiter at all: the whole body was "preamble". Clients show
		// something for such a message; scan it as text.
		w.note("multipart without delimiters in %s: read as text", where(names, id))
		w.finishLeaf(pre, leafMeta{kind: KindBody, id: id, declared: "text/plain", depth: depth, names: names})
		return
	}
	w.total -= pre.b.size // a preamble is not content
	pre.close(w)
	for i := 1; ; i++ {
		pr, err := mr.nextPart()
		if err == io.EOF {
			break
		}
		if err != nil || w.done() {
			return
		}
		if !w.countPart() {
			return
		}
		w.walkEntity(pr, depth+1, names, childID(id, i), false)
		if w.done() {
			return
		}
	}
	if mr.unterminated {
		w.note("multipart without close delimiter in %s", where(names, id))
	}
}

// mimeBounds records the bound a MIME part's content hit: past
// MaxTotalBytes the walk stops; past MaxPartBytes only this part is cut.
func (w *walker) mimeBounds(s *stored, names []string, id string) {
	switch {
	case w.total >= w.lim.MaxTotalBytes && s.size > s.b.size:
		w.limit(LimitTotalBytes, where(names, id))
		w.stopped = true
	case s.truncated:
		w.limit(LimitPartBytes, where(names, id))
	}
}

// leafMeta is what is known of a part before its content is looked at.
type leafMeta struct {
	kind      Kind
	id        string
	filename  string
	declared  string
	charset   string
	depth     int
	names     []string // the containers' names
	memberOf  string   // for members: the member's path in its archive
	inArchive bool
	encrypted bool
}

// stored is a part's content as read.
type stored struct {
	b         *blob
	size      int64
	truncated bool
	hashed    bool // the digests cover every byte
	sha256    string
	sha1      string
	md5       string
	head      []byte
	readErr   error
}

func (s *stored) close(w *walker) {
	if s.b != nil {
		s.b.Close()
		s.b = nil
	}
}

// partBudget is the most a part may keep: MaxPartBytes, and what is left of
// MaxTotalBytes.
func (w *walker) partBudget() int64 {
	return min(w.lim.MaxPartBytes, w.lim.MaxTotalBytes-w.total)
}

// store reads r to its end (readAll) or until max bytes are kept, keeping
// at most max bytes. With digest it computes the digests, which with
// readAll cover all bytes read, past max too, and otherwise are known only
// when r ended within max.
func (w *walker) store(r io.Reader, max int64, readAll, digest bool) *stored {
	s := &stored{b: newBlob(w.lim.MemoryBytes, w.dir)}
	w.sha256.Reset()
	w.sha1.Reset()
	w.md5.Reset()
	buf := *w.buf
	for {
		if w.fatal() {
			break
		}
		n, err := r.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if digest && (!s.truncated || readAll) {
				w.sha256.Write(chunk)
				w.sha1.Write(chunk)
				w.md5.Write(chunk)
			}
			if keep := max - s.b.size; keep > 0 {
				k := min(int64(n), keep)
				if _, werr := s.b.Write(chunk[:k]); werr != nil {
					s.readErr = werr
					s.truncated = true
					break
				}
				w.total += k
			}
			if len(s.head) < headSize {
				s.head = append(s.head, chunk[:min(n, headSize-len(s.head))]...)
			}
			s.size += int64(n)
			if s.size > max {
				s.truncated = true
				if !readAll {
					break
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.readErr = err
			}
			break
		}
	}
	s.hashed = digest && s.readErr == nil && (!s.truncated || readAll)
	if s.hashed {
		s.sha256 = hex.EncodeToString(w.sha256.Sum(nil))
		s.sha1 = hex.EncodeToString(w.sha1.Sum(nil))
		s.md5 = hex.EncodeToString(w.md5.Sum(nil))
	}
	return s
}

// finishLeaf classifies a stored part, walks into it if it is a container,
// visits it, and frees its content.
func (w *walker) finishLeaf(s *stored, m leafMeta) {
	defer s.close(w)
	p := &Part{
		ID:           m.id,
		Kind:         m.kind,
		Filename:     m.filename,
		DeclaredType: m.declared,
		Size:         s.size,
		Depth:        max(m.depth, 1),
		InArchive:    m.inArchive,
		Encrypted:    m.encrypted,
		Truncated:    s.truncated,
		head:         s.head,
		content:      s.b,
	}
	if len(s.head) > 0 {
		p.DetectedType = DetectType(s.head)
	}
	if s.hashed {
		p.SHA256, p.SHA1, p.MD5 = s.sha256, s.sha1, s.md5
	}
	own := m.filename
	switch {
	case m.memberOf != "":
		own = m.memberOf
	case m.kind == KindBody && m.declared == "text/html":
		own = "HTML body"
	case m.kind == KindBody:
		own = "text body"
	case own == "":
		own = "part " + orOne(m.id)
	}
	p.Names = append(append(make([]string, 0, len(m.names)+1), m.names...), own)
	idx := -1
	if m.kind != KindBody && len(w.msg.Attachments) < MaxAttachments {
		idx = len(w.msg.Attachments)
		w.msg.Attachments = append(w.msg.Attachments, nil)
	}
	switch {
	case m.kind == KindBody:
		w.bodyText(p, m.charset)
	case !s.truncated && !w.stopped:
		w.expand(p, m)
	}
	if idx >= 0 {
		w.msg.Attachments[idx] = p.Attachment()
	}
	if w.err != nil || w.src.err != nil {
		return
	}
	if err := w.visit(p); err != nil {
		w.err = err
	}
}

func orOne(id string) string {
	if id == "" {
		return "1"
	}
	return id
}

// expand walks into a container part.
func (w *walker) expand(p *Part, m leafMeta) {
	kind := ""
	switch {
	case m.declared == "message/rfc822" || m.declared == "message/global" ||
		m.inArchive && strings.EqualFold(path.Ext(p.Filename), ".eml"):
		kind = ContainerMessage
	case p.DetectedType == TypeZip:
		kind = ContainerZip
	case p.DetectedType == TypeGzip:
		kind = ContainerGzip
	case p.DetectedType == TypeTar:
		kind = ContainerTar
	default:
		return
	}
	p.Container = kind
	if w.bombed && kind != ContainerMessage {
		w.incomplete++
		return
	}
	if m.depth+1 > w.lim.MaxDepth {
		w.limit(LimitDepth, where(p.Names, m.id))
		return
	}
	before := w.incomplete
	switch kind {
	case ContainerMessage:
		if !w.countPart() {
			return
		}
		w.walkEntity(p.Open(), m.depth+1, p.Names, m.id, false)
	case ContainerZip:
		w.expandZip(p, m)
	case ContainerGzip:
		w.expandGzip(p, m)
	case ContainerTar:
		w.expandTar(p, m)
	}
	p.Expanded = w.incomplete == before && !w.done()
}

// bodyText decodes a body's charset, keeps the first text and HTML bodies,
// and collects the URLs.
func (w *walker) bodyText(p *Part, cs string) {
	var r io.Reader = io.LimitReader(p.Open(), int64(w.lim.MaxBodyBytes))
	if cs != "" && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "us-ascii") {
		cr, err := charset.Reader(cs, r)
		if err != nil {
			w.note("unknown charset %q in %s: read as UTF-8", clip(cs), p.Where())
		} else {
			r = cr
		}
	}
	var sb strings.Builder
	sb.Grow(int(min(p.Stored(), int64(w.lim.MaxBodyBytes))))
	// The walk's copy buffer is free: the part has been stored.
	if _, err := io.CopyBuffer(&sb, r, *w.buf); err != nil {
		w.note("decode charset in %s: %v", p.Where(), clipErr(err))
	}
	if p.Stored() > int64(w.lim.MaxBodyBytes) {
		w.note("only the first %d bytes of %s were searched for URLs", w.lim.MaxBodyBytes, p.Where())
	}
	text := sb.String()
	if !utf8.ValidString(text) { // ToValidUTF8 is slow even on valid text
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	if p.DeclaredType == "text/html" {
		if w.msg.HTML == "" {
			w.msg.HTML = text
		}
		urlsInHTML(strings.NewReader(text), w.addURL)
		return
	}
	if w.msg.Text == "" {
		w.msg.Text = text
	}
	urlsInText([]byte(text), w.addURL)
}

func (w *walker) addURL(raw string) {
	if w.urlsFull {
		return
	}
	// A body tends to repeat its links: normalise each spelling once.
	if _, seen := w.rawURLs[raw]; seen {
		return
	}
	if len(w.rawURLs) < 4*w.lim.MaxURLs {
		w.rawURLs[raw] = struct{}{}
	}
	u, ok := NormalizeURL(raw)
	if !ok {
		return
	}
	if _, dup := w.urlSet[u]; dup {
		return
	}
	if len(w.msg.URLs) >= w.lim.MaxURLs {
		w.urlsFull = true
		w.limit(LimitURLs, "bodies")
		return
	}
	w.urlSet[u] = struct{}{}
	w.msg.URLs = append(w.msg.URLs, u)
}

func clipErr(err error) string {
	return clip(strings.ToValidUTF8(err.Error(), "?"))
}
