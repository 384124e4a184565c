package agent

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sync"
	"time"

	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// renewRetry is how long the agent waits for a renewed certificate before it
// asks again, and waits after a renewal failed; minRenewInterval is the
// least it waits after a renewal, so that certificates too short-lived to
// reach their renewal point later than at once are not renewed in a loop.
const (
	renewRetry       = 5 * time.Minute
	minRenewInterval = time.Minute
)

// defaultRenewFrom and defaultRenewUntil are the renewal window, in percent
// of a certificate's lifetime, until the central sends its own (a central
// too old to send one uses these too).
const (
	defaultRenewFrom  = 60
	defaultRenewUntil = 75
)

// errStreamClosed is why a stream ended when the central closed it with an
// OK status.
var errStreamClosed = errors.New("central closed the stream")

// session is one Connect stream. Its run method, on the goroutine of
// Agent.Run, owns it; recvLoop and sendLoop only move messages.
type session struct {
	a      *Agent
	ctx    context.Context // the stream's: cancelled when the session ends
	stream ospreyv1.SensorService_ConnectClient

	in       chan *ospreyv1.ConnectResponse
	recvErr  chan error // receives once, when Recv fails
	out      chan *ospreyv1.ConnectRequest
	sendDone chan struct{} // closed when sendLoop returns
	sendErr  error         // why sendLoop returned; read after sendDone

	// The renewal in flight: the key whose certificate was asked for.
	renewKey crypto.Signer

	// admitted counts the operators' requests taken, answered or waiting
	// for their turn, at most maxRequests+maxWaiting; handling counts
	// those being answered, at most maxRequests. handlers waits for them
	// when the session ends.
	admitted chan struct{}
	handling chan struct{}
	handlers *sync.WaitGroup

	// The reports sent and not yet answered, when the central answers them
	// (StreamFeatures.report_acks), each with what gives it back to its
	// source: owned by run, and given back when the stream ends.
	acks    bool
	seq     uint64
	pending map[uint64]func()
}

// maxRequests bounds the operators' requests answered at once on a
// stream, and maxWaiting those that wait for their turn behind them (a
// bulk release from the UI sends dozens at once); requestTimeout bounds
// one, its wait included (the central's caller waits 15 s).
const (
	maxRequests    = 4
	maxWaiting     = 256
	requestTimeout = 10 * time.Second
)

// session holds one stream with target until it ends, and returns how long
// it was up (0 when the central never answered) and why it ended.
func (a *Agent) session(ctx context.Context, target string) (time.Duration, error) {
	a.update(func(s *State) { s.Target = target })
	conn, err := newClient(target, a.tlsConfig(), a.opts.dialOptions)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := ospreyv1.NewSensorServiceClient(conn).Connect(sctx)
	if err != nil {
		return 0, fmt.Errorf("open stream: %w", err)
	}
	s := &session{
		a:        a,
		ctx:      sctx,
		stream:   stream,
		in:       make(chan *ospreyv1.ConnectResponse),
		recvErr:  make(chan error, 1),
		out:      make(chan *ospreyv1.ConnectRequest, 8),
		sendDone: make(chan struct{}),
		admitted: make(chan struct{}, maxRequests+maxWaiting),
		handling: make(chan struct{}, maxRequests),
	}
	var wg sync.WaitGroup
	s.handlers = &wg
	wg.Go(s.recvLoop)
	wg.Go(s.sendLoop)
	lived, err := s.run(ctx, target)
	cancel()
	wg.Wait()
	s.giveBackPending()
	return lived, err
}

// tlsConfig is the client side of mutual TLS with a central: the central
// must have a server certificate from the cluster CA (see serverTLSConfig),
// and the sensor presents its current certificate, read at each handshake
// so that a renewal takes effect on the next one.
func (a *Agent) tlsConfig() *tls.Config {
	c := a.serverTLSConfig()
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return a.pair.Load(), nil
	}
	return c
}

// serverTLSConfig checks that the central has a server certificate from the
// cluster CA (the host name is not checked; see package pki), and presents
// no client certificate: what Reissue runs over. No ClientSessionCache: a
// resumed session would skip VerifyPeerCertificate and the fresh
// certificate.
func (a *Agent) serverTLSConfig() *tls.Config {
	ca := a.id.CA
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyPeerCertificate
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := pki.VerifyAgainstCA(raw, ca)
			return err
		},
	}
}

func (s *session) recvLoop() {
	for {
		m, err := s.stream.Recv()
		if err != nil {
			s.recvErr <- err
			return
		}
		select {
		case s.in <- m:
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *session) sendLoop() {
	defer close(s.sendDone)
	for {
		select {
		case m := <-s.out:
			if err := s.stream.Send(m); err != nil {
				s.sendErr = err
				return
			}
		case <-s.ctx.Done():
			return
		}
	}
}

// send queues m for the send loop, and reports whether it did (not when
// the stream has ended: run learns why from recvErr or sendDone).
func (s *session) send(m *ospreyv1.ConnectRequest) bool {
	select {
	case s.out <- m:
		return true
	case <-s.sendDone:
	case <-s.ctx.Done():
	}
	return false
}

// run is the stream's owner loop. ctx is the agent's, under which
// configurations are applied: a stream that ends does not cut an apply short.
func (s *session) run(ctx context.Context, target string) (time.Duration, error) {
	a := s.a
	var up time.Time
	lived := func() time.Duration {
		if up.IsZero() {
			return 0
		}
		return a.now().Sub(up)
	}
	s.send(&ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Hello{Hello: &ospreyv1.Hello{
		SoftwareVersion:        a.opts.SoftwareVersion,
		AppliedRevision:        a.applied.GetRevision(),
		WantsCertificatePolicy: true,
		WantsReportAcks:        true,
	}}})

	statusTick := time.NewTicker(a.interval)
	defer statusTick.Stop()
	// The renewal timer starts once the central answered.
	renewTimer := time.NewTimer(time.Hour)
	renewTimer.Stop()
	defer renewTimer.Stop()

	for {
		select {
		case <-s.ctx.Done():
			return lived(), s.ctx.Err()
		case err := <-s.recvErr:
			return lived(), streamError(err)
		case <-s.sendDone:
			return lived(), s.sendError()
		case m := <-s.in:
			if up.IsZero() {
				up = a.now()
				a.update(func(st *State) { st.Connected = true })
				a.log.Info("connected to the central", "central", target, "applied_revision", a.applied.GetRevision())
				renewTimer.Reset(a.renewDelay())
			}
			switch msg := m.GetMsg().(type) {
			case *ospreyv1.ConnectResponse_Config:
				s.send(a.applyConfig(ctx, msg.Config))
				s.sendStatus()
			case *ospreyv1.ConnectResponse_Renewed:
				renewTimer.Reset(s.renewed(msg.Renewed))
			case *ospreyv1.ConnectResponse_CertificatePolicy:
				if a.takePolicy(msg.CertificatePolicy) && s.renewKey == nil {
					renewTimer.Reset(a.renewDelay())
				}
			case *ospreyv1.ConnectResponse_Request:
				s.handle(msg.Request)
			case *ospreyv1.ConnectResponse_Features:
				s.acks = msg.Features.GetReportAcks()
			case *ospreyv1.ConnectResponse_ReportAck:
				s.answered(msg.ReportAck)
			default:
				a.log.Debug("ignoring an unknown message from the central", "type", fmt.Sprintf("%T", msg))
			}
		case <-statusTick.C:
			if !up.IsZero() {
				s.sendStatus()
			}
		case <-a.opts.StatusChanged:
			if !up.IsZero() {
				s.sendStatus()
				statusTick.Reset(a.interval)
			}
		case <-renewTimer.C:
			renewTimer.Reset(s.renew())
		}
	}
}

func (s *session) sendStatus() {
	s.send(&ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Status{Status: s.a.status()}})
	if src := s.a.opts.Refusals; src != nil {
		sendReports(s, src, maxRefusalReports, func(seq uint64, rs []*ospreyv1.Refusal) *ospreyv1.ConnectRequest {
			return &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Refusals{Refusals: &ospreyv1.RefusalReport{Refusals: rs, Seq: seq}}}
		})
	}
	if src := s.a.opts.Deliveries; src != nil {
		sendReports(s, src, maxDeliveryReports, func(seq uint64, as []*ospreyv1.DeliveryAttempt) *ospreyv1.ConnectRequest {
			return &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Deliveries{Deliveries: &ospreyv1.DeliveryReport{Attempts: as, Seq: seq}}}
		})
	}
	if src := s.a.opts.Quarantine; src != nil {
		sendReports(s, src, maxDeliveryReports, func(seq uint64, es []*ospreyv1.QuarantineEvent) *ospreyv1.ConnectRequest {
			return &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Quarantine{Quarantine: &ospreyv1.QuarantineReport{Events: es, Seq: seq}}}
		})
	}
}

// maxRefusalReports bounds the refusal reports sent with one status: a
// flood's counts go out over a few statuses rather than all at once.
// maxDeliveryReports bounds the delivery reports likewise; delivery
// attempts are not counted together as refusals are, so more go: with a
// status every 10 s and reports of up to 1,000 recipients' results, 2,000
// recipients a second.
// maxPendingReports bounds the reports sent and not yet answered: past
// it, what waits stays with its source until answers come.
const (
	maxRefusalReports  = 5
	maxDeliveryReports = 20
	maxPendingReports  = 200
)

// reportSource hands over what one report carries (Take: nothing when
// nothing waits) and takes back what could not be sent (Return).
type reportSource[T any] interface {
	Take() []T
	Return([]T)
}

// sendReports sends up to most reports of what src holds, each made by
// msg with its number on the stream. Those a report could not be queued
// for are given back for the next status. When the central answers
// reports, a sent one is kept until its answer, and given back if the
// central could not record it or the stream ends first; otherwise one
// queued on a stream that then ends is lost.
func sendReports[T any](s *session, src reportSource[T], most int, msg func(uint64, []T) *ospreyv1.ConnectRequest) {
	for range most {
		if s.acks && len(s.pending) >= maxPendingReports {
			return
		}
		rs := src.Take()
		if len(rs) == 0 {
			return
		}
		s.seq++
		if !s.send(msg(s.seq, rs)) {
			src.Return(rs)
			return
		}
		if s.acks {
			if s.pending == nil {
				s.pending = make(map[uint64]func())
			}
			s.pending[s.seq] = func() { src.Return(rs) }
		}
	}
}

// answered takes the central's answer to a report: done, or given back to
// its source for a later status when the central could not record it.
func (s *session) answered(ack *ospreyv1.ReportAck) {
	giveBack, ok := s.pending[ack.GetSeq()]
	if !ok {
		return
	}
	delete(s.pending, ack.GetSeq())
	if ack.GetError() != "" {
		s.a.log.Warn("the central could not record a report; it goes again with a later status", "err", ack.GetError())
		giveBack()
	}
}

// giveBackPending gives the reports never answered back to their sources,
// for the next stream.
func (s *session) giveBackPending() {
	for seq, giveBack := range s.pending {
		giveBack()
		delete(s.pending, seq)
	}
}

// sendError is why sendLoop stopped. When the central ended the stream, Send
// says only io.EOF and Recv has the status.
func (s *session) sendError() error {
	if s.sendErr == nil {
		return s.ctx.Err()
	}
	if !errors.Is(s.sendErr, io.EOF) {
		return fmt.Errorf("send on stream: %w", s.sendErr)
	}
	select {
	case err := <-s.recvErr:
		return streamError(err)
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

func streamError(err error) error {
	if errors.Is(err, io.EOF) {
		return errStreamClosed
	}
	return fmt.Errorf("stream: %w", err)
}

// takePolicy makes the renewal window the central sent the agent's, and
// reports whether it changed. A window that makes no sense is ignored.
func (a *Agent) takePolicy(p *ospreyv1.CertificatePolicy) bool {
	from, until := int(p.GetRenewFromPercent()), int(p.GetRenewUntilPercent())
	if from < 1 || until > 99 || from > until {
		a.log.Warn("ignoring the central's certificate renewal window: it makes no sense; keeping the one in use",
			"renew_from_percent", from, "renew_until_percent", until)
		return false
	}
	if from == a.renewFrom && until == a.renewUntil {
		return false
	}
	a.renewFrom, a.renewUntil = from, until
	a.log.Debug("renewal window from the central", "renew_from_percent", from, "renew_until_percent", until)
	return true
}

// renewDelay is how long until the current certificate is due for renewal
// (zero when it is already).
func (a *Agent) renewDelay() time.Duration {
	leaf := a.pair.Load().Leaf
	from, until := a.renewFrom, a.renewUntil
	if from == 0 {
		from, until = defaultRenewFrom, defaultRenewUntil
	}
	return max(renewDue(leaf, from, until).Sub(a.now()), 0)
}

// renewDue is when cert is due for renewal in the window from–until
// (percent of its lifetime).
func renewDue(cert *x509.Certificate, from, until int) time.Time {
	life := float64(cert.NotAfter.Sub(cert.NotBefore))
	at := (float64(from) + renewSpread(cert.Raw)*float64(until-from)) / 100
	return cert.NotBefore.Add(time.Duration(life * at))
}

// renewSpread places a certificate's renewal in the renewal window, at a
// point fixed by the certificate itself: sensors enrolled together (a fleet
// rolled out at once) do not all renew in the same second, and a restart
// does not move the point.
func renewSpread(certDER []byte) float64 {
	h := fnv.New64a()
	h.Write(certDER)
	return float64(h.Sum64()%1000) / 1000
}

// renew asks for a certificate for a new key, unless that is not due yet,
// and returns when to check again.
func (s *session) renew() time.Duration {
	a := s.a
	if d := a.renewDelay(); d > 0 {
		return d
	}
	key, err := pki.GenerateKey()
	if err != nil {
		a.recordError(fmt.Errorf("renew certificate: %w", err))
		return renewRetry
	}
	csr, err := pki.NewCSR(key, a.identity.SensorID)
	if err != nil {
		a.recordError(fmt.Errorf("renew certificate: %w", err))
		return renewRetry
	}
	s.renewKey = key
	a.log.Info("asking for a new client certificate", "not_after", a.pair.Load().Leaf.NotAfter)
	s.send(&ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Renew{Renew: &ospreyv1.RenewRequest{Csr: csr}}})
	return renewRetry
}

// renewed takes the certificate the central sent for the renewal in flight,
// and returns when to check for the next renewal.
func (s *session) renewed(resp *ospreyv1.RenewResponse) time.Duration {
	a := s.a
	key := s.renewKey
	if key == nil {
		a.log.Warn("ignoring a certificate the sensor did not ask for")
		return a.renewDelay()
	}
	s.renewKey = nil
	if err := a.installCert(resp.GetCertificate(), key, "renewed the client certificate"); err != nil {
		err = fmt.Errorf("renew certificate: %w", err)
		a.log.Error("cannot take the renewed certificate; keeping the current one", "err", err)
		a.recordError(err)
		return renewRetry
	}
	// The status names the new certificate: the central learns it arrived.
	s.sendStatus()
	return max(a.renewDelay(), minRenewInterval)
}

// installCert checks a new certificate (signed by the cluster CA, for the
// same identity, for key, valid now), stores it with its key, makes it the
// one the next handshake presents, and logs msg.
func (a *Agent) installCert(der []byte, key crypto.Signer, msg string) error {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parse certificate: %w", err)
	}
	if err := checkClientCert(cert, a.id.CA, a.identity, a.now()); err != nil {
		return err
	}
	if !sameKey(cert, key) {
		return errors.New("certificate is not for the key the sensor asked for")
	}
	keyPEM, err := pki.MarshalKeyPEM(key)
	if err != nil {
		return err
	}
	if err := savePair(a.opts.DataDir, keyPEM, encodeCertPEM(der)); err != nil {
		return fmt.Errorf("store certificate: %w", err)
	}
	a.pair.Store(&tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert})
	fp := pki.Fingerprint(der)
	a.update(func(s *State) {
		s.Fingerprint = fp
		s.NotAfter = cert.NotAfter
	})
	a.log.Info(msg, "fingerprint", fp, "not_after", cert.NotAfter)
	return nil
}

// handle answers an operator's request on its own goroutine, so that a
// slow queue does not hold the stream: maxRequests at once, the others
// waiting their turn within their timeout. Beyond
// maxWaiting waiting, or without a handler, it answers at once that the
// sensor cannot.
func (s *session) handle(req *ospreyv1.SensorRequest) {
	refuse := func(msg string) {
		s.send(&ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Reply{Reply: &ospreyv1.SensorReply{Id: req.GetId(),
			Error: &ospreyv1.SensorError{Code: ospreyv1.SensorError_CODE_UNAVAILABLE, Message: msg}}}})
	}
	h := s.a.opts.Requests
	if h == nil {
		refuse("this sensor takes no requests")
		return
	}
	select {
	case s.admitted <- struct{}{}:
	default:
		refuse(fmt.Sprintf("the sensor is busy with %d requests: retry", maxRequests+maxWaiting))
		return
	}
	s.handlers.Go(func() {
		defer func() { <-s.admitted }()
		ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
		defer cancel()
		select {
		case s.handling <- struct{}{}:
			defer func() { <-s.handling }()
		case <-ctx.Done():
			refuse(fmt.Sprintf("the sensor did not get to the request within %v: it is busy with others", requestTimeout))
			return
		}
		rep := h.HandleRequest(ctx, req)
		if rep == nil {
			rep = &ospreyv1.SensorReply{Error: &ospreyv1.SensorError{Code: ospreyv1.SensorError_CODE_INTERNAL, Message: "no reply"}}
		}
		rep.Id = req.GetId()
		s.send(&ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Reply{Reply: rep}})
	})
}
