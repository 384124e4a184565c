package central_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central"
	"github.com/ospreysec/osprey/internal/pgtest"
	"github.com/ospreysec/osprey/internal/testwait"
)

func TestClusterOptionsAreValidated(t *testing.T) {
	base := func() central.Options {
		return central.Options{DataDir: "d", NodeName: "n1",
			HTTP: central.HTTPOptions{Addr: "127.0.0.1:0"}, GRPC: central.GRPCOptions{Addr: "127.0.0.1:0"},
			Gossip: central.GossipOptions{Addr: "127.0.0.1:0", Key: testGossipKey}, DNS: central.DNSOptions{Addr: "127.0.0.1:0"}}
	}
	if err := (&central.Options{DataDir: "d", NodeName: "n1", Dev: true,
		HTTP: central.HTTPOptions{Addr: "127.0.0.1:0"}, GRPC: central.GRPCOptions{Addr: "127.0.0.1:0"},
		Gossip: central.GossipOptions{Addr: "127.0.0.1:0"}, DNS: central.DNSOptions{Addr: "127.0.0.1:0"}}).Validate(); err != nil {
		t.Errorf("dev without a gossip key: %v, want no error", err)
	}
	for _, tt := range []struct {
		name string
		mod  func(*central.Options)
		want []string
	}{
		{"no gossip key outside dev", func(o *central.Options) { o.Gossip.Key = "" }, []string{"--gossip-key"}},
		{"bad key", func(o *central.Options) { o.Gossip.Key = "c2hvcnQ=" }, []string{"--gossip-key", "want 32"}},
		{"bad addresses", func(o *central.Options) { o.Gossip.Addr, o.DNS.Addr, o.Gossip.Join = "nope", "", []string{"x"} },
			[]string{"--gossip-addr", "--dns-addr", "--join"}},
		{"bad zone and timing", func(o *central.Options) { o.DNS.Zone, o.Gossip.Timing = "a..b", "fast" }, []string{"--dns-zone", "--gossip-timing"}},
		{"plaintext peer URLs", func(o *central.Options) { o.Etcd.InitialCluster = "n1=http://127.0.0.1:2380" },
			[]string{"n1=http://127.0.0.1:2380", "peer URLs are https://"}},
		{"initial cluster without this node", func(o *central.Options) { o.Etcd.InitialCluster = "n2=https://127.0.0.2:2380" },
			[]string{"--etcd-initial-cluster", `"n1"`}},
		{"existing without a cluster", func(o *central.Options) { o.Etcd.InitialClusterState = "existing" }, []string{"needs --etcd-initial-cluster"}},
		{"a cluster without a database", func(o *central.Options) { o.Gossip.Join = []string{"127.0.0.2:7946"} }, []string{"--db-url", "PostgreSQL"}},
		{"a database URL of another kind", func(o *central.Options) { o.DB.URL = "mysql://db/osprey" }, []string{"--db-url", "postgres://"}},
		{"message retention too short", func(o *central.Options) { o.DB.MessageRetention = time.Hour }, []string{"--message-retention", "72h"}},
		{"bad rspamd options", func(o *central.Options) {
			o.Scan.RspamdURL, o.Scan.RspamdTimeout, o.Scan.RspamdMaxSize = "127.0.0.1:11333", -time.Second, -1
		}, []string{"--rspamd-url", "want http://", "--rspamd-timeout", "--rspamd-max-size"}},
		{"initial cluster with external etcd", func(o *central.Options) {
			o.Etcd.InitialCluster, o.Etcd.Endpoints = "n1=https://127.0.0.1:2380", []string{"http://e:2379"}
		}, []string{"only with the embedded etcd"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			tt.mod(&o)
			err := o.Validate()
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("got %v, want an error containing %q", err, w)
				}
			}
		})
	}
}

// TestTwoNodesGossipHealthAndDNS runs two central nodes in this process, on
// 127.0.0.1 and 127.0.0.2, over the first one's etcd: they find each other
// by --join, list each other in GET /api/v1/nodes, and answer DNS with both;
// the first runs a Sensor component whose SMTP listener (a bare TCP listener
// here) puts it in smtp.<zone> once its integration is enabled; the second
// leaves on stop and is gone from the first one's answers at once.
func TestTwoNodesGossipHealthAndDNS(t *testing.T) {
	const password = "a long bootstrap password"
	dir, db := t.TempDir(), pgtest.DB(t)
	n1 := startNode(t, central.Options{DataDir: dir, NodeName: "n1", BootstrapAdminPassword: password,
		HTTP: central.HTTPOptions{Addr: "127.0.0.1:0"}, LocalSensor: central.LocalSensorOptions{Run: true},
		DNS: central.DNSOptions{Zone: "cluster.test"}, DB: central.DBOptions{URL: db}})
	n2 := startNode(t, central.Options{DataDir: t.TempDir(), NodeName: "n2", ClusterKeyFile: dir + "/cluster.key",
		DB: central.DBOptions{URL: db}, Etcd: central.EtcdOptions{Endpoints: n1.ready.EtcdEndpoints},
		HTTP: central.HTTPOptions{Addr: "127.0.0.2:0"}, GRPC: central.GRPCOptions{Addr: "127.0.0.2:0"},
		Gossip: central.GossipOptions{Addr: "127.0.0.2:0", Join: []string{n1.ready.GossipAddr}},
		DNS:    central.DNSOptions{Addr: "127.0.0.2:0", Zone: "cluster.test"}})
	if n1.ready.LocalSensorID != "n1" || n1.ready.LocalSensorJoinToken == "" {
		t.Errorf("--sensor: ready %+v, want the local sensor n1 and its join token", n1.ready)
	}
	// An API token, not a password: polling with bcrypt on every call
	// would be most of this test's time under the race detector.
	tok, err := n1.client(t, password).CreateToken(t.Context(), api.TokenRequest{Kind: api.TokenAPI})
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := tokenClient(t, n1, tok.Secret), tokenClient(t, n2, tok.Secret)

	// Both nodes alive and healthy, as either sees it.
	waitNodes(t, c1, "both alive and healthy", func(l *api.NodeList) bool {
		return len(l.Nodes) == 2 && all(l.Nodes, func(n api.Node) bool {
			return n.State == api.NodeAlive && n.Health.Etcd && n.Health.GRPC && n.Health.HTTP
		})
	})
	l := waitNodes(t, c2, "both alive, seen by n2", func(l *api.NodeList) bool {
		return len(l.Nodes) == 2 && all(l.Nodes, func(n api.Node) bool { return n.State == api.NodeAlive })
	})
	for _, n := range l.Nodes {
		wantRoles := []api.NodeRole{api.NodeRoleCentral}
		if n.Name == "n1" {
			wantRoles = append(wantRoles, api.NodeRoleSensor)
		}
		if !slices.Equal(n.Roles, wantRoles) || n.Self != (n.Name == "n2") {
			t.Errorf("%s: roles %v self %v, want %v and self only for n2", n.Name, n.Roles, n.Self, wantRoles)
		}
	}
	if l.DNS.Zone != "cluster.test." || !l.DNS.Quorum || l.DNS.TTLSeconds != 5 {
		t.Errorf("dns: %+v", l.DNS)
	}
	waitDNS(t, n1.ready.DNSAddr, "central.cluster.test.", []string{"127.0.0.1", "127.0.0.2"})
	waitDNS(t, n2.ready.DNSAddr, "central.cluster.test.", []string{"127.0.0.1", "127.0.0.2"})
	waitDNS(t, n1.ready.DNSAddr, "smtp.cluster.test.", nil)

	// The local sensor's SMTP listener: once enabled and accepting, n1 is in smtp.<zone>.
	smtpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer smtpLn.Close()
	go func() {
		for {
			c, err := smtpLn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	smtp := &api.SMTPIntegration{Enabled: true, Listen: smtpLn.Addr().String(), DestinationDomains: []string{"example.com"},
		MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB}}
	if _, _, err := c1.PutSMTP(t.Context(), "n1", smtp, 0); err != nil {
		t.Fatal(err)
	}
	waitDNS(t, n2.ready.DNSAddr, "smtp.cluster.test.", []string{"127.0.0.1"})
	l = waitNodes(t, c1, "n1's SMTP healthy", func(l *api.NodeList) bool {
		return slices.ContainsFunc(l.Nodes, func(n api.Node) bool { return n.Name == "n1" && n.Health.SMTP })
	})
	if i := slices.IndexFunc(l.Nodes, func(n api.Node) bool { return n.Name == "n1" }); l.Nodes[i].SMTPAddr != smtpLn.Addr().String() {
		t.Errorf("n1's SMTP address: got %q, want %q", l.Nodes[i].SMTPAddr, smtpLn.Addr())
	}
	smtp.Enabled = false
	if _, _, err := c1.PutSMTP(t.Context(), "n1", smtp, 0); err != nil {
		t.Fatal(err)
	}
	waitDNS(t, n2.ready.DNSAddr, "smtp.cluster.test.", nil)

	// A graceful stop: n2 leaves, and n1 drops it at once.
	if err := n2.stop(); err != nil {
		t.Fatalf("stop n2: %v", err)
	}
	start := time.Now()
	waitDNS(t, n1.ready.DNSAddr, "central.cluster.test.", []string{"127.0.0.1"})
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("n2 left the answers %v after its stop returned, want at once", d)
	}
	waitNodes(t, c1, "n2 left", func(l *api.NodeList) bool {
		return slices.ContainsFunc(l.Nodes, func(n api.Node) bool { return n.Name == "n2" && n.State == api.NodeLeft })
	})
}

func tokenClient(t *testing.T, n *node, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: n.ready.HTTPURL, Token: token, TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func all[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if !f(v) {
			return false
		}
	}
	return true
}

// waitNodes polls c's GET /api/v1/nodes until ok accepts the list, and
// returns that list.
func waitNodes(t *testing.T, c *api.Client, what string, ok func(*api.NodeList) bool) *api.NodeList {
	t.Helper()
	var l *api.NodeList
	testwait.For(t, "nodes: "+what, func() bool {
		var err error
		l, err = c.Nodes(t.Context())
		return err == nil && ok(l)
	})
	return l
}

// waitDNS asks server for name's A records until they are want (sorted).
func waitDNS(t *testing.T, server, name string, want []string) {
	t.Helper()
	testwait.For(t, fmt.Sprintf("dns %s at %s to answer %v", name, server, want), func() bool {
		got, err := lookupA(server, name)
		return err == nil && slices.Equal(got, want)
	})
}

func lookupA(server, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	c := &dns.Client{Timeout: time.Second}
	resp, _, err := c.Exchange(m, server)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			ip, _ := netip.AddrFromSlice(a.A)
			out = append(out, ip.Unmap().String())
		}
	}
	slices.Sort(out)
	return out, nil
}
