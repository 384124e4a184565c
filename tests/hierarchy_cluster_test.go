package tests

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/ospreysec/osprey/api"
)

// TestHierarchyClusterSCN joins a three-node cluster to a PCN as one SCN:
// any node of it can ask to join, one node at a time (an election) holds
// the link, and when that node is killed another takes the link over
// without a new join or login.
func TestHierarchyClusterSCN(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four central nodes")
	}
	dir := t.TempDir()
	pcn := startDev(t, filepath.Join(dir, "pcn"), "OSPREY_PCN=true", "OSPREY_HIERARCHY_HEARTBEAT="+testHeartbeat,
		"OSPREY_HTTP_ADDR=127.0.0.5:0", "OSPREY_GRPC_ADDR=127.0.0.5:0")
	pcnGRPC := grpcLine.FindStringSubmatch(pcn.stdout.String())[1]
	c := startCluster(t)
	ctx := t.Context()

	const scnUser, scnPassword = "branch-cluster", "the branch cluster account's long password"
	if _, err := pcn.api.CreateUser(ctx, api.User{Name: scnUser, Role: api.RoleAdministrator, AllTenants: true, Password: scnPassword}); err != nil {
		t.Fatal(err)
	}
	h, err := pcn.api.Hierarchy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The join, from the second node of the SCN: any node may ask.
	asker := c.nodes[1]
	fp, err := asker.api.PCNFingerprint(ctx, pcnGRPC)
	if err != nil {
		t.Fatal(err)
	}
	if fp.Fingerprint != h.OwnFingerprint {
		t.Fatalf("the SCN fetched fingerprint %q, the PCN shows %q", fp.Fingerprint, h.OwnFingerprint)
	}
	if _, err := asker.api.JoinPCN(ctx, api.JoinPCN{Address: pcnGRPC, Fingerprint: fp.Fingerprint, Name: "branch-cluster", Username: scnUser, Password: scnPassword}); err != nil {
		t.Fatal(err)
	}
	if _, err := pcn.api.AcceptServer(ctx, "branch-cluster", "default"); err != nil {
		t.Fatal(err)
	}

	// Every node of the SCN shows the same link, held by one of them; the
	// PCN counts the cluster's three sensors (each node runs one).
	holder := waitLinkHolder(t, c.nodes, "")
	waitServer(t, pcn, "branch-cluster", "online with the cluster's sensors", func(s api.Server) bool {
		return s.Online && s.Sensors == 3
	})

	// The node holding the link is killed: another node of the SCN takes
	// the link over (its election lease runs out), with the same
	// certificate and token.
	dead := c.node(holder)
	dead.kill(t)
	next := waitLinkHolder(t, c.others(dead), holder)
	t.Logf("the link moved from %s to %s", holder, next)
	waitServer(t, pcn, "branch-cluster", "online again through another node", func(s api.Server) bool { return s.Online })
	for _, n := range c.others(dead) {
		h, err := n.api.Hierarchy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if h.State != api.PrimaryLinked || h.Error != "" {
			t.Errorf("%s after the failover: state %q, error %q; want linked without an error", n.name, h.State, h.Error)
		}
	}

	// The killed node comes back: the link stays where it is.
	c.restart(dead)
	if got := waitLinkHolder(t, c.nodes, ""); got != next {
		t.Errorf("after %s came back the link is held by %s, want it left with %s", holder, got, next)
	}
}

// waitLinkHolder waits until every node of nodes shows the SCN's link
// online, held by the same node other than not, and returns that node.
func waitLinkHolder(t *testing.T, nodes []*clusterProc, not string) string {
	t.Helper()
	var holder string
	var last error
	wait(t, "the SCN's link held by one node"+map[bool]string{true: "", false: " other than " + not}[not == ""], 3*testTokenLifetime, func() bool {
		holder, last = "", nil
		for _, n := range nodes {
			h, err := n.api.Hierarchy(t.Context())
			if err != nil {
				last = err
				return false
			}
			if h.Role != api.HierarchySecondary || !h.Online || h.Node == "" || h.Node == not {
				last = fmt.Errorf("%s shows role %q, online %v, held by %q", n.name, h.Role, h.Online, h.Node)
				return false
			}
			if holder != "" && h.Node != holder {
				last = fmt.Errorf("%s shows the link held by %s, another node by %s", n.name, h.Node, holder)
				return false
			}
			holder = h.Node
		}
		return true
	})
	if last != nil {
		t.Log(last)
	}
	return holder
}
