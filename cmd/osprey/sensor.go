package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/ospreysec/osprey/internal/buildinfo"
	"github.com/ospreysec/osprey/sensor"
)

// runSensor runs `osprey sensor`.
func runSensor(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("sensor", "Run a Sensor: enroll with a Central Node cluster (first start), then run the\nconfiguration it pushes.", stderr)
	defer func() { err = withUsage(err, stderr, "sensor", fs.Usage) }()
	var opts sensor.Options
	var logFormat, logLevel, pprofAddr string
	fs.StringVar(&opts.Central, "central", "", `gRPC address of the central nodes: "host:port", or "dns:///name:port" for every address of a name`)
	fs.StringVar(&opts.JoinToken, "join-token", "", "join token from POST /api/v1/tokens (first start only)")
	fs.StringVar(&opts.DataDir, "data-dir", "/var/lib/osprey-sensor", "directory for the identity, the applied configuration and the spool")
	fs.StringVar(&opts.Name, "name", "", "the sensor's display name at enrollment (default: host name)")
	fs.StringVar(&opts.MetricsAddr, "metrics-addr", "127.0.0.1:9464", "address of /metrics, /healthz and /readyz (empty: none)")
	fs.StringVar(&opts.Hostname, "hostname", "", "name in SMTP greetings and Received headers (default: host name)")
	spoolMinFreeFlag(fs, &opts.SpoolMinFreeBytes, "the sensor")
	dnsServerFlag(fs, &opts.DNSServer)
	fs.StringVar(&logFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&pprofAddr, "pprof-addr", "", "address of Go's /debug/pprof/ profiling endpoints, unauthenticated: bind it to loopback (empty: off)")
	if err := parseFlags(fs, args, os.LookupEnv); err != nil {
		return err
	}
	logger, err := newLogger(stderr, logFormat, logLevel)
	if err != nil {
		return err
	}
	if pprofAddr != "" {
		stop, err := startPprof(pprofAddr, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	return sensor.Run(ctx, sensorOptions(opts, logger, stdout))
}

// sensorOptions completes the options every Sensor component gets.
func sensorOptions(opts sensor.Options, logger *slog.Logger, stdout io.Writer) sensor.Options {
	opts.Logger = logger
	opts.SoftwareVersion = buildinfo.Version()
	opts.Notice = func(msg string) { fmt.Fprintln(stdout, msg) }
	return opts
}

// spoolMinFreeFlag defines --spool-min-free, the floor of free disk space
// of a Sensor component's spool, in n; who names the sensor it sets.
func spoolMinFreeFlag(fs *flag.FlagSet, n *int64, who string) {
	*n = sensor.DefaultSpoolMinFree
	fs.Var(sizeFlag{n}, "spool-min-free", who+" refuses new mail (SMTP 421) and reports an ALERT while its spool's disk has "+
		"less free space than this: a number and KB, MB or GB (binary multiples), at least 1MB")
}

// dnsServerFlag defines --dns-server, the DNS server of a Sensor
// component's sender authentication and gateway delivery.
func dnsServerFlag(fs *flag.FlagSet, s *string) {
	fs.StringVar(s, "dns-server", "", "DNS server (host:port, or an IP address) that a gateway sensor asks for SPF, DKIM and DMARC and for "+
		"delivery (default: the nameservers of /etc/resolv.conf for the checks, the system's resolver for delivery)")
}
