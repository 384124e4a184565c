package smtpauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// forwardSource checks credentials by authenticating with them to another
// SMTP server, always over TLS: implicit, or STARTTLS that the server must
// offer. A check is a session of its own (an SMTP session takes one AUTH).
type forwardSource struct {
	addr     string
	implicit bool
	tls      *tls.Config
	timeout  time.Duration
	helo     string
}

func newForwardSource(a *ospreyv1.SmtpForwardAuth, helo string) (*forwardSource, error) {
	host, _, err := net.SplitHostPort(a.GetAddress())
	if err != nil {
		return nil, fmt.Errorf("smtp_forward address: %w", err)
	}
	name := a.GetServerName()
	if name == "" {
		name = host
	}
	cfg, err := clientTLS(a.GetCaPem(), name)
	if err != nil {
		return nil, fmt.Errorf("smtp_forward ca_pem: %w", err)
	}
	return &forwardSource{addr: a.GetAddress(), implicit: a.GetImplicitTls(), tls: cfg,
		timeout: time.Duration(a.GetTimeoutMs()) * time.Millisecond, helo: helo}, nil
}

func (s *forwardSource) String() string { return "SMTP server " + s.addr }

// authenticate answers 235 with nil, 535 with ErrInvalid, and anything
// else (another reply, no TLS, no AUTH PLAIN, no answer) with an error of
// its own. (go-smtp's client sends "*" after any refusal, which a server
// takes for a cancelled exchange or logs as a stray command; the session
// ends there anyway.)
func (s *forwardSource) authenticate(ctx context.Context, user, password string) error {
	return s.session(ctx, func(c *smtp.Client) error {
		err := c.Auth(sasl.NewPlainClient("", user, password))
		var se *smtp.SMTPError
		switch {
		case err == nil:
			_ = c.Quit()
			return nil
		case errors.As(err, &se) && se.Code == 535:
			return fmt.Errorf("%w: %s answered %d %s", ErrInvalid, s.addr, se.Code, se.Message)
		}
		return fmt.Errorf("AUTH at %s: %w", s.addr, err)
	})
}

// probe checks that the server can be reached and offers AUTH PLAIN over
// TLS.
func (s *forwardSource) probe(ctx context.Context) error {
	return s.session(ctx, func(c *smtp.Client) error {
		_ = c.Quit()
		return nil
	})
}

func (s *forwardSource) close() {}

// session connects to the server with TLS, says EHLO, checks that AUTH
// PLAIN is offered, and runs f; all within the source's timeout.
func (s *forwardSource) session(ctx context.Context, f func(*smtp.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", s.addr, err)
	}
	// Closing the connection is what ends a wait for the server when the
	// timeout passes or ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()
	defer raw.Close()

	var c *smtp.Client
	if s.implicit {
		tc := tls.Client(raw, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS with %s: %w", s.addr, orCause(ctx, tlsCause(err)))
		}
		c = smtp.NewClient(tc)
	} else {
		// EHLO (as "localhost": go-smtp's client says its name only after
		// its own first EHLO), STARTTLS, which must be offered, and the
		// handshake, before anything else.
		if c, err = smtp.NewClientStartTLS(raw, s.tls); err != nil {
			return fmt.Errorf("STARTTLS with %s: %w", s.addr, orCause(ctx, tlsCause(err)))
		}
	}
	c.CommandTimeout = s.timeout
	if err := c.Hello(s.helo); err != nil {
		return fmt.Errorf("EHLO to %s: %w", s.addr, orCause(ctx, tlsCause(err)))
	}
	if _, ok := c.TLSConnectionState(); !ok {
		return fmt.Errorf("no TLS with %s", s.addr)
	}
	if !c.SupportsAuth(sasl.Plain) {
		return fmt.Errorf("%s offers no AUTH PLAIN over TLS", s.addr)
	}
	return orCause(ctx, f(c))
}

// tlsCause names a certificate problem plainly: a handshake that fails on
// the server's certificate says which check failed.
func tlsCause(err error) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("the server's certificate is not signed by a trusted CA (set ca_pem): %w", err)
	case errors.As(err, &host):
		return fmt.Errorf("the server's certificate is not for the expected name (set server_name): %w", err)
	}
	return err
}
