// Package nodeproc runs the osprey binary's Central Nodes as processes, for
// the benchmark harnesses in bench/: one node started with any command line,
// or a cluster of nodes on 127.0.0.1, 127.0.0.2, … that form an embedded
// etcd quorum, gossip with each other and share one PostgreSQL (from
// internal/pgtest), as operators run a cluster.
//
// A node is ready when it has printed its ready banner on standard output;
// Start waits for it and keeps what the harnesses read from it (the API's
// address, the embedded etcd's, the node's own sensor). Every node of a
// cluster listens on the same port for a given service, each on its own
// address, so a harness reaches node n's service at its IP and that port.
package nodeproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ospreysec/osprey/internal/pgtest"
	"github.com/ospreysec/osprey/pkg/pki"
)

// AdminPassword is the bootstrap password of the admin user of every node
// of a cluster.
const AdminPassword = "nodeproc bench password"

// gossipKey encrypts a cluster's gossip.
const gossipKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// readyTimeout bounds the wait for a node's ready banner.
const readyTimeout = 90 * time.Second

// Node is one Central Node process.
type Node struct {
	Name string
	IP   string
	// Args is the command line, the binary first.
	Args []string
	// LogFile takes the node's standard error, appended across starts;
	// empty sends it to the harness's standard error.
	LogFile string

	// Ready is what the node printed when it was last ready.
	Ready Banner

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process of the last start has exited
	waitErr error         // how it exited, once exited is closed
}

// Banner is what a node says in its ready banner.
type Banner struct {
	// API is the base URL of the REST API and /metrics, without /api/v1.
	API string
	// Etcd lists the client URLs of the node's embedded etcd member.
	Etcd []string
	// LocalSensor is the id of the node's own Sensor component (dev, or
	// central with --sensor); empty without one.
	LocalSensor string
}

var (
	readyLine  = regexp.MustCompile(`^Osprey Central Node is ready\.`)
	bannerLine = regexp.MustCompile(`^\s+([A-Za-z ]+):\s+(\S+)`)
)

// parse reads a banner field into b.
func (b *Banner) parse(key, value string) {
	switch key {
	case "API":
		b.API = strings.TrimSuffix(value, "/api/v1")
	case "Embedded etcd":
		b.Etcd = strings.Split(value, ",")
	case "Local sensor":
		b.LocalSensor = value
	}
}

// Start runs the node and waits for its ready banner. The node is killed
// if the harness dies first.
func (n *Node) Start() error {
	cmd := exec.Command(n.Args[0], n.Args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	if n.LogFile != "" {
		f, err := os.OpenFile(n.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stderr = f
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", n.Name, err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	ready := make(chan Banner, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		// The banner is the lines after its first line, up to a blank
		// line once a field has been read.
		in, fields := false, 0
		var b Banner
		for sc.Scan() {
			line := sc.Text()
			switch m := bannerLine.FindStringSubmatch(line); {
			case readyLine.MatchString(line):
				in, fields, b = true, 0, Banner{}
			case !in:
			case m != nil:
				b.parse(m[1], m[2])
				fields++
			case strings.TrimSpace(line) == "" && fields > 0:
				in = false
				select {
				case ready <- b:
				default: // a banner was read already
				}
			}
		}
		n.waitErr = cmd.Wait()
		close(n.exited)
	}()
	where := ""
	if n.LogFile != "" {
		where = " (log: " + n.LogFile + ")"
	}
	select {
	case n.Ready = <-ready:
		return nil
	case <-n.exited:
		return fmt.Errorf("%s exited before it was ready: %v%s", n.Name, n.waitErr, where)
	case <-time.After(readyTimeout):
		return fmt.Errorf("%s not ready after %v%s", n.Name, readyTimeout, where)
	}
}

// running says whether the node was started and has not exited.
func (n *Node) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Signal sends sig to the node, if it runs, and waits for it to exit.
func (n *Node) Signal(sig syscall.Signal) {
	if n.running() {
		n.cmd.Process.Signal(sig)
		<-n.exited
	}
}

// stopGrace is how long Stop waits for a node to exit after SIGTERM.
const stopGrace = 30 * time.Second

// Stop sends the node SIGTERM, if it runs, and waits for it to exit; a
// node still running stopGrace later is killed, and Stop says so.
func (n *Node) Stop() error {
	if !n.running() {
		return nil
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		return nil
	case <-time.After(stopGrace):
		n.cmd.Process.Kill()
		<-n.exited
		return fmt.Errorf("%s still running %v after SIGTERM: killed", n.Name, stopGrace)
	}
}

// Pid is the process id of the node's last start.
func (n *Node) Pid() int { return n.cmd.Process.Pid }

// Options says what cluster to start.
type Options struct {
	// Bin is the osprey binary.
	Bin string
	// Nodes is how many nodes: node i (from 1) is named n<i> and listens
	// on 127.0.0.<i>.
	Nodes int
	// Args, when set, returns the flags to add to node n's command line
	// (n.Name and n.IP are set): --sensor, say.
	Args func(n *Node) []string
}

// Services are the ports Start reserves, free for TCP and UDP on every
// node's address. A node listens on all but smtp, which is left for the
// SMTP listener a harness gives the node's own sensor.
var Services = []string{"http", "grpc", "gossip", "dns", "etcd-client", "etcd-peer", "smtp"}

// Cluster is the nodes of a cluster as processes, and their PostgreSQL.
type Cluster struct {
	// Dir holds the nodes' data dirs and logs and the cluster key.
	Dir   string
	Ports map[string]int // by service
	Nodes []*Node
	DB    *pgtest.Server // the PostgreSQL the nodes share
	DBURL string         // the nodes' --db-url
}

// Start starts a PostgreSQL and the nodes, and waits until every node is
// ready: each is then a member of the etcd quorum, but gossip may not have
// brought every node into every other's view yet.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	dir, err := os.MkdirTemp("", "nodeproc")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, Ports: map[string]int{}}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	var ips []string
	for i := range opts.Nodes {
		ips = append(ips, fmt.Sprintf("127.0.0.%d", i+1))
	}
	keyFile := filepath.Join(dir, "cluster.key")
	if _, err := pki.LoadOrCreateKEK(keyFile); err != nil {
		return nil, err
	}
	used := map[int]bool{}
	for _, s := range Services {
		if c.Ports[s], err = freePort(ips, used); err != nil {
			return nil, err
		}
	}
	if c.DB, err = pgtest.StartDurable(ctx); err != nil {
		return nil, err
	}
	if _, c.DBURL, err = c.DB.CreateDB(ctx); err != nil {
		return nil, err
	}
	var initial, join []string
	for i, ip := range ips {
		initial = append(initial, fmt.Sprintf("n%d=https://%s:%d", i+1, ip, c.Ports["etcd-peer"]))
		join = append(join, net.JoinHostPort(ip, strconv.Itoa(c.Ports["gossip"])))
	}
	for i, ip := range ips {
		n := &Node{Name: fmt.Sprintf("n%d", i+1), IP: ip, LogFile: filepath.Join(dir, fmt.Sprintf("n%d.log", i+1))}
		at := func(s string) string { return c.Addr(n, s) }
		n.Args = []string{opts.Bin, "central", "--node-name", n.Name, "--data-dir", filepath.Join(dir, n.Name),
			"--http-addr", at("http"), "--grpc-addr", at("grpc"), "--gossip-addr", at("gossip"),
			"--join", strings.Join(join, ","), "--gossip-key", gossipKey, "--dns-addr", at("dns"),
			"--etcd-initial-cluster", strings.Join(initial, ","), "--etcd-client-addr", at("etcd-client"),
			"--etcd-peer-addr", at("etcd-peer"), "--cluster-key-file", keyFile, "--db-url", c.DBURL,
			"--bootstrap-admin-password", AdminPassword, "--log-level", "warn"}
		if opts.Args != nil {
			n.Args = append(n.Args, opts.Args(n)...)
		}
		c.Nodes = append(c.Nodes, n)
	}
	// The nodes start together: each waits for a quorum of etcd members.
	errc := make(chan error, len(c.Nodes))
	for _, n := range c.Nodes {
		go func() { errc <- n.Start() }()
	}
	for range c.Nodes {
		if e := <-errc; e != nil && err == nil {
			err = e
		}
	}
	return c, err
}

// Addr is where node n listens for service.
func (c *Cluster) Addr(n *Node, service string) string {
	return net.JoinHostPort(n.IP, strconv.Itoa(c.Ports[service]))
}

// Stop ends every node, one after the other, and the PostgreSQL, and
// removes the cluster's files. It returns which nodes did not stop on
// SIGTERM and were killed: the last node to stop has lost its etcd quorum,
// and a node must stop even then.
func (c *Cluster) Stop() error {
	var errs []error
	for _, n := range c.Nodes {
		errs = append(errs, n.Stop())
	}
	if c.DB != nil {
		c.DB.Close()
	}
	os.RemoveAll(c.Dir)
	return errors.Join(errs...)
}

// freePort returns a port free for TCP and UDP on every address of ips now,
// and not in used; it adds it to used.
func freePort(ips []string, used map[int]bool) (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		closers := []func() error{ln.Close}
		ok := !used[port]
		for i, ip := range ips {
			if !ok {
				break
			}
			addr := net.JoinHostPort(ip, strconv.Itoa(port))
			if i > 0 {
				l, err := net.Listen("tcp", addr)
				if ok = err == nil; ok {
					closers = append(closers, l.Close)
				}
			}
			if ok {
				pc, err := net.ListenPacket("udp", addr)
				if ok = err == nil; ok {
					closers = append(closers, pc.Close)
				}
			}
		}
		for _, c := range closers {
			c()
		}
		if ok {
			used[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free on all of %v", ips)
}

// Build builds the osprey binary of the tree the harness runs in (its
// working directory is the module's root) into a new temporary directory,
// and returns its path; the caller removes the directory.
func Build(name string) (string, error) {
	dir, err := os.MkdirTemp("", name)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "osprey")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/osprey").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build: %v\n%s", err, out)
	}
	return bin, nil
}

// RaiseFileLimit lifts RLIMIT_NOFILE as far as the system allows, for a
// harness whose simulated sensors each hold a connection; the nodes it
// starts inherit the limit.
func RaiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
