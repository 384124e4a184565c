package tests

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/clusterca"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/pgtest"
	"github.com/ospreysec/osprey/internal/sensorsim"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/pki"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

const eicarLine = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// simSensor makes an approved sensor of tenant default with a certificate
// from the cluster's CA, for uploads made by the test itself.
func (c *testCluster) simSensor(t *testing.T, id string) *sensorsim.Sensor {
	t.Helper()
	var eps []string
	for _, n := range c.nodes {
		eps = append(eps, "http://"+net.JoinHostPort(n.ip, strconv.Itoa(c.ports.etcdClient)))
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	st := store.New(cli)
	kek, err := pki.LoadOrCreateKEK(c.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := clusterca.Load(t.Context(), st, kek)
	if err != nil {
		t.Fatal(err)
	}
	fleet, err := sensorsim.NewFleet(t.Context(), st, ca, "default", id, 1)
	if err != nil {
		t.Fatal(err)
	}
	return fleet.Sensors[0]
}

func (n *clusterProc) grpcAddr(c *testCluster) string {
	return net.JoinHostPort(n.ip, strconv.Itoa(c.ports.grpc))
}

// testMessage is a message of the test, with the EICAR file when bad.
func testMessage(i int, bad bool) []byte {
	body := fmt.Sprintf("From: sender%d@example.org\r\nTo: user@example.com\r\nSubject: race %d\r\nMessage-ID: <race-%d@example.org>\r\n\r\n", i, i, i)
	if bad {
		return []byte(body + eicarLine + "\r\n")
	}
	return []byte(body + fmt.Sprintf("hello %d\r\n", i))
}

// TestUploadsRacingAcrossNodesAreRecordedOnce uploads each of 30 messages
// to the three nodes of a cluster at once, as a sensor's retries after lost
// answers can: the nodes share one PostgreSQL, and each message is
// recorded once, answered as new once and as a duplicate otherwise, and
// the third with the EICAR test file raises one alert each.
func TestUploadsRacingAcrossNodesAreRecordedOnce(t *testing.T) {
	c := startCluster(t)
	s := c.simSensor(t, "racer")
	const n = 30
	ctx := t.Context()
	var (
		mu     sync.Mutex
		fresh  = map[string]int{}
		failed []error
		wg     sync.WaitGroup
	)
	for i := range n {
		id := fmt.Sprintf("race-%02d", i)
		env := &ospreyv1.Envelope{MailFrom: fmt.Sprintf("sender%d@example.org", i), RcptTo: []string{"user@example.com"}, ClientAddr: "192.0.2.9:25000"}
		for _, node := range c.nodes {
			wg.Go(func() {
				resp, err := s.Upload(ctx, node.grpcAddr(c), id, env, testMessage(i, i%3 == 0))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed = append(failed, err)
					return
				}
				if !resp.GetDuplicate() {
					fresh[id]++
				}
			})
		}
	}
	wg.Wait()
	for _, err := range failed {
		t.Errorf("upload: %v", err)
	}
	for i := range n {
		if id := fmt.Sprintf("race-%02d", i); fresh[id] != 1 {
			t.Errorf("%s: answered as new %d times, want once", id, fresh[id])
		}
	}

	db, err := sqlstore.Open(ctx, sqlstore.Options{URL: c.dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.CountMessages(ctx, store.AllTenants(), "default", s.ID); err != nil || got != n {
		t.Errorf("records: %d, %v; want %d", got, err, n)
	}
	alerts, err := c.nodes[0].api.Alerts(ctx, api.AlertQuery{Tenant: "default", Sensor: s.ID, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	perMessage := map[string]int{}
	for _, a := range alerts.Alerts {
		perMessage[a.MessageID]++
	}
	if len(alerts.Alerts) != n/3 || len(perMessage) != n/3 {
		t.Errorf("alerts: %d for %d messages, want %d, one each", len(alerts.Alerts), len(perMessage), n/3)
	}
}

// TestPostgresRestartLosesNothing kills the cluster's PostgreSQL while a
// sensor uploads, and starts it again once uploads have failed a few
// times: the sensor keeps its messages and retries, and once the database
// is back every message is recorded once.
func TestPostgresRestartLosesNothing(t *testing.T) {
	// A PostgreSQL of its own, which the test kills.
	ctx := t.Context()
	srv, err := pgtest.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	_, dbURL, err := srv.CreateDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := startClusterDB(t, dbURL)
	s := c.simSensor(t, "steady")
	const n = 60
	var refused atomic.Int32 // uploads answered with an error
	var wg sync.WaitGroup
	stop := make(chan struct{})
	killed := make(chan struct{})
	// One uploader, retrying each message until it is answered, as the
	// sensor's uploader does; the database dies a third of the way in.
	wg.Go(func() {
		for i := range n {
			if i == n/3 {
				close(killed)
			}
			id := fmt.Sprintf("steady-%02d", i)
			env := &ospreyv1.Envelope{MailFrom: fmt.Sprintf("s%d@example.org", i), RcptTo: []string{"user@example.com"}}
			for attempt := 0; ; attempt++ {
				node := c.nodes[(i+attempt)%len(c.nodes)]
				uctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				_, err := s.Upload(uctx, node.grpcAddr(c), id, env, testMessage(i, false))
				cancel()
				if err == nil {
					break
				}
				refused.Add(1)
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	})
	<-killed
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	// The outage lasts until it has refused a few uploads.
	testwait.For(t, "5 uploads refused while the database is down", func() bool { return refused.Load() >= 5 })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		close(stop)
		<-done
		t.Fatal("uploads not all answered 3 minutes after the database came back")
	}
	db, err := sqlstore.Open(ctx, sqlstore.Options{URL: c.dbURL})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.CountMessages(ctx, store.AllTenants(), "default", s.ID); err != nil || got != n {
		t.Errorf("records: %d, %v; want %d", got, err, n)
	}
	if refused.Load() == 0 {
		t.Error("no upload failed while the database was down: the test tested nothing")
	}
	t.Logf("%d uploads refused while the database was down", refused.Load())
}
