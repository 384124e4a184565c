package store

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Node is a central node's record in the cluster's node list.
type Node struct {
	// Name is the node's name (--node-name).
	Name string
	// GossipAddr is the gossip address the node advertised at its last start.
	GossipAddr string
}

// PutNode records that the central node called name gossips at gossipAddr
// (IP:port). Each node writes its record at every start; the records are
// where the nodes find each other again after a partition (see ListNodes).
// It is the node's machinery, not a caller's: it takes no scope.
func (s *Store) PutNode(ctx context.Context, name, gossipAddr string) error {
	if err := CheckID("node", name); err != nil {
		return err
	}
	if _, err := netip.ParseAddrPort(gossipAddr); err != nil {
		return fmt.Errorf("node %s: gossip address %q: %w", name, gossipAddr, err)
	}
	key := nodeKey(name)
	unchanged := clientv3.Compare(clientv3.Value(key), "=", gossipAddr)
	if _, err := s.cli.Txn(ctx).If(unchanged).Else(clientv3.OpPut(key, gossipAddr)).Commit(); err != nil {
		return etcdErr("txn", key, err)
	}
	return nil
}

// ListNodes returns the node list, by name. It reads this etcd member's own
// copy (a serializable read), so a node cut off from the quorum still finds
// the others to rejoin them.
func (s *Store) ListNodes(ctx context.Context) ([]Node, error) {
	resp, err := s.cli.Get(ctx, nodesPrefix, clientv3.WithPrefix(), clientv3.WithSerializable())
	if err != nil {
		return nil, etcdErr("range", nodesPrefix, err)
	}
	out := make([]Node, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		name := strings.TrimPrefix(string(kv.Key), nodesPrefix)
		if !validID(name) {
			continue
		}
		out = append(out, Node{Name: name, GossipAddr: string(kv.Value)})
	}
	return out, nil
}
