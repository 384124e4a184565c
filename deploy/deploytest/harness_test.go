package deploytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/internal/testwait"
)

const (
	zone          = "osprey.internal."
	adminPassword = "deploy test admin password"
	smtpName      = "smtp." + zone
	centralName   = "central." + zone
)

var centrals = []string{"central1", "central2", "central3"}
var branches = []string{"branch1", "branch2"}

// repoRoot is the module's root, two levels up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// needDocker skips the test under -short or without a Docker engine and
// compose, or fails it when OSPREY_REQUIRE_PEERS=1. It returns the compose
// command.
func needDocker(t *testing.T) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the Docker tests take minutes")
	}
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("OSPREY_REQUIRE_PEERS") == "1" {
			t.Fatalf(format+" and OSPREY_REQUIRE_PEERS=1", args...)
		}
		t.Skipf(format, args...)
	}
	if _, err := exec.LookPath("docker"); err != nil {
		missing("docker is not installed: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		missing("no Docker engine answers: %v: %s", err, bytes.TrimSpace(out))
	}
	if exec.CommandContext(ctx, "docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	missing("neither docker compose nor docker-compose is installed (Debian package docker-compose)")
	return nil
}

// imageSet names the images a project runs.
type imageSet struct {
	osprey, client, postgres string
}

// images returns the osprey, mail client and PostgreSQL images, built by
// deploy/image/build.sh unless OSPREY_DEPLOYTEST_IMAGE names the first
// (and OSPREY_DEPLOYTEST_CLIENT_IMAGE, OSPREY_DEPLOYTEST_POSTGRES_IMAGE the
// others; by default those of the same tag).
func images(t *testing.T) imageSet {
	t.Helper()
	if img := os.Getenv("OSPREY_DEPLOYTEST_IMAGE"); img != "" {
		set := imageSet{osprey: img, client: os.Getenv("OSPREY_DEPLOYTEST_CLIENT_IMAGE"), postgres: os.Getenv("OSPREY_DEPLOYTEST_POSTGRES_IMAGE")}
		if set.client == "" {
			set.client = "osprey-mailclient:" + tagOf(img)
		}
		if set.postgres == "" {
			set.postgres = "osprey-postgres:" + tagOf(img)
		}
		return set
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot(t), "deploy", "image", "build.sh"), "deploytest")
	cmd.Env = append(os.Environ(), "VERSION=deploytest")
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deploy/image/build.sh: %v\n%s", err, out)
	}
	t.Logf("images built in %v", time.Since(start).Round(time.Second))
	return imageSet{osprey: "osprey:deploytest", client: "osprey-mailclient:deploytest", postgres: "osprey-postgres:deploytest"}
}

func tagOf(image string) string {
	if i := strings.LastIndexByte(image, ':'); i > 0 && !strings.Contains(image[i:], "/") {
		return image[i+1:]
	}
	return "latest"
}

// docker runs the docker CLI and returns its combined output.
func docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// project is one compose project of deploy/compose, unique to a test.
type project struct {
	t             *testing.T
	compose       []string
	name          string
	file, envFile string
	hq, branch    string // the /24 prefixes, "10.201.7"
	images        imageSet
	containers    map[string]string // service → container id
	extraEnv      []string
}

// hqIP is a central's (n = 1..3) address on the HQ network; branchIP on the branch one.
func (p *project) hqIP(central string) string     { return p.hq + ".1" + central[len(central)-1:] }
func (p *project) postgresIP() string             { return p.hq + ".5" }
func (p *project) branchIP(service string) string { return p.branch + "." + branchHost[service] }

var branchHost = map[string]string{"central1": "11", "central2": "12", "central3": "13", "branch1": "21", "branch2": "22"}

// run runs compose with the project's files and returns its combined output.
func (p *project) run(ctx context.Context, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	full := append(slices.Clone(p.compose[1:]), "--env-file", p.envFile, "-f", p.file, "-p", p.name)
	cmd := exec.CommandContext(ctx, p.compose[0], append(full, args...)...)
	cmd.Env = append(append(os.Environ(), p.extraEnv...), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("compose %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// container is the id of a service's container.
func (p *project) container(service string) string {
	p.t.Helper()
	if id := p.containers[service]; id != "" {
		return id
	}
	out, err := p.run(p.t.Context(), nil, "ps", "-q", service)
	if id := strings.TrimSpace(out); err == nil && id != "" {
		p.containers[service] = id
		return id
	}
	p.t.Fatalf("no container for %s: %v %s", service, err, out)
	return ""
}

func (p *project) network(name string) string { return p.name + "_" + name }

// newProject writes the env file of a new project on free subnets and
// registers its removal (with the logs of every container when the test
// failed).
func newProject(t *testing.T, compose []string, images imageSet) *project {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	p := &project{
		t: t, compose: compose, images: images,
		name:       fmt.Sprintf("ospreydt%06x", mrand.IntN(1<<24)),
		file:       filepath.Join(repoRoot(t), "deploy", "compose", "docker-compose.yml"),
		envFile:    filepath.Join(t.TempDir(), "env"),
		containers: map[string]string{},
	}
	p.pickSubnets(t)
	env := strings.Join([]string{
		"OSPREY_GOSSIP_KEY=" + base64.StdEncoding.EncodeToString(key),
		"OSPREY_ADMIN_PASSWORD=" + adminPassword,
		"OSPREY_DB_PASSWORD=" + rand.Text(),
		"OSPREY_IMAGE=" + images.osprey,
		"OSPREY_CLIENT_IMAGE=" + images.client,
		"OSPREY_POSTGRES_IMAGE=" + images.postgres,
		"OSPREY_ZONE=" + zone,
		"OSPREY_HQ_NET=" + p.hq,
		"OSPREY_BRANCH_NET=" + p.branch,
		"OSPREY_ADMIN_PUBLISH=127.0.0.1:", // a port the engine picks
		"OSPREY_RESTART=no",               // the test restarts what it stops
		"OSPREY_LOG_LEVEL=info",
	}, "\n") + "\n"
	if err := os.WriteFile(p.envFile, []byte(env), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if t.Failed() {
			out, _ := p.run(ctx, nil, "logs", "--no-color", "--tail", "60")
			t.Logf("logs of %s:\n%s", p.name, out)
		}
		// Containers the test ran itself (mail clients) first, then the project.
		if out, err := docker(ctx, "ps", "-aq", "--filter", "label=osprey.deploytest="+p.name); err == nil {
			if ids := strings.Fields(out); len(ids) > 0 {
				docker(ctx, append([]string{"rm", "-f"}, ids...)...)
			}
		}
		if out, err := p.run(ctx, nil, "--profile", "client", "down", "--volumes", "--remove-orphans", "--timeout", "5"); err != nil {
			t.Errorf("remove project %s: %v\n%s", p.name, err, out)
		}
		// Nothing of the project may be left.
		for _, kind := range []string{"container", "network", "volume"} {
			args := []string{kind, "ls", "-q", "--filter", "label=com.docker.compose.project=" + p.name}
			if kind == "container" {
				args = []string{"ps", "-aq", "--filter", "label=com.docker.compose.project=" + p.name}
			}
			if out, err := docker(ctx, args...); err != nil || strings.TrimSpace(out) != "" {
				t.Errorf("after cleanup, %ss of %s left: %q %v", kind, p.name, out, err)
			}
		}
	})
	return p
}

// pickSubnets picks the project's two /24s.
func (p *project) pickSubnets(t *testing.T) {
	t.Helper()
	nets := freeSubnets(t, 2)
	p.hq, p.branch = nets[0], nets[1]
}

// freeSubnets picks n consecutive /24s in 10.200.0.0/13 that no Docker
// network and no interface of this host uses, as "10.201.7" prefixes.
func freeSubnets(t *testing.T, n int) []string {
	t.Helper()
	var used []netip.Prefix
	if out, err := docker(t.Context(), "network", "ls", "-q"); err == nil {
		for _, id := range strings.Fields(out) {
			s, _ := docker(t.Context(), "network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", id)
			for _, f := range strings.Fields(s) {
				if pf, err := netip.ParsePrefix(f); err == nil {
					used = append(used, pf)
				}
			}
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if pf, err := netip.ParsePrefix(a.String()); err == nil {
				used = append(used, pf.Masked())
			}
		}
	}
	free := func(prefix string) bool {
		pf := netip.MustParsePrefix(prefix + ".0/24")
		for _, u := range used {
			if u.Overlaps(pf) {
				return false
			}
		}
		return true
	}
	for range 100 {
		b, c := 200+mrand.IntN(8), mrand.IntN(256-n)
		var nets []string
		for i := range n {
			if pf := fmt.Sprintf("10.%d.%d", b, c+i); free(pf) {
				nets = append(nets, pf)
			}
		}
		if len(nets) == n {
			return nets
		}
	}
	t.Fatalf("no %d free /24s in a row in 10.200.0.0/13", n)
	return nil
}

// cluster is the compose cluster, up and configured: the centrals take mail
// on their HQ addresses, the branch sensors are enrolled and approved.
type cluster struct {
	*project
	token   string
	apis    map[string]*api.Client // by central
	sensors map[string]string      // branch service → sensor id
	hc      *http.Client
}

// startCluster brings the project's centrals up, then enrolls the branch
// sensors through the API (a join token each, then approval) and enables
// SMTP on every sensor.
func startCluster(t *testing.T, p *project) *cluster {
	t.Helper()
	ctx := t.Context()
	start := time.Now()
	if out, err := p.run(ctx, nil, append([]string{"up", "-d"}, centrals...)...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	tlsConfig := &tls.Config{InsecureSkipVerify: true}
	c := &cluster{project: p, apis: map[string]*api.Client{}, sensors: map[string]string{},
		hc: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}}
	t.Cleanup(c.hc.CloseIdleConnections)
	admin, err := api.NewClient(api.Config{Address: "https://" + p.hqIP("central1") + ":8443", Username: "admin", Password: adminPassword, TLSConfig: tlsConfig})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "an API token from central1", func() error {
		tok, err := admin.CreateToken(ctx, api.TokenRequest{Kind: api.TokenAPI, Description: "deploy test"})
		if err == nil {
			c.token = tok.Secret
		}
		return err
	})
	for _, n := range centrals {
		cl, err := api.NewClient(api.Config{Address: "https://" + p.hqIP(n) + ":8443", Token: c.token, TLSConfig: tlsConfig})
		if err != nil {
			t.Fatal(err)
		}
		c.apis[n] = cl
	}
	for _, n := range centrals {
		eventually(t, n+" ready", func() error { return c.readyz(ctx, n) })
	}
	for _, n := range centrals {
		cfg := &api.SMTPIntegration{Enabled: true, Listen: p.hqIP(n) + ":25", DestinationDomains: []string{"example.com"},
			Clients: []string{p.hq + ".0/24"}, MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB}}
		eventually(t, "SMTP on "+n, func() error { _, _, err := c.apis[n].PutSMTP(ctx, n, cfg, 0); return err })
	}

	// Branch sensors: a join token each, the sensor started with it, then
	// approved once it shows as pending.
	for _, b := range branches {
		tok, err := c.apis["central2"].CreateToken(ctx, api.TokenRequest{Kind: api.TokenJoin, Tenant: "default", TTLSeconds: 600, MaxUses: 1})
		if err != nil {
			t.Fatal(err)
		}
		env := []string{"OSPREY_JOIN_TOKEN_" + strings.ToUpper(b) + "=" + tok.Secret}
		if out, err := p.run(ctx, env, "up", "-d", "--no-deps", b); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	eventually(t, "the branch sensors pending", func() error {
		ss, err := c.apis["central3"].Sensors(ctx)
		if err != nil {
			return err
		}
		for _, s := range ss {
			if slices.Contains(branches, s.Name) && s.State == api.SensorPending {
				c.sensors[s.Name] = s.ID
			}
		}
		if len(c.sensors) < len(branches) {
			return fmt.Errorf("pending: %v", c.sensors)
		}
		return nil
	})
	for _, b := range branches {
		id := c.sensors[b]
		if _, err := c.apis["central1"].ApproveSensor(ctx, id); err != nil {
			t.Fatalf("approve %s (%s): %v", b, id, err)
		}
		cfg := &api.SMTPIntegration{Enabled: true, Listen: "0.0.0.0:25", DestinationDomains: []string{"example.com"},
			Clients: []string{p.branch + ".0/24", "127.0.0.0/8"}, MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB}}
		eventually(t, "SMTP on "+b, func() error { _, _, err := c.apis["central1"].PutSMTP(ctx, id, cfg, 0); return err })
	}
	c.waitHealthy(t, "the cluster after bring-up")
	t.Logf("project %s (hq %s.0/24, branch %s.0/24) up and configured in %v", p.name, p.hq, p.branch, time.Since(start).Round(time.Second))
	return c
}

// eventually retries f until it succeeds, and logs f's last error when it
// never did.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	defer func() {
		if err != nil {
			t.Logf("%s: the last try: %v", what, err)
		}
	}()
	testwait.For(t, what, func() bool {
		err = f()
		return err == nil
	})
}

// waitNodes waits until every named central's view of the cluster has the
// three centrals alive and healthy and the etcd quorum.
func (c *cluster) waitNodes(t *testing.T, views []string, what string) {
	t.Helper()
	for _, v := range views {
		eventually(t, v+": "+what, func() error { return c.checkNodes(t.Context(), v, centrals) })
	}
}

// checkNodes checks view's GET /api/v1/nodes: exactly the members want,
// alive with every component healthy, the quorum, and DNS answers that name
// exactly their HQ addresses.
func (c *cluster) checkNodes(ctx context.Context, view string, want []string) error {
	l, err := c.apis[view].Nodes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	var ips []string
	for _, n := range want {
		ips = append(ips, c.hqIP(n))
	}
	seen := map[string]bool{}
	for _, m := range l.Nodes {
		seen[m.Name] = true
		if !slices.Contains(want, m.Name) {
			if m.State == api.NodeAlive {
				errs = append(errs, fmt.Errorf("%s alive, want it out", m.Name))
			}
			continue
		}
		h := m.Health
		if m.State != api.NodeAlive || !h.Etcd || !h.GRPC || !h.HTTP || !h.SMTP || !h.Spool || !h.SQL {
			errs = append(errs, fmt.Errorf("%s: %s %+v", m.Name, m.State, h))
		}
		if wantHTTP := c.hqIP(m.Name) + ":8443"; m.HTTPAddr != wantHTTP {
			errs = append(errs, fmt.Errorf("%s: http %s, want %s", m.Name, m.HTTPAddr, wantHTTP))
		}
	}
	for _, n := range want {
		if !seen[n] {
			errs = append(errs, fmt.Errorf("%s missing", n))
		}
	}
	if !l.DNS.Quorum {
		errs = append(errs, errors.New("no quorum"))
	}
	slices.Sort(ips)
	for _, r := range l.DNS.Records {
		if r.Type == "A" && (r.Name == smtpName || r.Name == centralName) {
			got := slices.Sorted(slices.Values(r.Values))
			if !slices.Equal(got, ips) {
				errs = append(errs, fmt.Errorf("%s A %v, want %v", r.Name, got, ips))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s's view: %w", view, err)
	}
	return nil
}

// checkSensors checks view's sensor list: the five sensors approved, online,
// running the version stored, with no error, each on the central that
// ref shows.
func (c *cluster) checkSensors(ctx context.Context, view string, ref map[string]string) error {
	ss, err := c.apis[view].Sensors(ctx)
	if err != nil {
		return err
	}
	var errs []error
	n := 0
	for _, s := range ss {
		if !slices.Contains(centrals, s.ID) && !slices.Contains(branches, s.Name) {
			continue
		}
		n++
		if s.State != api.SensorApproved || !s.Online || s.AppliedVersion != s.ConfigVersion || s.LastError != "" || s.Node == "" {
			errs = append(errs, fmt.Errorf("%s: %s online=%v node=%q applied %d of %d, error %q", s.Name, s.State, s.Online, s.Node, s.AppliedVersion, s.ConfigVersion, s.LastError))
		}
		if ref != nil && ref[s.ID] != s.Node {
			errs = append(errs, fmt.Errorf("%s: on %s here, on %s in another view", s.Name, s.Node, ref[s.ID]))
		}
		if ref == nil {
			continue
		}
	}
	if n != len(centrals)+len(branches) {
		errs = append(errs, fmt.Errorf("%d sensors, want %d", n, len(centrals)+len(branches)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s's sensor list: %w", view, err)
	}
	return nil
}

// readyz is a central's /readyz status (200: etcd answered a linearizable read).
func (c *cluster) readyz(ctx context.Context, n string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+c.hqIP(n)+":8443/readyz", nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s /readyz: %d", n, resp.StatusCode)
	}
	return nil
}

// waitHealthy waits until the whole cluster is as it should be: etcd
// ready on every central, every central's view of the cluster complete and
// healthy, the DNS answers of every central naming the three, every
// sensor online on the same central in every view.
func (c *cluster) waitHealthy(t *testing.T, what string) {
	t.Helper()
	ctx := t.Context()
	eventually(t, what, func() error {
		var errs []error
		for _, n := range centrals {
			errs = append(errs, c.readyz(ctx, n), c.checkNodes(ctx, n, centrals))
			for _, name := range []string{smtpName, centralName} {
				ips, err := lookupA(c.hqIP(n)+":53", name)
				want := []string{c.hqIP("central1"), c.hqIP("central2"), c.hqIP("central3")}
				if slices.Sort(ips); err != nil || !slices.Equal(ips, want) {
					errs = append(errs, fmt.Errorf("dns %s at %s: %v %v, want %v", name, n, ips, err, want))
				}
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		ss, err := c.apis["central1"].Sensors(ctx)
		if err != nil {
			return err
		}
		ref := map[string]string{}
		for _, s := range ss {
			ref[s.ID] = s.Node
		}
		for _, n := range centrals {
			errs = append(errs, c.checkSensors(ctx, n, ref))
		}
		return errors.Join(errs...)
	})
}

// lookupA asks server for name's A records.
func lookupA(server, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	cl := &dns.Client{Timeout: 500 * time.Millisecond}
	resp, _, err := cl.Exchange(m, server)
	if err != nil {
		return nil, err
	}
	if resp.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("rcode %s", dns.RcodeToString[resp.Rcode])
	}
	var ips []string
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			ips = append(ips, a.A.String())
		}
	}
	return ips, nil
}

// waitDNSWithout polls the DNS responders of servers until none names ip
// for name, and returns how long that took from since.
func waitDNSWithout(t *testing.T, servers []string, name, ip string, since time.Time) time.Duration {
	t.Helper()
	pending := slices.Clone(servers)
	testwait.For(t, fmt.Sprintf("dns %s at %v without %s", name, servers, ip), func() bool {
		pending = slices.DeleteFunc(pending, func(s string) bool {
			ips, err := lookupA(s, name)
			return err == nil && len(ips) > 0 && !slices.Contains(ips, ip)
		})
		return len(pending) == 0
	})
	return time.Since(since)
}
