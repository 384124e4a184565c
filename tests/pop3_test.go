package tests

import (
	"encoding/base64"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pop3/pop3test"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// eicarMessage is a message with the EICAR test file attached.
func eicarMessage(subject string) []byte {
	return fmt.Appendf(nil, "From: mallory@evil.example\r\nTo: journal@example.com\r\nSubject: %s\r\n"+
		"Message-ID: <%s@evil.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"+
		"--b\r\nContent-Type: text/plain\r\n\r\nSee the attached file.\r\n"+
		"--b\r\nContent-Type: application/octet-stream; name=eicar.com\r\nContent-Disposition: attachment; filename=eicar.com\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b--\r\n",
		subject, base64.RawURLEncoding.EncodeToString([]byte(subject)), base64.StdEncoding.EncodeToString([]byte(eicarTestFile)))
}

// TestPOP3OneRecordPerMessage: the dev node's sensor polls POP3 servers
// that keep the messages whose deletion they confirmed, or give the ids of
// deleted messages to new ones, over many sessions (each new
// configuration starts one at once), across the poller's switch from
// unique ids to content hashes: each of three EICAR messages gives one
// record and one alert.
func TestPOP3OneRecordPerMessage(t *testing.T) {
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	noUIDL := pop3test.NoUIDL
	tests := []struct {
		name     string
		opts     pop3test.ServerOptions
		switchTo *pop3test.UIDMode // how UIDL answers from the fourth session on
	}{
		{"keeps deleted messages", pop3test.ServerOptions{KeepDeleted: true}, nil},
		{"keeps deleted messages, message numbers as ids", pop3test.ServerOptions{UIDs: pop3test.NumberIDs, KeepDeleted: true}, nil},
		{"keeps deleted messages, then refuses UIDL", pop3test.ServerOptions{KeepDeleted: true}, &noUIDL},
		{"reuses the ids of deleted messages", pop3test.ServerOptions{UIDs: pop3test.NumberIDs}, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.User, tt.opts.Password = "journal", "secret"
			srv := pop3test.StartServer(t, tt.opts)
			host, port, _ := net.SplitHostPort(srv.Addr())
			p, _ := strconv.Atoi(port)
			cfg := &api.POP3Integration{Enabled: true, Server: host, Port: uint32(p), Username: "journal", Password: "secret"}
			mailbox := "journal@" + srv.Addr()
			// poll starts a session with a new configuration (another
			// interval) and waits until one more session has ended.
			poll := func() {
				t.Helper()
				n := srv.Sessions()
				cfg.IntervalSeconds = 10 + uint32(n%2)
				_, v, err := d.api.PutPOP3(t.Context(), "dev", cfg, 0)
				if err != nil {
					t.Fatal(err)
				}
				waitSensor(t, d.api, "dev", fmt.Sprintf("version %d applied", v), func(s *api.Sensor) bool { return s.AppliedVersion >= v })
				testwait.For(t, "a POP3 session", func() bool { return srv.Sessions() > n })
			}
			tag := fmt.Sprintf("pop3-case-%d", i)
			for session := 1; session <= 8; session++ {
				switch session {
				case 1:
					srv.Add(eicarMessage(tag + " message 1"))
					srv.Add(eicarMessage(tag + " message 2"))
				case 5:
					srv.Add(eicarMessage(tag + " message 3"))
				case 4:
					if tt.switchTo != nil {
						srv.SetUIDs(*tt.switchTo)
					}
				case 8:
					// A clean message last: once it is recorded, so is
					// everything spooled before it.
					srv.Add([]byte("Subject: " + tag + " end\r\n\r\nnothing to see\r\n"))
				}
				poll()
			}
			recs := d.waitRecords(t, tag+" end recorded", func(recs []*ospreyv1.MessageRecord) bool {
				n := 0
				for _, r := range recs {
					if r.GetEnvelope().GetMailbox() == mailbox {
						n++
					}
				}
				return n >= 4
			})
			var mine []*ospreyv1.MessageRecord
			for _, r := range recs {
				if r.GetEnvelope().GetMailbox() == mailbox {
					mine = append(mine, r)
				}
			}
			if len(mine) != 4 {
				t.Errorf("%d records of mailbox %s, want 4 (three EICAR messages and the clean one)", len(mine), mailbox)
				for _, r := range mine {
					t.Logf("record %s uidl %q sha256 %s verdict %s", r.GetMessageId(), r.GetUidl(), r.GetSha256(), r.GetVerdict())
				}
			}
			alerts := waitAlert(t, d.api, api.AlertQuery{Tenant: "default", Q: tag}, 3)
			subjects := map[string]bool{}
			for _, a := range alerts {
				if a.Source != api.SourcePOP3 || a.Headers == nil {
					t.Errorf("alert %+v: want one of a POP3 message with its headers", a)
					continue
				}
				subjects[a.Headers.Subject] = true
			}
			if len(subjects) != 3 {
				t.Errorf("alerts of subjects %v, want one for each of the three messages", subjects)
			}
		})
	}
}
