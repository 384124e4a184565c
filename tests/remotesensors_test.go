package tests

import (
	"errors"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ospreysec/osprey/api"
)

// TestRemoteSensors runs a PCN and an SCN (each a dev node with its own
// Sensor component) as two osprey processes, links them, and manages the
// SCN's sensor from the PCN: the PCN lists it; an SMTP setting written on
// the PCN reaches the sensor and its ACK shows on the PCN; a bad document
// gets the same field errors as on the SCN's own API; a stale version is a
// conflict; the SCN's administrator's switch refuses the PCN's writes (the
// list still shows); the SCN stopped gives a clear "offline".
func TestRemoteSensors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two central nodes")
	}
	dir := t.TempDir()
	pcn, scn, scnCtl, pcnCtl := linkedPair(t, dir)
	ctx := t.Context()

	// The PCN lists the SCN's sensor, its configuration applied.
	list := waitRemoteSensors(t, pcn, "the SCN's sensor with its configuration applied", func(l *api.ServerSensors) bool {
		return len(l.Sensors) == 1 && l.Sensors[0].Online && l.Sensors[0].Config == api.ConfigApplied
	})
	sensor := list.Sensors[0]
	local, err := scn.api.Sensors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(local) != 1 || local[0].ID != sensor.ID || local[0].Tenant != sensor.Tenant || local[0].AppliedVersion != sensor.AppliedVersion {
		t.Fatalf("the PCN lists %+v; the SCN's own list is %+v", sensor, local)
	}
	if out, err := run(t, pcnCtl, "", "ctl", "servers", "sensors", "branch-1"); err != nil ||
		!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(sensor.ID)+`\s.*\sapplied\s`).MatchString(out) {
		t.Fatalf("ctl servers sensors: %v\n%s", err, out)
	}

	// A setting written on the PCN reaches the sensor; its ACK shows there.
	cfg, version, err := pcn.api.ServerSensorSMTP(ctx, "branch-1", sensor.ID)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DestinationDomains = append(cfg.DestinationDomains, "managed-from-the-pcn.example")
	_, newVersion, err := pcn.api.PutServerSensorSMTP(ctx, "branch-1", sensor.ID, cfg, version)
	if err != nil {
		t.Fatal(err)
	}
	if newVersion <= version {
		t.Fatalf("write through the PCN: version %d, want more than %d", newVersion, version)
	}
	onSCN, scnVersion, err := scn.api.SMTP(ctx, sensor.ID)
	if err != nil {
		t.Fatal(err)
	}
	if scnVersion != newVersion || !slices.Contains(onSCN.DestinationDomains, "managed-from-the-pcn.example") {
		t.Fatalf("the SCN stores version %d with domains %v; want %d with the PCN's domain", scnVersion, onSCN.DestinationDomains, newVersion)
	}
	waitRemoteSensors(t, pcn, "the sensor's ACK of the PCN's write", func(l *api.ServerSensors) bool {
		s := l.Sensors[0]
		return s.ConfigVersion == newVersion && s.AppliedVersion >= newVersion && s.Config == api.ConfigApplied
	})

	// A bad document: the field errors of the SCN's own API, on the PCN.
	bad := *onSCN
	bad.Listen, bad.Clients = "not an address", []string{"999.1.1.1"}
	_, _, pcnErr := pcn.api.PutServerSensorSMTP(ctx, "branch-1", sensor.ID, &bad, 0)
	_, _, scnErr := scn.api.PutSMTP(ctx, sensor.ID, &bad, 0)
	var pe, se *api.Error
	if !errors.As(pcnErr, &pe) || !errors.As(scnErr, &se) || pe.StatusCode != 400 || len(pe.Fields) < 2 {
		t.Fatalf("a bad document: on the PCN %v, on the SCN %v; want 400 with the fields", pcnErr, scnErr)
	}
	if diff := cmp.Diff(se, pe); diff != "" {
		t.Errorf("a bad document: the PCN answers otherwise than the SCN (-scn +pcn):\n%s", diff)
	}

	// A stale version: a conflict (a write of what is stored already
	// succeeds at any version, so this one changes something).
	stale := *onSCN
	stale.DestinationDomains = append(slices.Clone(stale.DestinationDomains), "stale.example")
	_, _, err = pcn.api.PutServerSensorSMTP(ctx, "branch-1", sensor.ID, &stale, newVersion-1)
	if !errors.As(err, &pe) || pe.StatusCode != 409 {
		t.Fatalf("a write at a stale version: %v; want 409", err)
	}

	// The SCN's administrator refuses the PCN's writes: refused, clearly;
	// the list and the reads still work.
	if out, err := run(t, scnCtl, "", "ctl", "pcn", "sensor-management", "off"); err != nil || !strings.Contains(out, `"pcn_writes": false`) {
		t.Fatalf("ctl pcn sensor-management off: %v\n%s", err, out)
	}
	waitRemoteSensors(t, pcn, "writes refused", func(l *api.ServerSensors) bool { return l.WritesRefused })
	_, _, err = pcn.api.PutServerSensorSMTP(ctx, "branch-1", sensor.ID, cfg, 0)
	if !errors.As(err, &pe) || pe.StatusCode != 403 || !strings.Contains(pe.Message, "switched off sensor management") {
		t.Fatalf("a write the SCN refuses: %v; want 403 saying the SCN's administrator switched it off", err)
	}
	if _, _, err := pcn.api.ServerSensorPOP3(ctx, "branch-1", sensor.ID); err != nil {
		t.Fatalf("a read while writes are refused: %v", err)
	}
	if _, err := scn.api.PutSensorManagement(ctx, api.SensorManagement{PCNWrites: true}); err != nil {
		t.Fatal(err)
	}
	waitRemoteSensors(t, pcn, "writes allowed again", func(l *api.ServerSensors) bool { return !l.WritesRefused })

	// Who sees and writes the SCN's sensors on the PCN, user by user (the
	// SCN serves tenant default).
	checkRemoteSensorAccess(t, pcn, sensor.ID)

	// The SCN stopped: the PCN says it is offline at once.
	stopProc(t, scn.proc)
	waitServer(t, pcn, "branch-1", "offline", func(s api.Server) bool { return !s.Online })
	_, _, err = pcn.api.PutServerSensorSMTP(ctx, "branch-1", sensor.ID, cfg, 0)
	if !errors.As(err, &pe) || pe.StatusCode != 503 || !strings.Contains(pe.Message, "offline") {
		t.Fatalf("a write to an offline SCN: %v; want 503 saying it is offline", err)
	}
	if l, err := pcn.api.ServerSensors(ctx, "branch-1"); err != nil || l.Online || len(l.Sensors) != 1 {
		t.Fatalf("the sensors of an offline SCN: %+v, %v; want its last list, offline", l, err)
	}
	contProc(t, scn.proc)
}

// linkedPair starts a PCN and an SCN, joins the SCN as branch-1 and waits
// for its link; it returns both and the environments of ctl for each.
func linkedPair(t *testing.T, dir string) (pcn, scn *devNode, scnCtl, pcnCtl []string) {
	t.Helper()
	pcn = startDev(t, filepath.Join(dir, "pcn"), "OSPREY_PCN=true", "OSPREY_HIERARCHY_HEARTBEAT="+testHeartbeat,
		"OSPREY_HTTP_ADDR=127.0.0.2:0", "OSPREY_GRPC_ADDR=127.0.0.2:0")
	pcnGRPC := grpcLine.FindStringSubmatch(pcn.stdout.String())[1]
	scn = startDev(t, filepath.Join(dir, "scn"), "OSPREY_HTTP_ADDR=127.0.0.3:0", "OSPREY_GRPC_ADDR=127.0.0.3:0")
	ctx := t.Context()
	const scnUser, scnPassword = "branch-1", "the branch account's long password"
	if _, err := pcn.api.CreateUser(ctx, api.User{Name: scnUser, Role: api.RoleAdministrator, AllTenants: true, Password: scnPassword}); err != nil {
		t.Fatal(err)
	}
	fp, err := scn.api.PCNFingerprint(ctx, pcnGRPC)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := scn.api.JoinPCN(ctx, api.JoinPCN{Address: pcnGRPC, Fingerprint: fp.Fingerprint, Name: "branch-1", Username: scnUser, Password: scnPassword}); err != nil {
		t.Fatal(err)
	}
	if _, err := pcn.api.AcceptServer(ctx, "branch-1", "default"); err != nil {
		t.Fatal(err)
	}
	waitServer(t, pcn, "branch-1", "online", func(s api.Server) bool { return s.Online })
	scnCtl = []string{"OSPREY_ADDRESS=" + scn.base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword}
	pcnCtl = []string{"OSPREY_ADDRESS=" + pcn.base, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + adminPassword}
	return pcn, scn, scnCtl, pcnCtl
}

func waitRemoteSensors(t *testing.T, pcn *devNode, what string, ok func(*api.ServerSensors) bool) *api.ServerSensors {
	t.Helper()
	var last *api.ServerSensors
	wait(t, "the PCN to show "+what, hierarchyWait, func() bool {
		l, err := pcn.api.ServerSensors(t.Context(), "branch-1")
		if err != nil {
			t.Logf("PCN: %v", err) // a busy node may answer 503 for a while
			return false
		}
		last = l
		return ok(l)
	})
	return last
}

// checkRemoteSensorAccess checks, route by route, who may list, read and
// write the sensors of branch-1 (serving tenant default) on the PCN: a
// tenant administrator of default all three; an auditor (of default, or of
// every tenant) reads only; a tenant administrator of another tenant does
// not even see the SCN.
func checkRemoteSensorAccess(t *testing.T, pcn *devNode, sensor string) {
	t.Helper()
	ctx := t.Context()
	if _, err := pcn.api.CreateTenant(ctx, api.Tenant{ID: "other", Name: "Other"}); err != nil {
		t.Fatal(err)
	}
	const password = "a long password of a user"
	for _, tt := range []struct {
		user                string
		role                api.Role
		tenant              string
		list, read, written int
	}{
		{"admin-default", api.RoleAdministrator, "default", 200, 200, 200},
		{"local-default", api.RoleLocalAdministrator, "default", 200, 200, 200},
		{"aud-default", api.RoleSecurityAuditor, "default", 200, 200, 403},
		{"aud-everyone", api.RoleSecurityAuditor, "", 200, 200, 403},
		{"officer-default", api.RoleSecurityOfficer, "default", 403, 403, 403},
		{"admin-other", api.RoleAdministrator, "other", 404, 404, 404},
	} {
		t.Run(tt.user, func(t *testing.T) {
			u := api.User{Name: tt.user, Role: tt.role, AllTenants: tt.tenant == "", Password: password}
			if tt.tenant != "" {
				u.Tenants = []string{tt.tenant}
			}
			if _, err := pcn.api.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			c, err := api.NewClient(api.Config{Address: pcn.base, Username: tt.user, Password: password})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ServerSensors(ctx, "branch-1")
			if got := apiStatus(t, err); got != tt.list {
				t.Errorf("list: got %d (%v), want %d", got, err, tt.list)
			}
			cfg, version, err := c.ServerSensorPOP3(ctx, "branch-1", sensor)
			if got := apiStatus(t, err); got != tt.read {
				t.Errorf("read: got %d (%v), want %d", got, err, tt.read)
			}
			if cfg == nil {
				cfg = &api.POP3Integration{}
			}
			_, _, err = c.PutServerSensorPOP3(ctx, "branch-1", sensor, cfg, version)
			if got := apiStatus(t, err); got != tt.written {
				t.Errorf("write: got %d (%v), want %d", got, err, tt.written)
			}
		})
	}
}

// apiStatus is the HTTP status of an API call's outcome: 200 for none.
func apiStatus(t *testing.T, err error) int {
	t.Helper()
	var ae *api.Error
	switch {
	case err == nil:
		return 200
	case errors.As(err, &ae):
		return ae.StatusCode
	}
	t.Fatalf("not an API error: %v", err)
	return 0
}
