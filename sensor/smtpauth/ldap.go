package smtpauth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Bounds of an LDAP source's pools.
const (
	// maxLDAPConns bounds the connections of each pool open at once: more
	// checks at a time wait for one (within their timeout). A directory
	// answers a bind in well under a millisecond; a handful of connections
	// keep up with any submission load, and a flood of sessions does not
	// turn into a flood of connections to the directory.
	maxLDAPConns = 8
	// maxLDAPIdle is how long a connection waits in its pool: directories
	// close idle connections (OpenLDAP's idletimeout, Active Directory's
	// MaxConnIdleTime of 15 minutes), and one closed under us costs a
	// retry.
	maxLDAPIdle = 2 * time.Minute
)

// ldapSource checks credentials with binds to a directory.
type ldapSource struct {
	url      string // as configured, for messages
	addr     string // host:port
	implicit bool   // ldaps://
	startTLS bool
	tls      *tls.Config
	timeout  time.Duration

	template             string // bind as the user: bind_dn_template
	base, filter         string // or search, then bind
	searchDN, searchPass string

	users    *pool // connections for the users' binds
	searches *pool // connections bound as searchDN (or anonymous)
}

func newLDAPSource(a *ospreyv1.LdapAuth) (*ldapSource, error) {
	u, err := url.Parse(a.GetUrl())
	if err != nil {
		return nil, fmt.Errorf("ldap url: %w", err)
	}
	s := &ldapSource{
		url:        a.GetUrl(),
		implicit:   strings.EqualFold(u.Scheme, "ldaps"),
		startTLS:   a.GetStartTls(),
		timeout:    time.Duration(a.GetTimeoutMs()) * time.Millisecond,
		template:   a.GetBindDnTemplate(),
		base:       a.GetBaseDn(),
		filter:     a.GetFilter(),
		searchDN:   a.GetSearchBindDn(),
		searchPass: a.GetSearchBindPassword(),
	}
	port := u.Port()
	if port == "" {
		port = ldap.DefaultLdapPort
		if s.implicit {
			port = ldap.DefaultLdapsPort
		}
	}
	s.addr = net.JoinHostPort(u.Hostname(), port)
	if s.implicit || s.startTLS {
		if s.tls, err = clientTLS(a.GetCaPem(), u.Hostname()); err != nil {
			return nil, fmt.Errorf("ldap ca_pem: %w", err)
		}
	}
	s.users = newPool(s.dialAs(false))
	s.searches = newPool(s.dialAs(true))
	return s, nil
}

func (s *ldapSource) String() string { return "LDAP directory " + s.url }

// authenticate binds as the user: at the DN the template makes, or at the
// one entry the search finds.
func (s *ldapSource) authenticate(ctx context.Context, user, password string) error {
	dn := strings.Replace(s.template, "%s", ldap.EscapeDN(user), 1)
	if s.template == "" {
		var err error
		if dn, err = s.find(ctx, user); err != nil {
			return err
		}
	}
	err := s.do(ctx, s.users, func(c *ldap.Conn) error { return c.Bind(dn, password) })
	if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		return fmt.Errorf("%w: the directory refused the bind as %s", ErrInvalid, dn)
	}
	if err != nil {
		return fmt.Errorf("ldap bind as %s: %w", dn, err)
	}
	return nil
}

// find returns the DN of the one entry under base that the filter matches
// for user; ErrInvalid when none or several do.
func (s *ldapSource) find(ctx context.Context, user string) (string, error) {
	filter := strings.ReplaceAll(s.filter, "%s", ldap.EscapeFilter(user))
	var res *ldap.SearchResult
	err := s.do(ctx, s.searches, func(c *ldap.Conn) error {
		var err error
		// Two entries are enough to know that one is not: the directory
		// stops there ("1.1": no attributes, only the DNs).
		res, err = c.Search(ldap.NewSearchRequest(s.base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2,
			int(s.timeout.Seconds())+1, false, filter, []string{"1.1"}, nil))
		return err
	})
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		return "", fmt.Errorf("%w: more than one entry under %s matches %s", ErrInvalid, s.base, filter)
	case err != nil:
		return "", fmt.Errorf("ldap search under %s for %s: %w", s.base, filter, err)
	case len(res.Entries) == 0:
		return "", fmt.Errorf("%w: no entry under %s matches %s", ErrInvalid, s.base, filter)
	case len(res.Entries) > 1:
		return "", fmt.Errorf("%w: %d entries under %s match %s", ErrInvalid, len(res.Entries), s.base, filter)
	}
	return res.Entries[0].DN, nil
}

// probe checks that the directory can be reached: a search connection,
// bound as the search account when there is one.
func (s *ldapSource) probe(ctx context.Context) error {
	return s.do(ctx, s.searches, func(*ldap.Conn) error { return nil })
}

func (s *ldapSource) close() {
	s.users.close()
	s.searches.close()
}

// do runs op on a connection of p, within the source's timeout. A pooled
// connection that fails for the network (the directory closed it while it
// waited) is replaced and op tried once more on a fresh one.
func (s *ldapSource) do(ctx context.Context, p *pool, op func(*ldap.Conn) error) error {
	for {
		c, fresh, err := p.get(ctx)
		if err != nil {
			return err
		}
		err = s.run(ctx, c, op)
		if err != nil && ldap.IsErrorWithCode(err, ldap.ErrorNetwork) && !fresh && ctx.Err() == nil {
			p.put(c, false)
			continue
		}
		// A result from the directory leaves the connection usable; a
		// network error or a timeout does not.
		var le *ldap.Error
		p.put(c, err == nil || errors.As(err, &le) && le.ResultCode < ldap.ErrorNetwork)
		return err
	}
}

// run runs op on c within the source's timeout; when the timeout passes
// or ctx ends first, c is closed, which ends op.
func (s *ldapSource) run(ctx context.Context, c *ldap.Conn, op func(*ldap.Conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	err := op(c)
	if !stop() {
		return fmt.Errorf("ldap %s: %w", s.addr, context.Cause(ctx))
	}
	return err
}

// dialAs returns the dialer of a pool: a connection to the directory, TLS
// as configured, bound as the search account for searches (when there is
// one).
func (s *ldapSource) dialAs(search bool) func(context.Context) (*ldap.Conn, error) {
	return func(ctx context.Context) (*ldap.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		var d net.Dialer
		raw, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", s.url, err)
		}
		if s.implicit {
			tc := tls.Client(raw, s.tls)
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = raw.Close()
				return nil, fmt.Errorf("TLS with %s: %w", s.url, err)
			}
			raw = tc
		}
		c := ldap.NewConn(raw, s.implicit)
		c.Start()
		c.SetTimeout(s.timeout)
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		defer stop()
		if s.startTLS {
			if err := c.StartTLS(s.tls); err != nil {
				_ = c.Close()
				return nil, fmt.Errorf("StartTLS with %s: %w", s.url, orCause(ctx, err))
			}
		}
		if search && s.searchDN != "" {
			if err := c.Bind(s.searchDN, s.searchPass); err != nil {
				_ = c.Close()
				return nil, fmt.Errorf("bind as search_bind_dn %s: %w", s.searchDN, orCause(ctx, err))
			}
		}
		if ctx.Err() != nil {
			_ = c.Close()
			return nil, fmt.Errorf("connect to %s: %w", s.url, context.Cause(ctx))
		}
		return c, nil
	}
}

// orCause returns ctx's cause when ctx ended (the connection was closed
// for it, and err only says that it closed), err otherwise.
func orCause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	}
	return err
}

// pool keeps idle connections of one kind, and bounds how many are open.
type pool struct {
	dial  func(context.Context) (*ldap.Conn, error)
	slots chan struct{} // one per open connection
	idle  chan idleConn
	done  chan struct{} // closed by close
}

type idleConn struct {
	c     *ldap.Conn
	since time.Time
}

func newPool(dial func(context.Context) (*ldap.Conn, error)) *pool {
	return &pool{
		dial:  dial,
		slots: make(chan struct{}, maxLDAPConns),
		idle:  make(chan idleConn, maxLDAPConns),
		done:  make(chan struct{}),
	}
}

// errClosed is what a closed pool answers: the source was replaced.
var errClosed = errors.New("the authentication source was replaced")

// get returns an idle connection, or a new one (fresh) when there is none
// and a slot is free; it waits for either until ctx ends. An idle
// connection is preferred to a new one.
func (p *pool) get(ctx context.Context) (c *ldap.Conn, fresh bool, err error) {
	for {
		select {
		case ic := <-p.idle:
			if c := p.usable(ic); c != nil {
				return c, false, nil
			}
			continue
		default:
		}
		select {
		case ic := <-p.idle:
			if c := p.usable(ic); c != nil {
				return c, false, nil
			}
		case p.slots <- struct{}{}:
			c, err := p.dial(ctx)
			if err != nil {
				<-p.slots
				return nil, false, err
			}
			return c, true, nil
		case <-p.done:
			return nil, false, errClosed
		case <-ctx.Done():
			return nil, false, context.Cause(ctx)
		}
	}
}

// usable returns the connection of ic, or nil, having closed it, when the
// directory closed it or it waited too long.
func (p *pool) usable(ic idleConn) *ldap.Conn {
	if ic.c.IsClosing() || time.Since(ic.since) > maxLDAPIdle {
		_ = ic.c.Close()
		<-p.slots
		return nil
	}
	return ic.c
}

// put hands back a connection that get returned: kept for the next get
// when reusable, closed otherwise.
func (p *pool) put(c *ldap.Conn, reusable bool) {
	if reusable && !c.IsClosing() {
		select {
		case <-p.done:
		default:
			// The idle channel holds as many as there are slots, so this
			// never blocks.
			p.idle <- idleConn{c: c, since: time.Now()}
			return
		}
	}
	_ = c.Close()
	<-p.slots
}

// close closes the idle connections, and makes the pool close the others
// as they come back.
func (p *pool) close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.drain(0)
}

// drain closes the connections idle for longer than d (all with 0).
func (p *pool) drain(d time.Duration) {
	for range len(p.idle) {
		select {
		case ic := <-p.idle:
			if d > 0 && time.Since(ic.since) <= d && !ic.c.IsClosing() {
				p.idle <- ic
				continue
			}
			_ = ic.c.Close()
			<-p.slots
		default:
			return
		}
	}
}

// clientTLS is the TLS configuration of a client of a server named name,
// whose certificate chains to the CAs of caPEM (the system roots when
// empty).
func clientTLS(caPEM, name string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: name, MinVersion: tls.VersionTLS12}
	if caPEM != "" {
		roots, err := certPool(caPEM)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = roots
	}
	return cfg, nil
}
