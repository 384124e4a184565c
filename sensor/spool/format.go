package spool

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// The framing of a record; see the package comment.
const (
	magic       = "OSPS"
	footerMagic = "OSPE"
	version     = 1
	prefixLen   = 4 + 1 + 4 // magic, version, header length
	footerLen   = 8 + 4 + 4 // body size, CRC-32C, footer magic
	// maxHeader bounds a header; an envelope with the SMTP server's
	// recipient limit is a few kilobytes.
	maxHeader = 1 << 20
	// maxSizeDigits bounds the bytes that the size adds to a header.
	maxSizeDigits = len(`"size":,`) + 19
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is the JSON header of a record.
type header struct {
	ID string `json:"id"`
	// Source is the name of the ospreyv1.MailSource value.
	Source string `json:"source"`
	UIDL   string `json:"uidl,omitempty"`
	// Envelope is the ospreyv1.Envelope in protojson.
	Envelope json.RawMessage `json:"envelope,omitempty"`
	// Size is the number of bytes of the body. A record in a segment has
	// it, so that a scan can step over the body; a spilled message, whose
	// header is written before its body is read, has it only in its footer.
	Size *int64 `json:"size,omitempty"`
}

// envelopeJSON is an ospreyv1.Envelope in the protojson form, encoded with
// encoding/json: the same bytes protojson would write, read back with
// protojson, for a fifth of the CPU (it is on the path of every Put).
// TestEnvelopeJSONMatchesProtojson holds the two together.
type envelopeJSON struct {
	MailFrom   string    `json:"mailFrom,omitempty"`
	RcptTo     []string  `json:"rcptTo,omitempty"`
	ClientAddr string    `json:"clientAddr,omitempty"`
	Helo       string    `json:"helo,omitempty"`
	TLS        bool      `json:"tls,omitempty"`
	ReceivedAt string    `json:"receivedAt,omitempty"`
	Mailbox    string    `json:"mailbox,omitempty"`
	TLSVersion string    `json:"tlsVersion,omitempty"`
	TLSCipher  string    `json:"tlsCipher,omitempty"`
	Direction  string    `json:"direction,omitempty"` // the enum's name; omitted when UNSPECIFIED
	Auth       *authJSON `json:"auth,omitempty"`
	AuthUser   string    `json:"authUser,omitempty"`
}

// authJSON is an ospreyv1.AuthResults in the protojson form.
type authJSON struct {
	SPF         string     `json:"spf,omitempty"`
	SPFDomain   string     `json:"spfDomain,omitempty"`
	DKIM        []dkimJSON `json:"dkim,omitempty"`
	DMARC       string     `json:"dmarc,omitempty"`
	DMARCPolicy string     `json:"dmarcPolicy,omitempty"`
	FromDomain  string     `json:"fromDomain,omitempty"`
}

type dkimJSON struct {
	Result   string `json:"result,omitempty"`
	Domain   string `json:"domain,omitempty"`
	Selector string `json:"selector,omitempty"`
}

func newEnvelopeJSON(e *ospreyv1.Envelope) envelopeJSON {
	j := envelopeJSON{MailFrom: e.GetMailFrom(), RcptTo: e.GetRcptTo(), ClientAddr: e.GetClientAddr(),
		Helo: e.GetHelo(), TLS: e.GetTls(), Mailbox: e.GetMailbox(), TLSVersion: e.GetTlsVersion(), TLSCipher: e.GetTlsCipher(),
		AuthUser: e.GetAuthUser()}
	if ts := e.GetReceivedAt(); ts != nil {
		j.ReceivedAt = timestampJSON(ts.GetSeconds(), ts.GetNanos())
	}
	if d := e.GetDirection(); d != ospreyv1.MailDirection_MAIL_DIRECTION_UNSPECIFIED {
		j.Direction = d.String()
	}
	if a := e.GetAuth(); a != nil {
		j.Auth = &authJSON{SPF: a.GetSpf(), SPFDomain: a.GetSpfDomain(), DMARC: a.GetDmarc(), DMARCPolicy: a.GetDmarcPolicy(), FromDomain: a.GetFromDomain()}
		for _, d := range a.GetDkim() {
			j.Auth.DKIM = append(j.Auth.DKIM, dkimJSON{Result: d.GetResult(), Domain: d.GetDomain(), Selector: d.GetSelector()})
		}
	}
	return j
}

// timestampJSON formats a google.protobuf.Timestamp as protojson does: UTC,
// with 0, 3, 6 or 9 fractional digits.
func timestampJSON(sec int64, nanos int32) string {
	t := time.Unix(sec, int64(nanos)).UTC()
	switch {
	case nanos == 0:
		return t.Format("2006-01-02T15:04:05Z")
	case nanos%1e6 == 0:
		return t.Format("2006-01-02T15:04:05.000Z")
	case nanos%1e3 == 0:
		return t.Format("2006-01-02T15:04:05.000000Z")
	default:
		return t.Format("2006-01-02T15:04:05.000000000Z")
	}
}

// encodeHeader returns the prefix and header of a record of message id
// without its size, as a spilled message has it.
func encodeHeader(id string, m Meta) ([]byte, error) {
	h := header{ID: id, Source: m.Source.String(), UIDL: m.UIDL}
	if m.Envelope != nil {
		env, err := json.Marshal(newEnvelopeJSON(m.Envelope))
		if err != nil {
			return nil, fmt.Errorf("encode envelope: %w", err)
		}
		h.Envelope = env
	}
	js, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	if len(js)+maxSizeDigits > maxHeader {
		return nil, fmt.Errorf("header of %d bytes exceeds %d", len(js), maxHeader)
	}
	b := make([]byte, prefixLen, prefixLen+len(js))
	copy(b, magic)
	b[4] = version
	binary.BigEndian.PutUint32(b[5:], uint32(len(js)))
	return append(b, js...), nil
}

// padHeader returns a prefix and header from encodeHeader grown to n bytes
// with spaces after the JSON (which a JSON reader skips), its length field
// counting them; n is at least len(hdr).
func padHeader(hdr []byte, n int) []byte {
	out := make([]byte, n)
	copy(out, hdr)
	for i := len(hdr); i < n; i++ {
		out[i] = ' '
	}
	binary.BigEndian.PutUint32(out[5:], uint32(n-prefixLen))
	return out
}

// appendRecord appends to dst the record of a body of size bytes whose
// header without size (from encodeHeader) is hdr: the header gains
// "size" as its first member, then come the body and the footer.
func appendRecord(dst, hdr, body []byte, crc uint32) []byte {
	js := hdr[prefixLen:]
	size := strconv.AppendInt(nil, int64(len(body)), 10)
	n := len(js) + len(`"size":,`) + len(size)
	dst = append(dst, magic...)
	dst = append(dst, version)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, `{"size":`...)
	dst = append(dst, size...)
	dst = append(dst, ',')
	dst = append(dst, js[1:]...) // js is an object with at least "id"
	dst = append(dst, body...)
	return appendFooter(dst, int64(len(body)), crc)
}

// appendFooter appends the footer of a body of size bytes with checksum crc.
func appendFooter(dst []byte, size int64, crc uint32) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(size))
	dst = binary.BigEndian.AppendUint32(dst, crc)
	return append(dst, footerMagic...)
}

// record is what a reader learns of a record without reading its body.
type record struct {
	id     string
	hdr    header
	hdrEnd int64 // offset of the body from the start of the record
	size   int64 // bytes of the body
	crc    uint32
	len    int64 // bytes of the whole record
}

// key is the UIDL key of the record's message. Only a record with a UIDL
// has its envelope decoded.
func (r *record) key() (uidlKey, error) {
	if r.hdr.UIDL == "" {
		return uidlKey{}, nil
	}
	var env struct {
		Mailbox string `json:"mailbox"`
	}
	if err := json.Unmarshal(r.hdr.Envelope, &env); err != nil {
		return uidlKey{}, fmt.Errorf("decode envelope: %w", err)
	}
	if env.Mailbox == "" {
		return uidlKey{}, errors.New("uidl without mailbox")
	}
	return uidlKey{mailbox: env.Mailbox, uidl: r.hdr.UIDL}, nil
}

// errFraming is a record whose framing is broken: its prefix, header or
// footer, or its length; no later record of the file can be found.
var errFraming = errors.New("broken record framing")

// framingIfShort marks a read that hit the end of the file as a framing
// error; other read errors are I/O errors.
func framingIfShort(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", errFraming, err)
	}
	return err
}

// readPrefix reads a record's prefix and header from r, which has left
// bytes from the start of the record to the end of its file.
func readPrefix(r io.Reader, left int64) (record, error) {
	var prefix [prefixLen]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return record{}, fmt.Errorf("read header: %w", framingIfShort(err))
	}
	if string(prefix[:4]) != magic {
		return record{}, fmt.Errorf("no record: %w", errFraming)
	}
	if prefix[4] != version {
		return record{}, fmt.Errorf("record version %d, want %d: %w", prefix[4], version, errFraming)
	}
	n := binary.BigEndian.Uint32(prefix[5:])
	if n > maxHeader || int64(n) > left-prefixLen-footerLen {
		return record{}, fmt.Errorf("header length %d with %d bytes left: %w", n, left, errFraming)
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(r, js); err != nil {
		return record{}, fmt.Errorf("read header: %w", framingIfShort(err))
	}
	rec := record{hdrEnd: prefixLen + int64(n)}
	if err := json.Unmarshal(js, &rec.hdr); err != nil {
		return record{}, fmt.Errorf("decode header: %w: %w", errFraming, err)
	}
	if !validID(rec.hdr.ID) {
		return record{}, fmt.Errorf("header has a bad id %q: %w", rec.hdr.ID, errFraming)
	}
	rec.id = rec.hdr.ID
	return rec, nil
}

// checkFooter checks a footer against a body of size bytes and returns
// the CRC it holds.
func checkFooter(footer []byte, size int64) (uint32, error) {
	if string(footer[12:]) != footerMagic {
		return 0, fmt.Errorf("bad footer: %w", errFraming)
	}
	if got := binary.BigEndian.Uint64(footer[:8]); got != uint64(size) {
		return 0, fmt.Errorf("footer says %d bytes of message, header %d: %w", got, size, errFraming)
	}
	return binary.BigEndian.Uint32(footer[8:]), nil
}

// scanRecord reads the record at the start of br, which has left bytes up
// to the end of its segment, body included, and returns it with the CRC of
// the body it read. An error matching errFraming means that the record,
// and the rest of the segment, cannot be read.
func scanRecord(br *bufio.Reader, left int64) (rec record, sum uint32, err error) {
	rec, err = readPrefix(br, left)
	if err != nil {
		return record{}, 0, err
	}
	if rec.hdr.Size == nil || *rec.hdr.Size < 0 || *rec.hdr.Size > left-rec.hdrEnd-footerLen {
		return record{}, 0, fmt.Errorf("record %s: no size, or one past the end: %w", rec.id, errFraming)
	}
	rec.size = *rec.hdr.Size
	rec.len = rec.hdrEnd + rec.size + footerLen
	for n := rec.size; n > 0; {
		b, err := br.Peek(int(min(n, int64(br.Size()))))
		if err != nil {
			return record{}, 0, fmt.Errorf("read record %s: %w", rec.id, framingIfShort(err))
		}
		sum = crc32.Update(sum, castagnoli, b)
		br.Discard(len(b))
		n -= int64(len(b))
	}
	var footer [footerLen]byte
	if _, err := io.ReadFull(br, footer[:]); err != nil {
		return record{}, 0, fmt.Errorf("read footer of %s: %w", rec.id, framingIfShort(err))
	}
	if rec.crc, err = checkFooter(footer[:], rec.size); err != nil {
		return record{}, 0, fmt.Errorf("record %s: %w", rec.id, err)
	}
	return rec, sum, nil
}

// readFile reads the header and footer of the file of a spilled message,
// which holds one record, and checks that they frame the file exactly.
// A missing file is an error that matches fs.ErrNotExist.
func readFile(path string) (record, error) {
	f, err := os.Open(path)
	if err != nil {
		return record{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return record{}, err
	}
	rec, err := readPrefix(f, info.Size())
	if err != nil {
		return record{}, err
	}
	rec.len = info.Size()
	var footer [footerLen]byte
	if _, err := f.ReadAt(footer[:], rec.len-footerLen); err != nil {
		return record{}, fmt.Errorf("read footer: %w", err)
	}
	rec.size = rec.len - rec.hdrEnd - footerLen
	if rec.crc, err = checkFooter(footer[:], rec.size); err != nil {
		return record{}, err
	}
	return rec, nil
}

// readHeader reads the header of the record at off in the file at path.
func readHeader(path string, off, left int64) (record, error) {
	f, err := os.Open(path)
	if err != nil {
		return record{}, err
	}
	defer f.Close()
	return readPrefix(bufio.NewReaderSize(io.NewSectionReader(f, off, left), 4096), left)
}

// meta decodes the metadata of a header.
func (h *header) meta() (Meta, error) {
	// An unknown source name, from a newer version, reads as unspecified.
	m := Meta{Source: ospreyv1.MailSource(ospreyv1.MailSource_value[h.Source]), UIDL: h.UIDL}
	if len(h.Envelope) > 0 {
		m.Envelope = new(ospreyv1.Envelope)
		if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(h.Envelope, m.Envelope); err != nil {
			return Meta{}, fmt.Errorf("decode envelope: %w", err)
		}
	}
	return m, nil
}

// Open returns a reader of the message's bytes. Its Read returns an error
// matching ErrCorrupt at the end when the bytes do not match their
// checksum, and Open one matching ErrNotFound when the message was
// removed.
func (m *Message) Open() (io.ReadCloser, error) {
	if m.s == nil {
		return nil, fmt.Errorf("open %s: %w", m.ID, ErrNotFound)
	}
	// Compaction may move the record between the lookup and the open: it
	// deletes the old file only after the index points to the new one.
	for range 3 {
		e, ok := m.s.lookup(m.ID)
		if !ok {
			return nil, fmt.Errorf("open %s: %w", m.ID, ErrNotFound)
		}
		f, err := os.Open(m.s.filePath(e.seg))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", m.ID, err)
		}
		r := io.NewSectionReader(f, e.off+e.hdrEnd, e.bodySize())
		return &bodyReader{f: f, r: r, id: m.ID, want: e.crc}, nil
	}
	return nil, fmt.Errorf("open %s: %w", m.ID, ErrNotFound)
}

// bodyReader reads a message's bytes and checks their CRC at the end.
type bodyReader struct {
	f    *os.File
	r    *io.SectionReader
	id   string
	crc  uint32
	want uint32
	n    int64
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.crc = crc32.Update(b.crc, castagnoli, p[:n])
	b.n += int64(n)
	if err == io.EOF {
		if b.n != b.r.Size() {
			return n, fmt.Errorf("message %s has %d of %d bytes: %w", b.id, b.n, b.r.Size(), ErrCorrupt)
		}
		if b.crc != b.want {
			return n, fmt.Errorf("message %s: checksum %08x, want %08x: %w", b.id, b.crc, b.want, ErrCorrupt)
		}
	}
	return n, err
}

func (b *bodyReader) Close() error {
	return b.f.Close()
}
