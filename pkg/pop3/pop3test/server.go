package pop3test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// UIDMode is how a [Server] answers UIDL.
type UIDMode int

const (
	// UniqueIDs gives each message an id of its own for as long as it is
	// in the maildrop, as RFC 1939 wants.
	UniqueIDs UIDMode = iota
	// NoUIDL answers UIDL with -ERR.
	NoUIDL
	// NumberIDs uses the message number as id: once messages are
	// deleted, new messages get the ids of the deleted ones.
	NumberIDs
	// SameID lists one id for every message.
	SameID
)

// ServerOptions configure a [Server].
type ServerOptions struct {
	// User and Password are the only credentials the server takes; empty
	// means any.
	User, Password string
	// UIDs is how UIDL answers; see [Server.SetUIDs].
	UIDs UIDMode
	// KeepDeleted makes the server acknowledge DELE and QUIT but keep the
	// messages; see [Server.SetKeepDeleted].
	KeepDeleted bool
}

// Server is a small POP3 server (RFC 1939, plaintext, USER/PASS) for the
// misbehaviours a real server will not show on demand: no UIDL, unique ids
// that are not unique or are reused, deletions acknowledged but not done.
// It listens on 127.0.0.1 and serves one connection at a time; its methods
// may be called from any goroutine.
type Server struct {
	tb   testing.TB
	ln   net.Listener
	done chan struct{}

	mu       sync.Mutex
	closed   bool
	cur      net.Conn // the connection being served
	opts     ServerOptions
	msgs     []serverMessage
	seq      int
	sessions int
}

type serverMessage struct {
	uid  string // its id under UniqueIDs
	body []byte
}

// StartServer starts a Server; it stops when the test ends.
func StartServer(tb testing.TB, opts ServerOptions) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{tb: tb, ln: ln, done: make(chan struct{}), opts: opts}
	go s.accept()
	tb.Cleanup(func() {
		s.mu.Lock()
		s.closed = true
		if s.cur != nil {
			s.cur.Close()
		}
		s.mu.Unlock()
		ln.Close()
		<-s.done
	})
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Add puts msg (CRLF line endings, not dot-stuffed) at the end of the
// maildrop.
func (s *Server) Add(msg []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.msgs = append(s.msgs, serverMessage{uid: "uid-" + strconv.Itoa(s.seq), body: bytes.Clone(msg)})
}

// Messages returns the number of messages in the maildrop.
func (s *Server) Messages() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// Sessions returns the number of sessions that ended with QUIT.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

// SetUIDs changes how UIDL answers, from the next session on.
func (s *Server) SetUIDs(m UIDMode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.UIDs = m
}

// SetKeepDeleted changes whether QUIT deletes the messages marked
// deleted, from the next session on.
func (s *Server) SetKeepDeleted(keep bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.KeepDeleted = keep
}

func (s *Server) accept() {
	defer close(s.done)
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		closed := s.closed
		s.cur = c
		s.mu.Unlock()
		if closed {
			c.Close()
			return
		}
		s.serve(c)
	}
}

// serve runs one session on c, on a snapshot of the maildrop taken when
// it starts.
func (s *Server) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(lines ...string) {
		for _, l := range lines {
			w.WriteString(l + "\r\n")
		}
		w.Flush()
	}
	s.mu.Lock()
	opts := s.opts
	msgs := append([]serverMessage(nil), s.msgs...)
	s.mu.Unlock()
	uid := func(i int) string {
		switch opts.UIDs {
		case NumberIDs:
			return strconv.Itoa(i + 1)
		case SameID:
			return "same"
		}
		return msgs[i].uid
	}
	deleted := map[int]bool{}
	// message returns the 0-based index of the message numbered arg, or
	// -1 after answering -ERR.
	message := func(arg string) int {
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > len(msgs) || deleted[n-1] {
			reply("-ERR no such message")
			return -1
		}
		return n - 1
	}
	user, authed := "", false
	reply("+OK pop3test ready")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		cmd = strings.ToUpper(cmd)
		switch {
		case cmd == "QUIT":
			if authed {
				s.commit(msgs, deleted, opts.KeepDeleted)
			}
			reply("+OK bye")
			return
		case cmd == "CAPA":
			caps := []string{"+OK", "USER"}
			if opts.UIDs != NoUIDL {
				caps = append(caps, "UIDL")
			}
			reply(append(caps, ".")...)
		case !authed && cmd == "USER":
			user = arg
			reply("+OK")
		case !authed && cmd == "PASS":
			if (opts.User != "" && user != opts.User) || (opts.Password != "" && arg != opts.Password) {
				reply("-ERR [AUTH] invalid credentials")
				continue
			}
			authed = true
			reply("+OK")
		case !authed:
			reply("-ERR authenticate first")
		case cmd == "NOOP":
			reply("+OK")
		case cmd == "STAT":
			n, size := 0, 0
			for i, m := range msgs {
				if !deleted[i] {
					n++
					size += len(m.body)
				}
			}
			reply(fmt.Sprintf("+OK %d %d", n, size))
		case cmd == "LIST" && arg == "":
			out := []string{"+OK"}
			for i, m := range msgs {
				if !deleted[i] {
					out = append(out, fmt.Sprintf("%d %d", i+1, len(m.body)))
				}
			}
			reply(append(out, ".")...)
		case cmd == "UIDL" && arg == "":
			if opts.UIDs == NoUIDL {
				reply("-ERR command not supported")
				continue
			}
			out := []string{"+OK"}
			for i := range msgs {
				if !deleted[i] {
					out = append(out, fmt.Sprintf("%d %s", i+1, uid(i)))
				}
			}
			reply(append(out, ".")...)
		case cmd == "RETR":
			i := message(arg)
			if i < 0 {
				continue
			}
			w.WriteString("+OK\r\n")
			body := string(msgs[i].body)
			for l := range strings.Lines(body) {
				if strings.HasPrefix(l, ".") {
					w.WriteString(".")
				}
				w.WriteString(l)
			}
			if !strings.HasSuffix(body, "\r\n") {
				w.WriteString("\r\n")
			}
			reply(".")
		case cmd == "DELE":
			if i := message(arg); i >= 0 {
				deleted[i] = true
				reply("+OK marked deleted")
			}
		case cmd == "RSET":
			clear(deleted)
			reply("+OK")
		default:
			reply("-ERR unknown command")
		}
	}
}

// commit ends a session that QUIT: the messages of the session's snapshot
// marked deleted leave the maildrop, unless keep.
func (s *Server) commit(snapshot []serverMessage, deleted map[int]bool, keep bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions++
	if keep {
		return
	}
	gone := map[string]bool{}
	for i, m := range snapshot {
		if deleted[i] {
			gone[m.uid] = true
		}
	}
	var left []serverMessage
	for _, m := range s.msgs {
		if !gone[m.uid] {
			left = append(left, m)
		}
	}
	s.msgs = left
}
