package httpapi_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/store"
)

func testNodes() *api.NodeList {
	return &api.NodeList{
		Nodes: []api.Node{
			{Name: "n1", State: api.NodeAlive, Roles: []api.NodeRole{api.NodeRoleCentral, api.NodeRoleSensor}, Self: true,
				GossipAddr: "10.0.0.1:7946", GRPCAddr: "10.0.0.1:7443", HTTPAddr: "10.0.0.1:8443", SMTPAddr: "10.0.0.1:25",
				Health: api.NodeHealth{Etcd: true, GRPC: true, HTTP: true, SMTP: true, Spool: true}},
			{Name: "n2", State: api.NodeDead, Roles: []api.NodeRole{api.NodeRoleCentral}, GossipAddr: "10.0.0.2:7946"},
		},
		DNS: api.ClusterDNS{Zone: "cluster.example.", Addr: "10.0.0.1:53", TTLSeconds: 5, Quorum: true, Records: []api.DNSRecord{
			{Name: "smtp.cluster.example.", Type: "A", Values: []string{"10.0.0.1"}},
		}},
	}
}

// TestListNodes: every role reads the node list, auditors and tenant
// administrators too; a lost quorum is a 503 that says so.
func TestListNodes(t *testing.T) {
	e := newEnv(t)
	for _, user := range []string{"root", "alice", "bob", "audrey"} {
		got, err := e.client(t, user).Nodes(t.Context())
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		if diff := cmp.Diff(testNodes(), got); diff != "" {
			t.Errorf("%s: nodes (-want +got):\n%s", user, diff)
		}
	}
	if _, err := e.client(t, "nobody").Nodes(t.Context()); statusOf(err) != http.StatusUnauthorized {
		t.Errorf("without valid credentials: got %v, want 401", err)
	}

	unavailable := fmt.Errorf("list: %w", store.ErrUnavailable)
	e.nodesErr.Store(&unavailable)
	_, err := e.client(t, "root").Nodes(t.Context())
	var apiErr *api.Error
	if statusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("without quorum: got %v, want 503", err)
	}
	if _ = errors.As(err, &apiErr); !strings.Contains(apiErr.Message, "no quorum") {
		t.Errorf("without quorum: message %q, want one that says the store has no quorum", apiErr.Message)
	}
}
