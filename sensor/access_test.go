//go:build linux

package sensor_test

import (
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor"
	"github.com/ospreysec/osprey/sensor/internal/centraltest"
)

// A gateway whose local domain's next hop does not answer recipient
// verification's probes defers its recipients, and the sensor's status
// names the next hop, in its problems and the SMTP integration's: the
// operator sees why mail is deferred without reading logs.
func TestRunReportsANextHopThatFailsProbes(t *testing.T) {
	srv := centraltest.NewServer(t, centraltest.Options{Approve: true})
	listen := loopbackPort(t)
	_, down, _ := net.SplitHostPort(loopbackPort(t)) // nobody listens there
	port, _ := strconv.Atoi(down)
	run(t, sensor.Options{
		Central:        srv.Addr(),
		JoinToken:      srv.Token().String(),
		DataDir:        filepath.Join(t.TempDir(), "data"),
		Hostname:       "gw.osprey.test",
		StatusInterval: 20 * time.Millisecond,
	})
	st := srv.NextStream(t)
	st.SendConfig(t, &ospreyv1.SensorConfig{Revision: 1, Smtp: &ospreyv1.SmtpIntegration{
		Enabled:        true,
		Mode:           ospreyv1.SmtpMode_SMTP_MODE_INBOUND,
		MaxMessageSize: &ospreyv1.SizeLimit{Value: 1, Unit: ospreyv1.SizeUnit_SIZE_UNIT_MB},
		Gateway: &ospreyv1.SmtpGateway{
			Inbound:               &ospreyv1.GatewayListener{Listen: listen},
			LocalDomains:          []*ospreyv1.LocalDomain{{Domain: "example.com", Hosts: []*ospreyv1.NextHop{{Host: "127.0.0.1", Port: uint32(port)}}}},
			RecipientVerification: &ospreyv1.RecipientVerification{Enabled: true},
		},
	}})
	if ack := st.Next(t).GetAck(); ack.GetRevision() != 1 {
		t.Fatalf("answer: %v, want the Ack of revision 1", ack)
	}
	for i := range 3 {
		err := smtp.SendMail(listen, nil, "alice@sender.test", []string{"user" + strconv.Itoa(i) + "@example.com"}, []byte(mailBody(i)))
		var reply *textproto.Error
		if !errors.As(err, &reply) || reply.Code != 450 || !strings.HasPrefix(reply.Msg, "4.1.1 ") {
			t.Fatalf("send to an unverifiable recipient: %v, want 450 4.1.1", err)
		}
	}
	const problem = "WARNING: recipient verification: next hop route:example.com failed 3 probes in a row since "
	waitStatus(t, st, "that names the next hop", func(s *ospreyv1.SensorStatus) bool {
		return hasProblem(s, problem) && slices.ContainsFunc(s.GetSmtp().GetProblems(), func(p string) bool { return strings.HasPrefix(p, problem) }) &&
			s.GetCounters()["rcptverify_tempfail"] == 3 && s.GetSmtp().GetRefusals()["recipient_verify_tempfail"] == 3
	})
}
