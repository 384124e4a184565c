package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/ospreysec/osprey/api"
)

// fakeCentral serves a few routes the way a central node does, for the examples.
func fakeCentral() *httptest.Server {
	var mu sync.Mutex
	version := int64(7)
	smtp := api.SMTPIntegration{Enabled: true, Listen: "127.0.0.1:2525", DestinationDomains: []string{"example.com"}}
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/sensors", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.SensorList{Sensors: []api.Sensor{
			{ID: "s1", Name: "branch-1", Tenant: "default", State: api.SensorApproved, Online: true, ConfigVersion: 7, AppliedVersion: 7},
			{ID: "s2", Name: "branch-2", Tenant: "default", State: api.SensorPending},
		}})
	})
	mux.HandleFunc("GET /api/v1/sensors/s1/smtp", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("ETag", api.FormatETag(version))
		writeJSON(w, http.StatusOK, smtp)
	})
	mux.HandleFunc("PUT /api/v1/sensors/s1/smtp", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if m := r.Header.Get("If-Match"); m != "" && m != api.FormatETag(version) {
			writeJSON(w, http.StatusConflict, api.Error{Message: "the configuration changed since it was read"})
			return
		}
		var in api.SMTPIntegration
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, api.Error{Message: err.Error()})
			return
		}
		if len(in.Clients) > 1 && in.Clients[1] == "10.0.0.300" {
			writeJSON(w, http.StatusBadRequest, api.Error{
				Message: "invalid smtp integration",
				Fields:  []api.FieldError{{Field: "clients[1]", Message: "not an IP address or CIDR"}},
			})
			return
		}
		smtp = in
		version++
		w.Header().Set("ETag", api.FormatETag(version))
		writeJSON(w, http.StatusOK, smtp)
	})
	mux.HandleFunc("GET /api/v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		ok := api.NodeHealth{Etcd: true, GRPC: true, HTTP: true, SMTP: true, Spool: true}
		writeJSON(w, http.StatusOK, api.NodeList{
			Nodes: []api.Node{
				{Name: "n1", State: api.NodeAlive, Roles: []api.NodeRole{api.NodeRoleCentral, api.NodeRoleSensor}, Self: true, GossipAddr: "10.0.0.1:7946", Health: ok},
				{Name: "n2", State: api.NodeDead, Roles: []api.NodeRole{api.NodeRoleCentral, api.NodeRoleSensor}, GossipAddr: "10.0.0.2:7946"},
				{Name: "n3", State: api.NodeAlive, Roles: []api.NodeRole{api.NodeRoleCentral, api.NodeRoleSensor}, GossipAddr: "10.0.0.3:7946", Health: ok},
			},
			DNS: api.ClusterDNS{Zone: "osprey.example.com.", Addr: "10.0.0.1:53", TTLSeconds: 5, Quorum: true, Records: []api.DNSRecord{
				{Name: "smtp.osprey.example.com.", Type: "A", Values: []string{"10.0.0.1", "10.0.0.3"}},
			}},
		})
	})
	return httptest.NewServer(mux)
}

func ExampleNewClient() {
	srv := fakeCentral()
	defer srv.Close()

	c, err := api.NewClient(api.Config{
		Address:  srv.URL, // "https://central.example.com:8443"
		Username: "admin",
		Password: "secret",
	})
	if err != nil {
		log.Fatal(err)
	}
	sensors, err := c.Sensors(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range sensors {
		fmt.Println(s.ID, s.Name, s.State, s.Online)
	}
	// Output:
	// s1 branch-1 approved true
	// s2 branch-2 pending false
}

// Read a sensor's SMTP integration, change it, and write it back at the version that was
// read, so a concurrent change is not overwritten.
func ExampleClient_PutSMTP() {
	srv := fakeCentral()
	defer srv.Close()
	c, err := api.NewClient(api.Config{Address: srv.URL, Token: "osp_0123456789abcdef_c2VjcmV0"})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	smtp, version, err := c.SMTP(ctx, "s1")
	if err != nil {
		log.Fatal(err)
	}
	smtp.Clients = []string{"10.0.0.0/8", "!10.0.0.5"}
	smtp.MaxMessageSize = &api.SizeLimit{Value: 25, Unit: api.MB}
	smtp, newVersion, err := c.PutSMTP(ctx, "s1", smtp, version)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(version, "->", newVersion, smtp.Clients)

	// Writing again at the old version fails: someone (here, us) wrote in between.
	_, _, err = c.PutSMTP(ctx, "s1", smtp, version)
	var apiErr *api.Error
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusConflict {
		fmt.Println("conflict:", apiErr.Message)
	}
	// Output:
	// 7 -> 8 [10.0.0.0/8 !10.0.0.5]
	// conflict: the configuration changed since it was read
}

// A validation error names each field that is wrong.
func ExampleError() {
	srv := fakeCentral()
	defer srv.Close()
	c, err := api.NewClient(api.Config{Address: srv.URL, Username: "admin", Password: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	bad := &api.SMTPIntegration{Enabled: true, Clients: []string{"10.0.0.0/8", "10.0.0.300"}}
	_, _, err = c.PutSMTP(context.Background(), "s1", bad, 0)

	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Message)
		for _, f := range apiErr.Fields {
			fmt.Printf("%s: %s\n", f.Field, f.Message)
		}
	}
	fmt.Println(err)
	// Output:
	// 400 invalid smtp integration
	// clients[1]: not an IP address or CIDR
	// invalid smtp integration: clients[1]: not an IP address or CIDR (status 400)
}

func ExampleParseETag() {
	v, err := api.ParseETag(`"123"`)
	fmt.Println(v, err, api.FormatETag(v))
	// Output: 123 <nil> "123"
}

// List the central nodes of the cluster and what its DNS answers. With
// Address "dns:///central.osprey.example.com:8443" the client would reach
// whichever node the cluster's DNS names first, skipping dead ones.
func ExampleClient_Nodes() {
	srv := fakeCentral()
	defer srv.Close()
	c, err := api.NewClient(api.Config{Address: srv.URL, Token: "osp_0123456789abcdef_c2VjcmV0"})
	if err != nil {
		log.Fatal(err)
	}
	l, err := c.Nodes(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, n := range l.Nodes {
		fmt.Println(n.Name, n.State, n.Health.SMTP)
	}
	for _, r := range l.DNS.Records {
		fmt.Println(r.Name, r.Type, r.Values)
	}
	// Output:
	// n1 alive true
	// n2 dead false
	// n3 alive true
	// smtp.osprey.example.com. A [10.0.0.1 10.0.0.3]
}

// ExampleClient_Alerts reads every high or critical alert of the last day, a page at a time.
func ExampleClient_Alerts() {
	pages := map[string]api.AlertList{
		"": {Alerts: []api.Alert{{ID: "1890c5e1a2b3c4d5-00000000000000aa", Severity: api.SeverityCritical,
			Headers: &api.HeaderSummary{Subject: "Invoice"}}}, NextPageToken: "p2"},
		"p2": {Alerts: []api.Alert{{ID: "1890c5e1a2b3c4d4-00000000000000bb", Severity: api.SeverityHigh,
			Headers: &api.HeaderSummary{Subject: "Payroll"}}}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(pages[r.URL.Query().Get("page_token")])
	}))
	defer srv.Close()

	c, err := api.NewClient(api.Config{Address: srv.URL, Username: "admin", Password: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	q := api.AlertQuery{Severity: api.SeverityHigh, Since: time.Now().Add(-24 * time.Hour)}
	for {
		page, err := c.Alerts(context.Background(), q)
		if err != nil {
			log.Fatal(err)
		}
		for _, a := range page.Alerts {
			fmt.Println(a.Severity, a.Headers.Subject)
		}
		if page.NextPageToken == "" {
			break
		}
		q.PageToken = page.NextPageToken
	}
	// Output:
	// critical Invoice
	// high Payroll
}

// A sensor's faults: what fails on it now, the first of which the server
// list shows as its last error.
func ExampleSensor_Faults() {
	s := api.Sensor{
		ID: "branch-paris",
		POP3Status: &api.IntegrationStatus{
			State:       api.IntegrationFailing,
			Target:      "journal@mail.example.com:995",
			LastError:   "login: -ERR [AUTH] Authentication failed.",
			LastErrorAt: time.Date(2026, 1, 2, 9, 30, 0, 0, time.UTC),
		},
		SpoolStatus: &api.SpoolStatus{State: api.SpoolOK},
	}
	for _, f := range s.Faults() {
		fmt.Printf("%s at %s: %s\n", f.Part, f.At.Format(time.RFC3339), f.Error)
	}
	// Output:
	// pop3 at 2026-01-02T09:30:00Z: login: -ERR [AUTH] Authentication failed.
}
