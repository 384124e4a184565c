package tests

import (
	"context"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/store"
	"github.com/ospreysec/osprey/internal/testwait"
	"github.com/ospreysec/osprey/pkg/jointoken"
	"github.com/ospreysec/osprey/pkg/pki"
	"github.com/ospreysec/osprey/pkg/pop3/pop3test"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
	"github.com/ospreysec/osprey/sensor"
)

// statusPollInterval is the POP3 poll interval of the tests here, the
// least the configuration allows: trouble must show within two of them.
const statusPollInterval = 10 * time.Second

// TestPOP3TroubleIsVisible: a real sensor, whose periodic status comes only
// once an hour, polls a real Dovecot over plain POP3. A closed port (Dovecot
// stopped), a wrong password and a hostile server (a greeting of 10 MB
// without CRLF) each show within two poll intervals as the sensor's POP3
// state "failing" with the error and its time, in the API, in "osprey ctl
// sensor get", "sensor status" and "sensors list", and on the server list
// and the sensor's status page; each clears within two poll intervals once
// the fault is gone. The RISK of TLS being off shows all along, styled as
// such.
func TestPOP3TroubleIsVisible(t *testing.T) {
	pop3test.Require(t)
	n := startUINode(t)
	c, err := api.NewClient(api.Config{Address: n.url, Username: "admin", Password: uiAdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	const id = "branch-oslo"
	n.runStatusSensor(t, id, time.Hour)
	waitSensor(t, c, id, "online", func(s *api.Sensor) bool { return s.Online })

	cert, key, err := pki.SelfSigned("mail.test", []string{"localhost", "127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dovecot := pop3test.StartDovecot(t, pop3test.DovecotOptions{
		Users: map[string]string{"journal": "secret"}, CertPEM: cert, KeyPEM: key,
	})
	hostile := startHostilePOP3(t, 10<<20)
	ui := signInUI(t, n.url, "admin", uiAdminPassword)
	ctlEnv := []string{"OSPREY_ADDRESS=" + n.url, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + uiAdminPassword}

	put := func(addr, password string) {
		t.Helper()
		host, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		_, v, err := c.PutPOP3(t.Context(), id, &api.POP3Integration{
			Enabled: true, Server: host, Port: uint32(p), IntervalSeconds: uint32(statusPollInterval / time.Second),
			Username: "journal", Password: password,
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		waitSensor(t, c, id, fmt.Sprintf("version %d applied", v), func(s *api.Sensor) bool { return s.AppliedVersion >= v })
	}
	// failing waits (two poll intervals at most) until the API shows POP3
	// failing with an error that matches want, then checks the CLI and
	// the UI show it too.
	failing := func(want *regexp.Regexp) {
		t.Helper()
		s := waitPOP3(t, c, id, "failing with "+want.String(), func(st *api.IntegrationStatus) bool {
			return st.State == api.IntegrationFailing && want.MatchString(st.LastError)
		})
		st := s.POP3Status
		if st.LastErrorAt.IsZero() || st.FailingSince.IsZero() || st.Failures == 0 {
			t.Errorf("POP3 failing: got last_error_at %v, failing_since %v, failures %d; want them set", st.LastErrorAt, st.FailingSince, st.Failures)
		}
		if !hasProblem(s.Problems, api.ProblemError, st.LastError) {
			t.Errorf("problems %+v: want an error problem with %q", s.Problems, st.LastError)
		}
		if f := s.Faults(); len(f) == 0 || f[0].Part != "pop3" {
			t.Errorf("faults %+v: want pop3 first", f)
		}

		r := runOsprey(t, ctlEnv, "ctl", "sensor", "get", id)
		if r.code != 0 || !strings.Contains(r.stdout, `"state": "failing"`) || !strings.Contains(r.stdout, jsonString(st.LastError)) ||
			!strings.Contains(r.stdout, `"last_error_at": "`) {
			t.Errorf("ctl sensor get: exit %d, stderr %q\n%s\nwant the POP3 state failing, its error %q and its time", r.code, r.stderr, r.stdout, st.LastError)
		}
		r = runOsprey(t, ctlEnv, "ctl", "sensor", "status", id)
		if r.code != 0 || !regexp.MustCompile(`(?m)^POP3:\s+failing journal@`).MatchString(r.stdout) ||
			!strings.Contains(r.stdout, st.LastErrorAt.UTC().Format(time.RFC3339)) || !strings.Contains(r.stdout, oneLineText(st.LastError)) ||
			!regexp.MustCompile(`(?m)^\s+RISK\s+RISK: pop3 `).MatchString(r.stdout) {
			t.Errorf("ctl sensor status: exit %d, stderr %q\n%s\nwant POP3 failing with its error and time, and the RISK", r.code, r.stderr, r.stdout)
		}
		r = runOsprey(t, ctlEnv, "ctl", "sensors", "list")
		if r.code != 0 || !regexp.MustCompile(`(?m)^`+id+`\s+\S+\s+remote\s+default\s+approved\s+true\s+disabled\s+failing\s+ok\s.*\s1 risk,1 error\s.*pop3: `).MatchString(r.stdout) {
			t.Errorf("ctl sensors list: exit %d, stderr %q\n%s\nwant %s remote, SMTP disabled, POP3 failing, spool ok, 1 risk and 1 error, a pop3 error", r.code, r.stderr, r.stdout, id)
		}

		list := ui.get(t, "/sensors")
		row := sensorRowHTML(t, list, id)
		for _, want := range []string{`class="badge part-failing"`, `class="badge part-disabled"`, "Remote sensor",
			`class="problem problem-risk"`, html.EscapeString("pop3: " + st.LastError)} {
			if !strings.Contains(row, want) {
				t.Errorf("server list row of %s: no %s in\n%s", id, want, row)
			}
		}
		page := ui.get(t, "/sensors/"+id+"/status")
		for _, want := range []string{`class="badge part-failing"`, html.EscapeString(st.LastError), `class="problem problem-risk"`, `class="problem problem-error"`} {
			if !strings.Contains(page, want) {
				t.Errorf("status page of %s: no %s", id, want)
			}
		}
	}
	// clear waits (two poll intervals at most) until POP3 works again, and
	// checks the error is gone from the API, the CLI and the UI.
	clear := func() {
		t.Helper()
		s := waitPOP3(t, c, id, "polling again", func(st *api.IntegrationStatus) bool {
			return st.State == api.IntegrationPolling && st.LastError == "" && !st.LastSuccessAt.IsZero()
		})
		if !s.Healthy || len(s.Faults()) != 0 || hasProblem(s.Problems, api.ProblemError, "") {
			t.Errorf("after the fault: healthy %v, faults %+v, problems %+v; want healthy, none, no error", s.Healthy, s.Faults(), s.Problems)
		}
		r := runOsprey(t, ctlEnv, "ctl", "sensors", "list")
		if r.code != 0 || !regexp.MustCompile(`(?m)^`+id+`\s.*\sdisabled\s+polling\s+ok\s.*\s1 risk\s+-\s*$`).MatchString(r.stdout) {
			t.Errorf("ctl sensors list after the fault:\n%s\nwant POP3 polling and no last error", r.stdout)
		}
		row := sensorRowHTML(t, ui.get(t, "/sensors"), id)
		if !strings.Contains(row, `class="badge part-polling"`) || strings.Contains(row, "pop3: ") {
			t.Errorf("server list row after the fault:\n%s\nwant POP3 polling and no error", row)
		}
	}

	t.Run("closed port", func(t *testing.T) {
		dovecot.Kill()
		put(dovecot.PlainAddr, "secret")
		failing(regexp.MustCompile(`connection refused`))
		dovecot.Start()
		clear()
	})
	t.Run("wrong password", func(t *testing.T) {
		put(dovecot.PlainAddr, "wrong")
		failing(regexp.MustCompile(`^login: .*(?i:auth)`))
		put(dovecot.PlainAddr, "secret")
		clear()
	})
	t.Run("greeting of 10 MB without CRLF", func(t *testing.T) {
		put(hostile.Addr().String(), "secret")
		failing(regexp.MustCompile(`reply line too long`))
		put(dovecot.PlainAddr, "secret")
		clear()
	})
	if hostile.served() == 0 {
		t.Error("the hostile server was never asked")
	}
}

// runStatusSensor runs a real sensor in this process for a new approved
// sensor record id, sending its periodic status every statusInterval, until
// the test ends.
func (n *uiNode) runStatusSensor(t *testing.T, id string, statusInterval time.Duration) {
	t.Helper()
	n.startSensor(t, sensor.Options{JoinToken: n.sensorToken(t, id), DataDir: t.TempDir(), Name: id,
		SpoolMinFreeBytes: sensor.MinSpoolMinFree, StatusInterval: statusInterval})
}

// sensorToken makes an approved sensor record id and returns a join token
// bound to it.
func (n *uiNode) sensorToken(t *testing.T, id string) string {
	t.Helper()
	ctx := t.Context()
	if _, err := n.store.CreateSensor(ctx, store.AllTenants(), &ospreyv1.Sensor{
		Id: id, Tenant: "default", Name: id, State: ospreyv1.SensorState_SENSOR_STATE_APPROVED, CreatedAt: timestamppb.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	jt, err := jointoken.Generate(n.ready.CAHash)
	if err != nil {
		t.Fatal(err)
	}
	tok := &ospreyv1.Token{Id: jt.ID, Kind: ospreyv1.TokenKind_TOKEN_KIND_JOIN, Tenant: "default", SensorId: id,
		SecretHash: jointoken.SecretHash(jt.Secret), MaxUses: 1, UsesLeft: 1, CreatedAt: timestamppb.Now()}
	if _, err := n.store.CreateToken(ctx, store.AllTenants(), tok); err != nil {
		t.Fatal(err)
	}
	return jt.String()
}

// startSensor runs a real sensor in this process with opts, against this
// node, until stop is called or the test ends (before a data dir made
// before this call is removed).
func (n *uiNode) startSensor(t *testing.T, opts sensor.Options) (stop func()) {
	t.Helper()
	opts.Central = n.ready.GRPCAddr
	opts.Logger = errorLogger()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sensor.Run(ctx, opts) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("sensor: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestLowDiskIsVisible: a real sensor whose spool's disk has less free
// space than its floor shows it in the API (spool_status low_disk with the
// free bytes and the floor, an ALERT, SMTP failing, unhealthy), in "osprey
// ctl sensors list" and "sensor status", and on the server list and the
// status page with the ALERT styled as such; started again with a floor
// below the free space, it shows none of it.
func TestLowDiskIsVisible(t *testing.T) {
	n := startUINode(t)
	c, err := api.NewClient(api.Config{Address: n.url, Username: "admin", Password: uiAdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	const id = "branch-bergen"
	opts := sensor.Options{JoinToken: n.sensorToken(t, id), DataDir: t.TempDir(), Name: id,
		SpoolMinFreeBytes: 1 << 60, StatusInterval: 200 * time.Millisecond}
	stop := n.startSensor(t, opts)
	waitSensor(t, c, id, "online", func(s *api.Sensor) bool { return s.Online })
	_, v, err := c.PutSMTP(t.Context(), id, &api.SMTPIntegration{Enabled: true, Listen: loopbackPort(t),
		MaxMessageSize: &api.SizeLimit{Value: 10, Unit: api.MB}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := waitSensor(t, c, id, "low disk reported with SMTP listening", func(s *api.Sensor) bool {
		return s.AppliedVersion == v && s.SpoolStatus != nil && s.SpoolStatus.State == api.SpoolLowDisk &&
			s.SMTPStatus != nil && s.SMTPStatus.State == api.IntegrationFailing
	})
	sp := s.SpoolStatus
	if sp.MinFreeBytes != 1<<60 || sp.FreeBytes == 0 || sp.FreeBytes >= sp.MinFreeBytes || !strings.Contains(sp.Error, "low disk space") {
		t.Errorf("spool status %+v: want the free bytes below the 1 EiB floor and a low disk error", sp)
	}
	if s.Healthy || !hasProblem(s.Problems, api.ProblemAlert, "low disk space") || s.Problems[0].Level != api.ProblemAlert {
		t.Errorf("healthy %v, problems %+v: want unhealthy, an ALERT of low disk space first", s.Healthy, s.Problems)
	}
	if !strings.Contains(s.SMTPStatus.LastError, "low disk space") || s.SMTPStatus.LastErrorAt.IsZero() {
		t.Errorf("SMTP status %+v: want the spool's error and its time", s.SMTPStatus)
	}
	ctlEnv := []string{"OSPREY_ADDRESS=" + n.url, "OSPREY_USERNAME=admin", "OSPREY_PASSWORD=" + uiAdminPassword}
	r := runOsprey(t, ctlEnv, "ctl", "sensors", "list")
	if r.code != 0 || !regexp.MustCompile(`(?m)^`+id+`\s.*\sfailing\s+disabled\s+low_disk\s.*\s1 alert\s.*smtp: spool: low disk space`).MatchString(r.stdout) {
		t.Errorf("ctl sensors list: exit %d, stderr %q\n%s\nwant SMTP failing, POP3 disabled, spool low_disk, 1 alert", r.code, r.stderr, r.stdout)
	}
	r = runOsprey(t, ctlEnv, "ctl", "sensor", "status", id)
	if r.code != 0 || !regexp.MustCompile(`(?m)^Spool:\s+low_disk: `).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^\s+ALERT\s+ALERT: spool .*low disk space`).MatchString(r.stdout) {
		t.Errorf("ctl sensor status: exit %d, stderr %q\n%s\nwant the spool low_disk and its ALERT", r.code, r.stderr, r.stdout)
	}
	ui := signInUI(t, n.url, "admin", uiAdminPassword)
	row := sensorRowHTML(t, ui.get(t, "/sensors"), id)
	for _, want := range []string{`class="problem problem-alert"`, "low disk space", `class="badge part-failing"`} {
		if !strings.Contains(row, want) {
			t.Errorf("server list row: no %s in\n%s", want, row)
		}
	}
	page := ui.get(t, "/sensors/"+id+"/status")
	for _, want := range []string{`class="badge spool-low_disk"`, `class="problem problem-alert"`, "unhealthy"} {
		if !strings.Contains(page, want) {
			t.Errorf("status page: no %s", want)
		}
	}

	// The disk has room again (here: the floor is lowered).
	stop()
	opts.SpoolMinFreeBytes = sensor.MinSpoolMinFree
	n.startSensor(t, opts)
	s = waitSensor(t, c, id, "the spool ok again", func(s *api.Sensor) bool {
		return s.Online && s.SpoolStatus != nil && s.SpoolStatus.State == api.SpoolOK &&
			s.SMTPStatus != nil && s.SMTPStatus.State == api.IntegrationListening
	})
	if !s.Healthy || len(s.Faults()) != 0 || hasProblem(s.Problems, api.ProblemAlert, "") {
		t.Errorf("after: healthy %v, faults %+v, problems %+v; want healthy, no fault, no alert", s.Healthy, s.Faults(), s.Problems)
	}
	row = sensorRowHTML(t, ui.get(t, "/sensors"), id)
	if strings.Contains(row, "problem-alert") || !strings.Contains(row, `class="badge part-listening"`) {
		t.Errorf("server list row after:\n%s\nwant SMTP listening and no alert", row)
	}
}

// waitPOP3 waits until the sensor's POP3 status satisfies ok, and fails t
// unless that took two poll intervals at most.
func waitPOP3(t *testing.T, c *api.Client, id, what string, ok func(*api.IntegrationStatus) bool) *api.Sensor {
	t.Helper()
	start := time.Now()
	var s *api.Sensor
	testwait.For(t, fmt.Sprintf("sensor %s: POP3 %s", id, what), func() bool {
		var err error
		if s, err = c.Sensor(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		return s.POP3Status != nil && ok(s.POP3Status)
	})
	if d, within := time.Since(start), 2*statusPollInterval; d > within {
		t.Errorf("sensor %s: POP3 %s after %v, want within two poll intervals, %v", id, what, d.Round(time.Millisecond), within)
	}
	return s
}

func hasProblem(ps []api.Problem, level api.ProblemLevel, text string) bool {
	for _, p := range ps {
		if p.Level == level && strings.Contains(p.Text, text) {
			return true
		}
	}
	return false
}

// jsonString is s as encoding/json writes it inside quotes (for the few
// characters an error message has that it escapes).
func jsonString(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "<", `\u003c`, ">", `\u003e`, "&", `\u0026`).Replace(s)
}

func oneLineText(s string) string { return strings.Join(strings.Fields(s), " ") }

// hostilePOP3 answers every connection with a greeting of size bytes and no
// CRLF.
type hostilePOP3 struct {
	net.Listener
	mu sync.Mutex
	n  int
}

func (h *hostilePOP3) served() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func startHostilePOP3(t *testing.T, size int) *hostilePOP3 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostilePOP3{Listener: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	greeting := []byte("+OK " + strings.Repeat("x", size-4))
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.n++
			h.mu.Unlock()
			wg.Go(func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				conn.Write(greeting) // the client hangs up once the line is too long
				io.Copy(io.Discard, conn)
			})
		}
	})
	return h
}

// uiClient is a signed-in web UI session over plain HTTP.
type uiClient struct {
	base string
	c    *http.Client
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func signInUI(t *testing.T, base, user, password string) *uiClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	u := &uiClient{base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	t.Cleanup(u.c.CloseIdleConnections)
	m := csrfField.FindStringSubmatch(u.get(t, "/signin"))
	if m == nil {
		t.Fatal("sign-in page: no CSRF field")
	}
	resp, err := u.c.PostForm(base+"/signin", url.Values{"username": {user}, "password": {password}, "csrf": {html.UnescapeString(m[1])}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/sensors" {
		t.Fatalf("sign in: got %d at %s, want 200 at /sensors", resp.StatusCode, resp.Request.URL)
	}
	return u
}

func (u *uiClient) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := u.c.Get(u.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %d\n%s", path, resp.StatusCode, b)
	}
	return string(b)
}

// sensorRowHTML is the server list's row of sensor id.
func sensorRowHTML(t *testing.T, page, id string) string {
	t.Helper()
	i := strings.Index(page, `<tr data-sensor="`+id+`">`)
	if i < 0 {
		t.Fatalf("server list: no row of %s", id)
	}
	row := page[i:]
	if j := strings.Index(row, "</tr>"); j >= 0 {
		row = row[:j]
	}
	return row
}

// TestBrowserServerListShowsTrouble: in Chromium, the server list shows a
// real sensor's POP3 failing (a closed port) with its error and its RISK,
// turns to polling without a reload once the integration points at a
// working server, and the sensor's status page shows the problems by level
// and the POP3 details.
func TestBrowserServerListShowsTrouble(t *testing.T) {
	ctx := newBrowser(t)
	n := startUINode(t)
	n.seed(t)
	c, err := api.NewClient(api.Config{Address: n.url, Username: "admin", Password: uiAdminPassword})
	if err != nil {
		t.Fatal(err)
	}
	const id = "branch-tromso"
	n.runStatusSensor(t, id, time.Hour)
	waitSensor(t, c, id, "online", func(s *api.Sensor) bool { return s.Online })
	put := func(addr string) {
		t.Helper()
		host, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		_, v, err := c.PutPOP3(t.Context(), id, &api.POP3Integration{
			Enabled: true, Server: host, Port: uint32(p), IntervalSeconds: uint32(statusPollInterval / time.Second),
			Username: "journal", Password: "secret",
		}, 0)
		if err != nil {
			t.Fatal(err)
		}
		waitSensor(t, c, id, fmt.Sprintf("version %d applied", v), func(s *api.Sensor) bool { return s.AppliedVersion >= v })
	}
	put(loopbackPort(t))
	waitPOP3(t, c, id, "failing", func(st *api.IntegrationStatus) bool { return st.State == api.IntegrationFailing })

	uiSignIn(t, ctx, n.url, "admin", uiAdminPassword)
	row := `tr[data-sensor="` + id + `"] `
	uiDo(t, ctx, "POP3 failing in the list", chromedp.WaitVisible(chromedp.CSS(row+`[data-live="pop3"] .part-failing`)))
	if got := uiRun(t, ctx, "last error", chromedp.Text(chromedp.CSS(row+`[data-live="last_error"]`))); !strings.Contains(got, "pop3: ") || !strings.Contains(got, "connection refused") {
		t.Errorf("last error cell: got %q, want the POP3 error", got)
	}
	if got := uiRun(t, ctx, "risk", chromedp.Text(chromedp.CSS(row+`.problem-risk`))); !strings.HasPrefix(got, "RISK: pop3 ") {
		t.Errorf("risk in the list: got %q", got)
	}
	// A RISK and an ALERT look different from each other and from an error.
	styles := uiRun(t, ctx, "problem styles", chromedp.Evaluate[[]string](`(() => {
		const s = c => { const li = document.createElement("li"); li.className = "problem " + c; document.body.appendChild(li);
			const st = getComputedStyle(li); const v = st.backgroundColor + "|" + st.borderLeftColor; li.remove(); return v; };
		return [s("problem-alert"), s("problem-risk"), s("problem-error"), s("problem-note")];
	})()`))
	if len(styles) != 4 || styles[0] == styles[1] || styles[0] == styles[2] || styles[1] == styles[2] || styles[1] == styles[3] {
		t.Errorf("problem styles (alert, risk, error, note): %q, want alert, risk and error each their own", styles)
	}

	srv := pop3test.StartServer(t, pop3test.ServerOptions{User: "journal", Password: "secret"})
	put(srv.Addr())
	uiDo(t, ctx, "POP3 polling in the list without a reload", chromedp.WaitVisible(chromedp.CSS(row+`[data-live="pop3"] .part-polling`)))
	if got := uiRun(t, ctx, "last error", chromedp.Text(chromedp.CSS(row+`[data-live="last_error"]`))); got != "" {
		t.Errorf("last error cell after the fix: got %q, want it empty", got)
	}

	uiDo(t, ctx, "status page", chromedp.Click(chromedp.CSS(row+`a.strong`)), chromedp.WaitVisible(chromedp.ID("status-title")))
	if got := uiRun(t, ctx, "POP3 state", chromedp.Text(chromedp.CSS(`#pop3 .badge`))); got != "polling" {
		t.Errorf("status page POP3 state: got %q, want polling", got)
	}
	if got := uiRun(t, ctx, "problems", chromedp.Text(chromedp.CSS(`#problems .problem-risk`))); !strings.Contains(got, "TLS is off") {
		t.Errorf("status page problems: got %q, want the RISK of TLS off", got)
	}
	uiScreenshot(t, ctx, "sensor-status")
}
