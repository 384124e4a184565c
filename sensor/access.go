package sensor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/delivery"
	"github.com/ospreysec/osprey/sensor/gateway"
	"github.com/ospreysec/osprey/sensor/ratelimit"
	"github.com/ospreysec/osprey/sensor/rcptverify"
)

// access is a gateway's access control that the SMTP listeners share:
// recipient verification, with its cache in the data dir, and the rate
// limits with the harvest guard.
type access struct {
	verifier *rcptverify.Verifier
	limiter  *ratelimit.Limiter
	hostname string // the default HELO name of the probes
}

func openAccess(ctx context.Context, dataDir, hostname string, resolver delivery.Resolver, log *slog.Logger, reg prometheus.Registerer) (*access, error) {
	v, err := rcptverify.Open(ctx, rcptverify.Options{
		Dir:        filepath.Join(dataDir, "rcptverify"),
		Resolver:   resolver,
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	return &access{verifier: v, limiter: ratelimit.New(ratelimit.Options{Registerer: reg}), hostname: hostname}, nil
}

func (a *access) Close() error { return a.verifier.Close() }

// compile checks the access part of cfg; the probes route as the gateway
// delivers, with its HELO name.
func (a *access) compile(cfg *ospreyv1.SmtpIntegration) (rcptverify.Config, ratelimit.Config, error) {
	g := cfg.GetGateway()
	helo := g.GetHeloName()
	if helo == "" {
		helo = a.hostname
	}
	vc := rcptverify.ConfigFrom(g.GetRecipientVerification(), gateway.DeliveryConfig(g, helo))
	if err := vc.Validate(); err != nil {
		return vc, ratelimit.Config{}, fmt.Errorf("gateway.recipient_verification: %w", err)
	}
	return vc, ratelimit.ConfigFrom(g.GetRateLimits()), nil
}

// apply hands a compiled configuration over.
func (a *access) apply(vc rcptverify.Config, lc ratelimit.Config) error {
	if err := a.verifier.Apply(vc); err != nil {
		return err
	}
	a.limiter.Apply(lc)
	return nil
}

// Run runs the verifier's refreshes and the limiter's sweeps until ctx
// ends.
func (a *access) Run(ctx context.Context) error {
	var g errgroup.Group
	g.Go(func() error { return a.verifier.Run(ctx) })
	g.Go(func() error { return a.limiter.Run(ctx) })
	return g.Wait()
}

// status adds the counters of verification and the harvest guard, and the
// next hops whose probes fail, to out (whose Smtp is set).
func (a *access) status(out *ospreyv1.SensorStatus) {
	v := a.verifier.Stats()
	if v.Probes+v.CacheGood+v.CacheBad+v.TempFail > 0 {
		out.Counters["rcptverify_cache_good"] = v.CacheGood
		out.Counters["rcptverify_cache_bad"] = v.CacheBad
		out.Counters["rcptverify_probe_good"] = v.ProbeGood
		out.Counters["rcptverify_probe_bad"] = v.ProbeBad
		out.Counters["rcptverify_tempfail"] = v.TempFail
		out.Counters["rcptverify_cache_entries"] = uint64(max(v.Entries, 0))
	}
	if l := a.limiter.Stats(); l.Blocks > 0 {
		out.Counters["harvest_blocks"] = l.Blocks
		out.Counters["harvest_blocked_clients"] = uint64(l.Blocked)
	}
	p := a.verifier.Problems()
	out.Problems = append(out.Problems, p...)
	if out.Smtp != nil {
		out.Smtp.Problems = append(out.Smtp.Problems, p...)
	}
}
