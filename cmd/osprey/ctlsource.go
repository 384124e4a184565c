package main

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"

	"github.com/ospreysec/osprey/api"
)

// flagSources remembers where ctl's flags got their values, so a message
// names what the user set: --password, or OSPREY_PASSWORD.
type flagSources struct{ cmdline, env map[string]bool }

// newFlagSources records the flags set on the command line (call it after
// parsing, before applyEnv).
func newFlagSources(fs *flag.FlagSet) *flagSources {
	s := &flagSources{cmdline: map[string]bool{}, env: map[string]bool{}}
	fs.Visit(func(f *flag.Flag) { s.cmdline[f.Name] = true })
	return s
}

// fromEnv records the flags applyEnv set.
func (s *flagSources) fromEnv(fs *flag.FlagSet) {
	fs.Visit(func(f *flag.Flag) {
		if !s.cmdline[f.Name] {
			s.env[f.Name] = true
		}
	})
}

// name is how a message names a flag: its environment variable when the
// value came from there, else --flag.
func (s *flagSources) name(flagName string) string {
	if s.env[flagName] {
		return envName(flagName)
	}
	return "--" + flagName
}

// credentials are what ctl authenticated with, for a message: never the
// password or the token's secret.
type credentials struct {
	username, token, passwordFile string
	password                      bool // a password was given
	src                           *flagSources
}

// explain adds to a 401 which credentials were sent and where each came
// from.
func (c credentials) explain(err error) error {
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		return err
	}
	return fmt.Errorf("%w: %s", err, c.describe())
}

func (c credentials) describe() string {
	switch {
	case c.token != "":
		return fmt.Sprintf("the server refused %s, from %s", tokenName(c.token), c.src.name("token"))
	case c.username != "":
		password := "no password (give --password, --password-file or OSPREY_PASSWORD)"
		switch {
		case c.passwordFile != "":
			password = fmt.Sprintf("the password in %s (%s)", c.passwordFile, c.src.name("password-file"))
		case c.password:
			password = "the password from " + c.src.name("password")
		}
		return fmt.Sprintf("the server refused user %q (from %s) with %s", c.username, c.src.name("username"), password)
	default:
		return "no credentials were given: give --username with --password or --password-file, or --token " +
			"(or OSPREY_USERNAME with OSPREY_PASSWORD, or OSPREY_TOKEN)"
	}
}

// tokenName names an API token by its id, the part of "osp_<id>_<secret>"
// that is no secret.
func tokenName(token string) string {
	const prefix, idLen = "osp_", 16
	if !strings.HasPrefix(token, prefix) || len(token) <= len(prefix)+idLen+1 || token[len(prefix)+idLen] != '_' {
		return "a token that is not of the form osp_<id>_<secret>"
	}
	return "the token " + token[:len(prefix)+idLen] + "_…"
}
