package ui

import (
	"errors"
	"net/http"
	"regexp"
	"time"

	"github.com/ospreysec/osprey/central/auth"
)

// signInFailed is the one message of every refused sign-in: it does not say
// whether the name exists, the password was wrong or the attempt was throttled.
const signInFailed = "Sign-in failed. Check the user name and password. After several failed attempts, wait a few minutes before trying again."

type signInData struct {
	Token string
	Next  string
	Name  string
	Error string
}

// signInPage shows the sign-in form, or goes on to the site when signed in.
func (s *Server) signInPage(w http.ResponseWriter, r *http.Request, _ *request) error {
	next := localPath(r.URL.Query().Get("next"), "/sensors")
	if _, err := s.signedIn(r, false); err == nil {
		redirect(w, r, next)
		return nil
	}
	s.renderSignIn(w, http.StatusOK, next, "", "")
	return nil
}

// renderSignIn shows the form with a fresh anti-forgery nonce.
func (s *Server) renderSignIn(w http.ResponseWriter, status int, next, name, msg string) {
	nonce := randomToken(16)
	s.setCookie(w, signInCookie(s.secure), nonce, time.Hour)
	s.render(w, status, nil, "signin", page{
		Title: "Sign in",
		Data:  signInData{Token: s.sessions.signInToken(nonce), Next: next, Name: name, Error: msg},
	})
}

// signIn checks the form's token, the throttle and the password, and starts
// a session.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, _ *request) error {
	next := localPath(r.PostFormValue("next"), "/sensors")
	name, password := r.PostFormValue("username"), r.PostFormValue("password")
	c, err := r.Cookie(signInCookie(s.secure))
	if err != nil || !s.sessions.checkSignInToken(c.Value, r.PostFormValue("csrf")) {
		s.renderSignIn(w, http.StatusForbidden, next, name, "The sign-in form had expired. Please sign in again.")
		return nil
	}
	addr := auth.ClientAddr(r)
	if name == "" || password == "" {
		s.renderSignIn(w, http.StatusUnauthorized, next, name, signInFailed)
		return nil
	}
	p, err := s.auth.AuthenticatePassword(r.Context(), name, password, addr)
	switch {
	case errors.Is(err, auth.ErrThrottled):
		s.log.WarnContext(r.Context(), "sign-in throttled", "user", loggableName(name), "client", addr)
		s.renderSignIn(w, http.StatusTooManyRequests, next, name, signInFailed)
		return nil
	case errors.Is(err, auth.ErrUnauthenticated):
		s.log.InfoContext(r.Context(), "sign-in failed", "user", loggableName(name), "client", addr)
		s.renderSignIn(w, http.StatusUnauthorized, next, name, signInFailed)
		return nil
	case err != nil:
		return err
	}
	_, cookie := s.sessions.create(p)
	s.setCookie(w, sessionCookie(s.secure), cookie, AbsoluteTimeout)
	s.clearCookie(w, signInCookie(s.secure))
	s.log.InfoContext(r.Context(), "signed in", "user", p.Name, "client", addr)
	redirect(w, r, next)
	return nil
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request, req *request) error {
	s.sessions.delete(req.sess.id)
	s.clearCookie(w, sessionCookie(s.secure))
	redirect(w, r, "/signin")
	return nil
}

// userName is the shape of every user name (see package validate).
var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// loggableName is what a log line says of the name a sign-in tried: the name,
// unless it cannot be one, which happens when a password is typed into the
// name field; then it is left out, as secrets never reach a log line.
func loggableName(name string) string {
	if userName.MatchString(name) {
		return name
	}
	return "(not a user name)"
}
