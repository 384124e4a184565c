package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/ospreysec/osprey/api"
)

// nodesList prints the cluster's central nodes as the answering node sees
// them, with the components that work and those that fail (GET
// /api/v1/nodes).
func nodesList(ctx context.Context, c *api.Client, _ ctlArgs, out io.Writer) error {
	list, err := c.Nodes(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tROLES\tOK\tFAILING")
	for _, n := range list.Nodes {
		name := n.Name
		if n.Self {
			name += " (this)"
		}
		roles := make([]string, len(n.Roles))
		for i, r := range n.Roles {
			roles[i] = string(r)
		}
		ok, failing := healthLists(n)
		if n.MetadataError != "" {
			ok, failing = "-", "unreadable metadata"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, n.State, strings.Join(roles, ","), ok, failing)
	}
	return tw.Flush()
}

// nodeComponent is one of a node's components and whether it works.
type nodeComponent struct {
	name string
	ok   bool
}

// healthLists names a node's components that work and those that fail,
// "-" for none: smtp and spool only on a node with the sensor role,
// rspamd only on one that asks it.
func healthLists(n api.Node) (ok, failing string) {
	h := n.Health
	comps := []nodeComponent{{"etcd", h.Etcd}, {"grpc", h.GRPC}, {"http", h.HTTP}, {"sql", h.SQL}}
	if slices.Contains(n.Roles, api.NodeRoleSensor) {
		comps = append(comps, nodeComponent{"smtp", h.SMTP}, nodeComponent{"spool", h.Spool})
	}
	if h.Rspamd != nil {
		comps = append(comps, nodeComponent{"rspamd", *h.Rspamd})
	}
	var good, bad []string
	for _, c := range comps {
		if c.ok {
			good = append(good, c.name)
		} else {
			bad = append(bad, c.name)
		}
	}
	join := func(s []string) string {
		if len(s) == 0 {
			return "-"
		}
		return strings.Join(s, ",")
	}
	return join(good), join(bad)
}
