// Package election runs the terms of an etcd election, for the work one
// central node of a cluster does at a time (the SIEM export, an SCN's link
// to its PCN): campaign, lead while the session lives, and hand over at
// once when the node stops.
package election

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// ErrSessionEnded is returned by Term when the node lost its session (etcd
// unreachable for longer than its TTL) while it led.
var ErrSessionEnded = errors.New("election session ended")

// Term wins the election under prefix, on a session of ttl seconds, with
// value (the node's name), and runs lead with a context that ends when the
// session does or ctx does. It returns nil once ctx ended, after resigning
// so that another node takes over at once rather than after the TTL, and
// ErrSessionEnded when the session ended first.
func Term(ctx context.Context, cli *clientv3.Client, prefix, value string, ttl int, lead func(context.Context, *concurrency.Election, clientv3.LeaseID)) error {
	sess, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("election session: %w", err)
	}
	defer sess.Close()
	el := concurrency.NewElection(sess, prefix)
	if err := campaign(ctx, el, value); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-tctx.Done():
		}
	}()
	lead(tctx, el, sess.Lease())
	if ctx.Err() != nil {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer rcancel()
		_ = el.Resign(rctx) // at worst the session's TTL hands over
		return nil
	}
	return ErrSessionEnded
}

// campaign is el.Campaign, but returns as soon as ctx ends. Campaign
// cleans up after a cancelled campaign with a Resign under the client's
// own context, which has no deadline: without an etcd quorum it waits until
// the quorum is back or the client is closed, and a node that lost its
// quorum would not stop. That clean-up is left to finish behind it (the
// node closes its client once its components have stopped).
func campaign(ctx context.Context, el *concurrency.Election, val string) error {
	done := make(chan error, 1)
	go func() { done <- el.Campaign(ctx, val) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
