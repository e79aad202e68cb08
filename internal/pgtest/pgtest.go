package pgtest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// EnvVar names the environment variable holding the test database's DSN.
const EnvVar = "VEIL_TEST_POSTGRES"

// Available reports whether a test database is configured.
func Available() bool { return os.Getenv(EnvVar) != "" }

// DSN creates a fresh schema in the test database, drops it when tb ends,
// and returns a DSN whose search_path is that schema. It skips tb when no
// test database is configured.
func DSN(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(EnvVar)
	if base == "" {
		tb.Skip(EnvVar + " not set")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatal(err)
	}
	var r [8]byte
	rand.Read(r[:])
	schema := "veil_test_" + hex.EncodeToString(r[:])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		admin.Close()
		tb.Fatalf("creating a test schema (is PostgreSQL up?): %v", err)
	}
	tb.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			tb.Errorf("dropping %s: %v", schema, err)
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
