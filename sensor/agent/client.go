package agent

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// clientIdleTimeout is how long a connection of Client stays up with no
// call: an idle sensor then holds one connection with the cluster (its
// stream's), not two, which halves what a central node holds for its idle
// sensors. The next call connects again.
const clientIdleTimeout = time.Minute

// Client returns a client of the central nodes for the calls besides the
// configuration stream (uploads). It uses the target of the current (or last)
// stream, over a connection per target made on first use and kept until Run
// ends (closed while idle for clientIdleTimeout, and made again on the next
// call); every handshake presents the current client certificate, so a
// renewal applies to it too.
func (a *Agent) Client(ctx context.Context) (ospreyv1.SensorServiceClient, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	target := a.State().Target
	if target == "" {
		target = a.targets[0]
	}
	a.connsMu.Lock()
	defer a.connsMu.Unlock()
	if a.connsClosed {
		return nil, errors.New("agent stopped")
	}
	conn := a.conns[target]
	if conn == nil {
		var err error
		opts := append(slices.Clone(a.opts.dialOptions), grpc.WithIdleTimeout(clientIdleTimeout))
		if conn, err = newClient(target, a.tlsConfig(), opts); err != nil {
			return nil, err
		}
		if a.conns == nil {
			a.conns = map[string]*grpc.ClientConn{}
		}
		a.conns[target] = conn
	}
	return ospreyv1.NewSensorServiceClient(conn), nil
}

// closeClients closes the connections Client made.
func (a *Agent) closeClients() {
	a.connsMu.Lock()
	defer a.connsMu.Unlock()
	a.connsClosed = true
	for _, c := range a.conns {
		c.Close()
	}
	a.conns = nil
}
