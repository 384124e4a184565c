package convert

import (
	"fmt"

	"github.com/ospreysec/osprey/api"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

var (
	acceptanceModes = enum[ospreyv1.AcceptanceMode, api.AcceptanceMode]{
		what:   "acceptance mode",
		names:  []api.AcceptanceMode{"", api.AcceptanceAll, api.AcceptanceListed},
		zeroIs: ospreyv1.AcceptanceMode_ACCEPTANCE_MODE_ALL,
	}
	acceptanceKinds = enum[ospreyv1.AcceptanceListKind, api.AcceptanceListKind]{
		what: "acceptance list", required: true,
		names: []api.AcceptanceListKind{"", api.AcceptanceInbound, api.AcceptanceOutbound, api.AcceptanceAuth},
	}
)

// AcceptanceModeFromProto returns the API name of an acceptance mode;
// UNSPECIFIED, which means ALL, is "all" too.
func AcceptanceModeFromProto(m ospreyv1.AcceptanceMode) api.AcceptanceMode {
	return acceptanceModes.toAPI(m)
}

// AcceptanceModeToProto returns the acceptance mode named m; "all", the
// default, is UNSPECIFIED as "" is (see SMTPModeToProto).
func AcceptanceModeToProto(m api.AcceptanceMode) (ospreyv1.AcceptanceMode, error) {
	return acceptanceModes.toProto(m)
}

// AcceptanceListKindToProto returns the acceptance list named k (inbound,
// outbound, auth: the last element of its API path).
func AcceptanceListKindToProto(k api.AcceptanceListKind) (ospreyv1.AcceptanceListKind, error) {
	return acceptanceKinds.toProto(k)
}

// AcceptanceListKindFromProto returns the API name of an acceptance list.
func AcceptanceListKindFromProto(k ospreyv1.AcceptanceListKind) api.AcceptanceListKind {
	return acceptanceKinds.toAPI(k)
}

// ParseAcceptanceListKind is AcceptanceListKindToProto for a name from a
// path, with an error that says what the path may hold.
func ParseAcceptanceListKind(name string) (ospreyv1.AcceptanceListKind, error) {
	k, err := acceptanceKinds.toProto(api.AcceptanceListKind(name))
	if err != nil || k == 0 {
		return 0, fmt.Errorf("no acceptance list %q: want inbound, outbound or auth", name)
	}
	return k, nil
}
