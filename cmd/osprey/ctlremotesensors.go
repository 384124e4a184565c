package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ospreysec/osprey/api"
)

// remoteSensorCommands manage an SCN's sensors from its PCN, and, on an
// SCN, whether the PCN may.
var remoteSensorCommands = []ctlCmd{
	{words: []string{"servers", "sensors"}, args: "ID", help: "on a PCN: the sensors of SCN ID, with each one's configuration ACK/NACK", run: serversSensors},
	{words: []string{"servers", "sensor", "smtp", "get"}, args: "ID SENSOR", help: "on a PCN: the SMTP (and gateway) settings of a sensor of SCN ID", run: serverSensorGet((*api.Client).ServerSensorSMTP)},
	{words: []string{"servers", "sensor", "smtp", "set"}, args: "ID SENSOR --file smtp.json", help: "on a PCN: replace them (the SCN validates; a version in the file must still be current)", run: serverSensorSet((*api.Client).PutServerSensorSMTP)},
	{words: []string{"servers", "sensor", "pop3", "get"}, args: "ID SENSOR", help: "on a PCN: the POP3 settings of a sensor of SCN ID", run: serverSensorGet((*api.Client).ServerSensorPOP3)},
	{words: []string{"servers", "sensor", "pop3", "set"}, args: "ID SENSOR --file pop3.json", help: "on a PCN: replace them", run: serverSensorSet((*api.Client).PutServerSensorPOP3)},
	{words: []string{"pcn", "sensor-management"}, args: "[on|off]", help: "on an SCN: show, or switch on or off, the PCN's writes of this node's sensors' settings", run: pcnSensorManagement},
}

func serversSensors(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	id, err := a.pos(0, "ID")
	if err != nil {
		return err
	}
	list, err := c.ServerSensors(ctx, id)
	if err != nil {
		return err
	}
	online := map[bool]string{true: "online", false: "offline"}[list.Online]
	writes := "the PCN may write its sensors' settings"
	if list.WritesRefused {
		writes = "its administrator refuses the PCN's writes"
	}
	if list.ReceivedAt == nil {
		fmt.Fprintf(out, "SCN %s (%s) has sent no sensor list yet\n", id, online)
		return nil
	}
	fmt.Fprintf(out, "SCN %s (%s), list of %s; %s\n", id, online, when(list.ReceivedAt), writes)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTENANT\tSTATE\tONLINE\tSMTP\tPOP3\tCONFIG\tAPPLIED\tSTATUS\tLAST ERROR")
	for _, s := range list.Sensors {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\t%d\t%d\t%s\t%s\n", s.ID, s.Name, s.Tenant, s.State, s.Online,
			dash(string(s.SMTPState)), dash(string(s.POP3State)), s.ConfigVersion, s.AppliedVersion, s.Config, dash(s.LastError))
	}
	if list.Truncated {
		fmt.Fprintln(tw, "...\t(more sensors than one list carries)")
	}
	return tw.Flush()
}

func serverSensorGet[T any](get func(*api.Client, context.Context, string, string) (*T, int64, error)) func(context.Context, *api.Client, ctlArgs, io.Writer) error {
	return func(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
		id, err := a.pos(0, "ID")
		if err != nil {
			return err
		}
		sensor, err := a.pos(1, "SENSOR")
		if err != nil {
			return err
		}
		cfg, version, err := get(c, ctx, id, sensor)
		if err != nil {
			return err
		}
		return printVersioned(out, cfg, version)
	}
}

func serverSensorSet[T any](put func(*api.Client, context.Context, string, string, *T, int64) (*T, int64, error)) func(context.Context, *api.Client, ctlArgs, io.Writer) error {
	return func(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
		id, err := a.pos(0, "ID")
		if err != nil {
			return err
		}
		sensor, err := a.pos(1, "SENSOR")
		if err != nil {
			return err
		}
		var cfg T
		version, err := readVersioned(a.cmd, a.rest[2:], &cfg)
		if err != nil {
			return err
		}
		got, newVersion, err := put(c, ctx, id, sensor, &cfg, version)
		if err != nil {
			return err
		}
		return printVersioned(out, got, newVersion)
	}
}

func pcnSensorManagement(ctx context.Context, c *api.Client, a ctlArgs, out io.Writer) error {
	if len(a.rest) == 0 {
		m, err := c.SensorManagement(ctx)
		if err != nil {
			return err
		}
		return printJSON(out, m)
	}
	var on bool
	switch a.rest[0] {
	case "on":
		on = true
	case "off":
	default:
		return usageErrorf("%s: want on or off, got %q", a.cmd, a.rest[0])
	}
	m, err := c.PutSensorManagement(ctx, api.SensorManagement{PCNWrites: on})
	if err != nil {
		return err
	}
	return printJSON(out, m)
}
