package tests

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central"
	"github.com/ospreysec/osprey/central/sqlstore"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/jointoken"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor"
)

// The browser tests drive the web UI in a real headless Chromium (the Debian
// package chromium) against a Central Node started in-process. Without
// Chromium they skip, or fail when OSPREY_REQUIRE_PEERS=1.
//
// With OSPREY_SCREENSHOTS=1 they save screenshots of the main pages in
// docs/screenshots (for the README); otherwise the screenshots are taken
// but kept in a temporary directory, so a test run leaves the tree clean.

const (
	uiAdminPassword    = "browser-test-admin-password"
	uiOperatorPassword = "browser-test-operator-password"
)

// chromiumPath finds the browser, or skips (fails when peers are required).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("OSPREY_REQUIRE_PEERS") == "1" {
		t.Fatal("chromium not found (install the Debian package chromium, see scripts/install-peers.sh)")
	}
	t.Skip("chromium not found; set OSPREY_REQUIRE_PEERS=1 to make this a failure")
	return ""
}

// uiNode is a Central Node in dev mode with a store client beside it.
type uiNode struct {
	url   string
	ready central.Ready
	store *store.Store
	db    *sqlstore.Store
}

func startUINode(t *testing.T) *uiNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	readyc := make(chan central.Ready, 1)
	// The data dir is made before the node's cleanup is registered, so it is
	// removed after the node stopped (cleanups run last-in first-out).
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- central.Run(ctx, central.Options{
			NodeName: "hq-1", DataDir: dataDir, Dev: true,
			HTTP:                   central.HTTPOptions{Listener: ln},
			GRPC:                   central.GRPCOptions{Addr: "127.0.0.1:0"},
			Etcd:                   central.EtcdOptions{ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0"},
			BootstrapAdminPassword: uiAdminPassword,
			Logger:                 errorLogger(),
			OnReady:                func(r central.Ready) { readyc <- r },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node: %v", err)
		}
	})
	var ready central.Ready
	select {
	case ready = <-readyc:
	case err := <-done:
		done <- nil // for the cleanup, which waits for the node
		t.Fatalf("node stopped before it was ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("node not ready after 60s")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: ready.EtcdEndpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	db, err := sqlstore.Open(t.Context(), sqlstore.Options{URL: filepath.Join(dataDir, "osprey.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &uiNode{url: ready.HTTPURL, ready: ready, store: store.New(cli), db: db}
}

// seed adds what the tests look at: a second tenant with its operator and
// sensor, pending sensors, and an approved sensor that is online.
func (n *uiNode) seed(t *testing.T) {
	t.Helper()
	ctx, all := t.Context(), store.AllTenants()
	if _, err := n.store.CreateTenant(ctx, all, &ospreyv1.Tenant{Id: "acme", Name: "Acme Corp"}); err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(uiOperatorPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.store.CreateUser(ctx, all, &ospreyv1.User{
		Name: "operator", Role: ospreyv1.Role_ROLE_ADMIN, Tenants: []string{"acme"}, PasswordHash: hash, CreatedAt: timestamppb.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	// Sensor enrollment is wired elsewhere; these are made as enrollment would.
	for _, sn := range []*ospreyv1.Sensor{
		{Id: "branch-paris", Tenant: "default", Name: "branch-paris", State: ospreyv1.SensorState_SENSOR_STATE_PENDING},
		{Id: "branch-lyon", Tenant: "default", Name: "branch-lyon", State: ospreyv1.SensorState_SENSOR_STATE_PENDING},
		{Id: "dc-frankfurt", Tenant: "default", Name: "dc-frankfurt", State: ospreyv1.SensorState_SENSOR_STATE_APPROVED},
		{Id: "acme-mail", Tenant: "acme", Name: "acme-mail", State: ospreyv1.SensorState_SENSOR_STATE_APPROVED},
	} {
		sn.CreatedAt = timestamppb.Now()
		sn.CertFingerprint = fmt.Sprintf("%064x", len(sn.Id))
		if _, err := n.store.CreateSensor(ctx, all, sn); err != nil {
			t.Fatal(err)
		}
	}
	// One sensor runs its stored configuration, another refused it.
	for _, s := range []struct {
		id, tenant, lastErr string
	}{{"dc-frankfurt", "default", ""}, {"acme-mail", "acme", "listen 0.0.0.0:25: bind: address already in use"}} {
		v, err := n.store.PutSMTP(ctx, all, s.id, &ospreyv1.SmtpIntegration{
			Enabled: true, Listen: "0.0.0.0:25", MaxMessageSize: &ospreyv1.SizeLimit{Unlimited: true},
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		applied := v
		if s.lastErr != "" {
			applied = 0
		}
		n.putStatus(t, &ospreyv1.SensorRuntime{SensorId: s.id, Tenant: s.tenant, AppliedVersion: applied, LastError: s.lastErr, NackVersion: v - applied,
			Healthy: true, StatusAt: timestamppb.Now(),
			Smtp:  &ospreyv1.IntegrationStatus{State: ospreyv1.IntegrationState_INTEGRATION_STATE_LISTENING, Target: "0.0.0.0:25"},
			Pop3:  &ospreyv1.IntegrationStatus{State: ospreyv1.IntegrationState_INTEGRATION_STATE_DISABLED},
			Spool: &ospreyv1.SpoolStatus{State: ospreyv1.SpoolState_SPOOL_STATE_OK, FreeBytes: 40 << 30, MinFreeBytes: 256 << 20},
		})
	}
	// dc-frankfurt also polls a journaling mailbox, without TLS, and the
	// mail server refuses its password.
	const mb = "journal@mail.example.com:110"
	failed := timestamppb.New(time.Now().Add(-2 * time.Minute))
	n.putStatus(t, &ospreyv1.SensorRuntime{SensorId: "dc-frankfurt", Tenant: "default", AppliedVersion: n.smtpVersion(t, "dc-frankfurt"),
		Healthy: true, StatusAt: timestamppb.Now(),
		Problems: []string{
			"pop3 " + mb + ": login: -ERR [AUTH] Authentication failed. (3 failures in a row)",
			"RISK: pop3 " + mb + ": TLS is off: the password and the mail cross the network in the clear",
		},
		Smtp: &ospreyv1.IntegrationStatus{State: ospreyv1.IntegrationState_INTEGRATION_STATE_LISTENING, Target: "0.0.0.0:25"},
		Pop3: &ospreyv1.IntegrationStatus{State: ospreyv1.IntegrationState_INTEGRATION_STATE_FAILING, Target: mb,
			LastError: "login: -ERR [AUTH] Authentication failed.", LastErrorAt: failed, FailingSince: failed, Failures: 3,
			Problems: []string{
				"pop3 " + mb + ": login: -ERR [AUTH] Authentication failed. (3 failures in a row)",
				"RISK: pop3 " + mb + ": TLS is off: the password and the mail cross the network in the clear",
			}},
		Spool: &ospreyv1.SpoolStatus{State: ospreyv1.SpoolState_SPOOL_STATE_OK, FreeBytes: 40 << 30, MinFreeBytes: 256 << 20},
	})
}

// runSensor runs a real Sensor in this process for the sensor record id,
// enrolled with a join token bound to that record (as the node's own sensor
// component is), until the test ends.
func (n *uiNode) runSensor(t *testing.T, id string) {
	t.Helper()
	jt, err := jointoken.Generate(n.ready.CAHash)
	if err != nil {
		t.Fatal(err)
	}
	tok := &ospreyv1.Token{Id: jt.ID, Kind: ospreyv1.TokenKind_TOKEN_KIND_JOIN, Tenant: "default", SensorId: id,
		SecretHash: jointoken.SecretHash(jt.Secret), MaxUses: 1, UsesLeft: 1, CreatedAt: timestamppb.Now()}
	if _, err := n.store.CreateToken(t.Context(), store.AllTenants(), tok); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir() // removed after the sensor stopped
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- sensor.Run(ctx, sensor.Options{Central: n.ready.GRPCAddr, JoinToken: jt.String(),
			DataDir: dataDir, Name: id, Logger: errorLogger()})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sensor: %v", err)
		}
	})
}

// putStatus records a sensor as online, held by this node, as the sensor
// service does when its stream is up.
func (n *uiNode) putStatus(t *testing.T, st *ospreyv1.SensorRuntime) {
	t.Helper()
	lease, err := n.store.Lease(t.Context(), 60)
	if err != nil {
		t.Fatal(err)
	}
	st.Online, st.Node, st.SoftwareVersion = true, "hq-1", "dev"
	st.ConnectedAt, st.LastSeen = timestamppb.Now(), timestamppb.Now()
	if err := n.store.PutStatuses(t.Context(), lease, []store.StatusWrite{{Durable: true, Status: st}}); err != nil {
		t.Fatal(err)
	}
}

func (n *uiNode) smtpVersion(t *testing.T, id string) int64 {
	t.Helper()
	_, v, err := n.store.GetSMTP(t.Context(), store.AllTenants(), id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newBrowser starts a headless Chromium with a 1280×800 window.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	opts := append([]chromedp.ExecAllocatorOption{},
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func uiDo(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func uiRun[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// submit clicks a button that posts a form and waits for the page it leads to.
func uiSubmit(t *testing.T, ctx context.Context, what string, sel string) int64 {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return resp.Status
}

// pageSource fetches the current page's HTML again, as "view source" shows it.
func uiPageSource(t *testing.T, ctx context.Context) string {
	t.Helper()
	return uiRun(t, ctx, "page source", chromedp.Evaluate[string](
		`fetch(location.href, {credentials: "same-origin"}).then(r => r.text())`, chromedp.EvalAwaitPromise))
}

// screenshot saves the viewport as name.png.
func uiScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := t.TempDir()
	if os.Getenv("OSPREY_SCREENSHOTS") == "1" {
		dir = filepath.Join("..", "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Let the layout settle (fonts, the JS that reveals list buttons).
	uiDo(t, ctx, "settle", chromedp.Evaluate[chromedp.Void](`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))`, chromedp.EvalAwaitPromise))
	png := uiRun(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot())
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func uiSignIn(t *testing.T, ctx context.Context, base, user, password string) {
	t.Helper()
	uiDo(t, ctx, "open the sign-in page",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
	)
	if status := uiSubmit(t, ctx, "sign in", `.signin-card button[type="submit"]`); status != 200 {
		t.Fatalf("sign in as %s: status %d", user, status)
	}
	uiDo(t, ctx, "server list", chromedp.WaitVisible(chromedp.ID("list-title")))
}

func TestBrowserSensorSettings(t *testing.T) {
	ctx := newBrowser(t)
	n := startUINode(t)
	n.seed(t)

	// Sign in: an unauthenticated visit lands on the sign-in form.
	uiDo(t, ctx, "open the UI", chromedp.Navigate(n.url+"/sensors"), chromedp.WaitVisible(chromedp.ID("username")))
	if loc := uiRun(t, ctx, "location", chromedp.Location()); !strings.HasPrefix(loc, n.url+"/signin?next=") {
		t.Fatalf("unauthenticated visit went to %s, want the sign-in page", loc)
	}
	uiScreenshot(t, ctx, "signin")
	uiSignIn(t, ctx, n.url, "admin", uiAdminPassword)

	// Approve a pending sensor.
	if status := uiSubmit(t, ctx, "approve", `.pending-list button[aria-label="Approve branch-paris"]`); status != 200 {
		t.Fatalf("approve: status %d", status)
	}
	uiDo(t, ctx, "approved", chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	sn, _, err := n.store.GetSensor(t.Context(), store.AllTenants(), "branch-paris")
	if err != nil || sn.GetState() != ospreyv1.SensorState_SENSOR_STATE_APPROVED {
		t.Fatalf("branch-paris after approve: %v, %v", sn.GetState(), err)
	}

	// The real sensor behind the record enrolls and connects; its online
	// state shows up without a reload.
	uiDo(t, ctx, "offline", chromedp.WaitVisible(chromedp.CSS(`tr[data-sensor="branch-paris"] .conn-offline`)))
	n.runSensor(t, "branch-paris")
	uiDo(t, ctx, "online without reload", chromedp.WaitVisible(chromedp.CSS(`tr[data-sensor="branch-paris"] .conn-online`)))
	if flash := uiRun(t, ctx, "flash still shown", chromedp.Text(chromedp.CSS(".flash-ok"))); !strings.Contains(flash, "approved") {
		t.Errorf("the page was reloaded (the approval message is gone: %q)", flash)
	}

	// SMTP integration with an invalid CIDR: the error is beside the field and nothing is saved.
	smtpListen := loopbackPort(t)
	uiDo(t, ctx, "SMTP settings",
		chromedp.Click(chromedp.CSS(`tr[data-sensor="branch-paris"] a`)),
		chromedp.WaitVisible(chromedp.ID("status-title")),
		chromedp.Click(chromedp.CSS(`nav.tabs a[href$="/smtp"]`)),
		chromedp.WaitVisible(chromedp.ID("smtp-title")),
		chromedp.Click(chromedp.ID("smtp-enabled")),
		chromedp.SendKeys(chromedp.ID("smtp-listen"), smtpListen),
		chromedp.SendKeys(chromedp.ID("smtp-domains-new"), "example.com"),
		chromedp.Click(chromedp.CSS(`[data-add="smtp-domains"]`)),
		chromedp.SendKeys(chromedp.CSS("#smtp-domains li:last-child input"), "!hr.example.com"),
		chromedp.SendKeys(chromedp.ID("smtp-clients-new"), "10.0.0.0/8"),
		chromedp.Click(chromedp.CSS(`[data-add="smtp-clients"]`)),
		chromedp.SendKeys(chromedp.CSS("#smtp-clients li:last-child input"), "10.20.0.0/33"),
		chromedp.SendKeys(chromedp.ID("smtp-size-value"), "25"),
	)
	before := n.smtpVersion(t, "branch-paris")
	if status := uiSubmit(t, ctx, "apply invalid", `form.settings button.btn-primary`); status != 422 {
		t.Fatalf("apply with an invalid CIDR: status %d, want 422", status)
	}
	if msg := uiRun(t, ctx, "clients error", chromedp.Text(chromedp.ID("smtp-clients-1-err"))); msg == "" {
		t.Errorf("no error beside the Clients entry 10.20.0.0/33")
	}
	invalid := uiRun(t, ctx, "invalid entry", chromedp.AttributeValue(chromedp.ID("smtp-clients-1"), "aria-invalid"))
	if !invalid.Exists || invalid.Value != "true" {
		t.Errorf("the bad entry is not marked invalid")
	}
	if v := n.smtpVersion(t, "branch-paris"); v != before {
		t.Fatalf("the invalid configuration was saved: version %d, was %d", v, before)
	}
	// Show the error beside the Clients list, with the summary above it.
	uiDo(t, ctx, "scroll to the error", chromedp.Evaluate[chromedp.Void](
		`document.getElementById("smtp-domains-label").scrollIntoView({block: "start"}); window.scrollBy(0, -24)`))
	uiScreenshot(t, ctx, "sensor-settings-error")

	// Fixed, it is applied, and the server list shows the stored version.
	uiDo(t, ctx, "fix the entry",
		chromedp.Clear(chromedp.ID("smtp-clients-1")),
		chromedp.SendKeys(chromedp.ID("smtp-clients-1"), "10.20.0.0/16"),
	)
	if status := uiSubmit(t, ctx, "apply fixed", `form.settings button.btn-primary`); status != 200 {
		t.Fatalf("apply fixed: status %d", status)
	}
	uiDo(t, ctx, "applied", chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	cfg, version, err := n.store.GetSMTP(t.Context(), store.AllTenants(), "branch-paris")
	if err != nil || version == before {
		t.Fatalf("after a valid apply: version %d (was %d), %v", version, before, err)
	}
	if got := strings.Join(cfg.GetClients(), " "); got != "10.0.0.0/8 10.20.0.0/16" || cfg.GetMaxMessageSize().GetValue() != 25 {
		t.Errorf("stored clients %q, size %v", got, cfg.GetMaxMessageSize())
	}
	uiDo(t, ctx, "server list", chromedp.Navigate(n.url+"/sensors"), chromedp.WaitVisible(chromedp.ID("sensor-table")))
	stored := uiRun(t, ctx, "stored version", chromedp.Text(chromedp.CSS(`tr[data-sensor="branch-paris"] [data-live="stored"]`)))
	if stored != fmt.Sprint(version) {
		t.Errorf("the server list shows stored version %q, want %d", stored, version)
	}
	// The sensor applies it (its SMTP listener comes up) and acknowledges:
	// the list shows the applied version, in sync, without a reload.
	uiDo(t, ctx, "applied version", chromedp.WaitVisible(chromedp.CSS(`tr[data-sensor="branch-paris"] .sync-in-sync`)))
	if applied := uiRun(t, ctx, "applied", chromedp.Text(chromedp.CSS(`tr[data-sensor="branch-paris"] [data-live="applied"]`))); applied != fmt.Sprint(version) {
		t.Errorf("the server list shows applied version %q, want %d", applied, version)
	}
	if c, err := net.Dial("tcp", smtpListen); err != nil {
		t.Errorf("the sensor's SMTP listener is not up on %s: %v", smtpListen, err)
	} else {
		c.Close()
	}
	uiDo(t, ctx, "scroll to the list", chromedp.Evaluate[chromedp.Void](
		`document.getElementById("list-title").scrollIntoView({block: "start"}); window.scrollBy(0, -24)`))
	uiScreenshot(t, ctx, "server-list")

	// POP3 with a password: it is saved and never rendered back.
	const secret = "correct-Horse-battery-staple-42"
	uiDo(t, ctx, "POP3 settings",
		chromedp.Navigate(n.url+"/sensors/branch-paris/pop3"),
		chromedp.WaitVisible(chromedp.ID("pop3-title")),
		chromedp.Click(chromedp.ID("pop3-enabled")),
		chromedp.SendKeys(chromedp.ID("pop3-server"), "mail.example.com"),
		chromedp.SendKeys(chromedp.ID("pop3-port"), "995"),
		chromedp.SendKeys(chromedp.ID("pop3-interval"), "60"),
		chromedp.Click(chromedp.ID("pop3-tls")),
		chromedp.SendKeys(chromedp.ID("pop3-username"), "journal@example.com"),
		chromedp.SendKeys(chromedp.ID("pop3-password"), secret),
		chromedp.SetValue(chromedp.ID("pop3-cipher-suite"), "HIGH:!aNULL"),
	)
	if status := uiSubmit(t, ctx, "apply POP3", `form.settings button.btn-primary`); status != 200 {
		t.Fatalf("apply POP3: status %d", status)
	}
	uiDo(t, ctx, "POP3 applied", chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	pop3, _, err := n.store.GetPOP3(t.Context(), store.AllTenants(), "branch-paris")
	if err != nil || pop3.GetPassword() != secret || pop3.GetServer() != "mail.example.com" {
		t.Fatalf("stored POP3: server %q, password saved %v, %v", pop3.GetServer(), pop3.GetPassword() == secret, err)
	}
	if src := uiPageSource(t, ctx); strings.Contains(src, secret) || !strings.Contains(src, "A password is stored") {
		t.Errorf("the POP3 page source contains the password, or does not say one is stored")
	}
	if value := uiRun(t, ctx, "password field", chromedp.Value(chromedp.ID("pop3-password"))); value != "" {
		t.Errorf("the password field holds %d characters, want none", len(value))
	}
}

// TestBrowserSettingsFormsLive: what the settings forms do without a
// reload. The POP3 settings that apply only with TLS follow "Use TLS"
// (disabled and greyed while it is off); a list entry's error is shown
// beside the entry, and a row added after it does not carry it.
func TestBrowserSettingsFormsLive(t *testing.T) {
	ctx := newBrowser(t)
	n := startUINode(t)
	n.seed(t)
	uiSignIn(t, ctx, n.url, "admin", uiAdminPassword)

	uiDo(t, ctx, "POP3 settings", chromedp.Navigate(n.url+"/sensors/dc-frankfurt/pop3"), chromedp.WaitVisible(chromedp.ID("pop3-title")))
	tlsFields := func(what string) string {
		t.Helper()
		return uiRun(t, ctx, what, chromedp.Evaluate[string](`["pop3-tls-mode", "pop3-tls-certificate", "pop3-cipher-suite", "pop3-ca"].map(id => {
			const el = document.getElementById(id), group = el.closest("[data-enabled-by]");
			const grey = group && getComputedStyle(group.classList.contains("field") ? group.querySelector(".control") : group).opacity < 1;
			return id + (el.disabled ? " disabled" : " enabled") + (grey ? " grey" : "");
		}).join(", ")`))
	}
	const off = "pop3-tls-mode disabled grey, pop3-tls-certificate disabled grey, pop3-cipher-suite disabled grey, pop3-ca disabled grey"
	const on = "pop3-tls-mode enabled, pop3-tls-certificate enabled, pop3-cipher-suite enabled, pop3-ca enabled"
	if got := tlsFields("TLS fields, TLS off"); got != off {
		t.Errorf("TLS off:\n got %s\nwant %s", got, off)
	}
	uiDo(t, ctx, "turn TLS on", chromedp.Click(chromedp.ID("pop3-tls")))
	if got := tlsFields("TLS fields, TLS on"); got != on {
		t.Errorf("after turning TLS on:\n got %s\nwant %s", got, on)
	}
	uiDo(t, ctx, "type a cipher suite", chromedp.SendKeys(chromedp.ID("pop3-cipher-suite"), "HIGH"))
	uiDo(t, ctx, "turn TLS off", chromedp.Click(chromedp.ID("pop3-tls")))
	if got := tlsFields("TLS fields, TLS off again"); got != off {
		t.Errorf("after turning TLS off again:\n got %s\nwant %s", got, off)
	}

	// A bad Clients entry: its error is under that entry, above the next row.
	uiDo(t, ctx, "SMTP settings",
		chromedp.Navigate(n.url+"/sensors/dc-frankfurt/smtp"),
		chromedp.WaitVisible(chromedp.ID("smtp-title")),
		chromedp.SendKeys(chromedp.ID("smtp-clients-new"), "10.0.0.1/8"),
	)
	if status := uiSubmit(t, ctx, "apply a bad client", `form.settings button.btn-primary`); status != 422 {
		t.Fatalf("apply a bad client: status %d, want 422", status)
	}
	where := uiRun(t, ctx, "where the error is", chromedp.Evaluate[string](`(() => {
		const top = id => document.getElementById(id).getBoundingClientRect().top;
		const entry = document.getElementById("smtp-clients-0").getBoundingClientRect();
		return top("smtp-clients-0-err") >= entry.bottom && top("smtp-clients-0-err") < top("smtp-clients-new") ? "beside its entry" : "elsewhere";
	})()`))
	if where != "beside its entry" {
		t.Errorf("the entry's error is %s, want it under the entry, before the next row", where)
	}
	// Remove the blank row, so the bad one is last, and add a row: the new
	// row is a copy of the last one, without its value or its error.
	uiDo(t, ctx, "remove the blank row, add one",
		chromedp.Click(chromedp.CSS(`#smtp-clients-new + [data-remove]`)),
		chromedp.Click(chromedp.CSS(`[data-add="smtp-clients"]`)),
	)
	added := uiRun(t, ctx, "the added row", chromedp.Evaluate[string](`(() => {
		const rows = document.querySelectorAll("#smtp-clients .list-row"), last = rows[rows.length - 1], input = last.querySelector("input");
		return rows.length + " rows; the new one: " + JSON.stringify(input.value) + ", errors " + last.querySelectorAll(".entry-error").length + ", invalid " + input.hasAttribute("aria-invalid");
	})()`))
	if want := `2 rows; the new one: "", errors 0, invalid false`; added != want {
		t.Errorf("after adding a row: %s, want %s", added, want)
	}
}

// TestAPINullBodyKeepsTheSensorListening: a PUT of null to a running
// sensor's integrations (or to the tenant's export) is refused and changes
// nothing: after the sensor applied a later configuration, its SMTP
// listener still takes connections and the POP3 password is still stored.
func TestAPINullBodyKeepsTheSensorListening(t *testing.T) {
	n := startUINode(t)
	n.runLocalSensor(t)
	ctx, id := t.Context(), n.ready.LocalSensorID
	c, err := api.NewClient(api.Config{Address: n.url, Username: "admin", Password: uiAdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	listen := loopbackPort(t)
	if _, _, err := c.PutSMTP(ctx, id, smtpConfig(listen), 0); err != nil {
		t.Fatal(err)
	}
	const secret = "journal-Pa55word"
	pop3 := &api.POP3Integration{Server: "mail.example.com", Port: 995, IntervalSeconds: 60, TLS: true,
		Username: "journal", Password: secret, TLSCertificate: api.TrustedOnly}
	_, v, err := c.PutPOP3(ctx, id, pop3, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitSensor(t, c, id, fmt.Sprintf("version %d applied", v), func(s *api.Sensor) bool { return s.AppliedVersion == v })
	if conn, err := net.Dial("tcp", listen); err != nil {
		t.Fatalf("the SMTP listener is not up: %v", err)
	} else {
		conn.Close()
	}

	for _, path := range []string{"/api/v1/sensors/" + id + "/smtp", "/api/v1/sensors/" + id + "/pop3", "/api/v1/tenants/default/export"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, n.url+path, strings.NewReader("null"))
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth("admin", uiAdminPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("PUT %s null: got %d %s, want 400", path, resp.StatusCode, body)
		}
	}

	// A later configuration, applied after anything written before it.
	pop3.Password, pop3.IntervalSeconds = "", 120
	_, v, err = c.PutPOP3(ctx, id, pop3, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitSensor(t, c, id, fmt.Sprintf("version %d applied", v), func(s *api.Sensor) bool { return s.AppliedVersion == v })
	if conn, err := net.Dial("tcp", listen); err != nil {
		t.Errorf("the SMTP listener stopped after a PUT of null: %v", err)
	} else {
		conn.Close()
	}
	if smtpNow, _, err := c.SMTP(ctx, id); err != nil {
		t.Error(err)
	} else if !smtpNow.Enabled || smtpNow.Listen != listen {
		t.Errorf("SMTP after a PUT of null: enabled %v, listen %q; want it unchanged", smtpNow.Enabled, smtpNow.Listen)
	}
	if stored, _, err := n.store.GetPOP3(ctx, store.AllTenants(), id); err != nil || stored.GetPassword() != secret {
		t.Errorf("the POP3 password after a PUT of null: kept %v (%v), want it kept", stored.GetPassword() == secret, err)
	}
}

func TestBrowserAdminPages(t *testing.T) {
	ctx := newBrowser(t)
	n := startUINode(t)
	n.seed(t)
	uiSignIn(t, ctx, n.url, "admin", uiAdminPassword)

	// Users: list, and create one.
	uiDo(t, ctx, "users",
		chromedp.Navigate(n.url+"/users"),
		chromedp.WaitVisible(chromedp.ID("new-user-title")),
		chromedp.SendKeys(chromedp.ID("user-name"), "soc.analyst"),
		chromedp.SetValue(chromedp.ID("user-role"), "security-auditor"),
		chromedp.Click(chromedp.ID("user-all-tenants")),
		chromedp.SendKeys(chromedp.ID("user-password"), "auditor-password-1"),
		chromedp.SendKeys(chromedp.ID("user-confirm"), "auditor-password-1"),
	)
	if status := uiSubmit(t, ctx, "create user", `form.stacked button.btn-primary`); status != 200 {
		t.Fatalf("create user: status %d", status)
	}
	uiDo(t, ctx, "user created", chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	if _, _, err := n.store.GetUser(t.Context(), store.AllTenants(), "soc.analyst"); err != nil {
		t.Fatalf("the new user: %v", err)
	}
	uiScreenshot(t, ctx, "users")

	// Join tokens: create one, see it once with its command line.
	uiDo(t, ctx, "tokens",
		chromedp.Navigate(n.url+"/tokens"),
		chromedp.WaitVisible(chromedp.ID("new-token-title")),
		chromedp.SetValue(chromedp.ID("token-tenant"), "acme"),
		chromedp.SendKeys(chromedp.ID("token-description"), "Acme branch offices"),
	)
	if status := uiSubmit(t, ctx, "create token", `form.stacked button.btn-primary`); status != 201 {
		t.Fatalf("create token: status %d", status)
	}
	token := uiRun(t, ctx, "token", chromedp.Value(chromedp.ID("issued-secret")))
	command := uiRun(t, ctx, "command", chromedp.Text(chromedp.ID("issued-command")))
	want := "osprey sensor --central " + n.ready.GRPCAddr + " --join-token " + token + " --data-dir /var/lib/osprey-sensor --name NAME"
	if token == "" || command != want {
		t.Errorf("command line:\n got %q\nwant %q", command, want)
	}
	uiScreenshot(t, ctx, "tokens")
	uiDo(t, ctx, "tokens again", chromedp.Navigate(n.url+"/tokens"), chromedp.WaitVisible(chromedp.ID("tokens-title")))
	if src := uiPageSource(t, ctx); strings.Contains(src, token) {
		t.Errorf("the token is shown a second time")
	}

	// Cluster: this node, the members gossip sees, and the DNS answers.
	uiDo(t, ctx, "cluster", chromedp.Navigate(n.url+"/cluster"), chromedp.WaitVisible(chromedp.ID("members-title")))
	page := uiRun(t, ctx, "cluster page", chromedp.Text(chromedp.CSS("main")))
	for _, want := range []string{"hq-1", n.ready.GRPCAddr, "hq-1 this node", "alive", "central.osprey.internal."} {
		if !strings.Contains(page, want) {
			t.Errorf("the cluster page lacks %q", want)
		}
	}
}

func TestBrowserTenantOperatorIsConfinedToTenant(t *testing.T) {
	ctx := newBrowser(t)
	n := startUINode(t)
	n.seed(t)
	uiSignIn(t, ctx, n.url, "operator", uiOperatorPassword)

	list := uiRun(t, ctx, "server list", chromedp.Text(chromedp.ID("sensor-table")))
	if !strings.Contains(list, "acme-mail") || strings.Contains(list, "branch-paris") || strings.Contains(list, "dc-frankfurt") {
		t.Errorf("the operator's server list: %q, want acme-mail only", list)
	}
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(n.url+"/sensors/branch-paris/smtp"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 404 {
		t.Errorf("another tenant's sensor by URL: status %d, want 404", resp.Status)
	}
	if h := uiRun(t, ctx, "heading", chromedp.Text(chromedp.CSS("h1"))); h != "Not Found" {
		t.Errorf("heading %q, want Not Found", h)
	}
	if src := uiPageSource(t, ctx); strings.Contains(src, `id="smtp-title"`) {
		t.Errorf("the 404 page shows the sensor's settings")
	}
	// The operator's own sensor is reachable.
	resp, err = chromedp.Run(ctx, chromedp.NavigateResponse(n.url+"/sensors/acme-mail/pop3"))
	if err != nil || resp.Status != 200 {
		t.Errorf("own sensor: %v, %v", resp, err)
	}
}

// runLocalSensor runs the node's own Sensor component in this process, as
// `osprey dev` does, until the test ends.
func (n *uiNode) runLocalSensor(t *testing.T) {
	t.Helper()
	dataDir := t.TempDir() // removed after the sensor stopped
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- sensor.Run(ctx, sensor.Options{Central: n.ready.GRPCAddr, JoinToken: n.ready.LocalSensorJoinToken,
			DataDir: dataDir, Name: n.ready.LocalSensorID, Logger: errorLogger()})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("local sensor: %v", err)
		}
	})
}

// listenSMTP enables the SMTP integration of the node's own sensor on a
// loopback port and waits until the sensor applied it; it returns an API
// client of the node's admin and the port.
func (n *uiNode) listenSMTP(t *testing.T) (*api.Client, string) {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: n.url, Username: "admin", Password: uiAdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	listen := loopbackPort(t)
	_, v, err := c.PutSMTP(t.Context(), n.ready.LocalSensorID, smtpConfig(listen), 0)
	if err != nil {
		t.Fatal(err)
	}
	waitSensor(t, c, n.ready.LocalSensorID, fmt.Sprintf("version %d applied", v), func(s *api.Sensor) bool { return s.AppliedVersion == v })
	return c, listen
}

// sendMail sends one message with a text body and, when attachmentName is
// not empty, an attachment, to bob@example.com through the SMTP listener at addr.
func sendMail(t *testing.T, addr, subject, body, attachmentName string, attachment []byte) {
	t.Helper()
	var msg strings.Builder
	fmt.Fprintf(&msg, "From: Mallory <mallory@evil.example>\r\nTo: Bob <bob@example.com>\r\nSubject: %s\r\n"+
		"Message-ID: <%d@evil.example>\r\nDate: %s\r\nMIME-Version: 1.0\r\n",
		mime.QEncoding.Encode("utf-8", subject), time.Now().UnixNano(), time.Now().Format(time.RFC1123Z))
	const boundary = "osprey-browser-test"
	fmt.Fprintf(&msg, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
	fmt.Fprintf(&msg, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", boundary, body)
	if attachmentName != "" {
		fmt.Fprintf(&msg, "--%s\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=%q\r\n"+
			"Content-Transfer-Encoding: base64\r\n\r\n%s\r\n", boundary, attachmentName, base64.StdEncoding.EncodeToString(attachment))
	}
	fmt.Fprintf(&msg, "--%s--\r\n", boundary)
	// Plain SMTP (smtp.SendMail would take the offered STARTTLS and check
	// the sensor's self-signed certificate).
	if err := smtpSend(addr, "localhost", "mallory@evil.example", "bob@example.com", false, msg.String()); err != nil {
		t.Fatalf("send %q: %v", subject, err)
	}
}

// TestBrowserAlertsAndRules: a rule is added in the Rules page (an invalid
// value first, refused beside the field), mail sent through the node's own
// sensor raises alerts, and the Alerts page lists them, newest first, with
// their detail; what the sender wrote is shown as text.
func TestBrowserAlertsAndRules(t *testing.T) {
	ctx := newBrowser(t)
	n := startUINode(t)
	n.seed(t)
	n.runLocalSensor(t)
	_, listen := n.listenSMTP(t)
	uiSignIn(t, ctx, n.url, "admin", uiAdminPassword)

	// Rules: an invalid value is refused beside the field, and nothing is saved.
	uiDo(t, ctx, "rules page",
		chromedp.Click(chromedp.CSS(`.mainnav a[href="/rules"]`)),
		chromedp.WaitVisible(chromedp.ID("new-rule-title")),
		chromedp.SetValue(chromedp.ID("rule-kind"), "url_host"),
		chromedp.SendKeys(chromedp.ID("rule-value"), "https://pay.evil.example/login"),
		chromedp.SetValue(chromedp.ID("rule-severity"), "critical"),
		chromedp.SendKeys(chromedp.ID("rule-description"), "Payment phishing campaign"),
	)
	if status := uiSubmit(t, ctx, "add an invalid rule", `#rule-form button.btn-primary`); status != 422 {
		t.Fatalf("add a rule with a URL as host: status %d, want 422", status)
	}
	if msg := uiRun(t, ctx, "value error", chromedp.Text(chromedp.ID("rule-value-err"))); msg == "" {
		t.Errorf("no error beside the value")
	}
	if rules, err := n.store.ListRules(t.Context(), store.AllTenants(), "default"); err != nil || len(rules) != 0 {
		t.Fatalf("rules after an invalid form: %v, %v", rules, err)
	}
	uiDo(t, ctx, "fix the value",
		chromedp.Clear(chromedp.ID("rule-value")),
		chromedp.SendKeys(chromedp.ID("rule-value"), "evil.example"),
	)
	if status := uiSubmit(t, ctx, "add the rule", `#rule-form button.btn-primary`); status != 200 {
		t.Fatalf("add the rule: status %d", status)
	}
	uiDo(t, ctx, "rule added", chromedp.WaitVisible(chromedp.CSS(".flash-ok")))
	rules, err := n.store.ListRules(t.Context(), store.AllTenants(), "default")
	if err != nil || len(rules) != 1 || rules[0].GetValue() != "evil.example" || rules[0].GetSeverity() != ospreyv1.Severity_SEVERITY_CRITICAL {
		t.Fatalf("rules after adding one: %v, %v", rules, err)
	}
	ruleID := rules[0].GetId()
	uiDo(t, ctx, "rule listed", chromedp.WaitVisible(chromedp.CSS(`tr[data-rule="`+ruleID+`"]`)))
	uiScreenshot(t, ctx, "rules")

	// Mail through the node's own sensor: a hostile subject and file name
	// first, then EICAR with a link to the host the rule names.
	const xssSubject = `<script>alert(1)</script>`
	const xssName = `"><img src=x onerror=alert(1)>.pdf`
	waitAlerts := func(want int) {
		t.Helper()
		testwait.For(t, fmt.Sprintf("%d alerts", want), func() bool {
			page, err := n.db.ListAlerts(t.Context(), store.AllTenants(), sqlstore.AlertQuery{Tenant: "default"})
			if err != nil {
				t.Fatal(err)
			}
			return len(page.Alerts) == want
		})
	}
	sendMail(t, listen, xssSubject, "Nothing to see.", xssName, []byte(eicarTestFile))
	waitAlerts(1)
	sendMail(t, listen, "Overdue invoice #4471", "Pay today at https://pay.evil.example/invoice/4471 to avoid fees.",
		"invoice-4471.com", []byte(eicarTestFile))
	waitAlerts(2)

	// The Alerts page lists both, newest first.
	uiDo(t, ctx, "alerts page",
		chromedp.Click(chromedp.CSS(`.mainnav a[href="/alerts"]`)),
		chromedp.WaitVisible(chromedp.ID("alert-table")),
	)
	subjects := uiRun(t, ctx, "subjects", chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll("#alert-table td.subject a")).map(a => a.textContent)`))
	if len(subjects) != 2 || subjects[0] != "Overdue invoice #4471" || subjects[1] != xssSubject {
		t.Errorf("alert subjects %q, want the invoice, then the hostile subject as text", subjects)
	}
	firstRow := uiRun(t, ctx, "first row", chromedp.Text(chromedp.CSS(`#alert-table tbody tr:first-child`)))
	for _, want := range []string{"critical", "hq-1", "SMTP", "mallory@evil.example", "bob@example.com", "detected", "eicar", ruleID} {
		if !strings.Contains(firstRow, want) {
			t.Errorf("the first row lacks %q: %q", want, firstRow)
		}
	}
	uiScreenshot(t, ctx, "alerts")

	// Its detail: envelope, headers, every match, attachments with hashes.
	uiDo(t, ctx, "alert detail",
		chromedp.Click(chromedp.CSS(`#alert-table tbody tr:first-child td.subject a`)),
		chromedp.WaitVisible(chromedp.ID("matches-title")),
	)
	detail := uiRun(t, ctx, "detail", chromedp.Text(chromedp.CSS("main")))
	sum := sha256.Sum256([]byte(eicarTestFile))
	for _, want := range []string{"Overdue invoice #4471", "mallory@evil.example", "bob@example.com", "Mallory <mallory@evil.example>",
		"EICAR-Test-File", ruleID, "pay.evil.example", "invoice-4471.com", hex.EncodeToString(sum[:]), "hq-1"} {
		if !strings.Contains(detail, want) {
			t.Errorf("the alert detail lacks %q", want)
		}
	}
	uiScreenshot(t, ctx, "alert-detail")
	uiDo(t, ctx, "scroll to the headers", chromedp.Evaluate[chromedp.Void](
		`document.getElementById("headers-title").scrollIntoView({block: "start"}); window.scrollBy(0, -24)`))
	uiScreenshot(t, ctx, "alert-detail-headers")

	// The hostile alert: its subject and file name are text, no element.
	uiDo(t, ctx, "hostile alert",
		chromedp.Navigate(n.url+"/alerts"),
		chromedp.WaitVisible(chromedp.ID("alert-table")),
		chromedp.Click(chromedp.CSS(`#alert-table tbody tr:nth-child(2) td.subject a`)),
		chromedp.WaitVisible(chromedp.ID("attachments-title")),
	)
	if h := uiRun(t, ctx, "hostile subject", chromedp.Text(chromedp.ID("alert-subject"))); h != xssSubject {
		t.Errorf("the subject reads %q, want %q", h, xssSubject)
	}
	names := uiRun(t, ctx, "attachment names", chromedp.Text(chromedp.ID("attachment-table")))
	injected := uiRun(t, ctx, "injected elements", chromedp.Evaluate[int](`document.querySelectorAll('main img, main script').length`))
	if !strings.Contains(names, xssName) || injected != 0 {
		t.Errorf("attachment names %q, %d injected elements; want the name as text and none", names, injected)
	}
}

// sendAuditMail sends one message from `from` to `to` through the SMTP
// listener at addr, saying HELO helo, over STARTTLS when startTLS (without
// checking the sensor's self-signed certificate), with the EICAR file
// attached when eicar.
func sendAuditMail(t *testing.T, addr, helo, from, to, subject string, startTLS, eicar bool) {
	t.Helper()
	var msg strings.Builder
	fmt.Fprintf(&msg, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%d@%s>\r\nDate: %s\r\nMIME-Version: 1.0\r\n",
		from, to, mime.QEncoding.Encode("utf-8", subject), time.Now().UnixNano(), helo, time.Now().Format(time.RFC1123Z))
	const boundary = "osprey-audit-test"
	fmt.Fprintf(&msg, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
	fmt.Fprintf(&msg, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n", boundary)
	if eicar {
		fmt.Fprintf(&msg, "--%s\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"eicar.com\"\r\n"+
			"Content-Transfer-Encoding: base64\r\n\r\n%s\r\n", boundary, base64.StdEncoding.EncodeToString([]byte(eicarTestFile)))
	}
	fmt.Fprintf(&msg, "--%s--\r\n", boundary)
	if err := smtpSend(addr, helo, from, to, startTLS, msg.String()); err != nil {
		t.Fatalf("send %q: %v", subject, err)
	}
}

// smtpSend sends msg from `from` to `to` through the SMTP listener at
// addr, saying HELO helo, over STARTTLS when startTLS (without checking the
// sensor's self-signed certificate).
func smtpSend(addr, helo, from, to string, startTLS bool, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		return err
	}
	if startTLS {
		if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
			return err
		}
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// TestBrowserAuditLog: the Audit log page shows mail that the node's own
// sensor took (one message in plain SMTP, one over STARTTLS with the EICAR
// file) and refusals recorded as a sensor's report records them, newest
// first; its filters narrow it and refuse a bad value beside the field, a
// refusal opens to its detail, and a message's timeline names the sensor,
// the client, TLS, the central node and the verdict, and leads to its alert.
func TestBrowserAuditLog(t *testing.T) {
	ctx := newBrowser(t)
	n := startUINode(t)
	n.seed(t)
	n.runLocalSensor(t)
	_, listen := n.listenSMTP(t)

	sendAuditMail(t, listen, "mx.example.org", "alice@example.org", "ceo@example.com", "Quarterly figures", false, false)
	sendAuditMail(t, listen, "mx.evil.example", "mallory@evil.example", "bob@example.com", "Overdue invoice #4471", true, true)
	testwait.For(t, "2 accepted messages in the audit log", func() bool {
		page, err := n.db.ListAudit(t.Context(), store.AllTenants(), sqlstore.AuditQuery{Tenant: "default", Kind: sqlstore.AuditAccepted})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Events) == 2
	})
	// Refusals, as the sensor's report of them is recorded.
	for _, r := range []sqlstore.Refusal{
		{ClientIP: "127.0.0.1", Reason: "recipient_refused", Count: 3, MailFrom: "spammer@bulk.example", Rcpt: "payroll@hr.example.com",
			Detail: "550 5.7.1 recipient outside the destination domains"},
		{ClientIP: "198.51.100.7", Reason: "tls_invalid_client_certificate", Count: 1, Detail: "x509: certificate signed by unknown authority"},
	} {
		now := time.Now()
		r.Minute, r.FirstAt, r.LastAt = now.Truncate(time.Minute), now, now
		if err := n.db.RecordRefusals(t.Context(), store.AllTenants(), "default", n.ready.LocalSensorID, []sqlstore.Refusal{r}); err != nil {
			t.Fatal(err)
		}
	}

	uiSignIn(t, ctx, n.url, "admin", uiAdminPassword)
	uiDo(t, ctx, "audit log",
		chromedp.Click(chromedp.CSS(`.mainnav a[href="/audit"]`)),
		chromedp.WaitVisible(chromedp.ID("audit-table")),
	)
	rows := func(what string) []string {
		t.Helper()
		return uiRun(t, ctx, what, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#audit-table tbody tr[data-event]")).map(r =>
			r.dataset.event + " " + r.querySelector("td.subject").textContent.trim() + " " + r.querySelector("td.outcome .badge").textContent.trim())`))
	}
	want := []string{
		"refused — tls_invalid_client_certificate",
		"refused — recipient_refused",
		"accepted Overdue invoice #4471 detected",
		"accepted Quarterly figures clean",
	}
	if got := rows("the log"); !cmp.Equal(got, want) {
		t.Errorf("the log, newest first:\n got %q\nwant %q", got, want)
	}
	// A refusal unfolds its detail, folded at first.
	const toggle = `tr[data-key$="/recipient_refused"] [data-toggle-row]`
	detailID := uiRun(t, ctx, "the refusal's detail row", chromedp.Evaluate[string](`document.querySelector('`+toggle+`').getAttribute("aria-controls")`))
	shown := func() string {
		t.Helper()
		return uiRun(t, ctx, "detail shown", chromedp.Evaluate[string](`getComputedStyle(document.getElementById("`+detailID+`")).display + " " +
			document.querySelector('`+toggle+`').getAttribute("aria-expanded")`))
	}
	if got := shown(); got != "none false" {
		t.Errorf("the refusal's detail before a click: %s, want none false", got)
	}
	uiDo(t, ctx, "open a refusal", chromedp.Click(chromedp.CSS(toggle)))
	if got := shown(); got != "table-row true" {
		t.Errorf("the refusal's detail after a click: %s, want table-row true", got)
	}
	detail := uiRun(t, ctx, "refusal detail", chromedp.Text(chromedp.ID(detailID)))
	for _, want := range []string{"3 times", "127.0.0.1", "spammer@bulk.example", "payroll@hr.example.com", "550 5.7.1 recipient outside"} {
		if !strings.Contains(detail, want) {
			t.Errorf("the refusal's detail lacks %q: %q", want, detail)
		}
	}
	uiDo(t, ctx, "fold the refusal", chromedp.Click(chromedp.CSS(toggle)))
	if got := shown(); got != "none false" {
		t.Errorf("the refusal's detail after a second click: %s, want none false", got)
	}
	uiScreenshot(t, ctx, "audit")

	// Filters: a bad client address is refused beside its field.
	uiDo(t, ctx, "filter by a bad client", chromedp.SendKeys(chromedp.ID("au-client"), "not-an-ip"))
	if status := uiSubmit(t, ctx, "filter", `form.audit-filters button[type="submit"]`); status != 400 {
		t.Fatalf("a bad client address: status %d, want 400", status)
	}
	if msg := uiRun(t, ctx, "client error", chromedp.Text(chromedp.ID("au-client-err"))); !strings.Contains(msg, "not an IP address") {
		t.Errorf("the error beside Client IP is %q", msg)
	}
	// A reason keeps the refusals of that reason.
	uiDo(t, ctx, "filter by reason",
		chromedp.Clear(chromedp.ID("au-client")),
		chromedp.SetValue(chromedp.ID("au-reason"), "tls_invalid_client_certificate"),
	)
	if status := uiSubmit(t, ctx, "filter", `form.audit-filters button[type="submit"]`); status != 200 {
		t.Fatalf("filter by reason: status %d", status)
	}
	if got := rows("by reason"); !cmp.Equal(got, want[:1]) {
		t.Errorf("filtered by reason: %q, want %q", got, want[:1])
	}
	// Accepted messages with a subject, and the detail of one.
	uiDo(t, ctx, "filter by subject",
		chromedp.SetValue(chromedp.ID("au-reason"), ""),
		chromedp.SetValue(chromedp.ID("au-kind"), "accepted"),
		chromedp.SendKeys(chromedp.ID("au-subject"), "INVOICE"),
	)
	if status := uiSubmit(t, ctx, "filter", `form.audit-filters button[type="submit"]`); status != 200 {
		t.Fatalf("filter by subject: status %d", status)
	}
	if got := rows("by subject"); !cmp.Equal(got, want[2:3]) {
		t.Errorf("filtered by subject: %q, want %q", got, want[2:3])
	}
	row := uiRun(t, ctx, "the row", chromedp.Text(chromedp.CSS(`#audit-table tbody tr`)))
	for _, want := range []string{"accepted", "SMTP", n.ready.LocalSensorID, "127.0.0.1", "mallory@evil.example", "bob@example.com", "detected", "alert"} {
		if !strings.Contains(row, want) {
			t.Errorf("the row lacks %q: %q", want, row)
		}
	}
	uiDo(t, ctx, "message detail",
		chromedp.Click(chromedp.CSS(`#audit-table tbody tr td.subject a`)),
		chromedp.WaitVisible(chromedp.ID("audit-timeline")),
	)
	for id, want := range map[string][]string{
		"step-received": {"Received by sensor " + n.ready.LocalSensorID, "From the client 127.0.0.1:", "which said HELO mx.evil.example", "over TLS"},
		"step-uploaded": {"Uploaded to central node hq-1", "to 1 recipient"},
		"step-scanned":  {"Scanned: detected"},
		"step-alert":    {"Alert raised"},
		"audit-headers": {"mallory@evil.example", "Overdue invoice #4471", "@mx.evil.example", "using TLS1.3"},
	} {
		got := uiRun(t, ctx, id, chromedp.Text(chromedp.ID(id)))
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("#%s lacks %q: %q", id, w, got)
			}
		}
	}
	uiScreenshot(t, ctx, "audit-message")
	uiDo(t, ctx, "its alert",
		chromedp.Click(chromedp.ID("audit-alert-link")),
		chromedp.WaitVisible(chromedp.ID("matches-title")),
	)
	if subject := uiRun(t, ctx, "alert subject", chromedp.Text(chromedp.ID("alert-subject"))); subject != "Overdue invoice #4471" {
		t.Errorf("the alert's subject is %q", subject)
	}
	// The plain message: without TLS, and no alert.
	uiDo(t, ctx, "the clean message",
		chromedp.Navigate(n.url+"/audit?kind=accepted&subject=quarterly"),
		chromedp.WaitVisible(chromedp.ID("audit-table")),
		chromedp.Click(chromedp.CSS(`#audit-table tbody tr td.subject a`)),
		chromedp.WaitVisible(chromedp.ID("audit-timeline")),
	)
	for id, want := range map[string]string{"step-received": "without TLS", "step-alert": "No alert"} {
		if got := uiRun(t, ctx, id, chromedp.Text(chromedp.ID(id))); !strings.Contains(got, want) {
			t.Errorf("#%s of the clean message lacks %q: %q", id, want, got)
		}
	}
}

// errorLogger is the logger of the nodes these tests run in process: their
// errors go to standard error, which go test shows when the package fails
// (even when the process exits without a test failing).
func errorLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}
