package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/ospreysec/osprey/api"
)

// ctlCmd is one command of `osprey ctl`: the words that name it, what
// follows them, and what it does.
type ctlCmd struct {
	words []string
	// args is what follows the words, for the usage; help says what the
	// command does, when its name does not. Either may hold more lines.
	args, help string
	run        func(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error
}

func (c ctlCmd) name() string { return strings.Join(c.words, " ") }

// ctlArgs are the words after a command's name.
type ctlArgs struct {
	cmd  string // the command's name, for its errors
	rest []string
}

// pos returns the i-th argument (from 0), named name in the error when it
// is missing.
func (a ctlArgs) pos(i int, name string) (string, error) {
	if i >= len(a.rest) || strings.HasPrefix(a.rest[i], "-") {
		return "", usageErrorf("%s: missing %s", a.cmd, name)
	}
	return a.rest[i], nil
}

// findCtlCommand returns the command that words name, and the words after
// its name.
func findCtlCommand(words []string) (ctlCmd, []string, error) {
	for _, c := range ctlCommands {
		if len(words) >= len(c.words) && slices.Equal(words[:len(c.words)], c.words) {
			return c, words[len(c.words):], nil
		}
	}
	for _, c := range ctlCommands {
		if len(words) < len(c.words) && slices.Equal(words, c.words[:len(words)]) {
			return ctlCmd{}, nil, usageErrorf("incomplete command %q", strings.Join(words, " "))
		}
	}
	return ctlCmd{}, nil, usageErrorf("unknown command %q", strings.Join(words[:min(len(words), 2)], " "))
}

// ctlCommandList is the Commands part of the usage.
func ctlCommandList() string {
	var b strings.Builder
	for _, c := range ctlCommands {
		line := "  " + c.name()
		if c.args != "" {
			line += " " + c.args
		}
		switch {
		case c.help == "":
		case len(line) < 38:
			line = fmt.Sprintf("%-38s%s", line, c.help)
		default:
			line += "   " + c.help
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// ctlCommands are the commands of `osprey ctl`, in the order of its usage.
var ctlCommands = slices.Concat(configCommands, acceptanceCommands, queueCommands, quarantineCommands, hierarchyCommands, remoteSensorCommands)

// configCommands are the commands on the configuration and the logs.
var configCommands = []ctlCmd{
	{words: []string{"tenants", "list"}, run: tenantsList},
	{words: []string{"tenants", "create"}, args: "ID [NAME]", run: tenantsCreate},
	{words: []string{"nodes", "list"}, help: "the central nodes, with the components that work and those that fail", run: nodesList},
	{words: []string{"sensors", "list"}, run: sensorsList},
	{words: []string{"sensor", "get"}, args: "ID", help: "the sensor and its status, as JSON", run: sensorJSON},
	{words: []string{"sensor", "status"}, args: "ID", help: "the same for a person: problems, errors and their times", run: sensorStatus},
	{words: []string{"sensor", "approve"}, args: "ID", run: sensorJSON},
	{words: []string{"sensor", "revoke"}, args: "ID", run: sensorJSON},
	{words: []string{"sensor", "smtp", "get"}, args: "ID", run: documentGet("ID", (*api.Client).SMTP)},
	{words: []string{"sensor", "smtp", "set"}, args: "ID --file smtp.json", run: documentSet("ID", (*api.Client).PutSMTP)},
	{words: []string{"sensor", "smtp", "apply-to-tenant"}, args: "ID", help: "copy it to the tenant's other sensors (each keeps its addresses and certificates)", run: smtpApplyToTenant},
	{words: []string{"sensor", "pop3", "get"}, args: "ID", run: documentGet("ID", (*api.Client).POP3)},
	{words: []string{"sensor", "pop3", "set"}, args: "ID --file pop3.json", run: documentSet("ID", (*api.Client).PutPOP3)},
	{words: []string{"users", "list"}, run: usersList},
	{words: []string{"users", "create"}, args: "NAME --role ROLE (--tenants T1,T2 | --all-tenants) --new-password-file FILE\n" +
		"             (or: users create --file user.json)\n" +
		"                                      roles: administrator, local-administrator, senior-security-officer,\n" +
		"                                      security-officer, security-auditor", run: usersCreate},
	{words: []string{"tokens", "create"}, args: "--file token.json", help: "(or: tokens create join TENANT [TTL_SECONDS])", run: tokensCreate},
	{words: []string{"alerts", "list"}, args: "[TENANT [MIN_SEVERITY [TEXT]]] [--server SCN]", help: "the newest 50 (low|medium|high|critical); on a PCN, --server: one SCN's", run: alertsList},
	{words: []string{"alert", "get"}, args: "TENANT ID", run: alertGet},
	{words: []string{"audit", "list"}, args: "[--since 24h] [--tenant T] [--sensor S] [--kind accepted|refused|delivery|quarantine]\n" +
		"             [--sender TEXT] [--recipient ADDR] [--subject TEXT] [--message-id ID]\n" +
		"             [--client IP] [--verdict V] [--reason R] [--limit N]\n" +
		"                                      the message audit log, newest first", run: auditList},
	{words: []string{"rules", "list"}, args: "TENANT|--global", run: rulesList},
	{words: []string{"rules", "create"}, args: "TENANT|--global --file rule.json", run: rulesCreate},
	{words: []string{"rules", "delete"}, args: "TENANT|--global ID", run: rulesDelete},
	{words: []string{"policy", "get"}, args: "TENANT", help: "what the tenant's gateways do with each verdict", run: documentGet("TENANT", (*api.Client).Policy)},
	{words: []string{"policy", "set"}, args: "TENANT --file policy.json", run: documentSet("TENANT", (*api.Client).PutPolicy)},
}

func tenantsList(ctx context.Context, c *api.Client, _ ctlArgs, out io.Writer) error {
	ts, err := c.Tenants(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tCREATED")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.ID, t.Name, t.CreatedAt.Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

func tenantsCreate(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	id, err := a.pos(0, "ID")
	if err != nil {
		return err
	}
	name := id
	if len(a.rest) > 1 {
		name = a.rest[1]
	}
	t, err := c.CreateTenant(ctx, api.Tenant{ID: id, Name: name})
	if err != nil {
		return err
	}
	return printJSON(out, t)
}

func sensorsList(ctx context.Context, c *api.Client, _ ctlArgs, out io.Writer) error {
	ss, err := c.Sensors(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTYPE\tTENANT\tSTATE\tONLINE\tSMTP\tPOP3\tSPOOL\tCONFIG\tAPPLIED\tFINGERPRINT\tPROBLEMS\tLAST ERROR")
	for _, s := range ss {
		lastErr := "-"
		if f := s.Faults(); len(f) > 0 {
			lastErr = f[0].Part + ": " + f[0].Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", s.ID, s.Name, shortType(s.Type), s.Tenant, s.State, s.Online,
			integrationState(s.SMTPStatus), integrationState(s.POP3Status), spoolState(s.SpoolStatus),
			s.ConfigVersion, s.AppliedVersion, shortFingerprint(s.CertFingerprint), problemCounts(s.Problems), oneLine(lastErr))
	}
	return tw.Flush()
}

func sensorStatus(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	id, err := a.pos(0, "ID")
	if err != nil {
		return err
	}
	s, err := c.Sensor(ctx, id)
	if err != nil {
		return err
	}
	return printSensorStatus(out, s)
}

// sensorJSON serves "sensor get", "sensor approve" and "sensor revoke",
// which print the sensor as JSON.
func sensorJSON(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	id, err := a.pos(0, "ID")
	if err != nil {
		return err
	}
	var s *api.Sensor
	switch a.cmd {
	case "sensor approve":
		s, err = c.ApproveSensor(ctx, id)
	case "sensor revoke":
		s, err = c.RevokeSensor(ctx, id)
	default:
		s, err = c.Sensor(ctx, id)
	}
	if err != nil {
		return err
	}
	return printJSON(out, s)
}

// smtpApplyToTenant applies a sensor's SMTP integration to the other sensors
// of its tenant and prints what happened to each; it fails when any sensor
// refused it.
func smtpApplyToTenant(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	id, err := a.pos(0, "ID")
	if err != nil {
		return err
	}
	res, err := c.ApplySMTPToTenant(ctx, id)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SENSOR\tRESULT\tVERSION\tERROR")
	refused := 0
	for _, s := range res.Sensors {
		version, msg := "", s.Error
		if s.Version != 0 {
			version = fmt.Sprint(s.Version)
		}
		if s.Result == api.ApplyError {
			refused++
			msg = (&api.Error{Message: s.Error, Fields: s.Fields}).Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Sensor, s.Result, version, msg)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if refused > 0 {
		return fmt.Errorf("%d of the %d other sensors of tenant %s kept their settings: see ERROR", refused, len(res.Sensors), res.Tenant)
	}
	return nil
}

// documentGet and documentSet make the get and set commands of a
// versioned document (a sensor's integration, a tenant's policy) from its
// client methods; arg names the id that comes first.
func documentGet[T any](arg string, get func(*api.Client, context.Context, string) (*T, int64, error)) func(context.Context, *api.Client, ctlArgs, io.Writer) error {
	return func(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
		id, err := a.pos(0, arg)
		if err != nil {
			return err
		}
		cfg, version, err := get(c, ctx, id)
		if err != nil {
			return err
		}
		return printVersioned(out, cfg, version)
	}
}

func documentSet[T any](arg string, put func(*api.Client, context.Context, string, *T, int64) (*T, int64, error)) func(context.Context, *api.Client, ctlArgs, io.Writer) error {
	return func(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
		id, err := a.pos(0, arg)
		if err != nil {
			return err
		}
		var cfg T
		version, err := readVersioned(a.cmd, a.rest[1:], &cfg)
		if err != nil {
			return err
		}
		got, newVersion, err := put(c, ctx, id, &cfg, version)
		if err != nil {
			return err
		}
		return printVersioned(out, got, newVersion)
	}
}

func usersList(ctx context.Context, c *api.Client, _ ctlArgs, out io.Writer) error {
	us, err := c.Users(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tTENANTS")
	for _, u := range us {
		tenants := strings.Join(u.Tenants, ",")
		if u.AllTenants {
			tenants = "(all)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Role, tenants)
	}
	return tw.Flush()
}

func usersCreate(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	var u api.User
	var err error
	if len(a.rest) > 0 && strings.HasPrefix(a.rest[0], "-") {
		err = readFileFlag(a.cmd, a.rest, &u)
	} else {
		u, err = userFlags(a.cmd, a.rest)
	}
	if err != nil {
		return err
	}
	got, err := c.CreateUser(ctx, u)
	if err != nil {
		return err
	}
	return printJSON(out, got)
}

func tokensCreate(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	var req api.TokenRequest
	if len(a.rest) >= 2 && a.rest[0] == "join" {
		req = api.TokenRequest{Kind: api.TokenJoin, Tenant: a.rest[1], TTLSeconds: 3600}
		if len(a.rest) > 2 {
			if _, err := fmt.Sscan(a.rest[2], &req.TTLSeconds); err != nil {
				return usageErrorf("%s: TTL_SECONDS %q is not a number of seconds", a.cmd, a.rest[2])
			}
		}
	} else if err := readFileFlag(a.cmd, a.rest, &req); err != nil {
		return err
	}
	t, err := c.CreateToken(ctx, req)
	if err != nil {
		return err
	}
	return printJSON(out, t)
}

func alertsList(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	q := api.AlertQuery{}
	var pos []string
	for i := 0; i < len(a.rest); i++ {
		switch arg := a.rest[i]; {
		case arg == "--server" && i+1 < len(a.rest):
			q.Server = a.rest[i+1]
			i++
		case strings.HasPrefix(arg, "--server="):
			q.Server = strings.TrimPrefix(arg, "--server=")
		case strings.HasPrefix(arg, "--"):
			return usageErrorf("%s: unknown flag %s", a.cmd, arg)
		default:
			pos = append(pos, arg)
		}
	}
	for i, f := range []*string{&q.Tenant, (*string)(&q.Severity), &q.Q} {
		if i < len(pos) {
			*f = pos[i]
		}
	}
	list, err := c.Alerts(ctx, q)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tTENANT\tSCN\tID\tSEVERITY\tSENSOR\tFROM\tSUBJECT\tMATCHES")
	for _, al := range list.Alerts {
		var subject string
		if al.Headers != nil {
			subject = al.Headers.Subject
		}
		var rules []string
		for _, m := range al.Matches {
			rules = append(rules, m.Engine+":"+m.RuleID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%q\t%s\n", al.CreatedAt.Format("2006-01-02 15:04:05"), al.Tenant, dash(al.ServerID), al.ID,
			al.Severity, al.SensorID, alertSender(al), subject, strings.Join(rules, ","))
	}
	return tw.Flush()
}

func alertGet(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	tenant, err := a.pos(0, "TENANT")
	if err != nil {
		return err
	}
	id, err := a.pos(1, "ID")
	if err != nil {
		return err
	}
	al, err := c.Alert(ctx, tenant, id)
	if err != nil {
		return err
	}
	return printJSON(out, al)
}

func auditList(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	q, err := auditFlags(a.cmd, a.rest)
	if err != nil {
		return err
	}
	list, err := c.Audit(ctx, q)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tKIND\tTENANT\tSENSOR\tCLIENT/HOST\tFROM\tTO\tSUBJECT/NEXT-HOP\tVERDICT/REASON/REPLY\tCOUNT")
	for _, e := range list.Events {
		fmt.Fprintln(tw, auditRow(e))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if list.NextPageToken != "" {
		fmt.Fprintf(out, "(more: --page-token %s)\n", list.NextPageToken)
	}
	return nil
}

// ruleScope is the first argument of a rules command: a tenant, or
// --global for the global rules (which apply to every tenant); global
// reports the latter.
func ruleScope(a ctlArgs) (tenant string, global bool, err error) {
	if len(a.rest) > 0 && (a.rest[0] == "--global" || a.rest[0] == "-global") {
		return "", true, nil
	}
	tenant, err = a.pos(0, "TENANT (or --global)")
	return tenant, false, err
}

func rulesList(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	tenant, global, err := ruleScope(a)
	if err != nil {
		return err
	}
	var rules []api.Rule
	if global {
		rules, err = c.GlobalRules(ctx)
	} else {
		rules, err = c.Rules(ctx, tenant)
	}
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tVALUE\tSEVERITY\tACTION\tDISABLED\tFROM\tDESCRIPTION")
	for _, r := range rules {
		action := string(r.Action)
		if action == "" {
			action = "(policy)"
		}
		from := "local"
		if r.Origin != "" {
			from = r.Origin
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\t%s\t%s\n", r.ID, r.Kind, r.Value, r.Severity, action, r.Disabled, from, r.Description)
	}
	return tw.Flush()
}

func rulesCreate(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	tenant, global, err := ruleScope(a)
	if err != nil {
		return err
	}
	var r api.Rule
	if err := readFileFlag(a.cmd, a.rest[1:], &r); err != nil {
		return err
	}
	var created *api.Rule
	if global {
		created, err = c.CreateGlobalRule(ctx, r)
	} else {
		created, err = c.CreateRule(ctx, tenant, r)
	}
	if err != nil {
		return err
	}
	return printJSON(out, created)
}

func rulesDelete(ctx context.Context, c *api.Client, a ctlArgs, _ io.Writer) error {
	tenant, global, err := ruleScope(a)
	if err != nil {
		return err
	}
	id, err := a.pos(1, "ID")
	if err != nil {
		return err
	}
	if global {
		return c.DeleteGlobalRule(ctx, id, 0)
	}
	return c.DeleteRule(ctx, tenant, id, 0)
}
