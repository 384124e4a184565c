package deploytest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// outage is how long the branch sensor stays cut from the centrals
// (OSPREY_DEPLOYTEST_OUTAGE, default a minute).
func outage(t *testing.T) time.Duration {
	t.Helper()
	if s := os.Getenv("OSPREY_DEPLOYTEST_OUTAGE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("OSPREY_DEPLOYTEST_OUTAGE: %v", err)
		}
		return d
	}
	return time.Minute
}

// TestComposeFaults brings up deploy/compose (three centrals sharing one
// PostgreSQL, two branch sensors) and, with mail flowing from HQ to
// smtp.<zone> and from a branch office to its sensor, kills a central,
// partitions one, restarts all of them one by one, stops and starts
// PostgreSQL, and cuts a branch sensor from the centrals; after each, every
// message answered 250 is recorded exactly once and every node shows the
// same healthy cluster.
func TestComposeFaults(t *testing.T) {
	compose := needDocker(t)
	p := newProject(t, compose, images(t))
	c := startCluster(t, p)
	c.checkPostgresReach(t)
	var report []string
	defer func() {
		t.Logf("report:\n%s", strings.Join(report, "\n"))
	}()
	reportf := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		report = append(report, line)
		t.Log(line)
	}

	// scenario runs fault while both senders send, then checks what the
	// cluster recorded and its health.
	scenario := func(name string, fault func(t *testing.T, hq, br *sender)) {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			hq := hqSender(t, p, name+"-hq")
			br := branchSender(t, p, name+"-br", "branch1")
			hq.waitAccepted(t, 50)
			br.waitAccepted(t, 20)
			fault(t, hq, br)
			// Mail flows again after the fault, then the senders stop.
			hq.waitAccepted(t, 50)
			br.waitAccepted(t, 20)
			hq.stop(t)
			br.stop(t)
			hd := c.checkRecorded(t, "central1", hq)
			bd := c.checkRecorded(t, "central1", br)
			reportf("%s: HQ → smtp.%s: %v", name, zone, hd)
			reportf("%s: branch office → branch1: %v", name, bd)
			c.waitHealthy(t, "the cluster after "+name)
			reportf("%s: done in %v; by node: %v", name, time.Since(start).Round(time.Second), hq.byAddr)
		})
	}

	scenario("kill", func(t *testing.T, hq, br *sender) {
		// kill -9 the central that took the last message.
		ip := hq.last()
		victim := c.centralAt(t, ip)
		survivors := others(victim)
		killed := time.Now()
		if _, err := docker(t.Context(), "kill", p.container(victim)); err != nil {
			t.Fatal(err)
		}
		smtpGone := waitDNSWithout(t, c.dnsServers(survivors), smtpName, ip, killed)
		centralGone := waitDNSWithout(t, c.dnsServers(survivors), centralName, ip, killed)
		reportf("kill: %s (kill -9) out of smtp.%s on both survivors after %v, out of central.%s after %v",
			victim, zone, smtpGone.Round(time.Millisecond), zone, centralGone.Round(time.Millisecond))
		// The survivors show it dead, keep the quorum, take writes, and
		// mail flows to them.
		for _, v := range survivors {
			eventually(t, v+"'s view without "+victim, func() error { return c.checkNodes(t.Context(), v, survivors) })
		}
		c.write(t, survivors[0])
		hq.waitAccepted(t, 100)
		br.waitAccepted(t, 20)
		if _, err := docker(t.Context(), "start", p.container(victim)); err != nil {
			t.Fatal(err)
		}
		c.waitNodes(t, centrals, "three healthy centrals after "+victim+" restarted")
	})

	scenario("partition", func(t *testing.T, hq, br *sender) {
		// Cut a central from the HQ network: from the other centrals (etcd,
		// gossip) and from the mail client; it keeps its branch address.
		victim := "central3"
		ip := p.hqIP(victim)
		survivors := others(victim)
		cut := time.Now()
		if _, err := docker(t.Context(), "network", "disconnect", p.network("hq"), p.container(victim)); err != nil {
			t.Fatal(err)
		}
		smtpGone := waitDNSWithout(t, c.dnsServers(survivors), smtpName, ip, cut)
		centralGone := waitDNSWithout(t, c.dnsServers(survivors), centralName, ip, cut)
		reportf("partition: %s (network disconnect) out of smtp.%s on both others after %v, out of central.%s after %v",
			victim, zone, smtpGone.Round(time.Millisecond), zone, centralGone.Round(time.Millisecond))
		for _, v := range survivors {
			eventually(t, v+"'s view without "+victim, func() error { return c.checkNodes(t.Context(), v, survivors) })
		}
		c.write(t, survivors[1])
		hq.waitAccepted(t, 100)
		br.waitAccepted(t, 20)
		if d := 15*time.Second - time.Since(cut); d > 0 {
			time.Sleep(d)
		}
		if _, err := docker(t.Context(), "network", "connect", "--ip", ip, p.network("hq"), p.container(victim)); err != nil {
			t.Fatal(err)
		}
		healed := time.Now()
		c.waitNodes(t, centrals, "three healthy centrals after the partition healed")
		reportf("partition: healed after %v; every view complete %v later", time.Since(cut).Round(time.Second), time.Since(healed).Round(time.Millisecond))
	})

	scenario("rolling-restart", func(t *testing.T, hq, br *sender) {
		for _, n := range centrals {
			ip := p.hqIP(n)
			stopped := time.Now()
			// docker restart: SIGTERM (the node leaves the cluster), then start.
			done := make(chan error, 1)
			go func() { _, err := docker(t.Context(), "restart", "--time", "20", p.container(n)); done <- err }()
			gone := waitDNSWithout(t, c.dnsServers(others(n)), smtpName, ip, stopped)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			c.waitNodes(t, centrals, "three healthy centrals after "+n+" restarted")
			reportf("rolling-restart: %s out of smtp.%s after %v (SIGTERM), back in every view %v after the stop",
				n, zone, gone.Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond))
			hq.waitAccepted(t, 20)
		}
	})

	scenario("postgres-restart", func(t *testing.T, hq, br *sender) {
		// docker stop: SIGINT, PostgreSQL's fast shutdown, which ends every
		// central's connections; started again on its volume once mail has
		// been taken meanwhile.
		pg := p.container("postgres")
		hqBefore, _ := hq.counts()
		brBefore, _ := br.counts()
		stopped := time.Now()
		if _, err := docker(t.Context(), "stop", "--time", "20", pg); err != nil {
			t.Fatal(err)
		}
		down := time.Since(stopped)
		// Every central shows it in its health, and stays ready: it still
		// pushes configuration and serves the API.
		for _, n := range centrals {
			eventually(t, n+" sees its database unreachable", func() error {
				l, err := c.apis[n].Nodes(t.Context())
				if err != nil {
					return err
				}
				for _, m := range l.Nodes {
					if m.Self && m.Health.SQL {
						return fmt.Errorf("%s: sql healthy", n)
					}
				}
				return c.readyz(t.Context(), n)
			})
		}
		// Mail is still taken: the sensors spool it, and retry the uploads
		// the centrals refuse (Unavailable).
		hq.waitAccepted(t, 50)
		br.waitAccepted(t, 20)
		hqDuring, _ := hq.counts()
		brDuring, _ := br.counts()
		if _, err := docker(t.Context(), "start", pg); err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		for _, n := range centrals {
			eventually(t, n+" reaches its database again", func() error { return c.checkNodes(t.Context(), n, centrals) })
		}
		reportf("postgres-restart: stopped in %v (SIGINT), down for %v; %d messages accepted at HQ and %d at branch1 meanwhile; every central healthy %v after the start",
			down.Round(time.Millisecond), started.Sub(stopped).Round(time.Second), hqDuring-hqBefore, brDuring-brBefore, time.Since(started).Round(time.Millisecond))
	})

	scenario("branch-link", func(t *testing.T, hq, br *sender) {
		b := "branch1"
		id := c.sensors[b]
		cut := time.Now()
		if _, err := docker(t.Context(), "network", "disconnect", p.network("branch"), p.container(b)); err != nil {
			t.Fatal(err)
		}
		// Every central shows it offline; it keeps taking mail.
		for _, v := range centrals {
			eventually(t, v+" shows "+b+" offline", func() error {
				s, err := c.apis[v].Sensor(t.Context(), id)
				if err == nil && s.Online {
					err = fmt.Errorf("%s online on %s", b, s.Node)
				}
				return err
			})
		}
		offline := time.Since(cut)
		br.waitAccepted(t, 50)
		if d := outage(t) - time.Since(cut); d > 0 {
			time.Sleep(d)
		}
		spooled, _ := br.counts()
		if _, err := docker(t.Context(), "network", "connect", "--ip", p.branchIP(b), p.network("branch"), p.container(b)); err != nil {
			t.Fatal(err)
		}
		restored := time.Now()
		for _, v := range centrals {
			eventually(t, v+" shows "+b+" online", func() error {
				s, err := c.apis[v].Sensor(t.Context(), id)
				if err == nil && (!s.Online || s.AppliedVersion != s.ConfigVersion) {
					err = fmt.Errorf("%s online=%v applied %d of %d", b, s.Online, s.AppliedVersion, s.ConfigVersion)
				}
				return err
			})
		}
		reportf("branch-link: %s cut for %v: offline on every central after %v; %d messages accepted (spooled) by the end of the cut; online on every central %v after the link came back",
			b, restored.Sub(cut).Round(time.Second), offline.Round(time.Millisecond), spooled, time.Since(restored).Round(time.Millisecond))
	})
}

// checkPostgresReach checks that PostgreSQL answers from a central's
// network namespace and cannot be reached from a branch sensor's, with
// pg_isready (exit status 0: accepting connections, 2: no answer).
func (c *cluster) checkPostgresReach(t *testing.T) {
	t.Helper()
	for _, tc := range []struct {
		from string
		want int
	}{{"central1", 0}, {"branch1", 2}} {
		cmd := exec.CommandContext(t.Context(), "docker", "run", "--rm", "--label", "osprey.deploytest="+c.name,
			"--network", "container:"+c.container(tc.from), "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
			"--entrypoint", "/usr/local/bin/pg_isready", c.images.postgres, "-h", c.postgresIP(), "-p", "5432", "-t", "5")
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		got := 0
		switch {
		case errors.As(err, &exit):
			got = exit.ExitCode()
		case err != nil:
			t.Fatalf("pg_isready from %s: %v: %s", tc.from, err, out)
		}
		if got != tc.want {
			t.Errorf("pg_isready %s:5432 from %s: exit status %d (%s), want %d", c.postgresIP(), tc.from, got, bytes.TrimSpace(out), tc.want)
		}
	}
}

// centralAt is the central whose HQ address is ip.
func (c *cluster) centralAt(t *testing.T, ip string) string {
	t.Helper()
	for _, n := range centrals {
		if c.hqIP(n) == ip {
			return n
		}
	}
	t.Fatalf("no central at %q", ip)
	return ""
}

func others(n string) []string {
	return slices.DeleteFunc(slices.Clone(centrals), func(s string) bool { return s == n })
}

func (c *cluster) dnsServers(nodes []string) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, c.hqIP(n)+":53")
	}
	return out
}

// write changes branch2's SMTP integration through central n (and back):
// etcd takes writes.
func (c *cluster) write(t *testing.T, n string) {
	t.Helper()
	id := c.sensors["branch2"]
	eventually(t, "a write through "+n, func() error {
		cfg, _, err := c.apis[n].SMTP(t.Context(), id)
		if err != nil {
			return err
		}
		if cfg.MaxMessageSize.Value == 10 {
			cfg.MaxMessageSize.Value = 11
		} else {
			cfg.MaxMessageSize.Value = 10
		}
		_, _, err = c.apis[n].PutSMTP(t.Context(), id, cfg, 0)
		return err
	})
}
