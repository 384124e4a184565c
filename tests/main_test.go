package tests

import (
	"os"
	"testing"

	"github.com/ospreysec/osprey/internal/pgtest"
)

// TestMain stops the PostgreSQL server that the cluster tests share once
// they are done.
func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m))
}
