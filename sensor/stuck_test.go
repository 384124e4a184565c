//go:build linux

package sensor_test

import (
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor"
	"github.com/ospreysec/osprey/sensor/internal/centraltest"
)

// A message the central refuses stays in the spool, and the sensor's status
// says so, naming it: the operator sees what is stuck without reading logs.
func TestRunReportsAMessageTheCentralRefuses(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{Approve: true})
	srv.RefuseUploads(func(string) error {
		return status.Error(codes.InvalidArgument, "got 10 bytes, the header declared 12")
	})
	listen := loopbackPort(t)
	run(t, sensor.Options{
		Central:        srv.Addr(),
		JoinToken:      srv.Token().String(),
		DataDir:        filepath.Join(t.TempDir(), "data"),
		StatusInterval: 20 * time.Millisecond,
	})
	st := srv.NextStream(t)
	st.SendConfig(t, &ospreyv1.SensorConfig{Revision: 1, Smtp: &ospreyv1.SmtpIntegration{
		Enabled:            true,
		Listen:             listen,
		DestinationDomains: []string{"example.com"},
		MaxMessageSize:     &ospreyv1.SizeLimit{Value: 1, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB},
	}})
	waitStatus(t, st, "with SMTP listening", func(s *ospreyv1.SensorStatus) bool {
		return s.GetSmtp().GetState() == ospreyv1.IntegrationState_INTEGRATION_STATE_LISTENING
	})
	sendMail(t, listen, 1)
	waitStatus(t, st, "that tells of the refused message", func(s *ospreyv1.SensorStatus) bool {
		return hasProblem(s, "1 spooled message fails to upload, kept in the spool and retried (") &&
			s.GetHealthy() && s.GetSpool().GetMessages() == 1 && s.GetCounters()["upload_failures"] == 1
	})
}
