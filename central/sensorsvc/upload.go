package sensorsvc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/sizeunit"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Scanner gives an uploaded message its verdict and, when it found
// something, an alert. The record and the alert are stored in one
// transaction, and the sensor acknowledged, only after Scan returned; an
// error makes the upload fail (Unavailable), and the sensor tries again.
type Scanner interface {
	Scan(ctx context.Context, rec *ospreyv1.MessageRecord, body Body) (Outcome, error)
}

// Outcome is what a scan found.
type Outcome struct {
	Verdict string
	// Headers summarises the message's header, for its record.
	Headers *ospreyv1.HeaderSummary
	// Alert is nil when there is nothing to report. The service fills in
	// its id, tenant, sensor, message id and time.
	Alert *ospreyv1.Alert
	// Disposition is what a gateway does with the message; nil for a
	// message no gateway relays.
	Disposition *ospreyv1.Disposition
	// Spam is the spam engine's opinion, for the record; nil when none
	// was asked or it did not answer.
	Spam *ospreyv1.SpamResult
}

// ScannerFunc adapts a function to Scanner.
type ScannerFunc func(ctx context.Context, rec *ospreyv1.MessageRecord, body Body) (Outcome, error)

// Scan calls f.
func (f ScannerFunc) Scan(ctx context.Context, rec *ospreyv1.MessageRecord, body Body) (Outcome, error) {
	return f(ctx, rec, body)
}

// Body is an uploaded message's raw bytes, readable as often as needed.
type Body interface {
	Open() (io.ReadCloser, error)
	Size() int64
}

// memoryLimit is the size up to which an upload is kept in memory; larger
// messages spill to a temporary file, so a node never holds more than this
// per upload in RAM.
const memoryLimit = 8 << 20

// Upload takes one spooled message from a sensor, has it scanned, records the
// verdict, and only then answers. A message id recorded before is answered
// from its record, marked duplicate, with no second record or alert: when
// the sensor says the upload may be a retry (UploadHeader.may_be_retry),
// before its body is received and without a second scan; otherwise (the
// first attempt of a message, where a duplicate is rare) RecordScan finds
// it when it stores the record.
func (s *Service) Upload(stream ospreyv1.SensorService_UploadServer) error {
	ctx := stream.Context()
	id, _, err := identity(ctx)
	if err != nil {
		return err
	}
	// The node's hub keeps approved sensors' records current: no etcd read
	// per upload.
	sn, err := s.configs.Sensor(ctx, id.Tenant, id.SensorID)
	if sn, err = admit(id, sn, err); err != nil {
		return err
	}
	if sn.GetState() != ospreyv1.SensorState_SENSOR_STATE_APPROVED {
		return status.Errorf(codes.FailedPrecondition, "sensor %s is not approved", id.SensorID)
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return status.Error(codes.InvalidArgument, "the first message of an upload must be its header")
	}
	if hdr.GetSize() < 0 || hdr.GetSize() > sizeunit.HardCeiling {
		return status.Errorf(codes.InvalidArgument, "size %d: at most %d bytes", hdr.GetSize(), sizeunit.HardCeiling)
	}
	if hdr.GetMayBeRetry() {
		if _, err := s.messages.GetMessage(ctx, store.TenantScope(id.Tenant), id.Tenant, id.SensorID, hdr.GetMessageId()); err == nil {
			// A retry after a lost acknowledgement: drain and answer as before.
			return s.answerDuplicate(stream, id.Tenant, id.SensorID, hdr.GetMessageId())
		} else if !errors.Is(err, store.ErrNotFound) {
			return toStatus(err)
		}
	}

	body, err := receiveBody(stream, hdr.GetSize(), s.spillDir)
	if err != nil {
		return err
	}
	defer body.discard()
	rec := &ospreyv1.MessageRecord{
		MessageId:  hdr.GetMessageId(),
		SensorId:   id.SensorID,
		Tenant:     id.Tenant,
		Source:     hdr.GetSource(),
		Envelope:   hdr.GetEnvelope(),
		Size:       body.size,
		Sha256:     hex.EncodeToString(body.sum),
		UploadedAt: timestamppb.New(s.now()),
		Node:       s.node,
	}
	if rec.GetSource() == ospreyv1.MailSource_MAIL_SOURCE_POP3 {
		rec.Uidl = hdr.GetUidl()
	}
	out, err := s.scanner.Scan(ctx, rec, body)
	if err != nil {
		return status.Errorf(codes.Unavailable, "scan: %v", err)
	}
	rec.Verdict, rec.Headers, rec.Disposition, rec.Spam = out.Verdict, out.Headers, out.Disposition, out.Spam
	now := s.now()
	alert := out.Alert
	if alert != nil {
		// RecordScan gives it its id, tenant, sensor and message.
		alert.Node = s.node
	}
	stored, dup, err := s.messages.RecordScan(ctx, store.TenantScope(id.Tenant), rec, alert, now)
	if err != nil {
		return toStatus(err)
	}
	if dup {
		s.duplicates.Inc()
	} else {
		s.uploaded.Inc() // the alert, in the SQL store, reaches the SIEM through central/siemfeed
	}
	// A duplicate's stored record may be another sensor's (the same POP3
	// message polled twice): answer with the id this sensor sent.
	return stream.SendAndClose(&ospreyv1.UploadResponse{MessageId: rec.GetMessageId(), Duplicate: dup,
		Verdict: stored.GetVerdict(), Disposition: stored.GetDisposition()})
}

func (s *Service) answerDuplicate(stream ospreyv1.SensorService_UploadServer, tenant, sensorID, messageID string) error {
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
	}
	rec, err := s.messages.GetMessage(stream.Context(), store.TenantScope(tenant), tenant, sensorID, messageID)
	if err != nil {
		return toStatus(err)
	}
	s.duplicates.Inc()
	return stream.SendAndClose(&ospreyv1.UploadResponse{MessageId: messageID, Duplicate: true,
		Verdict: rec.GetVerdict(), Disposition: rec.GetDisposition()})
}

// body is a received message: in memory, or in a temporary file past memoryLimit.
type body struct {
	mem  []byte
	file string
	size int64
	sum  []byte
}

func (b *body) Size() int64 { return b.size }

func (b *body) Open() (io.ReadCloser, error) {
	if b.file == "" {
		return io.NopCloser(bytes.NewReader(b.mem)), nil
	}
	return os.Open(b.file)
}

func (b *body) discard() {
	if b.file != "" {
		os.Remove(b.file)
	}
}

// receiveBody reads the chunks of an upload; their total must equal declared.
func receiveBody(stream ospreyv1.SensorService_UploadServer, declared int64, spillDir string) (*body, error) {
	b := &body{}
	h := sha256.New()
	var buf bytes.Buffer
	var f *os.File
	fail := func(err error) (*body, error) {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
		return nil, err
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(err)
		}
		chunk := msg.GetChunk()
		if chunk == nil {
			return fail(status.Error(codes.InvalidArgument, "after the header an upload carries only chunks"))
		}
		b.size += int64(len(chunk))
		if b.size > declared {
			return fail(status.Errorf(codes.InvalidArgument, "more than the declared %d bytes", declared))
		}
		h.Write(chunk)
		if f == nil && int64(buf.Len()+len(chunk)) > memoryLimit {
			if f, err = os.CreateTemp(spillDir, "upload-*"); err != nil {
				return fail(status.Errorf(codes.Unavailable, "spill upload: %v", err))
			}
			if _, err := f.Write(buf.Bytes()); err != nil {
				return fail(status.Errorf(codes.Unavailable, "spill upload: %v", err))
			}
			buf = bytes.Buffer{}
		}
		if f != nil {
			if _, err := f.Write(chunk); err != nil {
				return fail(status.Errorf(codes.Unavailable, "spill upload: %v", err))
			}
		} else {
			buf.Write(chunk)
		}
	}
	if b.size != declared {
		return fail(status.Errorf(codes.InvalidArgument, "got %d bytes, the header declared %d", b.size, declared))
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return fail(status.Errorf(codes.Unavailable, "spill upload: %v", err))
		}
		b.file = f.Name()
	}
	b.mem, b.sum = buf.Bytes(), h.Sum(nil)
	return b, nil
}

// Received is the verdict of the scanner used until scanning engines are
// configured: the message was received and recorded, nothing more.
var Received = ScannerFunc(func(context.Context, *ospreyv1.MessageRecord, Body) (Outcome, error) {
	return Outcome{Verdict: "received"}, nil
})
