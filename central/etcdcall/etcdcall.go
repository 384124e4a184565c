// Package etcdcall is a request answered through etcd, for a node that must
// reach whichever node holds a connection (a sensor's stream, an SCN's
// link): the caller puts the request under a lease, the holder watches for
// it and puts the answer, and revoking the lease deletes both, whatever
// happened, so nothing is left behind.
package etcdcall

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// LeaseTTL is the lease, in seconds, a request and its answer live under:
// longer than any wait for an answer.
const LeaseTTL = 30

// ErrNoReply is Call's error when no answer came within its wait.
var ErrNoReply = errors.New("no answer")

// NewID is a request id: 16 random bytes in hex (a valid store id).
func NewID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("request id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Call puts req at requestKey under a new lease of LeaseTTL seconds, waits
// up to wait for the answer at replyKey and decodes it into reply. It fails
// with ErrNoReply when none came in time (or ctx's error when ctx was
// cancelled). The lease is revoked on return.
func Call(ctx context.Context, cli *clientv3.Client, requestKey, replyKey string, req proto.Message, wait time.Duration, reply proto.Message) error {
	b, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode the request: %w", err)
	}
	lease, err := cli.Grant(ctx, LeaseTTL)
	if err != nil {
		return fmt.Errorf("grant a lease: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, _ = cli.Revoke(rctx, lease.ID) // deletes the request and the answer
	}()
	put, err := cli.Put(ctx, requestKey, string(b), clientv3.WithLease(lease.ID))
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for resp := range cli.Watch(wctx, replyKey, clientv3.WithRev(put.Header.Revision+1), clientv3.WithFilterDelete()) {
		if err := resp.Err(); err != nil {
			return fmt.Errorf("wait for the answer: %w", err)
		}
		for _, ev := range resp.Events {
			if err := proto.Unmarshal(ev.Kv.Value, reply); err != nil {
				return fmt.Errorf("decode the answer: %w", err)
			}
			return nil
		}
	}
	if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return ErrNoReply
}
