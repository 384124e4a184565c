package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ospreysec/osprey/api"
)

// ctlUsage is the usage of `osprey ctl`; the list of its commands comes
// from ctlCommands.
var ctlUsage = "Usage: osprey ctl [flags] <command>\n\nCommands:\n" + ctlCommandList() + "\n" + ctlUsageNotes

const ctlUsageNotes = `"set" reads the JSON of the integration (as "get" prints it) and writes it back
with If-Match on the version it was read at when the file came from "get",
so a concurrent change is refused rather than overwritten. A "--file -" reads
standard input. "sensors list" shows the start of each sensor's certificate
fingerprint (SHA-256), "sensor get" all of it (cert_fingerprint): compare it
with the one the sensor printed at enrollment before "sensor approve".
"sensors list" shows each sensor's TYPE (central: the Sensor component of a
Central Node; remote), the state of its SMTP and POP3 integrations
(listening, polling, failing, waiting_lock, disabled) and of its SPOOL (ok,
low_disk, failing), the count of its PROBLEMS by level, and what fails now
(LAST ERROR: a refused configuration, then smtp, pop3 or spool).

The API's certificate is verified against the system's CAs, or --tls-ca; a
node's self-signed certificate can be pinned instead with --tls-fingerprint,
the SHA-256 the node prints at start ("API certificate").

Flags (each also read from OSPREY_<FLAG>):
`

// runCtl runs `osprey ctl`.
func runCtl(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, ctlUsage); fs.PrintDefaults() }
	defer func() { err = withUsage(err, stderr, "ctl", fs.Usage) }()
	var cfg api.Config
	var passwordFile, tlsCA, fingerprints string
	var insecure bool
	fs.StringVar(&cfg.Address, "address", "http://127.0.0.1:8080", `base URL of a Central Node's API (http:// for osprey dev, https:// otherwise), or "dns:///central.<zone>:8443" for any node of a cluster`)
	fs.StringVar(&cfg.Username, "username", "", "user name (HTTP Basic)")
	fs.StringVar(&cfg.Password, "password", "", "password (HTTP Basic)")
	fs.StringVar(&passwordFile, "password-file", "", "file holding the password (its first line), instead of --password")
	fs.StringVar(&cfg.Token, "token", "", "API token (Authorization: Bearer)")
	fs.StringVar(&tlsCA, "tls-ca", "", "PEM file of the CA certificates to verify the API's certificate with, instead of the system's (a node's self-signed <data-dir>/http-tls/cert.pem will do)")
	fs.StringVar(&fingerprints, "tls-fingerprint", "", "SHA-256 fingerprint of the API's certificate, as the node prints it at start (comma-separated for several nodes): accept that certificate whatever signed it")
	fs.BoolVar(&insecure, "tls-skip-verify", false, "do not verify the API's certificate at all (for a test; prefer --tls-fingerprint)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	// Flags stop at the first command word; fill unset ones from the environment.
	src := newFlagSources(fs)
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		return usageErrorf("%v", err)
	}
	src.fromEnv(fs)
	words := fs.Args()
	if len(words) == 0 {
		return usageErrorf("no command")
	}
	cmd, rest, err := findCtlCommand(words)
	if err != nil {
		return err
	}
	if !strings.Contains(cfg.Address, "://") {
		return usageErrorf("%s %q has no scheme: write http://%s for a node that serves plain HTTP (osprey dev), or https://%s",
			src.name("address"), cfg.Address, cfg.Address, cfg.Address)
	}
	if passwordFile != "" {
		if cfg.Password != "" {
			return usageErrorf("give %s or %s, not both", src.name("password"), src.name("password-file"))
		}
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return fmt.Errorf("read the password: %w", err)
		}
		cfg.Password, _, _ = strings.Cut(string(b), "\n")
		cfg.Password = strings.TrimSuffix(cfg.Password, "\r")
	}
	if err := ctlTLS(&cfg, src, tlsCA, fingerprints, insecure); err != nil {
		return err
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	creds := credentials{username: cfg.Username, token: cfg.Token, src: src, passwordFile: passwordFile, password: cfg.Password != ""}
	return explainTLS(creds.explain(cmd.run(ctx, c, ctlArgs{cmd: cmd.name(), rest: rest}, stdout)))
}

// shortFingerprint is the start of a certificate fingerprint, enough to
// compare by eye with the one a sensor printed at enrollment; "sensor get"
// shows the whole of it.
func shortFingerprint(fp string) string {
	if fp == "" {
		return "-"
	}
	const short = 16
	if len(fp) <= short {
		return fp
	}
	return fp[:short] + "…"
}

// auditFlags parses the filters of "audit list".
func auditFlags(cmd string, args []string) (api.AuditQuery, error) {
	var q api.AuditQuery
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	since := fs.Duration("since", 0, "")
	for name, p := range map[string]*string{"tenant": &q.Tenant, "sensor": &q.Sensor, "kind": &q.Kind, "sender": &q.Sender,
		"recipient": &q.Recipient, "subject": &q.Subject, "message-id": &q.MessageID, "client": &q.ClientIP,
		"verdict": &q.Verdict, "reason": &q.Reason, "page-token": &q.PageToken} {
		fs.StringVar(p, name, "", "")
	}
	fs.IntVar(&q.Limit, "limit", 0, "")
	if err := fs.Parse(args); err != nil {
		return q, usageErrorf("%s: %v", cmd, err)
	}
	if fs.NArg() > 0 {
		return q, usageErrorf("%s: unexpected argument %q (filters are flags: --sender TEXT)", cmd, fs.Arg(0))
	}
	if *since < 0 {
		return q, usageErrorf("%s: --since must be positive", cmd)
	}
	if *since > 0 {
		q.From = time.Now().Add(-*since)
	}
	return q, nil
}

// roleShortNames are shorter names `users create --role` accepts beside the
// API's.
var roleShortNames = map[string]api.Role{
	"admin": api.RoleAdministrator, "local-admin": api.RoleLocalAdministrator,
	"senior-officer": api.RoleSeniorSecurityOfficer, "officer": api.RoleSecurityOfficer, "auditor": api.RoleSecurityAuditor,
}

// userFlags reads "users create NAME --role R (--tenants A,B | --all-tenants)
// --new-password-file F". The server checks the rest (field errors).
func userFlags(cmd string, args []string) (api.User, error) {
	var u api.User
	if len(args) == 0 {
		return u, usageErrorf("%s: missing NAME", cmd)
	}
	u.Name = args[0]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	role := fs.String("role", "", "")
	tenants := fs.String("tenants", "", "")
	fs.BoolVar(&u.AllTenants, "all-tenants", false, "")
	passwordFile := fs.String("new-password-file", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return u, usageErrorf("%s: %v", cmd, err)
	}
	if fs.NArg() > 0 {
		return u, usageErrorf("%s: unexpected argument %q", cmd, fs.Arg(0))
	}
	u.Role = api.Role(*role)
	if r, ok := roleShortNames[*role]; ok {
		u.Role = r
	}
	if *tenants != "" {
		u.Tenants = strings.Split(*tenants, ",")
	}
	if *passwordFile == "" {
		return u, usageErrorf("%s: missing --new-password-file (the new user's password, its first line)", cmd)
	}
	b, err := os.ReadFile(*passwordFile)
	if err != nil {
		return u, fmt.Errorf("read the new user's password: %w", err)
	}
	u.Password, _, _ = strings.Cut(string(b), "\n")
	u.Password = strings.TrimSuffix(u.Password, "\r")
	return u, nil
}

// auditRow is one line of "audit list".
func auditRow(e api.AuditEvent) string {
	cols := []string{e.Time.Local().Format("2006-01-02 15:04:05"), e.Kind, e.Tenant, e.SensorID}
	switch {
	case e.Message != nil:
		m := e.Message
		var client, from, subject string
		var to []string
		if m.Envelope != nil {
			client, from, to = m.Envelope.ClientAddr, m.Envelope.MailFrom, m.Envelope.RcptTo
		}
		if h := m.Headers; h != nil {
			subject = h.Subject
			if from == "" {
				from = h.From
			}
		}
		if len(to) > 2 {
			to = append(to[:2:2], fmt.Sprintf("+%d", len(to)-2))
		}
		cols = append(cols, client, from, strings.Join(to, ","), strconv.Quote(subject), m.Verdict, "1")
	case e.Refusal != nil:
		r := e.Refusal
		cols = append(cols, r.ClientIP, r.MailFrom, r.Rcpt, "", r.Reason, strconv.FormatInt(r.Count, 10))
	case e.Delivery != nil:
		return deliveryRows(cols, e.Delivery)
	case e.Quarantine != nil:
		q := e.Quarantine
		cols = append(cols, q.Actor, "", "", q.MessageID, strings.TrimSpace(q.Action+" "+q.Detail), "1")
	}
	return strings.Join(cols, "\t")
}

// deliveryRows are the lines of a delivery attempt in "audit list", one a
// recipient: the host it reached, its sender, the recipient, the next hop
// (and the TLS of the session), and the state and reply the recipient
// got; the attempt's own columns only on its first line.
func deliveryRows(cols []string, d *api.AuditDeliveryAttempt) string {
	host, route := cmp.Or(d.Host, "-"), cmp.Or(d.NextHop, "-")
	if d.TLS != "" {
		route += " (" + d.TLS + ")"
	}
	sender := cmp.Or(d.Sender, "<>")
	lines := make([]string, 0, len(d.Recipients))
	for i, r := range d.Recipients {
		outcome := strings.Join(slices.DeleteFunc([]string{string(r.State), strconv.Itoa(r.Code), r.Enhanced, r.Text},
			func(s string) bool { return s == "" || s == "0" }), " ")
		if i == 0 {
			lines = append(lines, strings.Join(append(cols, host, sender, r.Address, route, outcome, "1"), "\t"))
			continue
		}
		lines = append(lines, strings.Join([]string{"", "", "", "", "", "", r.Address, "", outcome, ""}, "\t"))
	}
	if len(lines) == 0 {
		return strings.Join(append(cols, host, sender, "", route, "", "1"), "\t")
	}
	return strings.Join(lines, "\n")
}

// alertSender is who sent an alert's message, as the web UI shows it: the
// envelope sender, or the header From when the envelope has none (a POP3
// message, or the null sender of a bounce).
func alertSender(a api.Alert) string {
	if a.Envelope != nil && a.Envelope.MailFrom != "" {
		return a.Envelope.MailFrom
	}
	if a.Headers != nil {
		return a.Headers.From
	}
	return ""
}

// versioned is how "get" prints an integration: the value and its version,
// so "set" can send If-Match.
type versioned[T any] struct {
	Version int64 `json:"version"`
	Value   T     `json:"value"`
}

func printVersioned[T any](out io.Writer, v T, version int64) error {
	return printJSON(out, versioned[T]{Version: version, Value: v})
}

// readVersioned reads --file: either {"version": N, "value": {...}} as "get"
// printed it (then the write is conditional on N), or the bare integration.
func readVersioned[T any](cmd string, args []string, v *T) (int64, error) {
	data, err := fileFlag(cmd, args)
	if err != nil {
		return 0, err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return 0, fmt.Errorf("read --file: %w", err)
	}
	if raw, ok := probe["value"]; ok && len(probe) <= 2 {
		var version int64
		if rv, ok := probe["version"]; ok {
			if err := json.Unmarshal(rv, &version); err != nil {
				return 0, fmt.Errorf("read --file: version: %w", err)
			}
		}
		return version, strictUnmarshal(raw, v)
	}
	return 0, strictUnmarshal(data, v)
}

func readFileFlag(cmd string, args []string, v any) error {
	data, err := fileFlag(cmd, args)
	if err != nil {
		return err
	}
	return strictUnmarshal(data, v)
}

func fileFlag(cmd string, args []string) ([]byte, error) {
	fs := flag.NewFlagSet("file", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("file", "", "")
	if err := fs.Parse(args); err != nil || *file == "" {
		return nil, usageErrorf("%s: --file FILE is required", cmd)
	}
	if *file == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(*file)
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("read --file: %w", err)
	}
	return nil
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
