// Package sensor is the Sensor: it wires the agent (enrollment and the
// configuration stream with the central nodes, in package agent) with the
// components that take mail in, which apply the configuration the agent
// receives. `osprey sensor` and a central node run with --sensor call [Run].
package sensor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/ospreysec/osprey/pkg/jointoken"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/agent"
)

// Options configure a sensor.
type Options struct {
	// Central is the gRPC target of the central nodes ("host:port", or a
	// comma-separated list of them tried in turn, or
	// "dns:///name:port" to use every address the name resolves to).
	// Required to enroll; afterwards it overrides the stored target for
	// this run.
	Central string
	// JoinToken enrolls the sensor on its first start; it is ignored once
	// the data dir holds an identity.
	JoinToken string
	// DataDir holds the identity, the applied configuration and, later, the
	// spool. Created with mode 0700.
	DataDir string
	// Name is the sensor's display name at enrollment; empty means the
	// host name.
	Name string
	// SoftwareVersion is reported to the central.
	SoftwareVersion string
	// Logger receives the log lines; nil discards them.
	Logger *slog.Logger
	// Appliers run each configuration, in order (see agent.MultiApplier).
	// None means the configuration is acknowledged and kept, and nothing
	// runs it.
	Appliers []agent.Applier
	// StatusSources report counters and health to the central.
	StatusSources []agent.StatusSource
	// Notice, when set, receives the lines for the operator at the console:
	// the certificate fingerprint after enrollment, and that the sensor
	// waits for approval.
	Notice func(msg string)
}

// targets splits Central: a comma-separated list of targets, tried in turn.
func (o Options) targets() []string {
	var out []string
	for _, t := range strings.Split(o.Central, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// Validate reports every problem of o that can be seen without the data dir.
func (o Options) Validate() error {
	var errs []error
	if o.DataDir == "" {
		errs = append(errs, errors.New("data dir is empty"))
	}
	for i, a := range o.Appliers {
		if a == nil {
			errs = append(errs, fmt.Errorf("appliers[%d] is nil", i))
		}
	}
	return errors.Join(errs...)
}

// Run enrolls the sensor if its data dir holds no identity yet, then runs
// the agent until ctx is done. It returns nil when ctx is done.
func Run(ctx context.Context, opts Options) error {
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("sensor options: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	notice := opts.Notice
	if notice == nil {
		notice = func(string) {}
	}
	if err := enroll(ctx, opts, log.With("component", "enroll"), notice); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	targets := opts.targets()
	applier := agent.MultiApplier(opts.Appliers...)
	if len(opts.Appliers) == 0 {
		applier = agent.ApplierFunc(func(context.Context, *ospreyv1.SensorConfig) error { return nil })
	}
	a, err := agent.New(agent.Options{
		DataDir:         opts.DataDir,
		Targets:         targets,
		SoftwareVersion: opts.SoftwareVersion,
		Applier:         applier,
		StatusSources:   opts.StatusSources,
		Logger:          log,
	})
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// enroll enrolls the sensor unless the data dir holds an identity.
func enroll(ctx context.Context, opts Options, log *slog.Logger, notice func(string)) error {
	id, err := agent.LoadIdentity(opts.DataDir)
	switch {
	case err == nil:
		if opts.JoinToken != "" {
			log.Info("already enrolled; ignoring the join token", "sensor_id", id.SensorID, "tenant", id.Tenant)
		}
		return nil
	case !errors.Is(err, agent.ErrNotEnrolled):
		return err
	case opts.JoinToken == "":
		return fmt.Errorf("sensor is not enrolled in %s: give a join token (--join-token) and the central (--central)", opts.DataDir)
	case opts.Central == "":
		return errors.New("sensor is not enrolled: give the central (--central) to enroll with")
	}
	tok, err := jointoken.Parse(opts.JoinToken)
	if err != nil {
		return err
	}
	name := opts.Name
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return fmt.Errorf("sensor name: none given and %w", err)
		}
	}
	target := opts.targets()[0]
	notice(fmt.Sprintf("Enrolling %q with %s ...", name, target))
	id, err = agent.Enroll(ctx, agent.EnrollOptions{
		Target:          target,
		Token:           tok,
		Name:            name,
		SoftwareVersion: opts.SoftwareVersion,
		DataDir:         opts.DataDir,
		Logger:          log,
	})
	if err != nil {
		return err
	}
	notice(fmt.Sprintf("Enrolled as sensor %s in tenant %s.", id.SensorID, id.Tenant))
	notice("Certificate fingerprint (SHA-256): " + id.Fingerprint)
	if id.State != ospreyv1.SensorState_SENSOR_STATE_APPROVED {
		notice("Waiting for approval: an administrator must approve this sensor; compare the fingerprint above with the one the server list shows first.")
	}
	return nil
}
