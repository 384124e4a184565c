package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"github.com/ospreysec/osprey/central/auth"
)

// Session lifetimes: a session ends after IdleTimeout without a page view, and
// AbsoluteTimeout after sign-in whatever happens.
const (
	IdleTimeout     = 30 * time.Minute
	AbsoluteTimeout = 12 * time.Hour
)

// maxSessions bounds the memory sessions take. Sessions are only made by a
// successful sign-in, so the bound is reached only by a user signing in in a
// loop; the oldest session then gives way.
const maxSessions = 10000

var b64 = base64.RawURLEncoding

// randomToken returns n random bytes in unpadded base64url.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails; see its documentation
	return b64.EncodeToString(b)
}

// session is one signed-in browser.
type session struct {
	id        string
	principal auth.Principal
	csrf      string
	created   time.Time
	seen      time.Time
	flash     []flash
}

// flash is a one-shot message shown on the next page a session views.
type flash struct {
	Kind    string // "ok" or "error"
	Message string
}

// sessions keeps the sessions of one node in memory. A session's cookie is
// its random id and an HMAC of it under a key made at start, so a cookie
// that was not issued here is refused before any lookup; a restart makes a
// new key and forgets every session, which signs everyone out.
type sessions struct {
	key []byte
	now func() time.Time

	mu        sync.Mutex
	byID      map[string]*session
	lastSweep time.Time
}

func newSessions(now func() time.Time) *sessions {
	key := make([]byte, 32)
	rand.Read(key)
	return &sessions{key: key, now: now, byID: map[string]*session{}}
}

func (s *sessions) mac(parts ...string) string {
	m := hmac.New(sha256.New, s.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return b64.EncodeToString(m.Sum(nil))
}

// create starts a session for p and returns a copy of it and its cookie value.
func (s *sessions) create(p auth.Principal) (session, string) {
	now := s.now()
	sess := &session{id: randomToken(32), principal: p, csrf: randomToken(32), created: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	if len(s.byID) >= maxSessions {
		var oldest *session
		for _, o := range s.byID {
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		delete(s.byID, oldest.id)
	}
	s.byID[sess.id] = sess
	return *sess, sess.id + "." + s.mac("session", sess.id)
}

// get returns the live session of a cookie value. touch records a page view,
// which keeps the session from idling out; background polling does not.
func (s *sessions) get(cookie string, touch bool) (session, bool) {
	id, sig, ok := strings.Cut(cookie, ".")
	if !ok || subtle.ConstantTimeCompare([]byte(sig), []byte(s.mac("session", id))) != 1 {
		return session{}, false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return session{}, false
	}
	if s.expired(sess, now) {
		delete(s.byID, id)
		return session{}, false
	}
	if touch {
		sess.seen = now
	}
	out := *sess
	out.flash = nil
	return out, true
}

func (s *sessions) expired(sess *session, now time.Time) bool {
	return now.Sub(sess.seen) >= IdleTimeout || now.Sub(sess.created) >= AbsoluteTimeout
}

// sweepLocked forgets expired sessions, at most once a minute.
func (s *sessions) sweepLocked(now time.Time) {
	if now.Sub(s.lastSweep) < time.Minute {
		return
	}
	s.lastSweep = now
	for id, sess := range s.byID {
		if s.expired(sess, now) {
			delete(s.byID, id)
		}
	}
}

// delete ends a session.
func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// addFlash queues a message for the session's next page.
func (s *sessions) addFlash(id string, f flash) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.byID[id]; ok && len(sess.flash) < 10 {
		sess.flash = append(sess.flash, f)
	}
}

// takeFlash returns and forgets the session's queued messages.
func (s *sessions) takeFlash(id string) []flash {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return nil
	}
	out := sess.flash
	sess.flash = nil
	return out
}

// signInToken is the CSRF token of the sign-in form, bound to the random
// nonce of a short-lived cookie: there is no session yet, and keeping no
// state for anonymous visitors means they cannot fill memory.
func (s *sessions) signInToken(nonce string) string {
	return s.mac("signin", nonce)
}

// checkSignInToken reports whether token is the sign-in token of nonce.
func (s *sessions) checkSignInToken(nonce, token string) bool {
	return nonce != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.signInToken(nonce))) == 1
}

// checkCSRF reports whether token is the session's CSRF token.
func checkCSRF(sess session, token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(sess.csrf)) == 1
}
