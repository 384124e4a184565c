package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/convert"
)

// shortType is a sensor's type in one word, for the list.
func shortType(t api.SensorType) string {
	switch t {
	case api.SensorCentralNodeComponent:
		return "central"
	case api.SensorRemote:
		return "remote"
	}
	return "-"
}

// integrationState is an integration's state for the list; "-" when the
// sensor did not report it.
func integrationState(st *api.IntegrationStatus) string {
	if st == nil {
		return "-"
	}
	return string(st.State)
}

func spoolState(st *api.SpoolStatus) string {
	if st == nil {
		return "-"
	}
	return string(st.State)
}

// problemCounts counts problems by level, most urgent first: "1 alert,2 risk".
func problemCounts(ps []api.Problem) string {
	if len(ps) == 0 {
		return "-"
	}
	n := map[api.ProblemLevel]int{}
	for _, p := range ps {
		n[p.Level]++
	}
	var parts []string
	for _, l := range convert.ProblemLevels {
		if n[l] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[l], l))
		}
	}
	return strings.Join(parts, ",")
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// printSensorStatus prints a sensor and its status for a person.
func printSensorStatus(out io.Writer, s *api.Sensor) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	kind := "remote sensor"
	if s.Type == api.SensorCentralNodeComponent {
		kind = "Sensor component of a Central Node"
	}
	conn := "offline"
	if s.Online {
		conn = "online, stream held by node " + s.Node
	}
	fmt.Fprintf(tw, "Sensor:\t%s (%s), %s, tenant %s\n", s.ID, s.Name, kind, s.Tenant)
	fmt.Fprintf(tw, "State:\t%s, %s, last seen %s\n", s.State, conn, stamp(s.LastSeen))
	fmt.Fprintf(tw, "Certificate:\t%s\n", or(s.CertFingerprint, "-"))
	fmt.Fprintf(tw, "Software:\t%s\n", or(s.SoftwareVersion, "-"))
	fmt.Fprintf(tw, "Configuration:\tapplied %d, stored %d\n", s.AppliedVersion, s.ConfigVersion)
	if s.LastError != "" {
		fmt.Fprintf(tw, "Refused:\t%s\n", oneLine(s.LastError))
	}
	if s.StatusAt.IsZero() {
		fmt.Fprintf(tw, "Status:\tnot reported yet\n")
		return tw.Flush()
	}
	health := "healthy"
	if !s.Healthy {
		health = "unhealthy"
	}
	fmt.Fprintf(tw, "Status:\t%s, reported %s\n", health, stamp(s.StatusAt))
	printProblems(tw, "Problems:", s.Problems)
	printIntegration(tw, "SMTP:", s.SMTPStatus, "last message")
	printIntegration(tw, "POP3:", s.POP3Status, "last poll")
	if sp := s.SpoolStatus; sp != nil {
		fmt.Fprintf(tw, "Spool:\t%s: %d messages (%s) waiting for upload; %s free, floor %s\n", sp.State, sp.Messages,
			convert.FormatBytes(sp.Bytes), convert.FormatBytes(sp.FreeBytes), convert.FormatBytes(sp.MinFreeBytes))
		if sp.Error != "" {
			fmt.Fprintf(tw, "  error:\t%s\n", oneLine(sp.Error))
		}
	}
	return tw.Flush()
}

func printIntegration(tw io.Writer, name string, st *api.IntegrationStatus, success string) {
	if st == nil {
		fmt.Fprintf(tw, "%s\tnot reported\n", name)
		return
	}
	line := string(st.State)
	if st.Target != "" {
		line += " " + st.Target
	}
	fmt.Fprintf(tw, "%s\t%s\n", name, line)
	if st.LastError != "" {
		fmt.Fprintf(tw, "  last error:\t%s (%d in a row since %s): %s\n", stamp(st.LastErrorAt), st.Failures, stamp(st.FailingSince), oneLine(st.LastError))
	}
	fmt.Fprintf(tw, "  %s:\t%s\n", success, stamp(st.LastSuccessAt))
	fmt.Fprintf(tw, "  messages:\t%d (%s)\n", st.Messages, convert.FormatBytes(st.Bytes))
	if len(st.Refusals) > 0 {
		var r []string
		for _, k := range slices.Sorted(maps.Keys(st.Refusals)) {
			r = append(r, fmt.Sprintf("%s %d", k, st.Refusals[k]))
		}
		fmt.Fprintf(tw, "  refusals:\t%s\n", strings.Join(r, ", "))
	}
}

func printProblems(tw io.Writer, name string, ps []api.Problem) {
	if len(ps) == 0 {
		fmt.Fprintf(tw, "%s\tnone\n", name)
		return
	}
	fmt.Fprintf(tw, "%s\n", name)
	for _, p := range ps {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.ToUpper(string(p.Level)), oneLine(p.Text))
	}
}

// stamp prints a time in UTC, or "never".
func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
