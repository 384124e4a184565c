package tests

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/syslogtest"
	"github.com/ospreysec/osprey/internal/testwait"
)

// TestClusterSIEMExportSurvivesLeaderKill: three central processes; the
// SIEM receiver is down while EICAR messages raise alerts, which the node
// leading the export queues; that node is killed with SIGKILL; once the
// receiver is up, every alert reaches it through the node that takes over.
func TestClusterSIEMExportSurvivesLeaderKill(t *testing.T) {
	c := startCluster(t)
	ctx := t.Context()
	waitCluster(t, c.nodes, "three healthy members", allHealthy("n1", "n2", "n3"))
	leader := c.node(siemLeader(t, c))
	sender := c.others(leader)[0]
	other := c.others(leader)[1]
	smtpAddr := net.JoinHostPort(sender.ip, strconv.Itoa(c.ports.smtp))
	putSMTP(t, sender, sender.name, &api.SMTPIntegration{Enabled: true, Listen: smtpAddr,
		DestinationDomains: []string{"example.com"}, Clients: []string{"127.0.0.0/8"},
		MaxMessageSize: &api.SizeLimit{Value: 1, Unit: api.MB}})

	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := down.Addr().String()
	down.Close()
	_, version, err := other.api.PutExport(ctx, "default", &api.SyslogExport{Enabled: true, Address: downAddr}, 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	var sendErr error
	defer func() {
		if sendErr != nil {
			t.Logf("the last send: %v", sendErr)
		}
	}()
	for i := range n {
		from := fmt.Sprintf("siem%d@sender.test", i)
		// The listener may still be starting.
		testwait.For(t, "EICAR message "+from+" accepted", func() bool {
			sendErr = sendMessage(smtpAddr, from, "EICAR "+from, eicarTestFile)
			return sendErr == nil
		})
	}
	var ids []string
	for _, a := range waitAlert(t, other.api, api.AlertQuery{Tenant: "default", Q: "EICAR"}, n) {
		ids = append(ids, a.ID)
	}

	leader.kill(t) // SIGKILL: no resignation, its queue is gone
	r := syslogtest.Listen(t)
	// The kill may have taken etcd's raft leader with it: the API answers
	// 503 until the other two members elect one.
	testwait.For(t, "the export pointed at the receiver", func() bool {
		_, _, err := other.api.PutExport(ctx, "default", &api.SyslogExport{Enabled: true, Address: r.Addr()}, version)
		return err == nil
	})
	killed := time.Now()
	r.WaitIDs(t, 60*time.Second, ids...)
	t.Logf("all %d alerts reached the receiver %v after the leader's kill (its election session lasts 10 s)", n, time.Since(killed).Round(time.Millisecond))
}

// siemLeader returns the name of the node that leads the SIEM export, as
// its election key in etcd says.
func siemLeader(t *testing.T, c *testCluster) string {
	t.Helper()
	var eps []string
	for _, n := range c.nodes {
		eps = append(eps, "http://"+net.JoinHostPort(n.ip, strconv.Itoa(c.ports.etcdClient)))
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var name string
	testwait.For(t, "a SIEM export leader", func() bool {
		resp, err := cli.Get(t.Context(), "/osprey/v1/cluster/siem-leader/", clientv3.WithFirstCreate()...)
		if err != nil || len(resp.Kvs) == 0 {
			return false
		}
		name = string(resp.Kvs[0].Value)
		return true
	})
	return name
}
