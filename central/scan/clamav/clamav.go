// Package clamav is the optional scan engine that sends each part to a
// ClamAV daemon (clamd) with the INSTREAM command, over a unix socket or
// TCP.
//
// One INSTREAM is one connection (clamd closes it after answering), so the
// Client dials per part and bounds how many connections it holds at once;
// deadlines come from the context (or Options.Timeout when it has none),
// and a cancelled context aborts the exchange at once.
package clamav

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/ospreysec/osprey/central/scan/ioc"
	"github.com/ospreysec/osprey/central/scan/walk"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// Name is the engine's name.
const Name = "clamav"

// Defaults of Options.
const (
	DefaultTimeout   = 30 * time.Second
	DefaultChunkSize = 64 << 10
	DefaultMaxConns  = 4
)

// ErrSizeLimit is returned when clamd refuses a stream longer than its
// StreamMaxLength. It wraps walk.ErrLimit, so a scan counts it as a bound
// hit, not a failure.
var ErrSizeLimit = fmt.Errorf("clamd: INSTREAM size limit exceeded: %w", walk.ErrLimit)

// Options configure a Client.
type Options struct {
	// Network is "unix" or "tcp".
	Network string
	// Address is the socket path or host:port of clamd.
	Address string
	// Timeout bounds one exchange when the context has no deadline.
	Timeout time.Duration
	// ChunkSize is the size of the INSTREAM chunks.
	ChunkSize int
	// MaxConns bounds the connections open to clamd at once; more scans
	// wait for one to end.
	MaxConns int
}

// Validate reports every problem at once.
func (o Options) Validate() error {
	var errs []error
	if o.Network != "unix" && o.Network != "tcp" {
		errs = append(errs, fmt.Errorf("clamav.network: %q is not unix or tcp", o.Network))
	}
	if o.Address == "" {
		errs = append(errs, errors.New("clamav.address: empty"))
	}
	if o.Timeout < 0 || o.ChunkSize < 0 || o.MaxConns < 0 {
		errs = append(errs, errors.New("clamav: timeout, chunk_size and max_conns must not be negative"))
	}
	return errors.Join(errs...)
}

// Client talks to one clamd.
type Client struct {
	opts Options
	sem  chan struct{}
}

// New returns a Client; it does not connect.
func New(opts Options) (*Client, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = DefaultMaxConns
	}
	return &Client{opts: opts, sem: make(chan struct{}, opts.MaxConns)}, nil
}

// Result is clamd's answer to one stream.
type Result struct {
	// Signature names what clamd found; "" means the stream is clean.
	Signature string
}

// conn dials clamd with the context's deadline and makes the context's end
// abort any blocked read or write. done releases everything.
func (c *Client) conn(ctx context.Context) (net.Conn, func(), error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.opts.Timeout)
	}
	d := net.Dialer{Deadline: deadline}
	nc, err := d.DialContext(ctx, c.opts.Network, c.opts.Address)
	if err != nil {
		<-c.sem
		return nil, nil, fmt.Errorf("dial clamd %s: %w", c.opts.Address, err)
	}
	nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	return nc, func() {
		stop()
		nc.Close()
		<-c.sem
	}, nil
}

// Ping checks that clamd answers PING with PONG.
func (c *Client) Ping(ctx context.Context) error {
	nc, done, err := c.conn(ctx)
	if err != nil {
		return err
	}
	defer done()
	if _, err := nc.Write([]byte("zPING\x00")); err != nil {
		return c.wrap(ctx, "ping clamd", err)
	}
	reply, err := readReply(nc)
	if err != nil {
		return c.wrap(ctx, "ping clamd", err)
	}
	if reply != "PONG" {
		return fmt.Errorf("ping clamd: unexpected reply %q", reply)
	}
	return nil
}

// Scan streams r to clamd and returns its verdict.
func (c *Client) Scan(ctx context.Context, r io.Reader) (Result, error) {
	nc, done, err := c.conn(ctx)
	if err != nil {
		return Result{}, err
	}
	defer done()
	bw := bufio.NewWriterSize(nc, c.opts.ChunkSize+4)
	werr := c.stream(bw, r)
	if werr != nil && !isNetErr(werr) {
		return Result{}, werr // reading r failed
	}
	// After a write error clamd may still have said why (a size limit).
	reply, rerr := readReply(nc)
	if rerr != nil {
		if werr != nil {
			return Result{}, c.wrap(ctx, "stream to clamd", werr)
		}
		return Result{}, c.wrap(ctx, "read clamd reply", rerr)
	}
	return parseReply(reply)
}

type netErr struct{ error }

func (e netErr) Unwrap() error { return e.error }

func isNetErr(err error) bool { return errors.As(err, new(netErr)) }

// stream writes the INSTREAM command, the chunks and the terminator.
func (c *Client) stream(bw *bufio.Writer, r io.Reader) error {
	if _, err := bw.WriteString("zINSTREAM\x00"); err != nil {
		return netErr{err}
	}
	buf := make([]byte, c.opts.ChunkSize)
	var hdr [4]byte
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			binary.BigEndian.PutUint32(hdr[:], uint32(n))
			if _, werr := bw.Write(hdr[:]); werr != nil {
				return netErr{werr}
			}
			if _, werr := bw.Write(buf[:n]); werr != nil {
				return netErr{werr}
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read part: %w", err)
		}
	}
	binary.BigEndian.PutUint32(hdr[:], 0)
	if _, err := bw.Write(hdr[:]); err != nil {
		return netErr{err}
	}
	if err := bw.Flush(); err != nil {
		return netErr{err}
	}
	return nil
}

// wrap prefers the context's error to the deadline error it caused.
func (c *Client) wrap(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	return fmt.Errorf("%s: %w", op, err)
}

// readReply reads one NUL-terminated reply (at most 4 KiB).
func readReply(r io.Reader) (string, error) {
	var buf [4096]byte
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			return strings.TrimSpace(string(buf[:i])), nil
		}
		if err == io.EOF && n > 0 {
			return strings.TrimSpace(string(buf[:n])), nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", errors.New("clamd reply too long")
}

// parseReply reads "stream: OK", "stream: <Signature> FOUND" and
// "<message> ERROR".
func parseReply(reply string) (Result, error) {
	switch {
	case strings.Contains(reply, "INSTREAM size limit exceeded"):
		return Result{}, ErrSizeLimit
	case strings.HasSuffix(reply, " ERROR"):
		return Result{}, fmt.Errorf("clamd: %s", reply)
	case reply == "stream: OK":
		return Result{}, nil
	case strings.HasPrefix(reply, "stream: ") && strings.HasSuffix(reply, " FOUND"):
		sig := strings.TrimSuffix(strings.TrimPrefix(reply, "stream: "), " FOUND")
		return Result{Signature: strings.TrimSpace(sig)}, nil
	}
	return Result{}, fmt.Errorf("clamd: unexpected reply %q", reply)
}

// Engine scans parts with clamd.
type Engine struct {
	c *Client
}

// NewEngine returns the ClamAV engine over c.
func NewEngine(c *Client) *Engine { return &Engine{c: c} }

// Name returns "clamav".
func (e *Engine) Name() string { return Name }

// ScanPart streams the part's content to clamd. A container whose members
// the walk visited (Part.Expanded) is not sent again; one it could not open
// (too deep, encrypted members) is sent whole, since clamd may open it.
// Rules do not apply.
func (e *Engine) ScanPart(ctx context.Context, p *walk.Part, _ *ioc.RuleSet) ([]*ospreyv1.Match, error) {
	if p.Expanded || p.Stored() == 0 {
		return nil, nil
	}
	res, err := e.c.Scan(ctx, p.Open())
	if err != nil {
		return nil, err
	}
	if res.Signature == "" {
		return nil, nil
	}
	return []*ospreyv1.Match{{
		Engine:   Name,
		RuleId:   res.Signature,
		Severity: ospreyv1.Severity_SEVERITY_HIGH,
		What:     p.Where() + " is " + res.Signature + " (ClamAV)",
		Part:     p.Where(),
	}}, nil
}
