package convert

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/ospreysec/osprey/api"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// SensorType is the type of a sensor whose record says local (the Sensor component of a
// Central Node) or not.
func SensorType(local bool) api.SensorType {
	if local {
		return api.SensorCentralNodeComponent
	}
	return api.SensorRemote
}

// SensorStatus fills in the status fields of v from rt, the status a sensor's stream
// reports (see store.Status); nil (never connected) leaves them empty.
func SensorStatus(v *api.Sensor, rt *ospreyv1.SensorRuntime) {
	if rt == nil {
		return
	}
	v.Online = rt.GetOnline()
	v.Node = rt.GetNode()
	v.LastSeen = timeFromProto(rt.GetLastSeen())
	v.AppliedVersion = rt.GetAppliedVersion()
	v.LastError = rt.GetLastError()
	v.SoftwareVersion = rt.GetSoftwareVersion()
	v.StatusAt = timeFromProto(rt.GetStatusAt())
	v.Healthy = rt.GetHealthy()
	if len(rt.GetCounters()) > 0 {
		v.Counters = maps.Clone(rt.GetCounters())
	}
	errs := failures(rt)
	v.Problems = Problems(rt.GetProblems(), errs...)
	v.SMTPStatus = IntegrationStatusFromProto(rt.GetSmtp())
	v.POP3Status = IntegrationStatusFromProto(rt.GetPop3())
	v.SpoolStatus = SpoolStatusFromProto(rt.GetSpool())
	v.GatewayStatus = GatewayStatusFromProto(rt.GetGateway())
}

// failures are the errors of the parts of rt that fail now: the problems that say them are
// errors.
func failures(rt *ospreyv1.SensorRuntime) []string {
	var errs []string
	for _, e := range []string{rt.GetSmtp().GetLastError(), rt.GetPop3().GetLastError(), rt.GetSpool().GetError()} {
		if e != "" {
			errs = append(errs, e)
		}
	}
	return errs
}

var integrationStates = enum[ospreyv1.IntegrationState, api.IntegrationState]{
	what: "integration state",
	names: []api.IntegrationState{"", api.IntegrationDisabled, api.IntegrationListening, api.IntegrationPolling,
		api.IntegrationFailing, api.IntegrationWaitingLock},
}

var spoolStates = enum[ospreyv1.SpoolState, api.SpoolState]{
	what:  "spool state",
	names: []api.SpoolState{"", api.SpoolOK, api.SpoolLowDisk, api.SpoolFailing},
}

// IntegrationStatusFromProto converts an integration's status; nil stays nil.
func IntegrationStatusFromProto(p *ospreyv1.IntegrationStatus) *api.IntegrationStatus {
	if p == nil {
		return nil
	}
	out := &api.IntegrationStatus{
		State:         cmp.Or(integrationStates.toAPI(p.GetState()), api.IntegrationUnknown),
		Target:        p.GetTarget(),
		LastError:     p.GetLastError(),
		LastErrorAt:   timeFromProto(p.GetLastErrorAt()),
		FailingSince:  timeFromProto(p.GetFailingSince()),
		Failures:      p.GetFailures(),
		LastSuccessAt: timeFromProto(p.GetLastSuccessAt()),
		Messages:      p.GetMessages(),
		Bytes:         p.GetBytes(),
		Problems:      Problems(p.GetProblems(), p.GetLastError()),
	}
	// Only the reasons that happened: the sensor reports every reason, mostly zeros.
	for k, n := range p.GetRefusals() {
		if n > 0 {
			if out.Refusals == nil {
				out.Refusals = map[string]uint64{}
			}
			out.Refusals[k] = n
		}
	}
	return out
}

// SpoolStatusFromProto converts a spool's status; nil stays nil.
func SpoolStatusFromProto(p *ospreyv1.SpoolStatus) *api.SpoolStatus {
	if p == nil {
		return nil
	}
	return &api.SpoolStatus{
		State:        cmp.Or(spoolStates.toAPI(p.GetState()), api.SpoolUnknown),
		Error:        p.GetError(),
		Messages:     p.GetMessages(),
		Bytes:        p.GetBytes(),
		FreeBytes:    p.GetFreeBytes(),
		MinFreeBytes: p.GetMinFreeBytes(),
		Problems:     Problems(p.GetProblems(), p.GetError()),
	}
}

// problemPrefixes are the levels a problem's text says by its first word.
var problemPrefixes = []struct {
	prefix string
	level  api.ProblemLevel
}{
	{"ALERT:", api.ProblemAlert},
	{"RISK:", api.ProblemRisk},
	{"WARNING:", api.ProblemWarning},
}

// ProblemLevels lists the levels, most urgent first.
var ProblemLevels = []api.ProblemLevel{api.ProblemAlert, api.ProblemRisk, api.ProblemWarning, api.ProblemError, api.ProblemNote}

// Problems gives each problem text its level, most urgent first (in the sensor's order
// within a level): the level its prefix says (ALERT:, RISK:, WARNING:), else error when
// it says one of errs (the errors of what fails now), else note.
func Problems(texts []string, errs ...string) []api.Problem {
	if len(texts) == 0 {
		return nil
	}
	out := make([]api.Problem, 0, len(texts))
	for _, t := range texts {
		out = append(out, api.Problem{Level: problemLevel(t, errs), Text: t})
	}
	slices.SortStableFunc(out, func(a, b api.Problem) int {
		return cmp.Compare(slices.Index(ProblemLevels, a.Level), slices.Index(ProblemLevels, b.Level))
	})
	return out
}

func problemLevel(text string, errs []string) api.ProblemLevel {
	for _, p := range problemPrefixes {
		if strings.HasPrefix(text, p.prefix) {
			return p.level
		}
	}
	for _, e := range errs {
		if e != "" && strings.Contains(text, e) {
			return api.ProblemError
		}
	}
	return api.ProblemNote
}

// FormatBytes prints n bytes with the largest binary unit it reaches: "300 B", "12.0 MiB".
func FormatBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatUint(n, 10) + " B"
	}
	f, i := float64(n)/1024, 0
	for f >= 1024 && i+1 < len(units) {
		f, i = f/1024, i+1
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + " " + units[i:i+1] + "iB"
}
