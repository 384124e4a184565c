// Package promtext reads one sample from a Prometheus text exposition (what
// a node serves at /metrics), as the benchmark harnesses poll a counter or
// a gauge while a node is under load. It scans the lines for the sample's
// name and parses nothing else, so that polling every few milliseconds
// takes little from the process under test.
package promtext

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Value returns the value of the sample name, without labels, in the
// exposition r, and whether r has one.
func Value(r io.Reader, name string) (float64, bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			return v, err == nil
		}
	}
	return 0, false
}

// Get reads the sample name from the exposition at url, with client; a
// bearer token, when given, is sent as the Authorization.
func Get(client *http.Client, url, bearer, name string) (float64, bool) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, false
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	return Value(resp.Body, name)
}
