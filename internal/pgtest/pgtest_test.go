package pgtest_test

import (
	"database/sql"
	"os"
	"testing"

	"github.com/ospreysec/osprey/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestDB(t *testing.T) {
	u := pgtest.DB(t)
	db, err := sql.Open("pgx", u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRowContext(t.Context(), "SELECT version()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	t.Log(v)
}
