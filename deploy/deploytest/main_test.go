package deploytest

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes the binaries the tests built for themselves.
func TestMain(m *testing.M) {
	code := m.Run()
	if flagsBin != "" {
		os.RemoveAll(filepath.Dir(flagsBin))
	}
	os.Exit(code)
}
