package tests

import (
	"bufio"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ospreysec/osprey/internal/testwait"
)

// scrape reads the node's /metrics (as the admin) and returns each
// sample's value by its name and labels as written ("name{a=\"b\"}"), and
// how many times each metric's TYPE line came.
func scrape(t *testing.T, base string) (samples map[string]float64, types map[string]int) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("admin", adminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: status %d: %s", resp.StatusCode, b)
	}
	samples, types = map[string]float64{}, map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, _, _ := strings.Cut(rest, " ")
			types[name]++
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return samples, types
}

// TestDevServesSensorMetrics: `osprey dev` serves the metrics of its own
// Sensor component (SMTP, spool, upload, POP3) on the node's /metrics, each
// once, beside the node's own, and they count the mail the sensor takes.
func TestDevServesSensorMetrics(t *testing.T) {
	d := startDev(t, filepath.Join(t.TempDir(), "data"))
	base := apiLine.FindStringSubmatch(d.stdout.String())[1]
	listen := loopbackPort(t)
	// Applied means the sensor runs: its metrics are registered.
	d.enableSMTP(t, smtpConfig(listen))
	if err := sendOne(listen, "someone@example.org"); err != nil {
		t.Fatalf("send: %v", err)
	}
	// The sensor counts an upload once the central acknowledged it.
	testwait.For(t, "osprey_sensor_uploaded_total to be 1", func() bool {
		samples, _ := scrape(t, base)
		return samples["osprey_sensor_uploaded_total"] == 1
	})

	samples, types := scrape(t, base)
	// The node's health monitor connects to the SMTP listener every
	// second too, so the client's connection is one of one or more.
	// The SMTP metrics are per listener; the monitor listener took it.
	if got := samples[`osprey_smtp_connections_total{listener="monitor"}`]; got < 1 {
		t.Errorf("osprey_smtp_connections_total: got %v, want at least 1", got)
	}
	for name, want := range map[string]float64{
		`osprey_smtp_messages_accepted_total{listener="monitor"}`: 1,
		"osprey_sensor_spool_puts_total":                          1,
		"osprey_sensor_spool_messages":                            0,
		"osprey_sensor_uploaded_total":                            1,
		"osprey_sensor_pop3_polls_total":                          0,
		"osprey_sensor_pop3_errors_total":                         0,
		"osprey_central_uploads_total":                            1, // the node's
	} {
		got, ok := samples[name]
		if !ok {
			t.Errorf("/metrics has no %s", name)
		} else if got != want {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	for name, n := range types {
		if n != 1 {
			t.Errorf("/metrics declares %s %d times, want once", name, n)
		}
	}
	if types["go_goroutines"] != 1 {
		t.Errorf("/metrics has no Go runtime metrics")
	}
}
