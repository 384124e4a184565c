package smtpd

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/ospreysec/osprey/pkg/domainlist"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor/smtpauth"
)

// Authenticator checks the credentials a client gives with AUTH on the
// submission listener; *smtpauth.Authenticator implements it. Authenticate
// returns nil, or an error for which errors.Is finds smtpauth.ErrInvalid
// (535), smtpauth.ErrThrottled (454) or neither (a temporary failure,
// 454). Its errors may name the user, never the password.
type Authenticator interface {
	Authenticate(ctx context.Context, client netip.Addr, user, password string) error
}

// Bounds of the credentials taken: longer ones are refused (535) without
// asking the source. No directory has names or passwords this long, and
// an AUTH line holding both stays within MaxCommandLine.
const (
	maxAuthUser     = 256
	maxAuthPassword = 1024
)

// submissionPolicy is what the submission listener adds to a policy.
type submissionPolicy struct {
	// authWithoutTLS offers AUTH before STARTTLS.
	authWithoutTLS bool
}

// compileSubmission compiles the submission listener's part: every client
// may try, or (acceptance LISTED) only those of the AUTH acceptance list;
// any recipient domain once authenticated.
func (p *policy) compileSubmission(s *ospreyv1.SubmissionSettings, lists Lists) {
	p.acceptAny = s.GetAcceptance() != ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_LISTED
	p.accept = lists.Auth
	p.domains = mustList(domainlist.Parse(nil))
	p.submission = &submissionPolicy{authWithoutTLS: s.GetAllowAuthWithoutTls()}
}

// authOffered reports whether the connection offers AUTH: on the
// submission listener, over TLS unless allow_auth_without_tls.
func (c *conn) authOffered() bool {
	return c.pol.submission != nil && (c.tlsState != nil || c.pol.submission.authWithoutTLS)
}

// authLine is the AUTH capability of the EHLO reply.
var authLine = []byte("250-AUTH PLAIN LOGIN\r\n")

// auth answers AUTH (RFC 4954) on the submission listener: the SASL
// exchange of PLAIN (RFC 4616) or LOGIN, then the check. It runs on
// go-smtp's connection goroutine, inside Read, as STARTTLS does: the
// client's responses are read here, and go-smtp never sees them.
//
// Replies: 235 2.7.0 authenticated; 535 5.7.8 bad credentials; 454 4.7.0
// the source could not answer, or the client or the name failed too
// often lately (Postfix's anvil answers its AUTH rate limit with 450 4.7.1
// and keeps the session; RFC 4954 gives 454 4.7.0 to a temporary AUTH
// failure, so that is the code, and the session goes on too: a client
// that keeps trying reaches max_errors, which closes it); 538 5.7.11 AUTH
// before STARTTLS; 503 out of sequence; 504 an unknown mechanism; 501 a
// response that does not decode, or a cancelled exchange.
func (c *conn) auth(arg string) {
	s := c.sess.Load()
	switch {
	case !c.authOffered():
		c.refuse(reasonProtocol, 538, smtp.EnhancedCode{5, 7, 11}, "Encryption required for requested authentication mechanism: issue STARTTLS first")
		return
	case !c.hello:
		c.refuse(reasonProtocol, 503, smtp.EnhancedCode{5, 5, 1}, "Send EHLO first")
		return
	case c.user != "":
		c.refuse(reasonProtocol, 503, smtp.EnhancedCode{5, 5, 1}, "Already authenticated")
		return
	case s != nil && s.inTransaction():
		c.refuse(reasonProtocol, 503, smtp.EnhancedCode{5, 5, 1}, "AUTH not allowed during a mail transaction")
		return
	}
	mech, ir, hasIR, err := parseAuth(arg)
	switch {
	case errors.Is(err, errDecode):
		c.refuse(reasonProtocol, 501, smtp.EnhancedCode{5, 5, 2}, "Cannot decode the initial response")
		return
	case err != nil:
		c.refuse(reasonProtocol, 501, smtp.EnhancedCode{5, 5, 4}, "Syntax: AUTH mechanism [initial-response]")
		return
	}
	var ir0 []byte
	if hasIR {
		ir0 = ir
	}
	cred, err := exchange(mech, ir0, func(challenge []byte) ([]byte, error) {
		if err := c.send([]byte("334 " + base64.StdEncoding.EncodeToString(challenge) + "\r\n")); err != nil {
			return nil, errEnded
		}
		line, ok := c.readAuthLine()
		switch {
		case !ok:
			return nil, errEnded
		case line == "*":
			return nil, errCancelled
		}
		resp, err := decodeSASL(line)
		if err != nil {
			return nil, errDecode
		}
		return resp, nil
	})
	switch {
	case errors.Is(err, errEnded):
		return
	case errors.Is(err, errUnknownMechanism):
		c.refuse(reasonProtocol, 504, smtp.EnhancedCode{5, 5, 4}, "Unrecognized authentication mechanism: PLAIN and LOGIN are offered")
		return
	case errors.Is(err, errCancelled):
		c.refuse(reasonProtocol, 501, smtp.EnhancedCode{5, 7, 0}, "Authentication cancelled")
		return
	case errors.Is(err, errDecode):
		c.refuse(reasonProtocol, 501, smtp.EnhancedCode{5, 5, 2}, "Cannot decode the authentication response")
		return
	case err != nil:
		c.refuse(reasonProtocol, 501, smtp.EnhancedCode{5, 5, 2}, "Malformed authentication response")
		return
	}
	c.check(mech, cred)
}

// check asks the Authenticator about the credentials the exchange gave,
// and answers.
func (c *conn) check(mech string, cred credentials) {
	ctx := c.ctx
	if s := c.sess.Load(); s != nil {
		ctx = s.ctx
	}
	var err error
	if cred.bad != "" {
		err = fmt.Errorf("%w: %s", smtpauth.ErrInvalid, cred.bad)
	} else if c.srv.opts.Authenticator == nil {
		err = errors.New("the sensor has no authenticator")
	} else {
		err = c.srv.opts.Authenticator.Authenticate(ctx, c.ip, cred.user, cred.password)
	}
	user := clipUser(cred.user)
	detail := "user=" + user + " mechanism=" + mech
	switch {
	case err == nil:
		c.user = cred.user
		c.srv.stats.countAuthResult(authSuccess)
		c.log.Info("authenticated", "user", user, "mechanism", mech)
		c.reply(235, smtp.EnhancedCode{2, 7, 0}, "Authentication successful")
	case errors.Is(err, smtpauth.ErrInvalid):
		c.srv.stats.countAuthResult(authFailed)
		c.srv.refused(reasonAuthFailed, c.ip, "", "", detail)
		c.log.Info("refused", "reason", reasonAuthFailed, "user", user, "err", err)
		c.reply(535, smtp.EnhancedCode{5, 7, 8}, "Authentication credentials invalid")
	case errors.Is(err, smtpauth.ErrThrottled):
		c.srv.stats.countAuthResult(authThrottled)
		c.srv.refused(reasonAuthThrottled, c.ip, "", "", detail)
		c.log.Info("refused", "reason", reasonAuthThrottled, "user", user, "err", err)
		c.reply(454, smtp.EnhancedCode{4, 7, 0}, "Temporary authentication failure: too many failed attempts, try again later")
	default:
		c.srv.stats.countAuthResult(authUnavailable)
		c.srv.refused(reasonAuthUnavailable, c.ip, "", "", detail+": "+err.Error())
		c.log.Warn("refused", "reason", reasonAuthUnavailable, "user", user, "err", err)
		c.reply(454, smtp.EnhancedCode{4, 7, 0}, "Temporary authentication failure, try again later")
	}
}

// readAuthLine reads a response line of the AUTH exchange, without its
// line ending; false when the session ends instead (a timeout, the client
// gone, a line too long: RFC 4954 §4's 500 5.5.6).
func (c *conn) readAuthLine() (string, bool) {
	line, ok := c.readLine(smtp.EnhancedCode{5, 5, 6}, "Authentication exchange line is too long")
	if !ok {
		return "", false
	}
	return string(bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))), true
}

// Errors of parseAuth.
var (
	errAuthSyntax = errors.New("syntax: AUTH mechanism [initial-response]")
	errDecode     = errors.New("not base64")
)

// parseAuth splits AUTH's argument into the mechanism (upper case) and
// the initial response, decoded ("=" is an empty one, RFC 4954 §4).
func parseAuth(arg string) (mech string, ir []byte, hasIR bool, err error) {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 {
		return "", nil, false, errAuthSyntax
	}
	mech = strings.ToUpper(f[0])
	if len(f) == 1 {
		return mech, nil, false, nil
	}
	if ir, err = decodeSASL(f[1]); err != nil {
		return "", nil, false, errDecode
	}
	return mech, ir, true, nil
}

// decodeSASL decodes a response of the exchange: base64, or "=" for an
// empty one.
func decodeSASL(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

// Errors of an exchange.
var (
	// errCredentials ends an exchange whose credentials were read: the
	// check comes after, outside the SASL server.
	errCredentials      = errors.New("credentials read")
	errUnknownMechanism = errors.New("unknown mechanism")
	errCancelled        = errors.New("cancelled by the client")
	errEnded            = errors.New("session ended")
	errMalformed        = errors.New("malformed response")
)

// maxSteps bounds the challenges of an exchange: LOGIN has two.
const maxSteps = 3

// exchange runs the server side of mech's SASL exchange and returns the
// credentials it gave. ir is the initial response (nil: none; empty: an
// empty one). ask sends a challenge and returns the client's decoded
// answer, or why there is none.
func exchange(mech string, ir []byte, ask func(challenge []byte) ([]byte, error)) (credentials, error) {
	var cred credentials
	var srv sasl.Server
	switch mech {
	case sasl.Plain:
		srv = sasl.NewPlainServer(cred.plain)
	case sasl.Login:
		srv = &loginServer{got: cred.login}
	default:
		return cred, errUnknownMechanism
	}
	resp := ir
	for range maxSteps {
		challenge, done, err := srv.Next(resp)
		switch {
		case errors.Is(err, errCredentials):
			return cred, nil
		case err != nil:
			return cred, fmt.Errorf("%w: %v", errMalformed, err)
		case done:
			return cred, fmt.Errorf("%w: the exchange ended without credentials", errMalformed)
		}
		if resp, err = ask(challenge); err != nil {
			return cred, err
		}
	}
	return cred, fmt.Errorf("%w: too many steps", errMalformed)
}

// credentials are what the exchange gave: the user and the password, or
// why they are refused without asking (bad).
type credentials struct {
	user, password string
	bad            string
}

// plain takes PLAIN's three fields (RFC 4616): an authorization identity
// other than the user itself is not supported.
func (cr *credentials) plain(identity, user, password string) error {
	cr.take(user, password)
	if identity != "" && identity != user && cr.bad == "" {
		cr.bad = "an authorization identity other than the user name"
	}
	return errCredentials
}

// login takes LOGIN's user name and password.
func (cr *credentials) login(user, password string) error {
	cr.take(user, password)
	return errCredentials
}

func (cr *credentials) take(user, password string) {
	cr.user, cr.password = user, password
	switch {
	case len(user) > maxAuthUser || len(password) > maxAuthPassword:
		cr.bad = "a user name or password too long"
	case !utf8.ValidString(user) || strings.ContainsFunc(user, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		cr.bad = "a user name that is not printable UTF-8"
	case strings.ContainsRune(password, 0):
		cr.bad = "a NUL in the password"
	}
}

// loginServer is the server side of LOGIN, the mechanism of Outlook and
// others before PLAIN (draft-murchison-sasl-login): "Username:", then
// "Password:", each answered in base64; the user name may come as the
// initial response.
type loginServer struct {
	step int
	user string
	got  func(user, password string) error
}

func (s *loginServer) Next(resp []byte) (challenge []byte, done bool, err error) {
	switch {
	case s.step == 0 && resp == nil:
		s.step = 1
		return []byte("Username:"), false, nil
	case s.step <= 1:
		s.user, s.step = string(resp), 2
		return []byte("Password:"), false, nil
	case s.step == 2:
		s.step = 3
		return nil, true, s.got(s.user, string(resp))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

// clipUser makes a user name fit for logs and the audit log: printable,
// and at most maxAuthUser bytes.
func clipUser(u string) string {
	if len(u) > maxAuthUser {
		u = u[:maxAuthUser]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, u)
}
