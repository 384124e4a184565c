package sensor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"golang.org/x/sync/errgroup"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/smtpd"
)

// listeners are the SMTP servers of the integration, one per listener role
// (smtpd.Roles): the monitor listener, and a gateway's inbound, outbound
// and submission listeners for IPv4 and IPv6. Each configuration goes to all of
// them; a server whose role the configuration does not use listens on
// nothing.
type listeners struct {
	servers []*smtpd.Server

	mu      sync.Mutex                // guards applied and lists, which Apply sets and the status reads
	applied *ospreyv1.SmtpIntegration // the configuration every server runs
	lists   smtpd.Lists               // and its acceptance lists
}

func newListeners(opts smtpd.Options) *listeners {
	l := &listeners{}
	for _, role := range smtpd.Roles {
		o := opts
		o.Role = role
		if o.Logger != nil {
			o.Logger = o.Logger.With("listener", role.String())
		}
		l.servers = append(l.servers, smtpd.New(o))
	}
	return l
}

// Apply hands cfg and the acceptance lists to every server, the lists
// compiled once for all. It takes the whole configuration or none of it:
// when one server refuses it (an address that cannot be bound), those that
// took it go back to the configuration before.
func (l *listeners) Apply(ctx context.Context, cfg *ospreyv1.SmtpIntegration, acceptance []*ospreyv1.AcceptanceList) error {
	lists, err := smtpd.CompileLists(cfg, acceptance)
	if err != nil {
		return fmt.Errorf("smtp integration: %w", err)
	}
	prev, prevLists := l.running()
	for i, s := range l.servers {
		err := s.ApplyLists(ctx, cfg, lists)
		if err == nil {
			continue
		}
		var undo []error
		for _, done := range l.servers[:i] {
			if uerr := done.ApplyLists(ctx, prev, prevLists); uerr != nil {
				undo = append(undo, uerr)
			}
		}
		if len(undo) > 0 {
			return errors.Join(err, fmt.Errorf("go back to the previous SMTP configuration: %w", errors.Join(undo...)))
		}
		return err
	}
	l.mu.Lock()
	l.applied, l.lists = cfg, lists
	l.mu.Unlock()
	return nil
}

// running returns the configuration the servers run, and its lists.
func (l *listeners) running() (*ospreyv1.SmtpIntegration, smtpd.Lists) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.applied, l.lists
}

// Run runs every server until ctx ends and each has stopped.
func (l *listeners) Run(ctx context.Context) error {
	var g errgroup.Group
	for _, s := range l.servers {
		g.Go(func() error { return s.Run(ctx) })
	}
	return g.Wait()
}

// Stats adds up the servers' counters.
func (l *listeners) Stats() smtpd.Stats {
	var sum smtpd.Stats
	for _, s := range l.servers {
		st := s.Stats()
		sum.Connections += st.Connections
		sum.Active += st.Active
		sum.Accepted += st.Accepted
		sum.AcceptedBytes += st.AcceptedBytes
		sum.Authenticated += st.Authenticated
		if st.LastAccepted.After(sum.LastAccepted) {
			sum.LastAccepted = st.LastAccepted
		}
		if sum.Rejected == nil {
			sum.Rejected = make(map[string]uint64, len(st.Rejected))
		}
		for r, n := range st.Rejected {
			sum.Rejected[r] += n
		}
		sum.LookupFailures += st.LookupFailures
		if st.LastLookupFailure.After(sum.LastLookupFailure) {
			sum.LastLookupFailure, sum.LastLookupError = st.LastLookupFailure, st.LastLookupError
		}
	}
	return sum
}

// Addrs returns the addresses listened on, monitor listener first.
func (l *listeners) Addrs() []net.Addr {
	var out []net.Addr
	for _, s := range l.servers {
		if a := s.Addr(); a != nil {
			out = append(out, a)
		}
	}
	return out
}

// Addr returns the first address listened on (the monitor listener's, or
// a gateway's inbound one), nil when none.
func (l *listeners) Addr() net.Addr {
	if a := l.Addrs(); len(a) > 0 {
		return a[0]
	}
	return nil
}
