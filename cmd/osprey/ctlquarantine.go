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

// The quarantine commands of `osprey ctl`: the messages gateway sensors
// hold, listed by the central; a message itself comes from its sensor.

var quarantineCommands = []ctlCmd{
	{words: []string{"quarantine", "list"}, args: "[--tenant T] [--sensor S] [--state quarantined|released|deleted|evicted|not_held]\n" +
		"             [--sender TEXT] [--recipient TEXT] [--subject TEXT] [--since 24h] [--limit N]\n" +
		"                                      quarantined messages across sensors, newest first", run: quarantineList},
	{words: []string{"quarantine", "show"}, args: "SENSOR ID", help: "one message: its history and a preview, as JSON", run: quarantineShow},
	{words: []string{"quarantine", "release"}, args: "SENSOR ID [--to ADDR,...]", help: "deliver it; --to: a copy to those addresses", run: quarantineRelease},
	{words: []string{"quarantine", "delete"}, args: "SENSOR ID", run: quarantineDelete},
	{words: []string{"quarantine", "download"}, args: "SENSOR ID [--out FILE.eml]", help: "the message as it arrived (to stdout without --out)", run: quarantineDownload},
}

func quarantineList(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	var q api.QuarantineQuery
	fs := flag.NewFlagSet(a.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	state := fs.String("state", "", "")
	since := fs.Duration("since", 0, "")
	for name, p := range map[string]*string{"tenant": &q.Tenant, "sensor": &q.Sensor, "sender": &q.Sender, "recipient": &q.Recipient,
		"subject": &q.Subject, "page-token": &q.PageToken} {
		fs.StringVar(p, name, "", "")
	}
	fs.IntVar(&q.Limit, "limit", 0, "")
	if err := fs.Parse(a.rest); err != nil {
		return usageErrorf("%s: %v", a.cmd, err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("%s: unexpected argument %q (filters are flags: --sender TEXT)", a.cmd, fs.Arg(0))
	}
	q.State = api.QuarantineState(*state)
	if *since > 0 {
		q.Since = time.Now().Add(-*since)
	}
	list, err := c.Quarantine(ctx, q)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUARANTINED\tSENSOR\tID\tSTATE\tFROM\tTO\tSUBJECT\tREASON")
	for _, m := range list.Messages {
		st := string(m.State)
		switch {
		case m.Pending != "":
			st += " (" + m.Pending + " pending)"
		case !m.Available && m.State == api.QuarantineHeld:
			st += " (sensor offline)"
		}
		from := m.Sender
		if from == "" {
			from = "<>"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.QuarantinedAt.Local().Format("2006-01-02 15:04:05"), m.SensorID, m.MessageID,
			st, from, strings.Join(m.Recipients, ","), oneLine(m.Subject), oneLine(m.Reason))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if list.NextPageToken != "" {
		fmt.Fprintf(out, "(more: --page-token %s)\n", list.NextPageToken)
	}
	return nil
}

func quarantineShow(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	sensor, id, err := queuedArgs(a)
	if err != nil {
		return err
	}
	m, err := c.QuarantinedMessage(ctx, sensor, id, true)
	if err != nil {
		return err
	}
	return printJSON(out, m)
}

func quarantineRelease(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	sensor, id, err := queuedArgs(a)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet(a.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	to := fs.String("to", "", "")
	if err := fs.Parse(a.rest[2:]); err != nil {
		return usageErrorf("%s: %v", a.cmd, err)
	}
	var addrs []string
	for _, addr := range strings.Split(*to, ",") {
		if addr = strings.TrimSpace(addr); addr != "" {
			addrs = append(addrs, addr)
		}
	}
	res, err := c.ReleaseQuarantined(ctx, sensor, id, addrs)
	if err != nil {
		return err
	}
	return printAction(out, res)
}

func quarantineDelete(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	sensor, id, err := queuedArgs(a)
	if err != nil {
		return err
	}
	res, err := c.DeleteQuarantined(ctx, sensor, id)
	if err != nil {
		return err
	}
	return printAction(out, res)
}

// printAction says what a quarantine action came to.
func printAction(out io.Writer, res *api.QuarantineActionResult) error {
	m := res.Message
	switch {
	case !res.Done:
		_, err := fmt.Fprintf(out, "%s/%s: sensor offline; the %s waits for it\n", m.SensorID, m.MessageID, m.Pending)
		return err
	case res.QueueID != "":
		_, err := fmt.Fprintf(out, "%s/%s: released, queued as %s; now %s\n", m.SensorID, m.MessageID, res.QueueID, m.State)
		return err
	}
	_, err := fmt.Fprintf(out, "%s/%s: %s\n", m.SensorID, m.MessageID, m.State)
	return err
}

func quarantineDownload(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	sensor, id, err := queuedArgs(a)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet(a.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("out", "", "")
	if err := fs.Parse(a.rest[2:]); err != nil {
		return usageErrorf("%s: %v", a.cmd, err)
	}
	if *file == "" {
		return c.DownloadQuarantined(ctx, sensor, id, out)
	}
	f, err := os.OpenFile(*file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := c.DownloadQuarantined(ctx, sensor, id, f); err != nil {
		f.Close()
		os.Remove(*file)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s/%s: written to %s\n", sensor, id, *file)
	return err
}
