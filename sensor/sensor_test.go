package sensor_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/testing/protocmp"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor"
	"github.com/ospreysec/osprey/sensor/agent"
	"github.com/ospreysec/osprey/sensor/internal/centraltest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// notices collects the lines Run prints for the operator, and signals
// each one.
type notices struct {
	mu    sync.Mutex
	lines []string
	added chan struct{}
}

func newNotices() *notices { return &notices{added: make(chan struct{}, 100)} }

func (n *notices) add(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lines = append(n.lines, s)
	n.added <- struct{}{}
}

func (n *notices) text() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.lines, "\n")
}

// waitFor waits for a line that contains s.
func (n *notices) waitFor(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(centraltest.Wait)
	for !strings.Contains(n.text(), s) {
		select {
		case <-n.added:
		case <-timeout:
			t.Fatalf("no notice %q within %v; got:\n%s", s, centraltest.Wait, n.text())
		}
	}
}

// run runs the sensor until stop is called, which returns Run's error.
func run(t *testing.T, opts sensor.Options) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- sensor.Run(ctx, opts) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(centraltest.Wait):
				t.Errorf("Run did not return within %v of cancel", centraltest.Wait)
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestRunEnrollsThenStreams(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	dir := filepath.Join(t.TempDir(), "data")
	out := newNotices()
	applied := make(chan int64, 10)
	opts := sensor.Options{
		Central:   srv.Addr(),
		JoinToken: srv.Token().String(),
		DataDir:   dir,
		Name:      "branch-1",
		Notice:    out.add,
		Appliers: []agent.Applier{agent.ApplierFunc(func(_ context.Context, cfg *ospreyv1.SensorConfig) error {
			applied <- cfg.GetRevision()
			return nil
		})},
	}
	stop := run(t, opts)

	// Pending until approved; then the stream comes up.
	out.waitFor(t, "Waiting for approval")
	id, err := agent.LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetState(id.SensorID, ospreyv1.SensorState_SENSOR_STATE_APPROVED)
	st := srv.NextStream(t)
	st.SendConfig(t, &ospreyv1.SensorConfig{Revision: 3})
	want := &ospreyv1.ConnectRequest{Msg: &ospreyv1.ConnectRequest_Ack{Ack: &ospreyv1.Ack{Revision: 3}}}
	if diff := cmp.Diff(want, st.Next(t), protocmp.Transform()); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if got := <-applied; got != 3 {
		t.Errorf("applied revision %d, want 3", got)
	}
	if err := stop(); err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
	text := out.text()
	for _, want := range []string{id.Fingerprint, "Waiting for approval", id.SensorID} {
		if !strings.Contains(text, want) {
			t.Errorf("notices do not mention %q:\n%s", want, text)
		}
	}

	// Started again, with a token that means nothing now: no enrollment.
	opts.JoinToken = "not a token"
	opts.Notice = nil
	run(t, opts)
	st = srv.NextStream(t)
	if st.Identity.SensorID != id.SensorID || st.Hello.GetAppliedRevision() != 3 {
		t.Errorf("second run connected as %s at revision %d, want %s at 3",
			st.Identity.SensorID, st.Hello.GetAppliedRevision(), id.SensorID)
	}
	if got := srv.Enrolls(); got != 1 {
		t.Errorf("enrollments = %d, want 1", got)
	}
}

func TestRunRefuses(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{})
	tests := []struct {
		name string
		opts sensor.Options
		want string
	}{
		{"no data dir", sensor.Options{Central: srv.Addr(), JoinToken: srv.Token().String()}, "data dir is empty"},
		{"not enrolled and no token", sensor.Options{Central: srv.Addr(), DataDir: t.TempDir()}, "give a join token"},
		{"not enrolled and no central", sensor.Options{JoinToken: srv.Token().String(), DataDir: t.TempDir()}, "give the central"},
		{"malformed token", sensor.Options{Central: srv.Addr(), JoinToken: "OSPJ1.x", DataDir: t.TempDir()}, "malformed join token"},
		{"spool floor below 1 MB", sensor.Options{DataDir: t.TempDir(), SpoolMinFreeBytes: 4096}, "--spool-min-free: 4096 bytes: want at least 1 MB"},
		{"negative spool floor", sensor.Options{DataDir: t.TempDir(), SpoolMinFreeBytes: -1}, "--spool-min-free: -1 bytes"},
		{"negative status interval", sensor.Options{DataDir: t.TempDir(), StatusInterval: -time.Second}, "status interval -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sensor.Run(t.Context(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
