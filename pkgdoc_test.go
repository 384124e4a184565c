// Package osprey_test holds the checks that span the whole module.
package osprey_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs checks that every package of the module says what it is
// for in exactly one package comment, as the house style asks (Tailscale's
// pkgdoc_test does the same).
func TestPackageDocs(t *testing.T) {
	dirs := map[string][]string{} // directory → its non-test Go files
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dirs[filepath.Dir(path)] = append(dirs[filepath.Dir(path)], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 20 {
		t.Fatalf("found %d packages; is the test running from the module's root?", len(dirs))
	}
	for dir, files := range dirs {
		var documented []string
		for _, file := range files {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, src, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
				documented = append(documented, file)
			}
		}
		switch len(documented) {
		case 0:
			t.Errorf("%s: no package comment", dir)
		case 1:
		default:
			t.Errorf("%s: package comments in %d files, want one: %s", dir, len(documented), strings.Join(documented, ", "))
		}
	}
}
