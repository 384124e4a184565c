package sensor_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps the sensor's imports honest: within the module only
// pkg/, proto/, api/ and sensor/ itself, and never the etcd server.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	const module = "github.com/ospreysec/osprey/"
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", "-f", "{{.ImportPath}}", module+"sensor/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := []string{module + "pkg/", module + "proto/", module + "api/", module + "sensor/"}
	for pkg := range strings.FieldsSeq(string(out)) {
		switch {
		case strings.HasPrefix(pkg, "go.etcd.io/etcd/server"):
			t.Errorf("the sensor depends on the etcd server (%s)", pkg)
		case strings.HasPrefix(pkg, module):
			ok := pkg == module+"sensor"
			for _, prefix := range allowed {
				ok = ok || strings.HasPrefix(pkg, prefix)
			}
			if !ok {
				t.Errorf("the sensor depends on %s; it may use only pkg/, proto/ and api/", pkg)
			}
		}
	}
}

// TestNothingElseImportsTheSensor keeps the other side of the rule: central/
// and pkg/, their tests included, never import sensor/ (nor pkg/ central/).
// They meet in cmd/osprey and in the end-to-end tests under tests/.
func TestNothingElseImportsTheSensor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	const module = "github.com/ospreysec/osprey/"
	for _, tc := range []struct{ pattern, forbidden string }{
		{"central/...", "sensor"},
		{"pkg/...", "sensor"},
		{"pkg/...", "central"},
	} {
		out, err := exec.CommandContext(t.Context(), goTool, "list", "-test", "-f", `{{.ImportPath}}: {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}`, module+tc.pattern).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", tc.pattern, err)
		}
		for line := range strings.Lines(string(out)) {
			pkg, imports, _ := strings.Cut(line, ":")
			for imp := range strings.FieldsSeq(imports) {
				if imp == module+tc.forbidden || strings.HasPrefix(imp, module+tc.forbidden+"/") {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
		}
	}
}
