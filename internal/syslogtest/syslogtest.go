// Package syslogtest is a syslog receiver for tests: TCP (or TLS, with the
// listener given), RFC 6587 octet-counted frames, as Osprey's SIEM export
// sends them.
package syslogtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Receiver reads frames on every connection it accepts and keeps their
// messages. It stops when the test ends.
type Receiver struct {
	ln net.Listener
	mu sync.Mutex
	// msgs are the messages received, in order, over every connection.
	msgs  []string
	conns []net.Conn
	errs  []error
	// abandoned are the errors that ended connections before their first
	// message.
	abandoned []error
	got       chan struct{}
	wg        sync.WaitGroup
}

// Listen starts a Receiver on a loopback port.
func Listen(t testing.TB) *Receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return Start(t, ln)
}

// Start starts a Receiver on ln.
func Start(t testing.TB, ln net.Listener) *Receiver {
	t.Helper()
	r := &Receiver{ln: ln, got: make(chan struct{}, 1)}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.read(c)
			}()
		}
	}()
	t.Cleanup(r.Close)
	return r
}

func (r *Receiver) read(c net.Conn) {
	br := bufio.NewReader(c)
	for first := true; ; first = false {
		n, err := br.ReadString(' ')
		if err != nil {
			if first && !errors.Is(err, net.ErrClosed) {
				r.mu.Lock()
				r.abandoned = append(r.abandoned, err)
				r.mu.Unlock()
			}
			return
		}
		size, err := strconv.Atoi(strings.TrimSuffix(n, " "))
		if err != nil || size <= 0 || size > 1<<20 {
			r.mu.Lock()
			r.errs = append(r.errs, fmt.Errorf("bad frame length %q", n))
			r.mu.Unlock()
			c.Close()
			return
		}
		msg := make([]byte, size)
		if _, err := io.ReadFull(br, msg); err != nil {
			return
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, string(msg))
		r.mu.Unlock()
		select {
		case r.got <- struct{}{}:
		default:
		}
	}
}

// Addr is the address the Receiver listens on.
func (r *Receiver) Addr() string { return r.ln.Addr().String() }

// DropConns closes the connections accepted so far, as a receiver that
// restarts does.
func (r *Receiver) DropConns() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

// Close stops the Receiver.
func (r *Receiver) Close() {
	r.ln.Close()
	r.DropConns()
	r.wg.Wait()
}

// Messages returns the messages received so far.
func (r *Receiver) Messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// Abandoned returns, for each connection that ended before its first
// message other than by the Receiver's closing it, the error that ended
// it: io.EOF when the sender closed it, a TLS alert when the sender
// refused the certificate.
func (r *Receiver) Abandoned() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.abandoned...)
}

// Count returns how many messages carried the alert id (CEF externalId).
func (r *Receiver) Count(id string) int {
	n := 0
	for _, m := range r.Messages() {
		if strings.Contains(m, "externalId="+id+" ") {
			n++
		}
	}
	return n
}

// WaitIDs waits up to within until every alert id in ids was received,
// and returns the messages; it fails the test on a malformed frame.
func (r *Receiver) WaitIDs(t testing.TB, within time.Duration, ids ...string) []string {
	t.Helper()
	deadline := time.After(within)
	for {
		msgs := r.Messages()
		missing := ""
		for _, id := range ids {
			found := false
			for _, m := range msgs {
				found = found || strings.Contains(m, "externalId="+id+" ")
			}
			if !found {
				missing = id
				break
			}
		}
		if missing == "" {
			r.mu.Lock()
			errs := r.errs
			r.mu.Unlock()
			if len(errs) > 0 {
				t.Fatalf("syslog receiver: %v", errs)
			}
			return msgs
		}
		select {
		case <-r.got:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("alert %s not received in %v; got %d messages", missing, within, len(msgs))
		}
	}
}
