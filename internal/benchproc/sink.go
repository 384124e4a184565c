package benchproc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Counter keeps the time at which a running counter printed by
// smtp-source -c or smtp-sink -c reached each value.
type Counter struct {
	mu    sync.Mutex
	times []time.Time
	grew  chan struct{} // closed and replaced on each step
}

// Read consumes r, whose records end in \r or \n, until EOF; parse returns
// the counter's value in a record.
func (c *Counter) Read(r io.Reader, parse func(string) (int, bool)) {
	sc := bufio.NewScanner(r)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		n, ok := parse(sc.Text())
		if !ok {
			continue
		}
		now := time.Now()
		c.mu.Lock()
		for len(c.times) < n {
			c.times = append(c.times, now)
		}
		if c.grew != nil {
			close(c.grew)
			c.grew = nil
		}
		c.mu.Unlock()
	}
}

// Count is the counter's value.
func (c *Counter) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.times)
}

// At is when the counter reached k+1.
func (c *Counter) At(k int) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.times[k]
}

// WaitFor waits until the counter reaches n, and returns the time of each
// step so far. It fails when the counter did not move for idle.
func (c *Counter) WaitFor(n int, idle time.Duration) ([]time.Time, error) {
	for {
		c.mu.Lock()
		if len(c.times) >= n {
			t := slices.Clone(c.times)
			c.mu.Unlock()
			return t, nil
		}
		if c.grew == nil {
			c.grew = make(chan struct{})
		}
		grew, have := c.grew, len(c.times)
		c.mu.Unlock()
		select {
		case <-grew:
		case <-time.After(idle):
			return nil, fmt.Errorf("at %d of %d, and still for %s", have, n, idle)
		}
	}
}

// Sink is Postfix's smtp-sink on a loopback port, counting the messages
// it takes.
type Sink struct {
	Addr string
	cmd  *exec.Cmd
	Counter
}

var sinkLine = regexp.MustCompile(`mesg=(\d+)`)

// StartSink starts smtp-sink (as the postfix user: it refuses to run as
// root) with up to 1000 sessions, and waits until it listens.
func StartSink() (*Sink, error) {
	addr, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &Sink{Addr: addr}
	s.cmd = exec.Command("smtp-sink", "-u", "postfix", "-c", s.Addr, "1000")
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("smtp-sink: %w", err)
	}
	go s.Read(out, func(line string) (int, bool) {
		m := sinkLine.FindStringSubmatch(line)
		if m == nil {
			return 0, false
		}
		n, err := strconv.Atoi(m[1])
		return n, err == nil
	})
	if err := WaitListen(s.Addr); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop stops the sink.
func (s *Sink) Stop() { s.cmd.Process.Kill(); s.cmd.Wait() }

// FreePort returns a loopback address with a port free now.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// WaitListen waits up to 30 s until something listens on addr.
func WaitListen(addr string) error {
	for range 300 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s", addr)
}
