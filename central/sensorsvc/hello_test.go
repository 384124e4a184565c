package sensorsvc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// lateHello is a client whose Connect streams send their first message
// only once the server has answered (Header returns), as a loaded machine
// may schedule it: a server that ends the stream at once has then ended it
// before the Hello, and Send returns io.EOF.
type lateHello struct{ ospreyv1.SensorServiceClient }

func (c lateHello) Connect(ctx context.Context, opts ...grpc.CallOption) (ospreyv1.SensorService_ConnectClient, error) {
	s, err := c.SensorServiceClient.Connect(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &lateHelloStream{SensorService_ConnectClient: s}, nil
}

type lateHelloStream struct {
	ospreyv1.SensorService_ConnectClient
	sent bool
}

func (s *lateHelloStream) Send(m *ospreyv1.ConnectRequest) error {
	if !s.sent {
		s.sent = true
		_, _ = s.Header() // waits for the server's headers or its status
	}
	return s.SensorService_ConnectClient.Send(m)
}

// TestRevokedSensorRefusedBeforeHello: a revoked sensor's stream may end
// before the sensor sent its Hello; the stream still ends with
// PermissionDenied, which Recv reports (Send only returns io.EOF).
func TestRevokedSensorRefusedBeforeHello(t *testing.T) {
	c := newCluster(t, 0)
	e, err := c.enroll(t, c.joinToken(t, 1, time.Time{}))
	if err != nil {
		t.Fatal(err)
	}
	all := store.AllTenants()
	sn, ver, err := c.store.GetSensor(t.Context(), all, e.resp.GetSensorId())
	if err != nil {
		t.Fatal(err)
	}
	sn.State = ospreyv1.SensorState_SENSOR_STATE_REVOKED
	if _, err := c.store.UpdateSensor(t.Context(), all, sn, ver); err != nil {
		t.Fatal(err)
	}
	if err := connect(t, lateHello{c.dial(t, &e.cert)}, 0).ended(t); code(err) != codes.PermissionDenied {
		t.Errorf("revoked sensor connecting: got %v, want PermissionDenied", err)
	}
}
