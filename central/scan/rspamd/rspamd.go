// Package rspamd asks an Rspamd daemon for its opinion of a message, over
// its HTTP protocol (POST /checkv2): the raw message as the body, the SMTP
// envelope as request headers, and a JSON answer with the score, rspamd's
// own threshold and suggested action, and the symbols (rules) that fired,
// which Check returns as an *ospreyv1.SpamResult.
//
// It is not a scan engine of package scan: rspamd reads the whole message
// (not each part) and gives an opinion rather than a match, so the central
// asks it beside the scan (package pipeline) and records the result on the
// message's record. The Client bounds each check in time
// (Options.Timeout), does not send a message larger than rspamd would
// take (Options.MaxSize), and keeps its connections open between checks
// where the server lets it: rspamd's own workers (3.4) close each after
// their answer, an HTTP proxy in front of them may not.
package rspamd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Defaults of Options.
const (
	// DefaultTimeout is above rspamd's own task_timeout (8 s), so a check
	// that rspamd cuts short still comes back with its answer.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxSize is rspamd's own default max_message.
	DefaultMaxSize = 50 << 20
	// DefaultMaxSymbols bounds the symbols kept of one answer.
	DefaultMaxSymbols = 50
	// DefaultMaxConns bounds the connections open to rspamd at once.
	DefaultMaxConns = 16
)

// Bounds of what is read of an answer.
const (
	// maxAnswer bounds the JSON read: an answer lists every symbol with
	// its options (URLs, addresses), which stays far below this.
	maxAnswer = 4 << 20
	// maxName bounds a symbol's name and the action kept, in bytes.
	maxName = 128
)

// ErrTooLarge is returned, without asking rspamd, for a message larger
// than Options.MaxSize.
var ErrTooLarge = errors.New("message larger than rspamd's size limit")

// Options configure a Client.
type Options struct {
	// URL is where rspamd's normal worker (or its proxy) listens:
	// "http://127.0.0.1:11333". A path is kept as a prefix of /checkv2.
	URL string
	// Timeout bounds one check, sending the message included (default
	// DefaultTimeout).
	Timeout time.Duration
	// MaxSize is the largest message sent, in bytes: rspamd's max_message
	// (default DefaultMaxSize, rspamd's default).
	MaxSize int64
	// MaxSymbols bounds the symbols kept of an answer, those of the
	// largest scores (either sign) first (default DefaultMaxSymbols).
	MaxSymbols int
	// MaxConns bounds the connections open to rspamd at once, and those
	// kept open between checks; more checks wait for one (default
	// DefaultMaxConns).
	MaxConns int
}

// Validate reports every problem at once.
func (o Options) Validate() error {
	var errs []error
	if err := CheckURL(o.URL); err != nil {
		errs = append(errs, fmt.Errorf("rspamd.url: %w", err))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("rspamd.timeout: %v: must not be negative", o.Timeout))
	}
	if o.MaxSize < 0 {
		errs = append(errs, fmt.Errorf("rspamd.max_size: %d: must not be negative", o.MaxSize))
	}
	if o.MaxSymbols < 0 {
		errs = append(errs, fmt.Errorf("rspamd.max_symbols: %d: must not be negative", o.MaxSymbols))
	}
	if o.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("rspamd.max_conns: %d: must not be negative", o.MaxConns))
	}
	return errors.Join(errs...)
}

// CheckURL reports every problem with the URL of an rspamd (Options.URL).
func CheckURL(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: want http:// or https:// and a host, as http://127.0.0.1:11333: %w", s, err)
	}
	var errs []error
	if u.Scheme != "http" && u.Scheme != "https" {
		errs = append(errs, fmt.Errorf("%q: want http:// or https://, as http://127.0.0.1:11333", s))
	}
	if u.Host == "" {
		errs = append(errs, fmt.Errorf("%q: no host", s))
	}
	if u.User != nil {
		errs = append(errs, errors.New("no user or password: rspamd's normal worker takes none"))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("%q: no query or fragment", s))
	}
	return errors.Join(errs...)
}

// Client talks to one rspamd. It is safe for concurrent use.
type Client struct {
	opts  Options
	check string // the URL of /checkv2
	ping  string // the URL of /ping
	http  *http.Client
}

// New returns a Client; it does not connect.
func New(opts Options) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.Timeout = cmp.Or(opts.Timeout, DefaultTimeout)
	opts.MaxSize = cmp.Or(opts.MaxSize, DefaultMaxSize)
	opts.MaxSymbols = cmp.Or(opts.MaxSymbols, DefaultMaxSymbols)
	opts.MaxConns = cmp.Or(opts.MaxConns, DefaultMaxConns)
	base := strings.TrimSuffix(opts.URL, "/")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // rspamd is a neighbour, never reached through a proxy
	tr.MaxIdleConnsPerHost = opts.MaxConns
	tr.MaxConnsPerHost = opts.MaxConns
	tr.DisableCompression = true
	tr.DialContext = (&net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}).DialContext
	return &Client{
		opts:  opts,
		check: base + "/checkv2",
		ping:  base + "/ping",
		http:  &http.Client{Transport: tr},
	}, nil
}

// MaxSize is the largest message Check sends.
func (c *Client) MaxSize() int64 { return c.opts.MaxSize }

// Close closes the connections kept open.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Envelope is what rspamd is told of a message beside its bytes; empty
// fields are left out.
type Envelope struct {
	// From is the MAIL FROM address, "<>" for the null sender; "" when it
	// is not known (a polled message).
	From string
	// Rcpt are the RCPT TO addresses.
	Rcpt []string
	// IP is the SMTP client's address (an IP, or IP:port).
	IP string
	// Helo is what the client said in HELO or EHLO.
	Helo string
	// QueueID names the message in rspamd's log (the sensor's message id).
	QueueID string
	// User is the SMTP AUTH user who sent it, where known.
	User string
	// TLSVersion and TLSCipher are the SMTP session's TLS.
	TLSVersion, TLSCipher string
}

// headers sets the request headers of the checkv2 protocol from e.
func (e Envelope) headers(h http.Header) {
	set := func(name, v string) {
		if v = headerValue(v); v != "" {
			h.Set(name, v)
		}
	}
	set("From", e.From)
	for _, r := range e.Rcpt {
		if r = headerValue(r); r != "" {
			h.Add("Rcpt", r)
		}
	}
	ip := e.IP
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	if a := net.ParseIP(ip); a != nil {
		h.Set("IP", a.String())
	}
	set("Helo", e.Helo)
	set("Queue-Id", e.QueueID)
	set("User", e.User)
	set("TLS-Version", e.TLSVersion)
	set("TLS-Cipher", e.TLSCipher)
}

// headerValue is v as a header value: what a client sent may hold
// anything, and a control character would make the request invalid.
func headerValue(v string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, v)
}

// answer is the JSON of a checkv2 answer, the fields used.
type answer struct {
	Score         float64 `json:"score"`
	RequiredScore float64 `json:"required_score"`
	Action        string  `json:"action"`
	Symbols       map[string]struct {
		Name  string  `json:"name"`
		Score float64 `json:"score"`
	} `json:"symbols"`
	Error string `json:"error"`
}

// Check sends the message (size bytes from body) with its envelope and
// returns rspamd's opinion. A message larger than Options.MaxSize is not
// sent (ErrTooLarge). Every error is rspamd's failure to answer (or the
// context's end), and says which.
func (c *Client) Check(ctx context.Context, body io.Reader, size int64, env Envelope) (*ospreyv1.SpamResult, error) {
	if size > c.opts.MaxSize {
		return nil, fmt.Errorf("%d bytes, rspamd takes at most %d: %w", size, c.opts.MaxSize, ErrTooLarge)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.check, io.LimitReader(body, size))
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	env.headers(req.Header)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rspamd %s: %w", c.check, err)
	}
	defer resp.Body.Close()
	a, derr := decode(resp.Body)
	// Read what is left (within the bound) so the connection is reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode != http.StatusOK {
		msg := http.StatusText(resp.StatusCode)
		if derr == nil && a.Error != "" {
			msg = truncate(a.Error, 200)
		}
		return nil, fmt.Errorf("rspamd %s: %s: %s", c.check, resp.Status, msg)
	}
	if derr != nil {
		return nil, fmt.Errorf("rspamd %s: read the answer: %w", c.check, derr)
	}
	res, err := result(a, c.opts.MaxSymbols)
	if err != nil {
		return nil, fmt.Errorf("rspamd %s: %w", c.check, err)
	}
	return res, nil
}

// decode reads a checkv2 answer, at most maxAnswer bytes of it.
func decode(r io.Reader) (*answer, error) {
	var a answer
	if err := json.NewDecoder(io.LimitReader(r, maxAnswer)).Decode(&a); err != nil {
		return nil, err
	}
	return &a, nil
}

// result turns an answer into a SpamResult, keeping the maxSymbols
// symbols of the largest scores (either sign).
func result(a *answer, maxSymbols int) (*ospreyv1.SpamResult, error) {
	if !finite(a.Score) || !finite(a.RequiredScore) {
		return nil, fmt.Errorf("score %v, required score %v: not numbers", a.Score, a.RequiredScore)
	}
	res := &ospreyv1.SpamResult{Score: a.Score, RequiredScore: a.RequiredScore, Action: truncate(a.Action, maxName)}
	for key, s := range a.Symbols {
		name := cmp.Or(s.Name, key)
		if name == "" || !finite(s.Score) {
			continue
		}
		res.Symbols = append(res.Symbols, &ospreyv1.SpamSymbol{Name: truncate(name, maxName), Score: s.Score})
	}
	slices.SortFunc(res.Symbols, func(x, y *ospreyv1.SpamSymbol) int {
		if c := cmp.Compare(math.Abs(y.GetScore()), math.Abs(x.GetScore())); c != 0 {
			return c
		}
		return strings.Compare(x.GetName(), y.GetName())
	})
	if len(res.Symbols) > maxSymbols {
		res.Symbols = res.Symbols[:maxSymbols]
	}
	return res, nil
}

// Ping asks rspamd whether it is up (GET /ping).
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.ping, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("rspamd %s: %w", c.ping, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64))
	if err != nil {
		return fmt.Errorf("rspamd %s: %w", c.ping, err)
	}
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != "pong" {
		return fmt.Errorf("rspamd %s: %s %q, want 200 pong", c.ping, resp.Status, truncate(string(b), 64))
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
