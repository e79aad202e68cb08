package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/veilchat/veil/internal/pgtest"
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
	{"postgres", func(t *testing.T) string { return pgtest.DSN(t) }},
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
