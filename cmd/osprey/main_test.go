package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/api"
)

// TestUsageErrors: a command line that cannot run prints what is wrong and
// the command's usage on stderr, nothing on stdout, and ends in errUsage
// (exit status 2).
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantMsg   string
		wantUsage string
	}{
		{"no command", nil, "osprey: no command", "Usage: osprey <command>"},
		{"unknown command", []string{"frobnicate"}, `osprey: unknown command "frobnicate"`, "Usage: osprey <command>"},
		{"ctl without a command", []string{"ctl"}, "osprey ctl: no command", "Usage: osprey ctl"},
		{"ctl unknown command", []string{"ctl", "sensorz", "list"}, `osprey ctl: unknown command "sensorz list"`, "Usage: osprey ctl"},
		{"ctl missing subcommand", []string{"ctl", "alerts"}, `osprey ctl: incomplete command "alerts"`, "Usage: osprey ctl"},
		{"ctl missing --file", []string{"ctl", "sensor", "smtp", "set", "dev"}, "osprey ctl: sensor smtp set: --file FILE is required", "Usage: osprey ctl"},
		{"ctl missing tenant", []string{"ctl", "rules", "list"}, "osprey ctl: rules list: missing TENANT", "Usage: osprey ctl"},
		{"ctl missing id", []string{"ctl", "alert", "get", "default"}, "osprey ctl: alert get: missing ID", "Usage: osprey ctl"},
		{"ctl apply-to-tenant without a sensor", []string{"ctl", "sensor", "smtp", "apply-to-tenant"},
			"osprey ctl: sensor smtp apply-to-tenant: missing ID", "Usage: osprey ctl"},
		{"ctl tokens without a file", []string{"ctl", "tokens", "create"}, "osprey ctl: tokens create: --file FILE is required", "Usage: osprey ctl"},
		{"ctl bad TTL", []string{"ctl", "tokens", "create", "join", "default", "an hour"}, `TTL_SECONDS "an hour" is not a number`, "Usage: osprey ctl"},
		{"ctl users create without a name", []string{"ctl", "users", "create"}, "osprey ctl: users create: missing NAME", "Usage: osprey ctl"},
		{"ctl users create without a password", []string{"ctl", "users", "create", "soc", "--role", "officer", "--all-tenants"},
			"osprey ctl: users create: missing --new-password-file", "Usage: osprey ctl"},
		{"ctl unknown flag", []string{"ctl", "--bogus", "sensors", "list"}, "flag provided but not defined: -bogus", "Usage: osprey ctl"},
		{"ctl address without a scheme", []string{"ctl", "--address", "127.0.0.1:8080", "sensors", "list"},
			`osprey ctl: --address "127.0.0.1:8080" has no scheme: write http://127.0.0.1:8080`, "Usage: osprey ctl"},
		{"ctl malformed fingerprint", []string{"ctl", "--address", "https://h", "--tls-fingerprint", "ab:cd", "sensors", "list"},
			"osprey ctl: --tls-fingerprint: fingerprint \"ab:cd\": want the 64 hex digits of a SHA-256", "Usage: osprey ctl"},
		{"ctl two ways to verify", []string{"ctl", "--tls-ca", "ca.pem", "--tls-skip-verify", "sensors", "list"},
			"osprey ctl: --tls-ca and --tls-skip-verify: give one of them", "Usage: osprey ctl"},
		{"ctl password twice", []string{"ctl", "--username", "u", "--password", "p", "--password-file", "f", "sensors", "list"},
			"osprey ctl: give --password or --password-file, not both", "Usage: osprey ctl"},
		{"central argument", []string{"central", "extra"}, `osprey central: unexpected argument "extra"`, "Usage: osprey central [flags]"},
		{"dev log format", []string{"dev", "--log-format", "xml"}, `osprey dev: --log-format: "xml" is not json or text`, "Usage: osprey dev [flags]"},
		{"sensor argument", []string{"sensor", "extra"}, `osprey sensor: unexpected argument "extra"`, "Usage: osprey sensor [flags]"},
		{"admin without a command", []string{"admin"}, "osprey admin: no command", "Usage: osprey admin <command>"},
		{"admin unknown command", []string{"admin", "snapshot"}, `osprey admin: unknown command "snapshot"`, "Usage: osprey admin <command>"},
		{"backup without --out", []string{"admin", "backup"}, "osprey admin backup: --out: required", "Usage: osprey admin backup [flags]"},
		{"backup of two members", []string{"admin", "backup", "--out", "b", "--etcd-endpoints", "http://a:2379,http://b:2379"},
			"osprey admin backup: --etcd-endpoints: 2 given, want one member's client URL", "Usage: osprey admin backup [flags]"},
		{"backup half a key pair", []string{"admin", "backup", "--out", "b", "--etcd-cert", "c.pem"},
			"osprey admin backup: --etcd-cert and --etcd-key: give both or neither", "Usage: osprey admin backup [flags]"},
		{"restore without --from", []string{"admin", "restore"}, "osprey admin restore: --from: required", "Usage: osprey admin restore [flags]"},
		{"restore with a plaintext peer URL", []string{"admin", "restore", "--from", "b", "--node-name", "n1", "--etcd-initial-cluster", "n1=http://10.0.0.1:2380"},
			"osprey admin restore: --etcd-initial-cluster: n1=http://10.0.0.1:2380: the members talk mutual TLS", "Usage: osprey admin restore [flags]"},
		{"restore of a node not in the cluster", []string{"admin", "restore", "--from", "b", "--node-name", "n4", "--etcd-initial-cluster", "n1=https://10.0.0.1:2380"},
			`osprey admin restore: --etcd-initial-cluster: etcd initial cluster: no entry for this member, "n4"`, "Usage: osprey admin restore [flags]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tt.args, &stdout, &stderr)
			if !errors.Is(err, errUsage) {
				t.Errorf("got error %v, want errUsage (exit status 2)", err)
			}
			if got := stderr.String(); !strings.Contains(got, tt.wantMsg) || !strings.Contains(got, tt.wantUsage) {
				t.Errorf("stderr:\n%s\nwant %q and then the usage (%q)", got, tt.wantMsg, tt.wantUsage)
			} else if strings.Index(got, tt.wantMsg) > strings.Index(got, tt.wantUsage) {
				t.Errorf("stderr:\n%s\nwant the message before the usage", got)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: got %q, want nothing", stdout.String())
			}
		})
	}
}

// TestHelpIsNoError: -h prints the usage and succeeds.
func TestHelpIsNoError(t *testing.T) {
	for _, args := range [][]string{{"ctl", "-h"}, {"central", "-h"}, {"sensor", "-h"}} {
		var stdout, stderr bytes.Buffer
		if err := run(t.Context(), args, &stdout, &stderr); err == nil || errors.Is(err, errUsage) || !strings.Contains(stderr.String(), "Usage: osprey "+args[0]) {
			t.Errorf("%v: got %v and stderr %q, want flag.ErrHelp and the usage", args, err, stderr.String())
		}
	}
}

func TestCredentialsDescribe(t *testing.T) {
	fromFlags := &flagSources{cmdline: map[string]bool{"username": true, "password": true, "token": true, "password-file": true}, env: map[string]bool{}}
	fromEnv := &flagSources{cmdline: map[string]bool{}, env: map[string]bool{"username": true, "password": true, "token": true, "password-file": true}}
	const secret = "hunter2-correct-horse"
	const token = "osp_0123456789abcdef_" + secret
	tests := []struct {
		name string
		c    credentials
		want string
	}{
		{"password flag", credentials{username: "admin", password: true, src: fromFlags},
			`the server refused user "admin" (from --username) with the password from --password`},
		{"password environment", credentials{username: "admin", password: true, src: fromEnv},
			`the server refused user "admin" (from OSPREY_USERNAME) with the password from OSPREY_PASSWORD`},
		{"password file", credentials{username: "admin", password: true, passwordFile: "/run/pw", src: fromFlags},
			`the server refused user "admin" (from --username) with the password in /run/pw (--password-file)`},
		{"password file from environment", credentials{username: "admin", password: true, passwordFile: "/run/pw", src: fromEnv},
			`with the password in /run/pw (OSPREY_PASSWORD_FILE)`},
		{"no password", credentials{username: "admin", src: fromFlags}, `with no password`},
		{"token", credentials{token: token, src: fromEnv}, "the server refused the token osp_0123456789abcdef_…, from OSPREY_TOKEN"},
		{"not a token", credentials{token: secret, src: fromFlags}, "a token that is not of the form osp_<id>_<secret>, from --token"},
		{"nothing", credentials{src: fromFlags}, "no credentials were given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.explain(&api.Error{StatusCode: 401, Message: "authentication required"})
			got := err.Error()
			if !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want it to contain %q", got, tt.want)
			}
			if strings.Contains(got, secret) {
				t.Errorf("got %q: the secret is in the message", got)
			}
			var apiErr *api.Error
			if !errors.As(err, &apiErr) {
				t.Errorf("the explained error does not wrap the *api.Error")
			}
		})
	}
	if err := (credentials{src: fromFlags}).explain(&api.Error{StatusCode: 403, Message: "forbidden"}); err.Error() != "forbidden (status 403)" {
		t.Errorf("a 403: got %q, want it unchanged", err)
	}
}

func TestAlertSender(t *testing.T) {
	tests := []struct {
		name string
		a    api.Alert
		want string
	}{
		{"envelope", api.Alert{Envelope: &api.Envelope{MailFrom: "a@example.org"}, Headers: &api.HeaderSummary{From: "B <b@example.org>"}}, "a@example.org"},
		{"pop3: no envelope sender", api.Alert{Source: api.SourcePOP3, Envelope: &api.Envelope{Mailbox: "j@mail"}, Headers: &api.HeaderSummary{From: "B <b@example.org>"}}, "B <b@example.org>"},
		{"no envelope", api.Alert{Headers: &api.HeaderSummary{From: "b@example.org"}}, "b@example.org"},
		{"nothing", api.Alert{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := alertSender(tt.a); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
