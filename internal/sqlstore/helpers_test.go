package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// backend is a database kind the tests run on.
type backend struct {
	name string
	// fresh returns the DSN of a new, empty database for this test, or
	// skips the test when the backend is unavailable.
	fresh func(t *testing.T) string
}

var backends = []backend{
	{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "test.db") }},
	{"postgres", freshPostgres},
}

// freshPostgres creates a schema of its own for the test in the database
// named by VEIL_TEST_POSTGRES, drops it when the test ends, and returns a
// DSN whose search_path is that schema. It skips the test when
// VEIL_TEST_POSTGRES is empty.
func freshPostgres(t *testing.T) string {
	t.Helper()
	base := os.Getenv("VEIL_TEST_POSTGRES")
	if base == "" {
		t.Skip("VEIL_TEST_POSTGRES not set")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	var r [8]byte
	rand.Read(r[:])
	schema := "veil_test_" + hex.EncodeToString(r[:])
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		admin.Close()
		t.Fatalf("creating a test schema (is PostgreSQL up?): %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("dropping %s: %v", schema, err)
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// mustOpen opens dsn with migrations under namespace "test" and closes it
// when the test ends.
func mustOpen(t *testing.T, dsn string, ms ...Migration) *DB {
	t.Helper()
	db, err := Open(context.Background(), dsn, "test", ms)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// mustExec runs statements in a write transaction or fails the test.
func mustExec(t *testing.T, db *DB, query string, args ...any) {
	t.Helper()
	err := db.Tx(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(db.Dialect().Rebind(query), args...)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// count returns SELECT COUNT(*) of query.
func count(t *testing.T, db *DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), db.Dialect().Rebind(query), args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// counterTable is a one-row table the transaction tests update.
var counterTable = Migration{Version: 1, Name: "counter",
	SQLite:   "CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter (n) VALUES (0)",
	Postgres: "CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter (n) VALUES (0)",
}
