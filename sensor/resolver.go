package sensor

import (
	"fmt"
	"log/slog"

	"github.com/ospreysec/osprey/sensor/delivery"
	"github.com/ospreysec/osprey/sensor/dnscache"
	"github.com/ospreysec/osprey/sensor/senderauth"
)

// resolvers are the sensor's DNS clients: one caching resolver
// (dnscache), which a gateway's sender authentication always asks, and its
// delivery when --dns-server names the server.
type resolvers struct {
	cache      *dnscache.Resolver // nil when no DNS server is known
	senderAuth senderauth.Resolver
	delivery   delivery.Resolver // nil: the system's
}

// newResolver makes the resolvers of server (Options.DNSServer). Without
// a server, sender authentication asks the nameservers of
// /etc/resolv.conf; when there are none it is unavailable (a configuration
// that enables it is refused, saying why), which does not stop the sensor.
func newResolver(server string, log *slog.Logger) (resolvers, error) {
	var servers []string
	if server != "" {
		servers = []string{server}
	}
	c, err := dnscache.New(dnscache.Options{Servers: servers})
	switch {
	case err != nil && server != "":
		return resolvers{}, fmt.Errorf("--dns-server: %w", err)
	case err != nil:
		log.Warn("no DNS server for sender authentication: set --dns-server", "err", err)
		return resolvers{}, nil
	}
	r := resolvers{cache: c, senderAuth: c}
	if server != "" {
		r.delivery = c
	}
	log.Info("DNS servers of sender authentication", "servers", c.Servers(), "delivery_too", server != "")
	return r, nil
}
