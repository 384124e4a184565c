package central

import (
	"context"
	"log/slog"
	"sync"
)

// A component is one long-running part of a node. run serves until ctx
// ends, then stops what it started and returns; an error it returns before
// that stops the node.
type component struct {
	name string
	run  func(ctx context.Context) error
}

// runComponents runs cs, each in its own goroutine, until ctx ends or one
// of them fails, and then stops them in the reverse of their order: a
// component's context ends only once every component after it has
// returned, so each may use those before it for as long as it runs. started
// is called once every component has been started. runComponents returns
// the first error of a component.
func runComponents(ctx context.Context, log *slog.Logger, cs []component, started func()) error {
	var (
		once     sync.Once
		firstErr error
		failed   = make(chan struct{})
		cancels  = make([]context.CancelFunc, len(cs))
		dones    = make([]chan struct{}, len(cs))
	)
	for i, c := range cs {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cancels[i], dones[i] = cancel, make(chan struct{})
		go func() {
			defer close(dones[i])
			if err := c.run(cctx); err != nil {
				once.Do(func() {
					firstErr = err
					close(failed)
				})
				if cctx.Err() == nil {
					log.Error("component failed; stopping the node", "failed", c.name, "err", err)
				}
			}
		}()
	}
	if started != nil {
		started()
	}
	select {
	case <-ctx.Done():
	case <-failed:
	}
	for i := len(cs) - 1; i >= 0; i-- {
		cancels[i]()
		<-dones[i]
		log.Debug("component stopped", "stopped", cs[i].name)
	}
	return firstErr
}
