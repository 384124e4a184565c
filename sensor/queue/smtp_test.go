package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/ospreysec/osprey/sensor/delivery"
)

// smtpDeliverer is a minimal SMTP client for the tests that need a real
// next hop before the gateway's client (sensor/delivery) is wired in: one
// connection per Request to one address, no TLS, no MX.
type smtpDeliverer struct{ addr string }

func (d smtpDeliverer) Destination(rcpt string) string {
	_, domain, _ := strings.Cut(rcpt, "@")
	return strings.ToLower(domain)
}

func (d smtpDeliverer) Deliver(ctx context.Context, r delivery.Request) delivery.Result {
	res := delivery.Result{}
	start := time.Now()
	defer func() { res.Took = time.Since(start) }()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return failAll(r, 451, "4.4.1", err.Error())
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("queue.test"); err != nil {
		return failAll(r, 451, "4.4.2", err.Error())
	}
	res.Host = d.addr
	reply := func(rcpt string, err error) delivery.RcptResult {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			rr := delivery.RcptResult{Rcpt: rcpt, Code: se.Code, Text: se.Message}
			if e := se.EnhancedCode; e[0] > 0 {
				rr.Enhanced = fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2])
			}
			return rr
		}
		return delivery.RcptResult{Rcpt: rcpt, Code: 451, Enhanced: "4.4.2", Text: err.Error()}
	}
	if err := c.Mail(r.From, nil); err != nil {
		res.Rcpts = nil
		for _, rc := range r.Rcpts {
			res.Rcpts = append(res.Rcpts, reply(rc, err))
		}
		return res
	}
	var accepted []int
	res.Rcpts = make([]delivery.RcptResult, len(r.Rcpts))
	for i, rc := range r.Rcpts {
		if err := c.Rcpt(rc, nil); err != nil {
			res.Rcpts[i] = reply(rc, err)
			continue
		}
		accepted = append(accepted, i)
	}
	if len(accepted) == 0 {
		return res
	}
	w, err := c.Data()
	if err == nil {
		_, err = io.Copy(w, r.Body)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	for _, i := range accepted {
		if err != nil {
			res.Rcpts[i] = reply(r.Rcpts[i], err)
		} else {
			res.Rcpts[i] = delivery.RcptResult{Rcpt: r.Rcpts[i], Code: 250, Enhanced: "2.0.0", Text: "ok"}
		}
	}
	c.Quit()
	return res
}

// countingServer is a go-smtp server on loopback that counts the
// deliveries of each Message-ID to each recipient ("id rcpt"), notices
// (from the null sender) aside, and answers 451 to every tempEvery-th
// RCPT (0: never).
type countingServer struct {
	addr      string
	tempEvery int

	mu    sync.Mutex
	rcpts int
	seen  map[string]int
}

func startCountingServer(t *testing.T, tempEvery int) *countingServer {
	t.Helper()
	cs := &countingServer{tempEvery: tempEvery, seen: map[string]int{}}
	srv := smtp.NewServer(cs)
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = true
	srv.MaxRecipients = 1000
	srv.ErrorLog = log.New(io.Discard, "", 0) // the kills' resets
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cs.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return cs
}

func (cs *countingServer) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &countingSession{cs: cs}, nil
}

func (cs *countingServer) counts() map[string]int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	m := make(map[string]int, len(cs.seen))
	for k, v := range cs.seen {
		m[k] = v
	}
	return m
}

type countingSession struct {
	cs    *countingServer
	rcpts []string
	null  bool
}

func (s *countingSession) Reset()        { s.rcpts, s.null = nil, false }
func (s *countingSession) Logout() error { return nil }
func (s *countingSession) Mail(from string, _ *smtp.MailOptions) error {
	s.null = from == ""
	return nil
}
func (s *countingSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cs.mu.Lock()
	defer s.cs.mu.Unlock()
	s.cs.rcpts++
	if s.cs.tempEvery > 0 && s.cs.rcpts%s.cs.tempEvery == 0 {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "try again"}
	}
	s.rcpts = append(s.rcpts, to)
	return nil
}

func (s *countingSession) Data(r io.Reader) error {
	sc := bufio.NewScanner(r)
	var id string
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Message-ID: <"); ok {
			id, _, _ = strings.Cut(v, "@")
		}
	}
	s.cs.mu.Lock()
	defer s.cs.mu.Unlock()
	if id != "" && !s.null {
		for _, r := range s.rcpts {
			s.cs.seen[id+" "+r]++
		}
	}
	return sc.Err()
}
