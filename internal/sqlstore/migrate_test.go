package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// history is a schema whose steps fail if run twice (plain CREATE TABLE)
// and leave a trace of each run (a row in runs).
var history = []Migration{
	{Version: 1, Name: "runs",
		SQLite:   "CREATE TABLE runs (step INTEGER NOT NULL); INSERT INTO runs (step) VALUES (1)",
		Postgres: "CREATE TABLE runs (step INTEGER NOT NULL); INSERT INTO runs (step) VALUES (1)"},
	{Version: 2, Name: "things",
		SQLite:   "CREATE TABLE things (id BLOB PRIMARY KEY); INSERT INTO runs (step) VALUES (2)",
		Postgres: "CREATE TABLE things (id BYTEA PRIMARY KEY); INSERT INTO runs (step) VALUES (2)"},
	{Version: 3, Name: "things.note",
		SQLite:   "ALTER TABLE things ADD COLUMN note TEXT; INSERT INTO runs (step) VALUES (3)",
		Postgres: "ALTER TABLE things ADD COLUMN note TEXT; INSERT INTO runs (step) VALUES (3)"},
}

type applied struct {
	Namespace string
	Version   int
	Name      string
}

func appliedRows(t *testing.T, db *DB) []applied {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "SELECT namespace, version, name FROM schema_migrations ORDER BY namespace, version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []applied
	for rows.Next() {
		var a applied
		if err := rows.Scan(&a.Namespace, &a.Version, &a.Name); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dsn := b.fresh(t)
			open := func(namespace string, ms []Migration) (*DB, error) {
				db, err := Open(ctx, dsn, namespace, ms)
				if err == nil {
					t.Cleanup(func() { db.Close() })
				}
				return db, err
			}
			// Steps are applied in order, once, across restarts.
			for _, n := range []int{1, 1, 3, 3} {
				if _, err := open("svc", history[:n]); err != nil {
					t.Fatalf("Open with %d migrations: %v", n, err)
				}
			}
			db, _ := open("svc", history)
			if got := count(t, db, "SELECT COUNT(*) FROM runs"); got != 3 {
				t.Errorf("%d migration runs, want 3 (each once)", got)
			}
			if got := count(t, db, "SELECT COUNT(*) FROM runs WHERE step = 3"); got != 1 {
				t.Errorf("step 3 ran %d times", got)
			}
			mustExec(t, db, "INSERT INTO things (id, note) VALUES (?, ?)", []byte{1}, "x") // the schema is there

			// A second namespace in the same database has its own versions.
			other := []Migration{{Version: 1, Name: "other", SQLite: "CREATE TABLE other_t (x INTEGER)", Postgres: "CREATE TABLE other_t (x INTEGER)"}}
			if _, err := open("other", other); err != nil {
				t.Fatalf("second namespace: %v", err)
			}
			want := []applied{{"other", 1, "other"}, {"svc", 1, "runs"}, {"svc", 2, "things"}, {"svc", 3, "things.note"}}
			if diff := cmp.Diff(want, appliedRows(t, db)); diff != "" {
				t.Errorf("schema_migrations (-want +got)\n%s", diff)
			}

			// Refusals, each leaving the database as it was.
			renamed := append([]Migration(nil), history...)
			renamed[1].Name = "widgets"
			broken := append(append([]Migration(nil), history...),
				Migration{Version: 4, Name: "ok", SQLite: "CREATE TABLE four (x INTEGER)", Postgres: "CREATE TABLE four (x INTEGER)"},
				Migration{Version: 5, Name: "broken", SQLite: "CREATE TABLE nope (", Postgres: "CREATE TABLE nope ("})
			tests := []struct {
				name    string
				ms      []Migration
				wantErr func(error) bool
				reason  string
			}{
				{"older program", history[:2], func(err error) bool {
					var sv *SchemaVersionError
					return errors.As(err, &sv) && *sv == SchemaVersionError{Namespace: "svc", Database: 3, Program: 2}
				}, "a database migrated by a newer release is not used by an older one"},
				{"renamed step", renamed, func(err error) bool { return err != nil }, "a released migration must not change"},
				{"broken step", broken, func(err error) bool { return err != nil }, "a failing step fails Open, and the good step before it is rolled back too"},
			}
			for _, tt := range tests {
				_, err := open("svc", tt.ms)
				if !tt.wantErr(err) {
					t.Errorf("%s: Open returned %v (%s)", tt.name, err, tt.reason)
				}
			}
			if diff := cmp.Diff(want, appliedRows(t, db)); diff != "" {
				t.Errorf("schema_migrations after refusals (-want +got)\n%s", diff)
			}
			if err := db.Tx(ctx, func(tx *sql.Tx) error { _, err := tx.Exec("SELECT x FROM four"); return err }); err == nil {
				t.Error("table four exists: the run with a broken step was applied in part")
			}
		})
	}
}

func TestCheckMigrations(t *testing.T) {
	t.Parallel()
	ok := Migration{Version: 1, Name: "a", SQLite: "SELECT 1", Postgres: "SELECT 1"}
	tests := []struct {
		name    string
		ms      []Migration
		wantErr bool
		reason  string
	}{
		{"none", nil, false, "a service may have no tables yet"},
		{"one", []Migration{ok}, false, "the simplest history"},
		{"zero version", []Migration{{Version: 0, Name: "a", SQLite: "x", Postgres: "x"}}, true, "versions start at 1"},
		{"gap", []Migration{ok, {Version: 3, Name: "c", SQLite: "x", Postgres: "x"}}, true, "versions grow by one"},
		{"out of order", []Migration{{Version: 2, Name: "b", SQLite: "x", Postgres: "x"}, ok}, true, "oldest first"},
		{"no name", []Migration{{Version: 1, SQLite: "x", Postgres: "x"}}, true, "names are checked on every Open"},
		{"no postgres", []Migration{{Version: 1, Name: "a", SQLite: "x"}}, true, "both dialects are required"},
		{"no sqlite", []Migration{{Version: 1, Name: "a", Postgres: "x"}}, true, "both dialects are required"},
	}
	for _, tt := range tests {
		if err := checkMigrations(tt.ms); (err != nil) != tt.wantErr {
			t.Errorf("%s: checkMigrations = %v, want error %v (%s)", tt.name, err, tt.wantErr, tt.reason)
		}
	}
}

// TestMigrateConcurrently starts many "processes" on one empty database
// at once: every Open succeeds and every step runs once.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			dsn := b.fresh(t)
			const n = 8
			var wg sync.WaitGroup
			errs := make([]error, n)
			dbs := make([]*DB, n)
			for i := range n {
				wg.Go(func() {
					dbs[i], errs[i] = Open(context.Background(), dsn, "svc", history)
				})
			}
			wg.Wait()
			for i := range n {
				if errs[i] != nil {
					t.Errorf("Open #%d: %v", i, errs[i])
					continue
				}
				defer dbs[i].Close()
			}
			if t.Failed() {
				return
			}
			if got := count(t, dbs[0], "SELECT COUNT(*) FROM runs"); got != len(history) {
				t.Errorf("%d migration runs, want %d (each step once)", got, len(history))
			}
		})
	}
}

// TestReady: a DB is ready while its schema is the program's, and not once
// a newer release migrated it further or its migrations were undone under
// it (a database restored or swapped while the process runs).
func TestReady(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			dsn := b.fresh(t)
			old, err := Open(ctx, dsn, "svc", history[:2])
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			if err := old.Ready(ctx); err != nil {
				t.Fatalf("Ready right after Open: %v", err)
			}
			newer, err := Open(ctx, dsn, "svc", history)
			if err != nil {
				t.Fatal(err)
			}
			defer newer.Close()
			var sv *SchemaVersionError
			if err := old.Ready(ctx); !errors.As(err, &sv) || sv.Database != 3 || sv.Program != 2 {
				t.Errorf("Ready of the older program after a newer one migrated: %v, want a SchemaVersionError 3 > 2", err)
			}
			if err := newer.Ready(ctx); err != nil {
				t.Errorf("Ready of the newer program: %v", err)
			}
			mustExec(t, newer, "DELETE FROM schema_migrations WHERE namespace = ? AND version = 3", "svc")
			if err := newer.Ready(ctx); err == nil || errors.As(err, &sv) {
				t.Errorf("Ready with a migration gone: %v, want an error that is no SchemaVersionError", err)
			}
			newer.Close()
			if err := newer.Ready(ctx); err == nil {
				t.Error("Ready of a closed DB: nil")
			}
		})
	}
}
