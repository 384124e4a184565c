// Package sensorsim simulates a fleet of sensors against a Central Node, for
// the benchmarks and the tests that need hundreds or thousands of them.
//
// A simulated sensor is the real thing on the wire: a gRPC client over
// loopback with mutual TLS, its own client certificate signed by the cluster
// CA, and a Connect stream that says hello and acknowledges every
// configuration as soon as it arrives. Only what a sensor does with the
// configuration (listen, poll) is left out. The sensors are created approved
// in the store, as an administrator would have approved them.
package sensorsim

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Fleet is a set of simulated sensors of one tenant.
type Fleet struct {
	Sensors []*Sensor
	pool    *x509.CertPool
}

// NewFleet creates n approved sensors of tenant in st (named prefix00000,
// prefix00001, ...) with client certificates from ca. The tenant must exist.
// The sensors share one key, which is all a test needs: the central tells
// them apart by their certificates.
func NewFleet(ctx context.Context, st *store.Store, ca *pki.CA, tenant, prefix string, n int) (*Fleet, error) {
	key, err := pki.GenerateKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, prefix)
	if err != nil {
		return nil, err
	}
	f := &Fleet{Sensors: make([]*Sensor, n), pool: x509.NewCertPool()}
	f.pool.AddCert(ca.Cert)
	var g errgroup.Group
	g.SetLimit(16)
	for i := range n {
		id := fmt.Sprintf("%s%05d", prefix, i)
		g.Go(func() error {
			_, err := st.CreateSensor(ctx, store.AllTenants(), &ospreyv1.Sensor{
				Id: id, Tenant: tenant, Name: id, State: ospreyv1.SensorState_SENSOR_STATE_APPROVED,
			})
			if err != nil {
				return fmt.Errorf("create sensor %s: %w", id, err)
			}
			s, err := newSensor(id, tenant, csr, key, ca, f.pool)
			if err != nil {
				return err
			}
			f.Sensors[i] = s
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return f, nil
}

func newSensor(id, tenant string, csr []byte, key crypto.Signer, ca *pki.CA, pool *x509.CertPool) (*Sensor, error) {
	der, err := ca.SignClient(csr, pki.Identity{Tenant: tenant, SensorID: id}, 24*time.Hour, time.Now())
	if err != nil {
		return nil, fmt.Errorf("sign a certificate for %s: %w", id, err)
	}
	s := &Sensor{
		ID:   id,
		cert: tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key},
		pool: pool,
		at:   map[int64]time.Time{},
	}
	s.got.Store(-1)
	return s, nil
}

// Connect connects every sensor to the central node's gRPC address, up to 16
// at a time, and returns once every stream has said hello. A sensor whose
// connection fails (a handshake the central, busy with thousands of them,
// gave up on) tries again a second later, up to five times, as an agent
// would.
func (f *Fleet) Connect(ctx context.Context, addr string) error {
	return each(f.Sensors, func(s *Sensor) error {
		var err error
		for range 5 {
			if err = s.Connect(ctx, addr); err == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Second):
			}
		}
		return err
	})
}

// Close closes every sensor's connection.
func (f *Fleet) Close() {
	for _, s := range f.Sensors {
		s.Close()
	}
}

func each(sensors []*Sensor, fn func(*Sensor) error) error {
	var g errgroup.Group
	g.SetLimit(16)
	for _, s := range sensors {
		g.Go(func() error { return fn(s) })
	}
	return g.Wait()
}

// Sensor is one simulated sensor.
type Sensor struct {
	ID   string
	cert tls.Certificate
	pool *x509.CertPool

	mu     sync.Mutex
	conn   *grpc.ClientConn
	done   chan struct{} // closed when the current stream's receive loop ends
	err    error         // why it ended
	at     map[int64]time.Time
	got    atomic.Int64 // the newest version acknowledged; -1 before the first
	closed bool
	addr   string    // the central node of the current stream
	since  time.Time // when the current stream said hello
	ends   []error   // why each stream under Run that had a configuration ended
	// configured says the current stream has had a configuration, first
	// at configuredAt.
	configured   bool
	configuredAt time.Time
}

// Connect opens the sensor's stream and says hello; a goroutine then
// acknowledges every configuration until the stream ends. A sensor that was
// connected before is first disconnected.
func (s *Sensor) Connect(ctx context.Context, addr string) error {
	s.Close()
	tc := &tls.Config{Certificates: []tls.Certificate{s.cert}, RootCAs: s.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return fmt.Errorf("sensor %s: %w", s.ID, err)
	}
	stream, err := ospreyv1.NewSensorServiceClient(conn).Connect(ctx)
	if err != nil {
		conn.Close()
		return fmt.Errorf("sensor %s: connect: %w", s.ID, err)
	}
	hello := &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Hello{Hello: &ospreyv1.Hello{
		SoftwareVersion: "sensorsim", AppliedRevision: max(s.got.Load(), 0),
	}}}
	if err := stream.Send(hello); err != nil {
		conn.Close()
		return fmt.Errorf("sensor %s: hello: %w", s.ID, err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.conn, s.done, s.err, s.closed = conn, done, nil, false
	s.addr, s.since, s.configured = addr, time.Now(), false
	s.mu.Unlock()
	go func() {
		defer close(done)
		for {
			m, err := stream.Recv()
			if err != nil {
				s.mu.Lock()
				s.err = err
				s.mu.Unlock()
				return
			}
			cfg := m.GetConfig()
			if cfg == nil {
				continue
			}
			v := cfg.GetRevision()
			if err := stream.Send(&ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Ack{Ack: &ospreyv1.Ack{Revision: v}}}); err != nil {
				continue // Recv reports why the stream ended.
			}
			now := time.Now()
			s.mu.Lock()
			s.at[v] = now
			if !s.configured {
				s.configured, s.configuredAt = true, now
			}
			s.mu.Unlock()
			s.got.Store(v)
		}
	}()
	return nil
}

// Reconnect is how a simulated sensor finds its way back, as the sensor
// agent does: Addrs lists the central nodes' addresses the cluster's name
// answers with now (tried in a shuffled order, as the agent's pick_first
// does), and Retry says how long to wait after the stream's failed attempt
// n (counted from 0, and from 0 again after a stream that lived
// ResetAfter) that ended with err. Retry returning a negative wait resets
// the count and waits its absolute value.
type Reconnect struct {
	Addrs      func() []string
	Retry      func(attempt int, err error) time.Duration
	ResetAfter time.Duration
}

// Run keeps the sensor connected until ctx ends: it connects to one of
// r.Addrs, and whenever the stream ends or no address takes it, waits as
// r.Retry says and connects again. Addr says where it is connected, and
// Ends why its streams ended; Close ends the
// current stream, as a dropped link would (Run reconnects).
func (s *Sensor) Run(ctx context.Context, r Reconnect) {
	attempt := 0
	for ctx.Err() == nil {
		var err error
		began := time.Now()
		addrs := r.Addrs()
		rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
		err = errors.New("no central node")
		for _, addr := range addrs {
			if err = s.Connect(ctx, addr); err == nil {
				break
			}
		}
		if err == nil {
			s.mu.Lock()
			done := s.done
			s.mu.Unlock()
			select {
			case <-done:
			case <-ctx.Done():
			}
			s.mu.Lock()
			err = s.err
			if s.configured {
				s.ends = append(s.ends, err)
			}
			s.mu.Unlock()
			s.drop()
		}
		if ctx.Err() != nil {
			break
		}
		if time.Since(began) > r.ResetAfter {
			attempt = 0
		}
		d := r.Retry(attempt, err)
		attempt++
		if d < 0 {
			d, attempt = -d, 0
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	s.Close()
}

// Addr returns the address of the central node the sensor holds its
// stream with, or "" while it has none.
func (s *Sensor) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return ""
	}
	select {
	case <-s.done:
		return ""
	default:
		return s.addr
	}
}

// Held returns the address of the central node whose stream gave the
// sensor a configuration, and when it first did; "" while the sensor has
// no such stream.
func (s *Sensor) Held() (string, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil || !s.configured {
		return "", time.Time{}
	}
	select {
	case <-s.done:
		return "", time.Time{}
	default:
		return s.addr, s.configuredAt
	}
}

// Ends returns the errors that ended the sensor's streams under Run that
// had a configuration (not those refused at once), oldest first.
func (s *Sensor) Ends() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ends)
}

// ConnectedAt returns when the sensor's current (or last) stream said hello.
func (s *Sensor) ConnectedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.since
}

// drop closes the ended stream's connection without marking the sensor
// closed.
func (s *Sensor) drop() {
	s.mu.Lock()
	conn := s.conn
	s.conn = nil
	s.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// Upload uploads one message to the central node at addr over a
// connection of its own (the sensor need not be connected), as the
// sensor's uploader does, and returns the central's answer.
func (s *Sensor) Upload(ctx context.Context, addr, messageID string, env *ospreyv1.Envelope, body []byte) (*ospreyv1.UploadResponse, error) {
	tc := &tls.Config{Certificates: []tls.Certificate{s.cert}, RootCAs: s.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return nil, fmt.Errorf("sensor %s: %w", s.ID, err)
	}
	defer conn.Close()
	stream, err := ospreyv1.NewSensorServiceClient(conn).Upload(ctx)
	if err != nil {
		return nil, fmt.Errorf("sensor %s: upload: %w", s.ID, err)
	}
	hdr := &ospreyv1.UploadRequest{Msg: &ospreyv1.UploadRequest_Header{Header: &ospreyv1.UploadHeader{
		MessageId: messageID, Source: ospreyv1.MailSource_MAIL_SOURCE_SMTP, Envelope: env, Size: int64(len(body)),
	}}}
	if err := stream.Send(hdr); err == nil {
		for rest := body; len(rest) > 0 && err == nil; {
			n := min(len(rest), 64<<10)
			err = stream.Send(&ospreyv1.UploadRequest{Msg: &ospreyv1.UploadRequest_Chunk{Chunk: rest[:n]}})
			rest = rest[n:]
		}
	}
	// A send that fails has its reason in CloseAndRecv.
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, fmt.Errorf("sensor %s: upload %s: %w", s.ID, messageID, err)
	}
	return resp, nil
}

// Close ends the sensor's connection, as a sensor whose link drops would
// (the central sees the transport close), and waits for its receive loop.
func (s *Sensor) Close() {
	s.mu.Lock()
	conn, done := s.conn, s.done
	s.conn, s.closed = nil, true
	s.mu.Unlock()
	if conn == nil {
		return
	}
	conn.Close()
	<-done
}

// Version returns the newest configuration version the sensor acknowledged
// (-1 before the first).
func (s *Sensor) Version() int64 { return s.got.Load() }

// AckedAt returns when the sensor acknowledged version v (zero if it did not).
func (s *Sensor) AckedAt(v int64) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at[v]
}

// Err returns why the sensor's last stream ended while it was not closed
// (nil while it runs, or after Close).
func (s *Sensor) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.done == nil {
		return nil
	}
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Versions returns each sensor's newest acknowledged version.
func Versions(sensors []*Sensor) []int64 {
	out := make([]int64, len(sensors))
	for i, s := range sensors {
		out[i] = s.Version()
	}
	return out
}

// ErrBehind is returned by WaitNewer when some sensors did not acknowledge
// a newer version in time.
var ErrBehind = errors.New("sensors without a newer version")

// WaitNewer waits until every sensor acknowledged a version newer than the
// one given for it in before (nil: any version at all), polling every
// millisecond, or until ctx ends. It returns ErrBehind, wrapped with how many
// are behind and the first stream error seen, when ctx ends first.
func WaitNewer(ctx context.Context, sensors []*Sensor, before []int64) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		behind, firstErr := 0, error(nil)
		for i, s := range sensors {
			prev := int64(-1)
			if before != nil {
				prev = before[i]
			}
			if s.Version() <= prev {
				behind++
				if firstErr == nil {
					firstErr = s.Err()
				}
			}
		}
		if behind == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d: %w (%v; first stream error: %v)", behind, len(sensors), ErrBehind, ctx.Err(), firstErr)
		case <-tick.C:
		}
	}
}
