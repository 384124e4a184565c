package agent

import (
	"crypto/tls"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// serviceConfig makes a client connection use every address its target
// resolves to: pick_first tries them in turn (skipping the dead ones) and
// shuffles them first, so that sensors spread over the central nodes a DNS
// name answers with.
const serviceConfig = `{"loadBalancingConfig": [{"pick_first": {"shuffleAddressList": true}}]}`

// Keepalive of the client connection. gRPC does not ping more often than
// every 10 s; with the timeout, a dead central is noticed within 15 s. The
// central must permit it (keepalive.EnforcementPolicy with MinTime at most
// 10 s and PermitWithoutStream).
const (
	keepaliveTime    = 10 * time.Second
	keepaliveTimeout = 5 * time.Second
)

// maxRecvMsg bounds a message from the central: the configuration, with
// its acceptance lists (see TestRecvLimitFitsAcceptanceLists), is the
// largest. It is the bound of the stored configuration too. The central's
// server sends messages of any size (gRPC's default).
const maxRecvMsg = maxAppliedFile

// dialOptions are the options of every client connection the agent makes,
// for enrollment (with pinned TLS) and for streams (with mutual TLS).
func dialOptions(tlsConfig *tls.Config) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                keepaliveTime,
			Timeout:             keepaliveTimeout,
			PermitWithoutStream: true,
		}),
		// A configuration may carry three acceptance lists of up to
		// acceptlist.MaxBytes each, past gRPC's default 4 MiB.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsg)),
		// The agent paces its own retries; these bound one connection attempt.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 500 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 10 * time.Second,
		}),
	}
}

// newClient makes a client connection to target, which gRPC resolves
// ("host:port" through DNS, or "dns:///name:port").
func newClient(target string, tlsConfig *tls.Config, extra []grpc.DialOption) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(target, append(dialOptions(tlsConfig), extra...)...)
	if err != nil {
		return nil, fmt.Errorf("central %q: %w", target, err)
	}
	return conn, nil
}
