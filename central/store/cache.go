package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// CacheOptions configures a RuleCache or an ExportCache.
type CacheOptions struct {
	// Logger receives the failures of the watch (each followed by a reload);
	// nil discards them.
	Logger *slog.Logger
}

// RuleCache holds every tenant's scan rules and the global rules in memory
// and follows their changes with two etcd watches (tenants/ and
// global-rules/), so that the scanner reads a tenant's rules on every
// message for the price of a map lookup, and a rule written through any
// node applies to the next message scanned. When a watch fails or etcd has
// compacted the revision it needs, the cache reloads everything and watches
// again, keeping the rules it had meanwhile.
//
// Run follows etcd until its context ends; Rules answers from memory and
// never blocks on etcd.
type RuleCache struct {
	c      *tenantCache[*ospreyv1.Rule]
	global *tenantCache[*ospreyv1.Rule]

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every change of either
}

// NewRuleCache returns a cache of st's rules; it is empty until Run has
// loaded them (see Wait).
func NewRuleCache(st *Store, opts CacheOptions) *RuleCache {
	newRule := func() *ospreyv1.Rule { return new(ospreyv1.Rule) }
	setVersion := func(r *ospreyv1.Rule, v int64) { r.Version = v }
	enabled := func(r *ospreyv1.Rule) bool { return !r.GetDisabled() }
	c := &RuleCache{
		c: newTenantCache(st, opts, "rules", tenantRulesPrefix,
			func(key string) (string, string, bool) { return parseRuleKey(key) },
			newRule, setVersion, enabled),
		global: newTenantCache(st, opts, "global rules", func(string) string { return globalRulesPrefix },
			parseGlobalRuleKey, newRule, setVersion, enabled),
	}
	c.global.watch = globalRulesPrefix
	c.changed = make(chan struct{})
	c.c.onChange, c.global.onChange = c.notify, c.notify
	return c
}

func (c *RuleCache) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.changed)
	c.changed = make(chan struct{})
}

// Run loads every rule and follows the changes until ctx ends; it returns
// nil then. Failures are logged and retried with backoff.
func (c *RuleCache) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.global.run(ctx)
	}()
	err := c.c.run(ctx)
	<-done
	return err
}

// Wait blocks until the first load has completed, or ctx ends.
func (c *RuleCache) Wait(ctx context.Context) error {
	if err := c.c.wait(ctx); err != nil {
		return err
	}
	return c.global.wait(ctx)
}

// Rules returns a tenant's enabled rules, ordered by id, then the enabled
// global rules, ordered by id, with the etcd revision the cache holds at
// (0 before the first load; it moves at every change of either). The slice
// and the rules are shared: callers must not modify them.
func (c *RuleCache) Rules(tenant string) ([]*ospreyv1.Rule, int64) {
	c.c.mu.RLock()
	own, rev := c.c.lists[tenant], c.c.rev
	c.c.mu.RUnlock()
	c.global.mu.RLock()
	global, grev := c.global.lists[""], c.global.rev
	c.global.mu.RUnlock()
	if len(global) == 0 {
		return own, max(rev, grev)
	}
	if len(own) == 0 {
		return global, max(rev, grev)
	}
	return append(slices.Clip(own), global...), max(rev, grev)
}

// Changed returns a channel that is closed at the next change of any rule.
func (c *RuleCache) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// ExportCache holds every tenant's syslog export in memory and follows their
// changes with one etcd watch, as RuleCache does for rules: the exporter
// reads the current settings of an alert's tenant from it, and learns of
// changes through Exports.
type ExportCache struct {
	c *tenantCache[*ospreyv1.SyslogExport]
}

// NewExportCache returns a cache of st's syslog exports; it is empty until
// Run has loaded them (see Wait).
func NewExportCache(st *Store, opts CacheOptions) *ExportCache {
	return &ExportCache{c: newTenantCache(st, opts, "exports", exportKey,
		func(key string) (string, string, bool) {
			t, ok := parseExportKey(key)
			return t, "", ok
		},
		func() *ospreyv1.SyslogExport { return new(ospreyv1.SyslogExport) },
		func(e *ospreyv1.SyslogExport, v int64) { e.Version = v },
		func(*ospreyv1.SyslogExport) bool { return true })}
}

// Run loads every export and follows the changes until ctx ends; it returns
// nil then. Failures are logged and retried with backoff.
func (c *ExportCache) Run(ctx context.Context) error { return c.c.run(ctx) }

// Wait blocks until the first load has completed, or ctx ends.
func (c *ExportCache) Wait(ctx context.Context) error { return c.c.wait(ctx) }

// Export returns a tenant's export (nil when none was ever written: export
// disabled) and the revision the cache holds at. The message is shared:
// callers must not modify it.
func (c *ExportCache) Export(tenant string) (*ospreyv1.SyslogExport, int64) {
	c.c.mu.RLock()
	defer c.c.mu.RUnlock()
	if l := c.c.lists[tenant]; len(l) > 0 {
		return l[0], c.c.rev
	}
	return nil, c.c.rev
}

// Exports returns every stored export by tenant (enabled or not), the
// revision they hold at, and a channel that is closed at the next change:
// an exporter reconciles its sinks with the map, then waits on the channel.
// The messages are shared: callers must not modify them.
func (c *ExportCache) Exports() (map[string]*ospreyv1.SyslogExport, int64, <-chan struct{}) {
	c.c.mu.RLock()
	defer c.c.mu.RUnlock()
	out := make(map[string]*ospreyv1.SyslogExport, len(c.c.lists))
	for t, l := range c.c.lists {
		if len(l) > 0 {
			out[t] = l[0]
		}
	}
	return out, c.c.rev, c.c.changed
}

// PolicyCache holds every tenant's verdict policy in memory and follows
// their changes with one etcd watch, as RuleCache does for rules: the
// central decides each gateway message's fate with the policy of its
// tenant as it is now.
type PolicyCache struct {
	c *tenantCache[*ospreyv1.VerdictPolicy]
}

// NewPolicyCache returns a cache of st's verdict policies; it is empty
// until Run has loaded them (see Wait).
func NewPolicyCache(st *Store, opts CacheOptions) *PolicyCache {
	return &PolicyCache{c: newTenantCache(st, opts, "policies", policyKey,
		func(key string) (string, string, bool) {
			t, ok := parsePolicyKey(key)
			return t, "", ok
		},
		func() *ospreyv1.VerdictPolicy { return new(ospreyv1.VerdictPolicy) },
		func(p *ospreyv1.VerdictPolicy, v int64) { p.Version = v },
		func(*ospreyv1.VerdictPolicy) bool { return true })}
}

// Run loads every policy and follows the changes until ctx ends; it
// returns nil then. Failures are logged and retried with backoff.
func (c *PolicyCache) Run(ctx context.Context) error { return c.c.run(ctx) }

// Wait blocks until the first load has completed, or ctx ends.
func (c *PolicyCache) Wait(ctx context.Context) error { return c.c.wait(ctx) }

// Policy returns a tenant's stored policy, nil when none was ever written
// (every default). The message is shared: callers must not modify it.
func (c *PolicyCache) Policy(tenant string) *ospreyv1.VerdictPolicy {
	c.c.mu.RLock()
	defer c.c.mu.RUnlock()
	if l := c.c.lists[tenant]; len(l) > 0 {
		return l[0]
	}
	return nil
}

// tenantCache follows one kind of key under tenants/ (rules, the export)
// for every tenant, with one prefix watch of tenants/ that skips other keys
// (or of another prefix: watch).
type tenantCache[T proto.Message] struct {
	st   *Store
	what string
	log  *slog.Logger
	// watch is the prefix loaded and watched: tenants/, unless set.
	watch string
	// onChange, when set, runs at every change, under mu.
	onChange func()
	// fetch is the prefix that holds a tenant's keys of this kind.
	fetch      func(tenant string) string
	parse      func(key string) (tenant, id string, ok bool)
	newT       func() T
	setVersion func(T, int64)
	keep       func(T) bool

	ready     chan struct{}
	readyOnce sync.Once
	// afterLoad, when set (by tests), runs after each load, before the watch.
	afterLoad func()

	mu      sync.RWMutex
	rev     int64
	items   map[string]map[string]T // tenant → id → value
	lists   map[string][]T          // tenant → kept values by id; replaced, never changed
	changed chan struct{}           // closed and replaced at every change
}

func newTenantCache[T proto.Message](st *Store, opts CacheOptions, what string, fetch func(string) string,
	parse func(string) (string, string, bool), newT func() T, setVersion func(T, int64), keep func(T) bool) *tenantCache[T] {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &tenantCache[T]{
		st: st, what: what, log: log, watch: tenantsPrefix,
		fetch: fetch, parse: parse, newT: newT, setVersion: setVersion, keep: keep,
		ready:   make(chan struct{}),
		items:   map[string]map[string]T{},
		lists:   map[string][]T{},
		changed: make(chan struct{}),
	}
}

func (c *tenantCache[T]) wait(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (c *tenantCache[T]) changedChan() <-chan struct{} {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.changed
}

// Backoff between failed loads or watches.
const (
	cacheRetryMin = 500 * time.Millisecond
	cacheRetryMax = 30 * time.Second
)

func (c *tenantCache[T]) run(ctx context.Context) error {
	backoff := cacheRetryMin
	for {
		err := c.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrCompacted) {
			// Reload at once: the data are fine, only the revision is gone.
			c.log.InfoContext(ctx, "watch compacted; reloading", "err", err)
			continue
		}
		c.log.WarnContext(ctx, "watch failed; reloading", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, cacheRetryMax)
	}
}

// follow loads everything and applies the watched changes until the watch
// ends.
func (c *tenantCache[T]) follow(ctx context.Context) error {
	rev, items, err := c.load(ctx)
	if err != nil {
		return err
	}
	c.install(rev, items)
	c.readyOnce.Do(func() { close(c.ready) })
	if c.afterLoad != nil {
		c.afterLoad()
	}

	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range c.st.cli.Watch(ctx, c.watch, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if wr.CompactRevision != 0 {
			return fmt.Errorf("watch %s from revision %d: compacted at %d: %w", c.what, rev, wr.CompactRevision, ErrCompacted)
		}
		if err := wr.Err(); err != nil {
			return etcdErr("watch", c.watch, err)
		}
		if err := c.apply(wr.Events, wr.Header.Revision); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("etcd watch closed")
}

// load reads every key of the cache's kind at one revision: the keys of
// tenants/ first (keys only), then each tenant's range that holds some.
func (c *tenantCache[T]) load(ctx context.Context) (int64, map[string]map[string]T, error) {
	resp, err := c.st.cli.Get(ctx, c.watch, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, nil, etcdErr("range", c.watch, err)
	}
	rev := resp.Header.Revision
	var tenants []string
	for _, kv := range resp.Kvs {
		if t, _, ok := c.parse(string(kv.Key)); ok && (len(tenants) == 0 || tenants[len(tenants)-1] != t) {
			tenants = append(tenants, t)
		}
	}
	items := map[string]map[string]T{}
	for _, t := range tenants {
		prefix := c.fetch(t)
		r, err := c.st.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
		if err != nil {
			return 0, nil, etcdErr("range", prefix, err)
		}
		for _, kv := range r.Kvs {
			t, id, ok := c.parse(string(kv.Key))
			if !ok {
				continue
			}
			v, err := c.decode(kv)
			if err != nil {
				return 0, nil, err
			}
			if items[t] == nil {
				items[t] = map[string]T{}
			}
			items[t][id] = v
		}
	}
	return rev, items, nil
}

func (c *tenantCache[T]) decode(kv *mvccpb.KeyValue) (T, error) {
	v := c.newT()
	if err := decode(kv, v); err != nil {
		var zero T
		return zero, err
	}
	c.setVersion(v, kv.ModRevision)
	return v, nil
}

// install replaces the whole content.
func (c *tenantCache[T]) install(rev int64, items map[string]map[string]T) {
	lists := make(map[string][]T, len(items))
	for t, byID := range items {
		if l := c.list(byID); len(l) > 0 {
			lists[t] = l
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rev, c.items, c.lists = rev, items, lists
	c.notifyLocked()
}

// apply applies one watch response's events; rev is its header's revision.
func (c *tenantCache[T]) apply(events []*clientv3.Event, rev int64) error {
	type change struct {
		tenant, id string
		v          T
		deleted    bool
	}
	var changes []change
	for _, ev := range events {
		t, id, ok := c.parse(string(ev.Kv.Key))
		if !ok {
			continue
		}
		ch := change{tenant: t, id: id, deleted: ev.Type == clientv3.EventTypeDelete}
		if !ch.deleted {
			v, err := c.decode(ev.Kv)
			if err != nil {
				return err
			}
			ch.v = v
		}
		changes = append(changes, ch)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rev = max(c.rev, rev)
	if len(changes) == 0 {
		return nil
	}
	touched := map[string]bool{}
	for _, ch := range changes {
		byID := c.items[ch.tenant]
		if ch.deleted {
			delete(byID, ch.id)
		} else {
			if byID == nil {
				byID = map[string]T{}
				c.items[ch.tenant] = byID
			}
			byID[ch.id] = ch.v
		}
		touched[ch.tenant] = true
	}
	for t := range touched {
		if l := c.list(c.items[t]); len(l) > 0 {
			c.lists[t] = l
		} else {
			delete(c.lists, t)
			if len(c.items[t]) == 0 {
				delete(c.items, t)
			}
		}
	}
	c.notifyLocked()
	return nil
}

// list returns the kept values of one tenant, ordered by id.
func (c *tenantCache[T]) list(byID map[string]T) []T {
	var out []T
	for _, id := range slices.Sorted(maps.Keys(byID)) {
		if v := byID[id]; c.keep(v) {
			out = append(out, v)
		}
	}
	return out
}

func (c *tenantCache[T]) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
	if c.onChange != nil {
		c.onChange()
	}
}
