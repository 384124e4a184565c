package agent

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/internal/centraltest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fastRetry keeps the tests' reconnections quick; the policy itself is
// tested in TestDefaultRetry.
func fastRetry(int, error) time.Duration { return 10 * time.Millisecond }

// enroll enrolls a sensor in a fresh data dir with srv and approves it
// unless told not to.
func enroll(t *testing.T, srv *centraltest.Server, approve bool) (string, *Identity) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	id, err := Enroll(t.Context(), EnrollOptions{
		Target:  srv.Addr(),
		Token:   srv.Token(),
		Name:    "branch-1",
		DataDir: dir,
		Retry:   fastRetry,
	})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	if approve {
		srv.SetState(id.SensorID, ospreyv1.SensorState_SENSOR_STATE_APPROVED)
	}
	return dir, id
}

// recorder is an Applier that records what it applied and fails the
// revisions it is told to.
type recorder struct {
	mu      sync.Mutex
	applied []int64
	fail    map[int64]error
}

func (r *recorder) Apply(_ context.Context, cfg *ospreyv1.SensorConfig) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fail[cfg.GetRevision()]; err != nil {
		return err
	}
	r.applied = append(r.applied, cfg.GetRevision())
	return nil
}

func (r *recorder) Applied() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.applied...)
}

// startAgent makes an agent and runs it until the test ends.
func startAgent(t *testing.T, opts Options) *Agent {
	t.Helper()
	if opts.Retry == nil {
		opts.Retry = fastRetry
	}
	if opts.StatusInterval == 0 {
		opts.StatusInterval = time.Hour // only the status sent after each configuration
	}
	a, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(centraltest.Wait):
			t.Errorf("Run did not return within %v of cancel", centraltest.Wait)
		}
	})
	return a
}

// waitState waits until cond holds for the agent's state.
func waitState(t *testing.T, a *Agent, what string, cond func(State) bool) State {
	t.Helper()
	timeout := time.After(centraltest.Wait)
	for {
		changed := a.Changed()
		if st := a.State(); cond(st) {
			return st
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("waiting for %s: not within %v; state: %+v", what, centraltest.Wait, a.State())
		}
	}
}

func config(rev int64, listen string) *ospreyv1.SensorConfig {
	return &ospreyv1.SensorConfig{
		Revision: rev,
		Smtp:     &ospreyv1.SmtpIntegration{Enabled: true, Listen: listen},
	}
}

func ackOf(rev int64) *ospreyv1.ConnectRequest { return ack(rev) }

func nackOf(rev int64, msg string) *ospreyv1.ConnectRequest {
	return &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Nack{Nack: &ospreyv1.Nack{Revision: rev, Error: msg}}}
}

// storedConfig reads config/applied.pb.
func storedConfig(t *testing.T, dir string) *ospreyv1.SensorConfig {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, appliedFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ospreyv1.SensorConfig{}
	if err := proto.Unmarshal(data, cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestEnroll(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir, id := enroll(t, srv, false)

	if id.Loaded {
		t.Error("Loaded = true for a new enrollment")
	}
	if got, want := id.State, ospreyv1.SensorState_SENSOR_STATE_PENDING; got != want {
		t.Errorf("State = %v, want %v", got, want)
	}
	if got, want := id.Fingerprint, pki.Fingerprint(id.Certificate.Certificate[0]); got != want {
		t.Errorf("Fingerprint = %s, want the certificate's %s", got, want)
	}
	for name, want := range map[string]os.FileMode{
		".":         0o700,
		identityDir: 0o700,
		keyFile:     0o600,
		certFile:    0o644,
		caFile:      0o644,
		sensorFile:  0o600,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %v, want %v", name, got, want)
		}
	}

	loaded, err := LoadIdentity(dir)
	if err != nil {
		t.Fatalf("LoadIdentity: %v", err)
	}
	type fields struct {
		SensorID, Tenant, Name, Fingerprint string
		Targets                             []string
	}
	want := fields{id.SensorID, centraltest.Tenant, "branch-1", id.Fingerprint, []string{srv.Addr()}}
	got := fields{loaded.SensorID, loaded.Tenant, loaded.Name, loaded.Fingerprint, loaded.Targets}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LoadIdentity (-want +got):\n%s", diff)
	}
	if !loaded.CA.Equal(srv.CA.Cert) {
		t.Error("stored CA is not the server's")
	}

	// Enrolling again reuses the identity and does not call the central;
	// the token does not matter.
	again, err := Enroll(t.Context(), EnrollOptions{DataDir: dir})
	if err != nil {
		t.Fatalf("second Enroll: %v", err)
	}
	if !again.Loaded || again.SensorID != id.SensorID || again.Fingerprint != id.Fingerprint {
		t.Errorf("second Enroll = %s %s loaded=%v, want %s %s loaded=true",
			again.SensorID, again.Fingerprint, again.Loaded, id.SensorID, id.Fingerprint)
	}
	if got := srv.Enrolls(); got != 1 {
		t.Errorf("central granted %d enrollments, want 1", got)
	}
}

func TestEnrollRefusesUntrustedCentral(t *testing.T) {
	genuine, err := pki.NewCA("genuine", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("mitm", 0)
	if err != nil {
		t.Fatal(err)
	}
	otherCert := centraltest.ServerCertificate(t, other)
	tests := []struct {
		name  string
		chain tls.Certificate
	}{
		{"another CA", otherCert},
		{"another CA's leaf beside the genuine CA", tlsCertWithChain(otherCert, genuine.Cert.Raw)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mitm := centraltest.NewServer(t, centraltest.Options{CA: genuine, ServerCertificate: &tt.chain})
			dir := filepath.Join(t.TempDir(), "data")
			retries := 0
			_, err := Enroll(t.Context(), EnrollOptions{
				Target:  mitm.Addr(),
				Token:   mitm.Token(), // pins the genuine CA
				Name:    "branch-1",
				DataDir: dir,
				Retry:   func(int, error) time.Duration { retries++; return time.Millisecond },
			})
			if !errors.Is(err, ErrUntrustedCentral) {
				t.Fatalf("Enroll error = %v, want one matching ErrUntrustedCentral", err)
			}
			if !strings.Contains(err.Error(), "someone in the middle") {
				t.Errorf("Enroll error %q does not explain itself", err)
			}
			if retries != 0 {
				t.Errorf("Enroll retried %d times, want 0", retries)
			}
			if got := mitm.Enrolls(); got != 0 {
				t.Errorf("the impostor got %d enrollments, want 0", got)
			}
			if _, err := LoadIdentity(dir); !errors.Is(err, ErrNotEnrolled) {
				t.Errorf("LoadIdentity after a refused enrollment: %v, want ErrNotEnrolled", err)
			}
		})
	}
}

func TestEnrollWaitsForCentral(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	tok := srv.Token()
	srv.Stop()
	retried := make(chan codes.Code, 100)
	done := make(chan error, 1)
	go func() {
		_, err := Enroll(t.Context(), EnrollOptions{
			Target:  srv.Addr(),
			Token:   tok,
			Name:    "branch-1",
			DataDir: t.TempDir(),
			Retry: func(_ int, err error) time.Duration {
				retried <- status.Code(err)
				return time.Millisecond
			},
		})
		done <- err
	}()
	select {
	case code := <-retried:
		if code != codes.Unavailable {
			t.Errorf("retried after code %v, want Unavailable", code)
		}
	case <-time.After(centraltest.Wait):
		t.Fatalf("no retry within %v", centraltest.Wait)
	}
	srv.Start()
	go func() { // keep the retries flowing
		for range retried {
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Enroll: %v", err)
		}
	case <-time.After(centraltest.Wait):
		t.Fatalf("Enroll did not finish within %v of the central starting", centraltest.Wait)
	}
	close(retried)
	if got := srv.Enrolls(); got != 1 {
		t.Errorf("enrollments = %d, want 1", got)
	}
}

func TestEnrollWithBadToken(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	tok := srv.Token()
	tok.Secret = strings.Repeat("A", len(tok.Secret)-1) + "A"
	retries := 0
	_, err := Enroll(t.Context(), EnrollOptions{
		Target:  srv.Addr(),
		Token:   tok,
		Name:    "branch-1",
		DataDir: t.TempDir(),
		Retry:   func(int, error) time.Duration { retries++; return time.Millisecond },
	})
	if got, want := status.Code(err), codes.Unauthenticated; got != want {
		t.Errorf("Enroll error code = %v (%v), want %v", got, err, want)
	}
	if retries != 0 {
		t.Errorf("Enroll retried %d times, want 0", retries)
	}
}

func TestConfigAckAndStatus(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir, id := enroll(t, srv, true)
	rec := &recorder{}
	a := startAgent(t, Options{
		DataDir:         dir,
		SoftwareVersion: "1.2.3",
		Applier:         rec,
		StatusSources: []StatusSource{
			statusFunc(func() *ospreyv1.SensorStatus {
				return &ospreyv1.SensorStatus{Healthy: true, Counters: map[string]uint64{"smtp_messages": 3}}
			}),
			statusFunc(func() *ospreyv1.SensorStatus {
				return &ospreyv1.SensorStatus{Healthy: true, Counters: map[string]uint64{"pop3_messages": 4}}
			}),
		},
	})

	st := srv.NextStream(t)
	if diff := cmp.Diff(&ospreyv1.Hello{SoftwareVersion: "1.2.3", WantsCertificatePolicy: true, WantsReportAcks: true}, st.Hello, protocmp.Transform()); diff != "" {
		t.Errorf("Hello (-want +got):\n%s", diff)
	}
	cfg := config(5, "127.0.0.1:2525")
	st.SendConfig(t, cfg)
	if diff := cmp.Diff(ackOf(5), st.Next(t), protocmp.Transform()); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	wantStatus := &ospreyv1.SensorStatus{Healthy: true, Counters: map[string]uint64{"smtp_messages": 3, "pop3_messages": 4}, CertFingerprint: id.Fingerprint}
	if diff := cmp.Diff(wantStatus, st.NextStatus(t), protocmp.Transform()); diff != "" {
		t.Errorf("status after apply (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{5}, rec.Applied()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(cfg, storedConfig(t, dir), protocmp.Transform()); diff != "" {
		t.Errorf("stored configuration (-want +got):\n%s", diff)
	}
	fi, err := os.Stat(filepath.Join(dir, appliedFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode of %s = %v, want 0600", appliedFile, got)
	}
	got := waitState(t, a, "connected with revision 5", func(s State) bool { return s.Connected && s.AppliedRevision == 5 })
	if got.LastError != nil {
		t.Errorf("LastError = %v, want nil", got.LastError)
	}
}

type statusFunc func() *ospreyv1.SensorStatus

func (f statusFunc) Status() *ospreyv1.SensorStatus { return f() }

func TestNackKeepsLastGoodConfig(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir, _ := enroll(t, srv, true)
	inUse := errors.New("listen 127.0.0.1:25: address already in use")
	rec := &recorder{fail: map[int64]error{6: inUse}}
	a := startAgent(t, Options{DataDir: dir, Applier: rec})

	st := srv.NextStream(t)
	good := config(5, "127.0.0.1:2525")
	st.SendConfig(t, good)
	if diff := cmp.Diff(ackOf(5), st.Next(t), protocmp.Transform()); diff != "" {
		t.Fatalf("answer to 5 (-want +got):\n%s", diff)
	}
	st.SendConfig(t, config(6, "127.0.0.1:25"))
	if diff := cmp.Diff(nackOf(6, inUse.Error()), st.Next(t), protocmp.Transform()); diff != "" {
		t.Errorf("answer to 6 (-want +got):\n%s", diff)
	}
	st.NextStatus(t) // after 5
	report := st.NextStatus(t)
	if want := "configuration revision 6 not applied: " + inUse.Error(); !cmp.Equal(report.GetProblems(), []string{want}) {
		t.Errorf("status problems = %q, want [%q]", report.GetProblems(), want)
	}

	if diff := cmp.Diff([]int64{5}, rec.Applied()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(good, storedConfig(t, dir), protocmp.Transform()); diff != "" {
		t.Errorf("stored configuration (-want +got):\n%s", diff)
	}
	got := a.State()
	if got.AppliedRevision != 5 {
		t.Errorf("AppliedRevision = %d, want 5", got.AppliedRevision)
	}
	if !errors.Is(got.LastError, inUse) {
		t.Errorf("LastError = %v, want one wrapping %v", got.LastError, inUse)
	}

	// The next good configuration clears the problem.
	st.SendConfig(t, config(7, "127.0.0.1:2526"))
	if diff := cmp.Diff(ackOf(7), st.Next(t), protocmp.Transform()); diff != "" {
		t.Errorf("answer to 7 (-want +got):\n%s", diff)
	}
	if got := st.NextStatus(t).GetProblems(); len(got) != 0 {
		t.Errorf("status problems after a good configuration = %q, want none", got)
	}
}

func TestRestartWithoutCentralRunsStoredConfig(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir, _ := enroll(t, srv, true)
	func() {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		a, err := New(Options{DataDir: dir, Applier: &recorder{}, Retry: fastRetry})
		if err != nil {
			t.Fatal(err)
		}
		errc := make(chan error, 1)
		go func() { errc <- a.Run(ctx) }()
		st := srv.NextStream(t)
		st.SendConfig(t, config(5, "127.0.0.1:2525"))
		st.Next(t)
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}()

	srv.Stop() // no central from here on
	rec := &recorder{}
	a := startAgent(t, Options{DataDir: dir, Applier: rec})
	waitState(t, a, "the stored revision applied", func(s State) bool { return s.AppliedRevision == 5 })
	if diff := cmp.Diff([]int64{5}, rec.Applied()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	got := waitState(t, a, "a failed connection", func(s State) bool { return s.LastError != nil })
	if got.Connected {
		t.Error("Connected = true with no central")
	}
	if code := status.Code(got.LastError); code != codes.Unavailable {
		t.Errorf("LastError = %v (code %v), want code Unavailable", got.LastError, code)
	}
}

func TestReconnectResumes(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir, id := enroll(t, srv, true)
	rec := &recorder{}
	a := startAgent(t, Options{DataDir: dir, Applier: rec})

	st := srv.NextStream(t)
	st.SendConfig(t, config(5, "127.0.0.1:2525"))
	st.Next(t)

	srv.Stop()
	<-st.Done()
	waitState(t, a, "disconnected", func(s State) bool { return !s.Connected })
	srv.Start()

	st = srv.NextStream(t)
	if got := st.Hello.GetAppliedRevision(); got != 5 {
		t.Errorf("Hello.AppliedRevision after reconnecting = %d, want 5", got)
	}
	if st.Identity.SensorID != id.SensorID {
		t.Errorf("reconnected as %s, want %s", st.Identity.SensorID, id.SensorID)
	}
	st.SendConfig(t, config(5, "127.0.0.1:2525")) // the snapshot again
	if diff := cmp.Diff(ackOf(5), st.Next(t), protocmp.Transform()); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	st.SendConfig(t, config(8, "127.0.0.1:2526"))
	if diff := cmp.Diff(ackOf(8), st.Next(t), protocmp.Transform()); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{5, 8}, rec.Applied()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	if got := srv.Enrolls(); got != 1 {
		t.Errorf("enrollments = %d, want 1", got)
	}
}

func TestRefusedSensorRetries(t *testing.T) {
	tests := []struct {
		name  string
		state ospreyv1.SensorState
		code  codes.Code
	}{
		{"revoked", ospreyv1.SensorState_SENSOR_STATE_REVOKED, codes.PermissionDenied},
		{"pending", ospreyv1.SensorState_SENSOR_STATE_PENDING, codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := centraltest.NewServer(t, centraltest.Options{})
			dir, id := enroll(t, srv, false)
			srv.SetState(id.SensorID, tt.state)
			type call struct {
				attempt int
				code    codes.Code
			}
			calls := make(chan call, 100)
			a := startAgent(t, Options{DataDir: dir, Applier: &recorder{}, Retry: func(attempt int, err error) time.Duration {
				select {
				case calls <- call{attempt, status.Code(err)}:
				default:
				}
				return time.Millisecond
			}})
			for want := range 3 {
				select {
				case c := <-calls:
					if diff := cmp.Diff(call{want, tt.code}, c, cmp.AllowUnexported(call{})); diff != "" {
						t.Errorf("retry %d (-want +got):\n%s", want, diff)
					}
				case <-time.After(centraltest.Wait):
					t.Fatalf("no retry %d within %v", want, centraltest.Wait)
				}
			}
			if code := status.Code(a.State().LastError); code != tt.code {
				t.Errorf("LastError code = %v, want %v", code, tt.code)
			}

			// An administrator approves it: the next attempt connects.
			srv.SetState(id.SensorID, ospreyv1.SensorState_SENSOR_STATE_APPROVED)
			st := srv.NextStream(t)
			st.SendConfig(t, config(1, "127.0.0.1:2525"))
			st.Next(t)
			waitState(t, a, "connected", func(s State) bool { return s.Connected })
		})
	}
}

func TestCertificateRenewal(t *testing.T) {
	// A certificate this short-lived is past two thirds of its life at once
	// (its validity starts five minutes back).
	start := time.Now()
	srv := centraltest.NewServer(t, centraltest.Options{ClientValidity: time.Minute, RenewValidity: time.Hour})
	dir, id := enroll(t, srv, true)
	a := startAgent(t, Options{DataDir: dir, Applier: &recorder{}})

	st := srv.NextStream(t)
	if st.Fingerprint != id.Fingerprint {
		t.Fatalf("first stream's certificate = %s, want the enrolled %s", st.Fingerprint, id.Fingerprint)
	}
	st.SendConfig(t, config(1, "127.0.0.1:2525")) // the central answers first
	st.Next(t)
	renewed := st.Renewed(t)
	got := waitState(t, a, "the renewed certificate in use", func(s State) bool { return s.Fingerprint == renewed })
	// Renewed for an hour from a moment between the start and now (x509
	// keeps whole seconds).
	if earliest, latest := start.Add(time.Hour).Truncate(time.Second), time.Now().Add(time.Hour).Round(0); got.NotAfter.Before(earliest) || got.NotAfter.After(latest) {
		t.Errorf("NotAfter = %v, want between %v and %v, an hour after the renewal", got.NotAfter, earliest, latest)
	}
	// A status names it, for the central to know it arrived (NextStatus
	// fails the test if none does).
	for st.NextStatus(t).GetCertFingerprint() != renewed {
	}

	// Stored, key and certificate together.
	loaded, err := LoadIdentity(dir)
	if err != nil {
		t.Fatalf("LoadIdentity: %v", err)
	}
	if loaded.Fingerprint != renewed {
		t.Errorf("stored certificate = %s, want the renewed %s", loaded.Fingerprint, renewed)
	}
	if !sameKey(a.pair.Load().Leaf, loaded.Certificate.PrivateKey.(crypto.Signer)) {
		t.Error("stored key is not the one in use")
	}

	// The stream in use stays up.
	st.SendConfig(t, config(2, "127.0.0.1:2526"))
	if diff := cmp.Diff(ackOf(2), st.Next(t), protocmp.Transform()); diff != "" {
		t.Errorf("answer on the renewing stream (-want +got):\n%s", diff)
	}

	// The next handshake presents the new certificate.
	st.End(status.Error(codes.Unavailable, "central going away"))
	st = srv.NextStream(t)
	if st.Fingerprint != renewed {
		t.Errorf("next stream's certificate = %s, want the renewed %s", st.Fingerprint, renewed)
	}
}

func TestUsesEveryResolvedAddress(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir, _ := enroll(t, srv, true)

	// A node that is down (connection refused) and one that hangs (accepts
	// nothing), whichever order pick_first shuffles them in.
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close()
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hung.Close() })

	r := manual.NewBuilderWithScheme("centraltest")
	r.InitialState(resolver.State{Addresses: []resolver.Address{
		{Addr: refusedAddr}, {Addr: hung.Addr().String()}, {Addr: srv.Addr()},
	}})
	a := startAgent(t, Options{
		DataDir:     dir,
		Targets:     []string{"centraltest:///cluster.example:7443"},
		Applier:     &recorder{},
		dialOptions: []grpc.DialOption{grpc.WithResolvers(r)},
	})
	// Each stream has a client connection of its own, which shuffles the
	// addresses anew: a few streams meet the dead nodes first.
	for i := range 4 {
		st := srv.NextStream(t)
		st.SendConfig(t, config(1, "127.0.0.1:2525"))
		st.Next(t)
		waitState(t, a, "connected", func(s State) bool { return s.Connected })
		if i < 3 {
			st.End(status.Error(codes.Unavailable, "going away"))
		}
	}
}

func TestRunTwice(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir, _ := enroll(t, srv, true)
	a := startAgent(t, Options{DataDir: dir, Applier: &recorder{}})
	srv.NextStream(t).SendConfig(t, config(1, "127.0.0.1:2525"))
	waitState(t, a, "connected", func(s State) bool { return s.Connected })
	if err := a.Run(t.Context()); err == nil {
		t.Error("second Run returned nil, want an error")
	}
}

func TestNewNotEnrolled(t *testing.T) {
	_, err := New(Options{DataDir: t.TempDir(), Applier: &recorder{}})
	if !errors.Is(err, ErrNotEnrolled) {
		t.Errorf("New = %v, want ErrNotEnrolled", err)
	}
}

// tlsCertWithChain returns c with its leaf followed by extra certificates.
func tlsCertWithChain(c tls.Certificate, extra ...[]byte) tls.Certificate {
	c.Certificate = append([][]byte{c.Certificate[0]}, extra...)
	return c
}

func TestBackoffResetsAfterLongStream(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir, _ := enroll(t, srv, true)
	var offset atomic.Int64 // how far the test moved the clock
	attempts := make(chan int, 10)
	startAgent(t, Options{
		DataDir: dir,
		Applier: &recorder{},
		Now:     func() time.Time { return time.Now().Add(time.Duration(offset.Load())) },
		Retry: func(attempt int, _ error) time.Duration {
			attempts <- attempt
			return time.Millisecond
		},
	})
	tests := []struct {
		name  string
		lives time.Duration
		want  int
	}{
		{"short stream", 0, 0},
		{"another short stream", 0, 1},
		{"a stream of 31 s", 31 * time.Second, 0},
		{"short again", 0, 1},
	}
	for _, tt := range tests {
		st := srv.NextStream(t)
		st.SendConfig(t, config(1, "127.0.0.1:2525"))
		st.Next(t)
		offset.Add(int64(tt.lives))
		st.End(status.Error(codes.Unavailable, "going away"))
		select {
		case got := <-attempts:
			if got != tt.want {
				t.Errorf("%s: retry attempt = %d, want %d", tt.name, got, tt.want)
			}
		case <-time.After(centraltest.Wait):
			t.Fatalf("%s: no retry within %v", tt.name, centraltest.Wait)
		}
	}
}

func TestPeriodicStatus(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir, id := enroll(t, srv, true)
	startAgent(t, Options{
		DataDir:        dir,
		Applier:        &recorder{},
		StatusInterval: 10 * time.Millisecond,
		StatusSources: []StatusSource{statusFunc(func() *ospreyv1.SensorStatus {
			return &ospreyv1.SensorStatus{Healthy: false, Problems: []string{"spool disk full"}}
		})},
	})
	st := srv.NextStream(t)
	st.SendConfig(t, config(1, "127.0.0.1:2525"))
	st.Next(t)
	want := &ospreyv1.SensorStatus{Counters: map[string]uint64{}, Problems: []string{"spool disk full"}, CertFingerprint: id.Fingerprint}
	for range 3 { // one after the apply, then periodic ones
		if diff := cmp.Diff(want, st.NextStatus(t), protocmp.Transform(), protocmp.IgnoreEmptyMessages()); diff != "" {
			t.Errorf("status (-want +got):\n%s", diff)
		}
	}
}

// TestStatusChangedSendsAtOnce: with an hour between periodic reports, a
// source whose state changed has the status sent at once, with the SMTP,
// POP3 and spool reports of the first source that has each.
func TestStatusChangedSendsAtOnce(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir, _ := enroll(t, srv, true)
	var failing atomic.Bool
	changed := make(chan struct{}, 1)
	startAgent(t, Options{
		DataDir:        dir,
		Applier:        &recorder{},
		StatusInterval: time.Hour,
		StatusChanged:  changed,
		StatusSources: []StatusSource{
			statusFunc(func() *ospreyv1.SensorStatus {
				st := &ospreyv1.SensorStatus{Healthy: true, Pop3: &ospreyv1.IntegrationStatus{State: ospreyv1.IntegrationState_INTEGRATION_STATE_POLLING}}
				if failing.Load() {
					st.Pop3 = &ospreyv1.IntegrationStatus{State: ospreyv1.IntegrationState_INTEGRATION_STATE_FAILING, LastError: "connection refused"}
				}
				return st
			}),
			statusFunc(func() *ospreyv1.SensorStatus {
				return &ospreyv1.SensorStatus{Healthy: true, Smtp: &ospreyv1.IntegrationStatus{State: ospreyv1.IntegrationState_INTEGRATION_STATE_LISTENING},
					Pop3: &ospreyv1.IntegrationStatus{Target: "not the first"}, Spool: &ospreyv1.SpoolStatus{State: ospreyv1.SpoolState_SPOOL_STATE_OK}}
			}),
		},
	})
	st := srv.NextStream(t)
	st.SendConfig(t, config(1, "127.0.0.1:2525"))
	st.Next(t)
	if got := st.NextStatus(t); got.GetPop3().GetState() != ospreyv1.IntegrationState_INTEGRATION_STATE_POLLING ||
		got.GetSmtp().GetState() != ospreyv1.IntegrationState_INTEGRATION_STATE_LISTENING || got.GetSpool().GetState() != ospreyv1.SpoolState_SPOOL_STATE_OK {
		t.Errorf("status after apply: %v", got)
	}
	failing.Store(true)
	changed <- struct{}{}
	if got := st.NextStatus(t); got.GetPop3().GetLastError() != "connection refused" {
		t.Errorf("status after the change: %v, want POP3 failing", got)
	}
}
