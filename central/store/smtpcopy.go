package store

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// CopyOutcome is what CopySMTPToTenant did to one sensor.
type CopyOutcome int

// The outcomes of copying to one sensor.
const (
	// CopyApplied: the sensor's integration was written.
	CopyApplied CopyOutcome = iota + 1
	// CopyUnchanged: it had the settings already; nothing was written.
	CopyUnchanged
	// CopyFailed: it was left unchanged; Err says why.
	CopyFailed
)

// CopyResult is what CopySMTPToTenant did to one sensor.
type CopyResult struct {
	Sensor  string
	Outcome CopyOutcome
	// Version is the sensor's new SMTP version, when applied.
	Version int64
	// Err is why the sensor was left unchanged: validate.Errors when its
	// configuration as it would have been is not valid, ErrConflict when it
	// changed while being written, or a store error.
	Err error
}

// errUnchanged stops a copy to a sensor that has the settings already.
var errUnchanged = errors.New("unchanged")

// CopySMTPToTenant copies the SMTP integration of sensor sourceID to every
// other sensor of its tenant (Symantec Messaging Gateway's "Apply above
// settings to all scanners"), except what belongs to each host, which every
// target keeps (see withHostSMTPSettings). It returns the source's tenant and
// what happened to each target, in id order.
//
// Each target is written as PutSMTP writes: read, merged, validated, and
// written compare-and-swap on the version read. A target whose result fails
// validation, or that changed meanwhile, is left as it was and reported with
// its error; the others are written. The source must exist in scope
// (ErrNotFound); the targets are the sensors of its tenant only.
func (s *Store) CopySMTPToTenant(ctx context.Context, scope Scope, sourceID string) (string, []CopyResult, error) {
	tenant, err := s.sensorTenant(ctx, scope, sourceID)
	if err != nil {
		return "", nil, err
	}
	src := new(ospreyv1.SmtpIntegration)
	if _, err := s.getPartAt(ctx, tenant, sourceID, partSMTP, src); err != nil {
		return "", nil, err
	}
	prefix := tenantSensorsPrefix(tenant)
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return "", nil, etcdErr("range", prefix, err)
	}
	targets := TenantScope(tenant) // the source's tenant, which scope allows
	results := []CopyResult{}
	for _, kv := range resp.Kvs {
		_, id, part, ok := parseSensorKey(string(kv.Key))
		if !ok || part != partMeta || id == sourceID {
			continue
		}
		r := CopyResult{Sensor: id}
		r.Version, r.Err = s.updatePart(ctx, targets, id, partSMTP, new(ospreyv1.SmtpIntegration), AnyVersion,
			func(stored proto.Message) (proto.Message, error) {
				old := stored.(*ospreyv1.SmtpIntegration)
				next := withHostSMTPSettings(src, old)
				if proto.Equal(old, next) {
					return nil, errUnchanged
				}
				return next, validateSMTP(next)
			})
		switch {
		case errors.Is(r.Err, errUnchanged):
			r.Outcome, r.Version, r.Err = CopyUnchanged, 0, nil
		case r.Err != nil:
			r.Outcome, r.Version = CopyFailed, 0
		default:
			r.Outcome = CopyApplied
		}
		results = append(results, r)
	}
	return tenant, results, nil
}

// withHostSMTPSettings returns a copy of src with the settings that belong
// to one host taken from own, the integration of the sensor it is for: the
// monitor listen address, the gateway listeners' addresses (listen and
// listen_v6: inbound, outbound and submission), and every listener's TLS
// certificate and private key. The rest, client CAs included, is src's.
// Parts left holding nothing are nil.
func withHostSMTPSettings(src, own *ospreyv1.SmtpIntegration) *ospreyv1.SmtpIntegration {
	out := proto.Clone(src).(*ospreyv1.SmtpIntegration)
	out.Listen = own.GetListen()
	out.Tls = withTLSIdentity(out.Tls, own.GetTls())
	og := own.GetGateway()
	ownSub := og.GetSubmission().GetListener()
	if out.Gateway == nil && (og.GetInbound() != nil || og.GetOutbound() != nil || ownSub != nil) {
		out.Gateway = new(ospreyv1.SmtpGateway)
	}
	if g := out.Gateway; g != nil {
		g.Inbound = withListenerIdentity(g.Inbound, og.GetInbound())
		g.Outbound = withListenerIdentity(g.Outbound, og.GetOutbound())
		if g.Submission == nil && ownSub != nil {
			g.Submission = new(ospreyv1.SubmissionSettings)
		}
		if sub := g.Submission; sub != nil {
			sub.Listener = withListenerIdentity(sub.Listener, ownSub)
			if proto.Size(sub) == 0 {
				g.Submission = nil
			}
		}
		if proto.Size(g) == 0 {
			out.Gateway = nil
		}
	}
	return out
}

// withListenerIdentity gives l (src's listener, or nil) own's addresses and
// certificate.
func withListenerIdentity(l, own *ospreyv1.GatewayListener) *ospreyv1.GatewayListener {
	if l == nil {
		l = new(ospreyv1.GatewayListener)
	}
	l.Listen, l.ListenV6 = own.GetListen(), own.GetListenV6()
	l.Tls = withTLSIdentity(l.Tls, own.GetTls())
	if proto.Size(l) == 0 {
		return nil
	}
	return l
}

// withTLSIdentity gives t (src's TLS, or nil) own's certificate and key.
func withTLSIdentity(t, own *ospreyv1.SmtpTls) *ospreyv1.SmtpTls {
	if t == nil {
		t = new(ospreyv1.SmtpTls)
	}
	t.CertPem, t.KeyPem = own.GetCertPem(), own.GetKeyPem()
	if proto.Size(t) == 0 {
		return nil
	}
	return t
}
