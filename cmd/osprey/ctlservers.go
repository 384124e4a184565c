package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ospreysec/osprey/api"
)

// hierarchyCommands are the distributed mode's: a PCN's SCNs, and this
// node's own place (the join of an SCN).
var hierarchyCommands = []ctlCmd{
	{words: []string{"servers", "list"}, help: "on a PCN: its SCNs, pending requests first", run: serversList},
	{words: []string{"servers", "accept"}, args: "ID --tenant T", help: "let a pending SCN link, serving tenant T", run: serversAccept},
	{words: []string{"servers", "reject"}, args: "ID", help: "forget a pending request", run: serversReject},
	{words: []string{"servers", "disconnect"}, args: "ID", help: "refuse an SCN's link from now on", run: serversDisconnect},
	{words: []string{"pcn", "status"}, help: "this node's place: standalone, pcn (with its fingerprint) or scn (its PCN, link and token)", run: pcnStatus},
	{words: []string{"pcn", "fingerprint"}, args: "ADDRESS", help: "the fingerprint of the PCN at ADDRESS (its gRPC host:port), to compare", run: pcnFingerprint},
	{words: []string{"pcn", "join"}, args: "ADDRESS --fingerprint F --name N --pcn-username U --pcn-password-file FILE\n" +
		"                                      ask to join the PCN, pinned to the fingerprint you compared", run: pcnJoin},
	{words: []string{"pcn", "login"}, args: "--pcn-username U --pcn-password-file FILE", help: "renew an expired token with the PCN account", run: pcnLogin},
}

func serversList(ctx context.Context, c *api.Client, _ ctlArgs, out io.Writer) error {
	list, err := c.Servers(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tTENANT\tONLINE\tLAST DATA\tVERSION\tSENSORS\tALERTS\tON PCN\tTOKEN EXPIRES\tADDRESS\tFINGERPRINT\tUSERS+RULES")
	for _, s := range list.Servers {
		online := "-"
		if s.State == api.ServerAccepted {
			online = map[bool]string{true: "yes", false: "no"}[s.Online]
		}
		last := when(s.LastDataAt)
		if s.NoData && s.State == api.ServerAccepted {
			last += " (no data for over 5 minutes)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.State, dash(s.Tenant), online, last, dash(s.Version),
			s.Sensors, s.Alerts, s.PCNAlerts, when(s.TokenExpiresAt), dash(s.Address), shortFingerprint(s.Fingerprint), downState(s.Down))
	}
	return tw.Flush()
}

// downState says where an SCN stands with the users and global rules the
// PCN sends it: the version it applied, behind the one sent, and its last
// NACK when that is not older than what it applied since.
func downState(d *api.ServerDown) string {
	if d == nil {
		return "-"
	}
	out := fmt.Sprintf("applied %d", d.AppliedVersion)
	if d.SentVersion > d.AppliedVersion {
		out += fmt.Sprintf(" (sent %d)", d.SentVersion)
	}
	if d.NackReason != "" && d.NackVersion >= d.AppliedVersion {
		out += fmt.Sprintf("; NACK %d: %s", d.NackVersion, d.NackReason)
	}
	return out
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func serversAccept(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	id, err := a.pos(0, "ID")
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet(a.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	tenant := fs.String("tenant", "", "")
	if err := fs.Parse(a.rest[1:]); err != nil {
		return usageErrorf("%s: %v", a.cmd, err)
	}
	if *tenant == "" {
		return usageErrorf("%s: --tenant is required (the tenant the SCN serves)", a.cmd)
	}
	s, err := c.AcceptServer(ctx, id, *tenant)
	if err != nil {
		return err
	}
	return printJSON(out, s)
}

func serversReject(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	id, err := a.pos(0, "ID")
	if err != nil {
		return err
	}
	if err := c.RejectServer(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(out, "rejected %s\n", id)
	return nil
}

func serversDisconnect(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	id, err := a.pos(0, "ID")
	if err != nil {
		return err
	}
	s, err := c.DisconnectServer(ctx, id)
	if err != nil {
		return err
	}
	return printJSON(out, s)
}

func pcnStatus(ctx context.Context, c *api.Client, _ ctlArgs, out io.Writer) error {
	h, err := c.Hierarchy(ctx)
	if err != nil {
		return err
	}
	return printJSON(out, h)
}

func pcnFingerprint(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	addr, err := a.pos(0, "ADDRESS")
	if err != nil {
		return err
	}
	fp, err := c.PCNFingerprint(ctx, addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s\nCompare it with the PCN's own (osprey ctl pcn status on the PCN: own_fingerprint) before pcn join.\n", fp.Fingerprint)
	return nil
}

// pcnAccount reads --pcn-username and the password of --pcn-password-file
// (its first line; "-" reads standard input) among a command's flags.
func pcnAccount(fs *flag.FlagSet) (user *string, password func() (string, error)) {
	user = fs.String("pcn-username", "", "")
	file := fs.String("pcn-password-file", "", "")
	return user, func() (string, error) {
		if *file == "" {
			return "", fmt.Errorf("--pcn-password-file is required")
		}
		var b []byte
		var err error
		if *file == "-" {
			b, err = io.ReadAll(io.LimitReader(os.Stdin, 4096))
		} else {
			b, err = os.ReadFile(*file)
		}
		if err != nil {
			return "", fmt.Errorf("read the PCN password: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimSuffix(line, "\r"), nil
	}
}

func pcnJoin(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	addr, err := a.pos(0, "ADDRESS")
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet(a.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fingerprint := fs.String("fingerprint", "", "")
	name := fs.String("name", "", "")
	user, password := pcnAccount(fs)
	if err := fs.Parse(a.rest[1:]); err != nil {
		return usageErrorf("%s: %v", a.cmd, err)
	}
	if *fingerprint == "" || *name == "" || *user == "" {
		return usageErrorf("%s: --fingerprint, --name and --pcn-username are required", a.cmd)
	}
	pw, err := password()
	if err != nil {
		return usageErrorf("%s: %v", a.cmd, err)
	}
	h, err := c.JoinPCN(ctx, api.JoinPCN{Address: addr, Fingerprint: *fingerprint, Name: *name, Username: *user, Password: pw})
	if err != nil {
		return err
	}
	return printJSON(out, h)
}

func pcnLogin(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	fs := flag.NewFlagSet(a.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	user, password := pcnAccount(fs)
	if err := fs.Parse(a.rest); err != nil {
		return usageErrorf("%s: %v", a.cmd, err)
	}
	if *user == "" {
		return usageErrorf("%s: --pcn-username is required", a.cmd)
	}
	pw, err := password()
	if err != nil {
		return usageErrorf("%s: %v", a.cmd, err)
	}
	h, err := c.LoginPCN(ctx, api.PCNLogin{Username: *user, Password: pw})
	if err != nil {
		return err
	}
	return printJSON(out, h)
}
