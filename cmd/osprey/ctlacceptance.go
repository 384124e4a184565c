package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ospreysec/osprey/api"
)

// The acceptance commands of `osprey ctl`: a gateway sensor's acceptance
// lists (inbound, outbound, auth).

var acceptanceCommands = []ctlCmd{
	{words: []string{"acceptance", "list"}, args: "SENSOR KIND [--offset N] [--limit N]",
		help: "entries of an acceptance list (KIND: inbound, outbound or auth), one a line", run: acceptanceList},
	{words: []string{"acceptance", "add"}, args: "SENSOR KIND ENTRY...", help: "add addresses, CIDR prefixes (!excludes) or domains", run: acceptanceEdit(true)},
	{words: []string{"acceptance", "remove"}, args: "SENSOR KIND ENTRY...", run: acceptanceEdit(false)},
	{words: []string{"acceptance", "clear"}, args: "SENSOR KIND", help: "delete every entry", run: acceptanceClear},
	{words: []string{"acceptance", "import"}, args: "SENSOR KIND --file FILE [--append]",
		help: "replace the list with a file's entries (delimited by , ; space tab or line ends), or add them", run: acceptanceImport},
	{words: []string{"acceptance", "export"}, args: "SENSOR KIND", help: "the whole list, one entry a line", run: acceptanceExport},
}

// acceptanceArgs returns the sensor and list of an acceptance command.
func acceptanceArgs(a ctlArgs) (string, api.AcceptanceListKind, error) {
	sensor, err := a.pos(0, "SENSOR")
	if err != nil {
		return "", "", err
	}
	kind, err := a.pos(1, "KIND")
	if err != nil {
		return "", "", err
	}
	switch k := api.AcceptanceListKind(kind); k {
	case api.AcceptanceInbound, api.AcceptanceOutbound, api.AcceptanceAuth:
		return sensor, k, nil
	}
	return "", "", usageErrorf("%s: KIND %q: want inbound, outbound or auth", a.cmd, kind)
}

func acceptanceList(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	sensor, kind, err := acceptanceArgs(a)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet(a.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	offset := fs.Int("offset", 0, "")
	limit := fs.Int("limit", api.DefaultAcceptancePage, "")
	if err := fs.Parse(a.rest[2:]); err != nil {
		return usageErrorf("%s: %v", a.cmd, err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("%s: unexpected argument %q", a.cmd, fs.Arg(0))
	}
	p, err := c.Acceptance(ctx, sensor, kind, *offset, *limit)
	if err != nil {
		return err
	}
	for _, e := range p.Entries {
		fmt.Fprintln(out, e)
	}
	switch {
	case p.Total == 0:
		fmt.Fprintf(out, "# the %s acceptance list of %s is empty (version %d)\n", kind, sensor, p.Version)
	case len(p.Entries) == 0:
		fmt.Fprintf(out, "# no entries from %d: the list holds %d (version %d)\n", p.Offset+1, p.Total, p.Version)
	default:
		fmt.Fprintf(out, "# entries %d to %d of %d (version %d)\n", p.Offset+1, p.Offset+len(p.Entries), p.Total, p.Version)
	}
	return nil
}

func acceptanceEdit(add bool) func(context.Context, *api.Client, ctlArgs, io.Writer) error {
	return func(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
		sensor, kind, err := acceptanceArgs(a)
		if err != nil {
			return err
		}
		entries := a.rest[2:]
		if len(entries) == 0 {
			return usageErrorf("%s: missing ENTRY", a.cmd)
		}
		edit := api.AcceptanceEdit{Remove: entries}
		if add {
			edit = api.AcceptanceEdit{Add: entries}
		}
		res, err := c.EditAcceptance(ctx, sensor, kind, edit)
		return printAcceptanceResult(out, sensor, kind, res, err)
	}
}

func acceptanceClear(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	sensor, kind, err := acceptanceArgs(a)
	if err != nil {
		return err
	}
	if len(a.rest) > 2 {
		return usageErrorf("%s: unexpected argument %q", a.cmd, a.rest[2])
	}
	res, err := c.ClearAcceptance(ctx, sensor, kind, 0)
	return printAcceptanceResult(out, sensor, kind, res, err)
}

func acceptanceImport(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	sensor, kind, err := acceptanceArgs(a)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet(a.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("file", "", "")
	add := fs.Bool("append", false, "")
	if err := fs.Parse(a.rest[2:]); err != nil || *file == "" {
		return usageErrorf("%s: --file FILE is required (- for standard input)", a.cmd)
	}
	var r io.Reader = os.Stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	res, err := c.ImportAcceptance(ctx, sensor, kind, r, *add, 0)
	return printAcceptanceResult(out, sensor, kind, res, err)
}

func acceptanceExport(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	sensor, kind, err := acceptanceArgs(a)
	if err != nil {
		return err
	}
	return c.ExportAcceptance(ctx, sensor, kind, out)
}

// printAcceptanceResult says what a write did; a refusal lists its bad
// entries one a line.
func printAcceptanceResult(out io.Writer, sensor string, kind api.AcceptanceListKind, res *api.AcceptanceResult, err error) error {
	var apiErr *api.Error
	if errors.As(err, &apiErr) && len(apiErr.Fields) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%s (status %d); nothing was stored:", apiErr.Message, apiErr.StatusCode)
		for _, f := range apiErr.Fields {
			fmt.Fprintf(&b, "\n  %s: %s", f.Field, f.Message)
		}
		return errors.New(b.String())
	}
	if err != nil {
		return err
	}
	what := "changed"
	if !res.Changed {
		what = "unchanged"
	}
	_, err = fmt.Fprintf(out, "the %s acceptance list of %s: %s, %d entries (version %d)\n", kind, sensor, what, res.Total, res.Version)
	return err
}
