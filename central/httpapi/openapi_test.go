package httpapi_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/ospreysec/osprey/api"
	"github.com/ospreysec/osprey/central/httpapi"
	"github.com/ospreysec/osprey/central/store"
	ospreyv1 "github.com/ospreysec/osprey/proto/osprey/v1"
)

// specRoutes returns "METHOD /path" for every operation of api/openapi.yaml.
func specRoutes(t *testing.T) []string {
	t.Helper()
	j, err := yaml.YAMLToJSON(api.OpenAPI())
	if err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(j, &doc); err != nil {
		t.Fatal(err)
	}
	var out []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "patch":
				out = append(out, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestServedRoutesMatchOpenAPI holds the route table against the contract, and
// then checks that the mux really serves each of them (no 404/405 from routing).
func TestServedRoutesMatchOpenAPI(t *testing.T) {
	served := map[string]bool{}
	for _, rt := range httpapi.Routes() {
		served[rt.Method+" "+rt.Pattern] = true
	}
	if diff := cmp.Diff(specRoutes(t), slices.Sorted(maps.Keys(served))); diff != "" {
		t.Errorf("openapi.yaml (-) and the served routes (+) differ:\n%s", diff)
	}

	e := newEnv(t)
	// A global rule s1, so that DELETE /api/v1/rules/{id} finds one.
	if _, err := e.store.CreateGlobalRule(t.Context(), store.AllTenants(), &ospreyv1.Rule{Id: "s1",
		Kind: ospreyv1.RuleKind_RULE_KIND_SENDER, Value: "a@example.com", Severity: ospreyv1.Severity_SEVERITY_LOW}); err != nil {
		t.Fatal(err)
	}
	for route := range served {
		method, path, _ := strings.Cut(route, " ")
		t.Run(route, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), method, e.url+strings.ReplaceAll(path, "{id}", "s1"), strings.NewReader("not json"))
			if err != nil {
				t.Fatal(err)
			}
			req.SetBasicAuth("root", testPassword)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusMethodNotAllowed || (resp.StatusCode == http.StatusNotFound && method != "GET") {
				t.Errorf("got %d: the route is not served", resp.StatusCode)
			}
		})
	}
}
