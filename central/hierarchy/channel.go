package hierarchy

import (
	"context"
	"fmt"
	"sync"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// A Channel carries one kind of traffic on the link besides the hello and
// the heartbeats: users and rules down, alerts up, sensor settings down and
// their answers up. Each side is given its channels in its options; while a
// link is up, every channel's Serve runs on the node holding the link, with
// the link's view (Link) through which it sends and receives.
//
// Out is what this side sends, In what it receives: a PCN's channels are
// PrimaryChannels, an SCN's SecondaryChannels.
type Channel[Out, In any] interface {
	// Claims reports whether a message from the other side is this
	// channel's. Each message goes to the first channel that claims it; one
	// no channel claims is dropped (a later version's kind).
	Claims(m In) bool
	// Serve runs while the link is up and returns when ctx ends. An error
	// ends the link, which the SCN then opens again: return one only for a
	// failure a new link may cure (a store unavailable), never for the
	// other side's bad message, which is answered on the channel instead.
	Serve(ctx context.Context, l *Link[Out, In]) error
}

// PrimaryChannel is a channel as the PCN serves it.
type PrimaryChannel = Channel[*ospreyv1.LinkResponse, *ospreyv1.LinkRequest]

// SecondaryChannel is a channel as an SCN serves it.
type SecondaryChannel = Channel[*ospreyv1.LinkRequest, *ospreyv1.LinkResponse]

// Link is a channel's view of an up link.
type Link[Out, In any] struct {
	// ServerID and Tenant name the SCN: on the PCN, the record the link
	// authenticated as; on the SCN, what the PCN's welcome said.
	ServerID, Tenant string

	send func(Out) error
	in   chan In
}

// Send sends m to the other side. It is safe for concurrent use; it fails
// once the link is gone.
func (l *Link[Out, In]) Send(m Out) error { return l.send(m) }

// Recv returns the next message from the other side that this channel
// claimed, or ctx's error once the link ends.
func (l *Link[Out, In]) Recv(ctx context.Context) (In, error) {
	select {
	case m := <-l.in:
		return m, nil
	case <-ctx.Done():
		var zero In
		return zero, ctx.Err()
	}
}

// channelInbox is how many claimed messages wait for a channel's Recv
// before the link's receive loop waits for it.
const channelInbox = 64

// channels runs one link's channels.
type channels[Out, In any] struct {
	chans []Channel[Out, In]
	links []*Link[Out, In]
	wg    sync.WaitGroup
}

// runChannels starts every channel's Serve under ctx. send must be safe for
// concurrent use. A channel's error cancels ctx with it as the cause (fail),
// which ends the link.
func runChannels[Out, In any](ctx context.Context, fail context.CancelCauseFunc, chans []Channel[Out, In], serverID, tenant string, send func(Out) error) *channels[Out, In] {
	c := &channels[Out, In]{chans: chans}
	for _, ch := range chans {
		l := &Link[Out, In]{ServerID: serverID, Tenant: tenant, send: send, in: make(chan In, channelInbox)}
		c.links = append(c.links, l)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := ch.Serve(ctx, l); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("link channel %T: %w", ch, err))
			}
		}()
	}
	return c
}

// deliver hands m to the first channel that claims it, waiting while that
// channel's inbox is full; it reports false for a message no channel claims.
func (c *channels[Out, In]) deliver(ctx context.Context, m In) (bool, error) {
	for i, ch := range c.chans {
		if !ch.Claims(m) {
			continue
		}
		select {
		case c.links[i].in <- m:
			return true, nil
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
	return false, nil
}

// wait returns once every channel's Serve has; ctx must be done first.
func (c *channels[Out, In]) wait() { c.wg.Wait() }

// lockedSend makes a stream's Send safe for the link's loop and its
// channels to share (a gRPC stream allows one sender at a time).
func lockedSend[M any](send func(M) error) func(M) error {
	var mu sync.Mutex
	return func(m M) error {
		mu.Lock()
		defer mu.Unlock()
		return send(m)
	}
}
