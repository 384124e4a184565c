package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ospreysec/osprey/api"
)

// The queue commands of `osprey ctl`: a gateway sensor's delivery queue,
// read from the sensor through the central.

var queueCommands = []ctlCmd{
	{words: []string{"queue", "list"}, args: "SENSOR [--state active|deferred|held|quarantined] [--sender TEXT]\n" +
		"             [--recipient TEXT] [--next-hop DEST] [--min-age 1h] [--max-age 4h] [--limit N]\n" +
		"                                      a gateway sensor's queued messages, oldest first", run: queueList},
	{words: []string{"queue", "show"}, args: "SENSOR ID", help: "one queued message, as JSON", run: queueShow},
	{words: []string{"queue", "retry"}, args: "SENSOR ID", help: "try its waiting recipients now", run: queueAct(api.QueueRetry)},
	{words: []string{"queue", "hold"}, args: "SENSOR ID", help: "keep it from delivery until released", run: queueAct(api.QueueHold)},
	{words: []string{"queue", "release"}, args: "SENSOR ID", help: "deliver what was held", run: queueAct(api.QueueRelease)},
	{words: []string{"queue", "delete"}, args: "SENSOR ID [--dsn]", help: "remove it; --dsn sends its sender a failure notice", run: queueDelete},
	{words: []string{"queue", "stop-sending"}, args: "SENSOR", help: "start no delivery (lasts until resume-sending)", run: queueControl(api.GatewayStopSending)},
	{words: []string{"queue", "resume-sending"}, args: "SENSOR", run: queueControl(api.GatewayResumeSending)},
	{words: []string{"queue", "stop-receiving"}, args: "SENSOR", help: "the gateway listeners answer 421 (lasts until resume-receiving)", run: queueControl(api.GatewayStopReceiving)},
	{words: []string{"queue", "resume-receiving"}, args: "SENSOR", run: queueControl(api.GatewayResumeReceiving)},
	{words: []string{"queue", "flush"}, args: "SENSOR", help: "try every waiting recipient now", run: queueControl(api.GatewayFlush)},
}

// queueFlags parses the filters of "queue list" after the sensor.
func queueFlags(cmd string, args []string) (api.QueueQuery, error) {
	var q api.QueueQuery
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	state := fs.String("state", "", "")
	for name, p := range map[string]*string{"sender": &q.Sender, "recipient": &q.Recipient, "next-hop": &q.NextHop, "page-token": &q.PageToken} {
		fs.StringVar(p, name, "", "")
	}
	fs.DurationVar(&q.MinAge, "min-age", 0, "")
	fs.DurationVar(&q.MaxAge, "max-age", 0, "")
	fs.IntVar(&q.Limit, "limit", 0, "")
	if err := fs.Parse(args); err != nil {
		return q, usageErrorf("%s: %v", cmd, err)
	}
	if fs.NArg() > 0 {
		return q, usageErrorf("%s: unexpected argument %q (filters are flags: --sender TEXT)", cmd, fs.Arg(0))
	}
	q.State = api.QueueState(*state)
	return q, nil
}

func queueList(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	sensor, err := a.pos(0, "SENSOR")
	if err != nil {
		return err
	}
	q, err := queueFlags(a.cmd, a.rest[1:])
	if err != nil {
		return err
	}
	list, err := c.Queue(ctx, sensor, q)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tARRIVAL\tSIZE\tFROM\tTO\tSTATE\tNEXT HOP\tTRIES\tNEXT TRY\tLAST REPLY")
	now := time.Now()
	for _, m := range list.Messages {
		from := m.Sender
		if from == "" {
			from = "<>"
		}
		if m.Kind != "" {
			from += " (" + m.Kind + " notice)"
		}
		for i, r := range m.Recipients {
			id, arrival, size := m.ID, m.Arrival.Local().Format("2006-01-02 15:04:05"), fmt.Sprint(m.Size)
			if i > 0 { // the message's columns once
				id, arrival, size, from = "", "", "", ""
			}
			next := "-"
			if !r.NextAttempt.IsZero() && r.State == api.QueueDeferred {
				next = "in " + r.NextAttempt.Sub(now).Round(time.Second).String()
			}
			reply := "-"
			if r.LastCode != 0 || r.LastText != "" {
				reply = strings.TrimSpace(fmt.Sprintf("%d %s %s", r.LastCode, r.LastEnhanced, r.LastText))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", id, arrival, size, from, r.Address, r.State, r.NextHop,
				r.Attempts, next, oneLine(reply))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if list.NextPageToken != "" {
		fmt.Fprintf(out, "(more: --page-token %s)\n", list.NextPageToken)
	}
	return nil
}

// queuedArgs returns the sensor and message id of a command on one
// message.
func queuedArgs(a ctlArgs) (sensor, id string, err error) {
	if sensor, err = a.pos(0, "SENSOR"); err != nil {
		return "", "", err
	}
	id, err = a.pos(1, "ID")
	return sensor, id, err
}

func queueShow(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	sensor, id, err := queuedArgs(a)
	if err != nil {
		return err
	}
	m, err := c.QueuedMessage(ctx, sensor, id)
	if err != nil {
		return err
	}
	return printJSON(out, m)
}

func queueAct(action api.QueueAction) func(context.Context, *api.Client, ctlArgs, io.Writer) error {
	return func(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
		sensor, id, err := queuedArgs(a)
		if err != nil {
			return err
		}
		m, err := c.QueueAct(ctx, sensor, id, action)
		if err != nil {
			return err
		}
		return printJSON(out, m)
	}
}

func queueDelete(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	sensor, id, err := queuedArgs(a)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet(a.cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dsn := fs.Bool("dsn", false, "")
	if err := fs.Parse(a.rest[2:]); err != nil {
		return usageErrorf("%s: %v", a.cmd, err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("%s: unexpected argument %q", a.cmd, fs.Arg(0))
	}
	st, err := c.DeleteQueued(ctx, sensor, id, *dsn)
	if err != nil {
		return err
	}
	if *dsn {
		fmt.Fprintf(out, "deleted %s; its sender gets a failure notice\n", id)
	} else {
		fmt.Fprintf(out, "deleted %s\n", id)
	}
	return printGateway(out, st)
}

func queueControl(control api.GatewayControl) func(context.Context, *api.Client, ctlArgs, io.Writer) error {
	return func(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
		sensor, err := a.pos(0, "SENSOR")
		if err != nil {
			return err
		}
		st, err := c.ControlGateway(ctx, sensor, control)
		if err != nil {
			return err
		}
		return printGateway(out, st)
	}
}

// printGateway prints a gateway's switches and queue depth on one line.
func printGateway(out io.Writer, st *api.GatewayStatus) error {
	onOff := func(on bool) string {
		if on {
			return "on"
		}
		return "STOPPED"
	}
	_, err := fmt.Fprintf(out, "sending %s, receiving %s; queue: %d messages (recipients: %d active, %d deferred, %d held, %d quarantined)\n",
		onOff(st.Sending), onOff(st.Receiving), st.Messages, st.Active, st.Deferred, st.Held, st.Quarantined)
	return err
}
